using System.Globalization;
using System.Text.Json;
using Vega.MLNet.Common;

namespace Vega.MLNet.Models;

/// <summary>
/// Typed reading of one JSON object of a configuration file (clip.json, config.json, preprocessor_config.json): every
/// accessor returns null for an absent key or a JSON null, the value when it has the right type and range, and
/// otherwise throws a <see cref="ClipModelException"/> naming the file, the field (with its path, e.g.
/// <c>text_config.pad_token_id</c>), what was expected and what was found. A wrong type never falls back to a default.
/// </summary>
internal readonly struct JsonFields
{
    /// <summary>Configuration files larger than this are refused before reading (16 MiB).</summary>
    public const long MaxFileBytes = 16L << 20;

    private readonly JsonElement _object;
    private readonly string _prefix;

    private JsonFields(string file, JsonElement obj, string prefix)
    {
        File = file;
        _object = obj;
        _prefix = prefix;
    }

    /// <summary>The file, for messages.</summary>
    public string File { get; }

    /// <summary>The object's properties.</summary>
    public JsonElement.ObjectEnumerator Properties => _object.EnumerateObject();

    /// <summary>
    /// Parses <paramref name="path"/> (a regular file of at most <see cref="MaxFileBytes"/>; comments and trailing
    /// commas allowed when <paramref name="lenient"/>, duplicate keys refused) and returns its root object; the
    /// document must be disposed by the caller.
    /// </summary>
    public static (JsonDocument Document, JsonFields Root) Open(string path, bool lenient, string help)
    {
        byte[] bytes;
        try
        {
            bytes = SafeFile.ReadAllBytes(path, MaxFileBytes);
        }
        catch (SafeFile.RefusedException e)
        {
            throw new ClipModelException($"Cannot read '{path}': {e.Reason}.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ClipModelException($"Cannot read '{path}' ({e.Message}).", e);
        }
        try
        {
            _ = StrictUtf8.GetCharCount(bytes);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            throw new ClipModelException($"'{path}' is not UTF-8 text (invalid bytes at offset {e.Index}); save it as UTF-8. {help}", e);
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions
            {
                CommentHandling = lenient ? JsonCommentHandling.Skip : JsonCommentHandling.Disallow,
                AllowTrailingCommas = lenient,
                AllowDuplicateProperties = false,
                MaxDepth = 64,
            });
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException) // the latter: a key with an invalid escape, met by the duplicate-key check
        {
            throw new ClipModelException($"'{path}' is not valid JSON ({e.Message}). {help}", e);
        }
        if (FirstBadText(doc.RootElement, "") is { } where)
        {
            doc.Dispose();
            throw new ClipModelException($"'{path}' has invalid text in {where} (an escape such as \\ud800 that is not a Unicode character). {help}");
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = Describe(doc.RootElement);
            doc.Dispose();
            throw new ClipModelException($"'{path}' must hold a JSON object {{...}}, got {kind}. {help}");
        }
        return (doc, new JsonFields(path, doc.RootElement, ""));
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Where a property name or string of the document cannot be decoded (e.g. a lone surrogate escape), or null.</summary>
    private static string? FirstBadText(JsonElement e, string where)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                try { _ = e.GetString(); return null; }
                catch (InvalidOperationException) { return where.Length == 0 ? "the document" : $"\"{where}\""; }
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    string name;
                    try { name = p.Name; }
                    catch (InvalidOperationException) { return where.Length == 0 ? "a key" : $"a key of \"{where}\""; }
                    if (FirstBadText(p.Value, where.Length == 0 ? name : where + "." + name) is { } bad) return bad;
                }
                return null;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray())
                    if (FirstBadText(item, $"{where}[{i++}]") is { } bad) return bad;
                return null;
            default:
                return null;
        }
    }

    private bool TryGet(string key, out JsonElement value) =>
        _object.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>The kind of the key's value (<see cref="JsonValueKind.Undefined"/> when absent).</summary>
    public JsonValueKind KindOf(string key) => _object.TryGetProperty(key, out var v) ? v.ValueKind : JsonValueKind.Undefined;

    /// <summary>Whether the key is present (a JSON null counts as present).</summary>
    public bool Contains(string key) => _object.TryGetProperty(key, out _);

    /// <summary>The key's full name for messages, e.g. <c>text_config.pad_token_id</c>.</summary>
    public string Name(string key) => _prefix + key;

    /// <summary>An error about <paramref name="key"/>.</summary>
    public ClipModelException Error(string key, string problem) =>
        new($"'{File}': \"{Name(key)}\" {problem}. Correct it (docs/models.md lists the keys Vega.MLNet reads).");

    private ClipModelException Wrong(string key, string expected, JsonElement found) => Error(key, $"must be {expected}, got {Describe(found)}");

    /// <summary>A nested object.</summary>
    public JsonFields? Object(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Object) throw Wrong(key, "an object {...}", v);
        return new JsonFields(File, v, _prefix + key + ".");
    }

    /// <summary>A string.</summary>
    public string? String(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.String) throw Wrong(key, "a string", v);
        return v.GetString();
    }

    /// <summary>A boolean.</summary>
    public bool? Bool(string key)
    {
        if (!TryGet(key, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(key, "true or false", v),
        };
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public int? Int(string key, int min, int max)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number) throw Wrong(key, "an integer", v);
        if (!v.TryGetInt64(out long l)) throw Wrong(key, "an integer", v);
        if (l < min || l > max) throw Error(key, string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max}, got {l}"));
        return (int)l;
    }

    /// <summary>A finite number (as double) in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double? Number(string key, double min = double.MinValue, double max = double.MaxValue)
    {
        if (!TryGet(key, out var v)) return null;
        return Finite(key, v, min, max);
    }

    private double Finite(string key, JsonElement v, double min, double max)
    {
        if (v.ValueKind != JsonValueKind.Number) throw Wrong(key, "a number", v);
        if (!v.TryGetDouble(out double d) || !double.IsFinite(d)) throw Wrong(key, "a finite number", v);
        if (d < min || d > max)
            throw Error(key, string.Create(CultureInfo.InvariantCulture, $"must be between {min:R} and {max:R}, got {d:R}"));
        return d;
    }

    /// <summary>Exactly <paramref name="count"/> finite numbers; with <paramref name="scalarRepeats"/> a single number
    /// stands for all of them (as Hugging Face allows for image_mean / image_std).</summary>
    public float[]? Floats(string key, int count, bool scalarRepeats, double min = double.MinValue, double max = double.MaxValue)
    {
        if (!TryGet(key, out var v)) return null;
        if (scalarRepeats && v.ValueKind == JsonValueKind.Number)
        {
            float x = (float)Finite(key, v, min, max);
            return Enumerable.Repeat(x, count).ToArray();
        }
        string expected = string.Create(CultureInfo.InvariantCulture, $"an array of {count} numbers{(scalarRepeats ? " (or one number)" : "")}");
        if (v.ValueKind != JsonValueKind.Array) throw Wrong(key, expected, v);
        if (v.GetArrayLength() != count) throw Error(key, string.Create(CultureInfo.InvariantCulture, $"must be {expected}, got {v.GetArrayLength()} values"));
        var result = new float[count];
        int i = 0;
        foreach (var e in v.EnumerateArray())
        {
            double d = Finite(key, e, min, max);
            float f = (float)d;
            if (!float.IsFinite(f)) throw Wrong(key, "numbers within float32 range", e);
            result[i++] = f;
        }
        return result;
    }

    /// <summary>A short description of a JSON value for messages: its kind and (shortened) text.</summary>
    public static string Describe(JsonElement v)
    {
        string raw = v.GetRawText();
        if (raw.Length > 40) raw = raw[..37] + "...";
        return v.ValueKind switch
        {
            JsonValueKind.String => $"the string {raw}",
            JsonValueKind.Number => $"the number {raw}",
            JsonValueKind.True or JsonValueKind.False => raw,
            JsonValueKind.Array => $"an array {raw}",
            JsonValueKind.Object => $"an object {raw}",
            JsonValueKind.Null => "null",
            _ => raw,
        };
    }
}
