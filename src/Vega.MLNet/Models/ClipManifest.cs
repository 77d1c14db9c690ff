using System.Globalization;
using System.Text.Json;

namespace Vega.MLNet.Models;

/// <summary>
/// The keys of a <c>clip.json</c> manifest. Every key is optional: a manifest beside a Hugging Face or OpenAI-style
/// export only overrides what detection got wrong; a manifest alone describes any other layout. Paths are relative
/// to the manifest's folder. See docs/models.md for the reference.
/// </summary>
internal sealed record ClipManifest
{
    public string? Name { get; init; }
    public string? ImageModel { get; init; }
    public string? TextModel { get; init; }
    public string? Model { get; init; }
    public string? Tokenizer { get; init; }
    public string? ImageInput { get; init; }
    public string? ImageOutput { get; init; }
    public string? TextInput { get; init; }
    public string? TextMaskInput { get; init; }
    public bool? TextHasMask { get; init; }
    public string? TextOutput { get; init; }
    public int? ImageSize { get; init; }
    public int? ResizeShortestEdge { get; init; }
    public string? Resize { get; init; }
    public string? Resample { get; init; }
    public string? CropRounding { get; init; }
    public float[]? Mean { get; init; }
    public float[]? Std { get; init; }
    public int? ContextLength { get; init; }
    public int? PadId { get; init; }
    public float? LogitScale { get; init; }
    public bool? Normalized { get; init; }

    public static readonly string[] Keys =
    [
        "name", "image_model", "text_model", "model", "tokenizer", "image_input", "image_output", "text_input",
        "text_mask_input", "text_output", "image_size", "resize_shortest_edge", "resize", "resample", "crop_rounding",
        "mean", "std", "context_length", "pad_id", "logit_scale", "normalized",
    ];

    public static ClipManifest Read(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ClipModelException($"The manifest '{path}' is not valid JSON ({e.Message}). See docs/models.md for its keys.", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ClipModelException($"The manifest '{path}' must be a JSON object; see docs/models.md.");
            foreach (var p in root.EnumerateObject())
                if (!Keys.Contains(p.Name))
                    throw new ClipModelException($"The manifest '{path}' has the unknown key \"{p.Name}\". Known keys: {string.Join(", ", Keys)}.");
            try
            {
                string? mask = Str(root, "text_mask_input");
                bool? hasMask = root.TryGetProperty("text_mask_input", out var m) ? m.ValueKind != JsonValueKind.Null : null;
                return new ClipManifest
                {
                    Name = Str(root, "name"),
                    ImageModel = Str(root, "image_model"),
                    TextModel = Str(root, "text_model"),
                    Model = Str(root, "model"),
                    Tokenizer = Str(root, "tokenizer"),
                    ImageInput = Str(root, "image_input"),
                    ImageOutput = Str(root, "image_output"),
                    TextInput = Str(root, "text_input"),
                    TextMaskInput = mask,
                    TextHasMask = hasMask,
                    TextOutput = Str(root, "text_output"),
                    ImageSize = Int(root, "image_size"),
                    ResizeShortestEdge = Int(root, "resize_shortest_edge"),
                    Resize = Str(root, "resize"),
                    Resample = Str(root, "resample"),
                    CropRounding = Str(root, "crop_rounding"),
                    Mean = Floats(root, "mean"),
                    Std = Floats(root, "std"),
                    ContextLength = Int(root, "context_length"),
                    PadId = Int(root, "pad_id"),
                    LogitScale = root.TryGetProperty("logit_scale", out var ls) ? ls.GetSingle() : null,
                    Normalized = root.TryGetProperty("normalized", out var n) ? n.GetBoolean() : null,
                };
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new ClipModelException($"The manifest '{path}' has a value of the wrong type ({e.Message}). See docs/models.md.", e);
            }
        }
    }

    private static string? Str(JsonElement root, string key) =>
        root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v.GetString() : null;

    private static int? Int(JsonElement root, string key) =>
        root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v.GetInt32() : null;

    private static float[]? Floats(JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        var a = v.EnumerateArray().Select(e => e.GetSingle()).ToArray();
        if (a.Length != 3) throw new FormatException($"\"{key}\" must hold 3 numbers (R, G, B), got {a.Length}");
        return a;
    }

    /// <summary>Settings found in Hugging Face's config.json and preprocessor_config.json.</summary>
    public static ClipManifest FromHuggingFace(string directory)
    {
        var result = new ClipManifest();
        string config = Path.Combine(directory, "config.json");
        if (File.Exists(config))
        {
            using var doc = ParseOrThrow(config);
            var root = doc.RootElement;
            float? logit = null;
            if (root.TryGetProperty("logit_scale", out var ls) && ls.ValueKind == JsonValueKind.Number) logit = MathF.Exp(ls.GetSingle());
            else if (root.TryGetProperty("logit_scale_init_value", out var li) && li.ValueKind == JsonValueKind.Number) logit = MathF.Exp(li.GetSingle());
            int? context = null, pad = null;
            if (root.TryGetProperty("text_config", out var tc) && tc.ValueKind == JsonValueKind.Object)
            {
                if (tc.TryGetProperty("max_position_embeddings", out var mp) && mp.ValueKind == JsonValueKind.Number) context = mp.GetInt32();
                if (tc.TryGetProperty("pad_token_id", out var pt) && pt.ValueKind == JsonValueKind.Number) pad = pt.GetInt32();
            }
            int? size = null;
            if (root.TryGetProperty("vision_config", out var vc) && vc.ValueKind == JsonValueKind.Object
                && vc.TryGetProperty("image_size", out var isz) && isz.ValueKind == JsonValueKind.Number) size = isz.GetInt32();
            result = result with { LogitScale = logit, ContextLength = context, PadId = pad, ImageSize = size };
        }
        string pre = Path.Combine(directory, "preprocessor_config.json");
        if (File.Exists(pre))
        {
            using var doc = ParseOrThrow(pre);
            var root = doc.RootElement;
            int? crop = null, shortest = null;
            string? resize = null, resample = null;
            if (root.TryGetProperty("crop_size", out var cs))
                crop = cs.ValueKind == JsonValueKind.Number ? cs.GetInt32() : cs.TryGetProperty("height", out var h) ? h.GetInt32() : null;
            if (root.TryGetProperty("size", out var sz))
            {
                if (sz.ValueKind == JsonValueKind.Number) shortest = sz.GetInt32();
                else if (sz.TryGetProperty("shortest_edge", out var se)) shortest = se.GetInt32();
                else if (sz.TryGetProperty("height", out var sh)) { shortest = sh.GetInt32(); resize = "squash"; }
            }
            bool centerCrop = !root.TryGetProperty("do_center_crop", out var dc) || dc.ValueKind != JsonValueKind.False;
            if (!centerCrop) { resize = "squash"; crop ??= shortest; }
            if (root.TryGetProperty("resample", out var rs) && rs.ValueKind == JsonValueKind.Number)
                resample = rs.GetInt32() switch
                {
                    2 => "bilinear",
                    3 => "bicubic",
                    var other => throw new ClipModelException(
                        $"'{pre}' asks for PIL resample filter {other.ToString(CultureInfo.InvariantCulture)}; only 2 (bilinear) and 3 (bicubic) are supported. Set \"resample\" in clip.json."),
                };
            result = result with
            {
                ImageSize = crop ?? result.ImageSize,
                ResizeShortestEdge = shortest,
                Resize = resize,
                Resample = resample,
                Mean = root.TryGetProperty("image_mean", out var mean) ? mean.EnumerateArray().Select(e => e.GetSingle()).ToArray() : null,
                Std = root.TryGetProperty("image_std", out var std) ? std.EnumerateArray().Select(e => e.GetSingle()).ToArray() : null,
            };
        }
        return result;
    }

    private static JsonDocument ParseOrThrow(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ClipModelException($"'{path}' is not valid JSON ({e.Message}).", e); }
    }

    /// <summary>Values of <paramref name="over"/> win over this one's.</summary>
    public ClipManifest OverriddenBy(ClipManifest over) => new()
    {
        Name = over.Name ?? Name,
        ImageModel = over.ImageModel ?? ImageModel,
        TextModel = over.TextModel ?? TextModel,
        Model = over.Model ?? Model,
        Tokenizer = over.Tokenizer ?? Tokenizer,
        ImageInput = over.ImageInput ?? ImageInput,
        ImageOutput = over.ImageOutput ?? ImageOutput,
        TextInput = over.TextInput ?? TextInput,
        TextMaskInput = over.TextHasMask is null ? TextMaskInput : over.TextMaskInput,
        TextHasMask = over.TextHasMask ?? TextHasMask,
        TextOutput = over.TextOutput ?? TextOutput,
        ImageSize = over.ImageSize ?? ImageSize,
        ResizeShortestEdge = over.ResizeShortestEdge ?? ResizeShortestEdge,
        Resize = over.Resize ?? Resize,
        Resample = over.Resample ?? Resample,
        CropRounding = over.CropRounding ?? CropRounding,
        Mean = over.Mean ?? Mean,
        Std = over.Std ?? Std,
        ContextLength = over.ContextLength ?? ContextLength,
        PadId = over.PadId ?? PadId,
        LogitScale = over.LogitScale ?? LogitScale,
        Normalized = over.Normalized ?? Normalized,
    };
}

/// <summary>A CLIP model package could not be loaded; the message names the file, what was found and the fix
/// (usually a <c>clip.json</c> key).</summary>
public sealed class ClipModelException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClipModelException(string message, Exception? inner = null) : base(message, inner) { }
}
