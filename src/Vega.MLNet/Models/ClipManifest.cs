using System.Globalization;
using System.Text.Json;
using Vega.MLNet.Imaging;

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

    /// <summary>Multiplier that maps bytes to the model's input range before normalisation (1/255 by default).</summary>
    public double? RescaleFactor { get; init; }

    public static readonly string[] Keys =
    [
        "name", "image_model", "text_model", "model", "tokenizer", "image_input", "image_output", "text_input",
        "text_mask_input", "text_output", "image_size", "resize_shortest_edge", "resize", "resample", "crop_rounding",
        "mean", "std", "rescale_factor", "context_length", "pad_id", "logit_scale", "normalized",
    ];

    private const string ManifestHelp = "See docs/models.md for its keys.";

    /// <summary>Largest image side accepted from a configuration (PreprocessSettings validates the combination).</summary>
    private const int MaxSide = 8192;

    /// <summary>Reads a clip.json manifest: unknown keys and values of the wrong type or range are errors naming the file and key.</summary>
    public static ClipManifest Read(string path)
    {
        var (doc, root) = JsonFields.Open(path, lenient: true, ManifestHelp);
        using (doc)
        {
            foreach (var p in root.Properties)
                if (!Keys.Contains(p.Name))
                    throw new ClipModelException($"The manifest '{path}' has the unknown key \"{p.Name}\". Known keys: {string.Join(", ", Keys)}.");
            bool? hasMask = root.Contains("text_mask_input") ? root.String("text_mask_input") is not null : null;
            float? logit = root.Number("logit_scale", double.Epsilon, 1e6) is double l ? (float)l : null;
            return new ClipManifest
            {
                Name = root.String("name"),
                ImageModel = root.String("image_model"),
                TextModel = root.String("text_model"),
                Model = root.String("model"),
                Tokenizer = root.String("tokenizer"),
                ImageInput = root.String("image_input"),
                ImageOutput = root.String("image_output"),
                TextInput = root.String("text_input"),
                TextMaskInput = root.String("text_mask_input"),
                TextHasMask = hasMask,
                TextOutput = root.String("text_output"),
                ImageSize = root.Int("image_size", 1, MaxSide),
                ResizeShortestEdge = root.Int("resize_shortest_edge", 1, 65536),
                Resize = root.String("resize"),
                Resample = root.String("resample"),
                CropRounding = root.String("crop_rounding"),
                Mean = root.Floats("mean", 3, scalarRepeats: false),
                Std = root.Floats("std", 3, scalarRepeats: false, min: double.Epsilon),
                RescaleFactor = root.Number("rescale_factor", double.Epsilon, 1e6),
                ContextLength = root.Int("context_length", 3, 1 << 20),
                PadId = root.Int("pad_id", 0, int.MaxValue),
                LogitScale = logit,
                Normalized = root.Bool("normalized"),
            };
        }
    }

    /// <summary>
    /// Settings found in Hugging Face's config.json and preprocessor_config.json. Every field Vega.MLNet reads is
    /// type-checked (a wrong type is an error naming the file and the field, never a silent default), and
    /// preprocessing flags the pipeline cannot honour are refused with the reason (docs/models.md).
    /// </summary>
    public static ClipManifest FromHuggingFace(string directory)
    {
        var result = new ClipManifest();
        string config = Path.Combine(directory, "config.json");
        if (File.Exists(config) || IsLink(config)) result = ReadConfig(config);
        string pre = Path.Combine(directory, "preprocessor_config.json");
        if (File.Exists(pre) || IsLink(pre)) result = ReadPreprocessorConfig(pre, result);
        return result;
    }

    private static bool IsLink(string path)
    {
        try { return new FileInfo(path).LinkTarget is not null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>config.json: logit scale, context length, pad id, image size.</summary>
    internal static ClipManifest ReadConfig(string config)
    {
        var (doc, root) = JsonFields.Open(config, lenient: false, "It must be the model's Hugging Face config.json.");
        using (doc)
        {
            // logit_scale (when an export writes it) and logit_scale_init_value are the natural log of the multiplier.
            double? logLogit = root.Number("logit_scale", -50, 50) ?? root.Number("logit_scale_init_value", -50, 50);
            var text = root.Object("text_config");
            var vision = root.Object("vision_config");
            int? pad = text?.Int("pad_token_id", 0, int.MaxValue);
            int? topPad = root.Int("pad_token_id", 0, int.MaxValue); // also the model-level id (text_config's wins)
            return new ClipManifest
            {
                LogitScale = logLogit is double ll ? MathF.Exp((float)ll) : null,
                ContextLength = text?.Int("max_position_embeddings", 3, 1 << 20),
                PadId = pad ?? topPad,
                ImageSize = vision?.Int("image_size", 1, MaxSide),
            };
        }
    }

    /// <summary>preprocessor_config.json: crop and resize, filter, rescale and normalisation, with the flags that switch them.</summary>
    internal static ClipManifest ReadPreprocessorConfig(string pre, ClipManifest result)
    {
        var (doc, root) = JsonFields.Open(pre, lenient: false, "It must be the model's Hugging Face preprocessor_config.json.");
        using (doc)
        {
            bool doResize = root.Bool("do_resize") ?? true;
            bool doCrop = root.Bool("do_center_crop") ?? true;
            bool doRescale = root.Bool("do_rescale") ?? true;
            bool doNormalize = root.Bool("do_normalize") ?? true;
            root.Bool("do_convert_rgb"); // type-checked; images are always converted to RGB (a tower takes 3 channels)

            int? crop = Square(root, "crop_size");
            int? shortest = null, squashTo = null;
            if (root.KindOf("size") != JsonValueKind.Object) shortest = root.Int("size", 1, 65536);
            else if (root.Object("size") is { } sz)
            {
                if (sz.Contains("shortest_edge")) shortest = sz.Int("shortest_edge", 1, 65536);
                else if (sz.Contains("height") || sz.Contains("width")) squashTo = Square(root, "size");
                else throw root.Error("size", "must give \"shortest_edge\" or \"height\" and \"width\" (Vega.MLNet supports these two forms)");
            }

            if (!doResize)
                throw root.Error("do_resize", "is false, which Vega.MLNet cannot honour: images of any size must become the tower's fixed input, so they are always resized. Set it to true (or describe the resizing in clip.json)");
            string? resize = null;
            if (squashTo is int side)
            {
                // Resize to exactly side × side; a centre crop of another size would crop the squashed image.
                if (doCrop && crop is int c && c != side)
                    throw root.Error("crop_size", $"is {c} while \"size\" squashes images to {side} × {side}; resizing to a square and then cropping it is not supported (make them equal, or set \"do_center_crop\" to false)");
                resize = "squash";
                crop = side;
            }
            else if (!doCrop)
            {
                throw root.Error("do_center_crop", "is false with a shortest-edge resize, which leaves images of different shapes that a batched image tower cannot take; set it to true, or give \"size\" as {\"height\": n, \"width\": n} to resize to a square");
            }
            if (shortest is int se && crop is int cs && se < cs)
                throw root.Error("size", $"(shortest edge {se}) is smaller than \"crop_size\" ({cs}), so the centre crop would not fit");

            string? resample = null;
            if (root.Int("resample", int.MinValue, int.MaxValue) is int r)
                resample = r switch
                {
                    2 => "bilinear",
                    3 => "bicubic",
                    _ => throw root.Error("resample", string.Create(CultureInfo.InvariantCulture,
                        $"is PIL filter {r}; only 2 (bilinear) and 3 (bicubic) are supported. Set \"resample\" in clip.json to use one of them")),
                };

            double? factor = root.Number("rescale_factor", double.Epsilon, 1e6);
            float[]? mean = root.Floats("image_mean", 3, scalarRepeats: true, -1e6, 1e6);
            float[]? std = root.Floats("image_std", 3, scalarRepeats: true, 1e-12, 1e6);
            return result with
            {
                ImageSize = crop ?? result.ImageSize,
                ResizeShortestEdge = shortest,
                Resize = resize,
                Resample = resample,
                RescaleFactor = doRescale ? factor : 1.0,
                Mean = doNormalize ? mean : [0f, 0f, 0f],
                Std = doNormalize ? std : [1f, 1f, 1f],
            };
        }
    }

    /// <summary>An int side, or an object {height, width} with equal sides (the pipeline makes square inputs).</summary>
    private static int? Square(JsonFields root, string key)
    {
        if (root.KindOf(key) == JsonValueKind.Object && root.Object(key) is { } o)
        {
            int? h = o.Int("height", 1, MaxSide), w = o.Int("width", 1, MaxSide);
            if (h is null || w is null) throw root.Error(key, "must give both \"height\" and \"width\"");
            if (h != w) throw root.Error(key, $"is {w} × {h}, not square; Vega.MLNet's preprocessing produces square inputs");
            return h;
        }
        return root.Int(key, 1, MaxSide);
    }

    /// <summary>
    /// The preprocessing these settings describe for an image tower taking <paramref name="imageSize"/> pixels; a value
    /// the pipeline cannot honour is a <see cref="ClipModelException"/> naming <paramref name="where"/>.
    /// </summary>
    public PreprocessSettings ToPreprocessing(int imageSize, string where)
    {
        var preprocessing = new PreprocessSettings
        {
            ImageSize = imageSize,
            ResizeShortestEdge = ResizeShortestEdge,
            ResizeMode = Resize switch
            {
                null or "shortest_edge" => ResizeMode.ShortestEdgeThenCenterCrop,
                "squash" => ResizeMode.Squash,
                var r => throw new ClipModelException($"Unknown \"resize\" value \"{r}\" for '{where}'; use \"shortest_edge\" or \"squash\"."),
            },
            Resampling = Resample switch
            {
                null or "bicubic" => ResamplingFilter.Bicubic,
                "bilinear" => ResamplingFilter.Bilinear,
                var r => throw new ClipModelException($"Unknown \"resample\" value \"{r}\" for '{where}'; use \"bicubic\" or \"bilinear\"."),
            },
            CropRounding = CropRounding switch
            {
                null or "half_even" => Imaging.CropRounding.RoundHalfEven,
                "floor" => Imaging.CropRounding.Floor,
                var r => throw new ClipModelException($"Unknown \"crop_rounding\" value \"{r}\" for '{where}'; use \"half_even\" or \"floor\"."),
            },
            Mean = Mean ?? PreprocessSettings.ClipMean,
            Std = Std ?? PreprocessSettings.ClipStd,
            RescaleFactor = RescaleFactor ?? 1.0 / 255,
        };
        try { preprocessing.Validate(); }
        catch (ArgumentException e) { throw new ClipModelException($"The preprocessing settings of '{where}' are invalid: {e.Message} Fix them in clip.json or preprocessor_config.json.", e); }
        return preprocessing;
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
        RescaleFactor = over.RescaleFactor ?? RescaleFactor,
    };
}

/// <summary>A CLIP model package could not be loaded; the message names the file, what was found and the fix
/// (usually a <c>clip.json</c> key).</summary>
public sealed class ClipModelException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClipModelException(string message, Exception? inner = null) : base(message, inner) { }
}
