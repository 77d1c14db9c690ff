using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Vega.MLNet.Models;
using Vega.MLNet.Text;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// Natural-language descriptions of each class (several sentences per class, CuPL style), read from a JSON file
/// <c>{"class name": ["sentence", ...], ...}</c> or from a folder holding one <c>&lt;class&gt;.txt</c> per class (one
/// sentence per line; blank lines and lines starting with # are skipped), and matched to a class list.
/// Matching: a key equal to the class name wins; otherwise the one key that equals it case-insensitively after
/// replacing characters that cannot appear in file names (<c>/ \ : * ? " &lt; &gt; |</c>) by <c>_</c>
/// (so <c>T-shirt_top.txt</c> serves <c>T-shirt/top</c>). Every class of the list needs at least one non-blank
/// sentence; classes in the file that are not in the list are ignored and reported in <see cref="IgnoredClasses"/>
/// (one file can serve several class subsets, e.g. the base and the new half of base-to-new).
/// </summary>
internal sealed class ClassDescriptions
{
    private ClassDescriptions(string source, IReadOnlyList<string> classNames, IReadOnlyList<IReadOnlyList<string>> sentences, IReadOnlyList<string> ignored)
    {
        Source = source;
        ClassNames = classNames;
        Sentences = sentences;
        IgnoredClasses = ignored;
        ContentHash = ComputeHash(classNames, sentences);
    }

    /// <summary>Where the descriptions came from (a path, or "&lt;code&gt;").</summary>
    public string Source { get; }

    /// <summary>The classes, in the order of the class list given when loading.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The sentences of each class (same order as <see cref="ClassNames"/>), trimmed.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Sentences { get; }

    /// <summary>Classes present in the source but not in the class list (ignored).</summary>
    public IReadOnlyList<string> IgnoredClasses { get; }

    /// <summary>Total number of sentences.</summary>
    public int Count => Sentences.Sum(s => s.Count);

    /// <summary>SHA-256 (hex) of the class names and their sentences, in order; keys the embedding cache.</summary>
    public string ContentHash { get; }

    /// <summary>
    /// Reads descriptions from a JSON file or a folder of <c>.txt</c> files and matches them to
    /// <paramref name="classNames"/>. Errors (<see cref="InvalidDataException"/>) name the file, the line and position of
    /// malformed JSON, and the class concerned.
    /// </summary>
    /// <exception cref="FileNotFoundException">The path is neither a file nor a folder.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON, a wrong structure, a class without descriptions, a blank
    /// sentence, or classes of the list that the source does not describe.</exception>
    public static ClassDescriptions Load(string path, IReadOnlyList<string> classNames)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(classNames);
        PromptTemplates.ValidateClassNames(classNames);
        List<(string Key, List<string> Sentences, string Where)> entries;
        bool folder;
        if (Directory.Exists(path)) { entries = ReadFolder(path); folder = true; }
        else if (File.Exists(path)) { entries = ReadJson(path); folder = false; }
        else throw new FileNotFoundException($"The descriptions '{path}' are neither a JSON file nor a folder of <class>.txt files.", path);
        return Match(path, entries, classNames, folder);
    }

    /// <summary>Descriptions given in code (class name → sentences), matched to <paramref name="classNames"/> like a file.</summary>
    public static ClassDescriptions Create(IReadOnlyDictionary<string, IReadOnlyList<string>> descriptions, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(descriptions);
        ArgumentNullException.ThrowIfNull(classNames);
        PromptTemplates.ValidateClassNames(classNames);
        var entries = descriptions.Select(kv => (kv.Key, kv.Value.ToList(), $"class \"{kv.Key}\"")).ToList();
        return Match("<code>", entries, classNames, folder: false);
    }

    /// <summary>The descriptions of a subset of the classes (by index, in the given order).</summary>
    internal ClassDescriptions Subset(IReadOnlyList<int> classIndices) =>
        new(Source, classIndices.Select(i => ClassNames[i]).ToArray(), classIndices.Select(i => Sentences[i]).ToArray(), IgnoredClasses);

    /// <summary>
    /// Embeds every sentence with the text tower of <paramref name="model"/> (texts longer than the context are cut).
    /// With a <paramref name="cacheDirectory"/> the result is stored there as <c>aape-desc-&lt;key&gt;.npy</c> + a JSON
    /// sidecar, keyed by the model's content hash and <see cref="ContentHash"/>, and later calls read it back instead of
    /// running the tower.
    /// </summary>
    public DescriptionEmbeddings Embed(ClipModel model, string? cacheDirectory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return DescriptionEmbeddings.EmbedCached(this, model, cacheDirectory, cancellationToken);
    }

    // ---------------------------------------------------------------- reading

    private static List<(string, List<string>, string)> ReadJson(string path)
    {
        byte[] bytes = Common.SafeFile.ReadAllBytesOrInvalid(path, 256L << 20, "descriptions file");
        int start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        if (bytes.AsSpan(start).Trim(" \t\r\n"u8).IsEmpty)
            throw new InvalidDataException($"The descriptions file '{path}' is empty; write a JSON object {{\"class name\": [\"sentence\", ...]}}.");
        string At(long offset)
        {
            var (line, col) = LineAndColumn(bytes.AsSpan(start), offset);
            return $"line {line}, position {col}";
        }
        var result = new List<(string, List<string>, string)>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(bytes.AsSpan(start), new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        void Next(ref Utf8JsonReader r)
        {
            if (!r.Read()) throw new InvalidDataException($"The descriptions file '{path}' ends before its JSON object is closed (line {LineAndColumn(bytes.AsSpan(start), bytes.Length - start).Line}); close every [ and {{.");
        }
        try
        {
            if (!reader.Read())
                throw new InvalidDataException($"The descriptions file '{path}' is empty; write a JSON object {{\"class name\": [\"sentence\", ...]}}.");
            if (reader.TokenType != JsonTokenType.StartObject)
                throw new InvalidDataException($"The descriptions file '{path}' must hold a JSON object {{\"class name\": [\"sentence\", ...]}}; it starts with a {Describe(reader.TokenType)} ({At(reader.TokenStartIndex)}).");
            while (true)
            {
                Next(ref reader);
                if (reader.TokenType == JsonTokenType.EndObject) break;
                string key = reader.GetString()!;
                string where = At(reader.TokenStartIndex);
                if (seen.TryGetValue(key, out var first))
                    throw new InvalidDataException($"The descriptions file '{path}' names class \"{key}\" twice ({first} and {where}); merge the two lists.");
                seen[key] = where;
                Next(ref reader);
                if (reader.TokenType != JsonTokenType.StartArray)
                    throw new InvalidDataException($"In the descriptions file '{path}', class \"{key}\" ({where}) maps to a {Describe(reader.TokenType)}; it must map to a list of sentences [\"...\", ...].");
                var sentences = new List<string>();
                while (true)
                {
                    Next(ref reader);
                    if (reader.TokenType == JsonTokenType.EndArray) break;
                    if (reader.TokenType != JsonTokenType.String)
                        throw new InvalidDataException($"In the descriptions file '{path}', entry {sentences.Count + 1} of class \"{key}\" ({At(reader.TokenStartIndex)}) is a {Describe(reader.TokenType)}; every entry must be a sentence in quotes.");
                    string s = reader.GetString()!.Trim();
                    if (s.Length == 0)
                        throw new InvalidDataException($"In the descriptions file '{path}', entry {sentences.Count + 1} of class \"{key}\" ({At(reader.TokenStartIndex)}) is blank; remove it or write a sentence.");
                    sentences.Add(s);
                }
                result.Add((key, sentences, $"'{path}' ({where})"));
            }
            if (reader.Read())
                throw new InvalidDataException($"The descriptions file '{path}' has content after its JSON object ({At(reader.TokenStartIndex)}).");
        }
        catch (JsonException e)
        {
            string reason = e.Message;
            int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0) reason = reason[..cut];
            reason = reason.Replace(" Change the reader options.", "", StringComparison.Ordinal); // advice about .NET's reader, not the file
            throw new InvalidDataException(
                $"The descriptions file '{path}' is not valid JSON at line {(e.LineNumber ?? 0) + 1}, position {(e.BytePositionInLine ?? 0) + 1}: {reason} " +
                "Expected {\"class name\": [\"sentence\", ...], ...}.", e);
        }
        return result;
    }

    private static string Describe(JsonTokenType t) => t switch
    {
        JsonTokenType.StartObject => "JSON object",
        JsonTokenType.StartArray => "list",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.Null => "null",
        _ => t.ToString(),
    };

    private static (int Line, int Column) LineAndColumn(ReadOnlySpan<byte> bytes, long offset)
    {
        int line = 1, col = 1;
        for (long i = 0; i < offset && i < bytes.Length; i++)
        {
            if (bytes[(int)i] == (byte)'\n') { line++; col = 1; }
            else col++;
        }
        return (line, col);
    }

    private static List<(string, List<string>, string)> ReadFolder(string folder)
    {
        var files = Directory.GetFiles(folder, "*.txt").OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new InvalidDataException($"The descriptions folder '{folder}' holds no .txt file; write one <class>.txt per class with one sentence per line.");
        var result = new List<(string, List<string>, string)>();
        foreach (var f in files)
        {
            var sentences = new List<string>();
            foreach (var raw in Encoding.UTF8.GetString(Common.SafeFile.ReadAllBytesOrInvalid(f, 64L << 20, "descriptions file")).TrimStart('\uFEFF').Split('\n'))
            {
                string line = raw.Trim();
                if (line.Length == 0 || line.StartsWith('#')) continue;
                sentences.Add(line);
            }
            result.Add((Path.GetFileNameWithoutExtension(f), sentences, $"'{f}'"));
        }
        return result;
    }

    // ---------------------------------------------------------------- matching

    internal static string FileKey(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name.Trim())
            sb.Append(ch is '/' or '\\' or ':' or '*' or '?' or '"' or '<' or '>' or '|' || char.IsControl(ch) ? '_' : char.ToLowerInvariant(ch));
        return sb.ToString();
    }

    private static ClassDescriptions Match(string source, List<(string Key, List<string> Sentences, string Where)> entries, IReadOnlyList<string> classNames, bool folder)
    {
        var byKey = new Dictionary<string, int>(StringComparer.Ordinal);
        var byLoose = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int i = 0; i < entries.Count; i++)
        {
            byKey[entries[i].Key] = i;
            string loose = FileKey(entries[i].Key);
            if (!byLoose.TryGetValue(loose, out var l)) byLoose[loose] = l = [];
            l.Add(i);
        }
        var used = new bool[entries.Count];
        var sentences = new IReadOnlyList<string>[classNames.Count];
        var missing = new List<string>();
        for (int c = 0; c < classNames.Count; c++)
        {
            string name = classNames[c];
            int index;
            if (!byKey.TryGetValue(name, out index))
            {
                if (!byLoose.TryGetValue(FileKey(name), out var candidates)) { missing.Add(name); continue; }
                if (candidates.Count > 1)
                    throw new InvalidDataException(
                        $"The descriptions '{source}' have several entries that could describe class \"{name}\" ({string.Join(", ", candidates.Select(i => $"\"{entries[i].Key}\""))}); keep one.");
                index = candidates[0];
            }
            if (used[index])
                throw new InvalidDataException($"The descriptions entry \"{entries[index].Key}\" of '{source}' matches two classes of the list; name each class exactly.");
            used[index] = true;
            var (key, list, where) = entries[index];
            if (list.Count == 0)
                throw new InvalidDataException($"Class \"{name}\" has no descriptions in {where}{(folder ? " (the file has no sentence)" : " (an empty list)")}; give it at least one sentence.");
            sentences[c] = list.AsReadOnly();
        }
        if (missing.Count > 0)
        {
            string have = entries.Count == 0 ? "none" : string.Join(", ", entries.Take(30).Select(e => $"\"{e.Key}\""));
            string fix = folder
                ? $"add a file per class named after it (e.g. '{FileKey(missing[0])}.txt', characters / \\ : * ? \" < > | written as _)"
                : "add a key per class with a list of sentences";
            throw new InvalidDataException(
                $"The descriptions '{source}' have no entry for class{(missing.Count > 1 ? "es" : "")} {string.Join(", ", missing.Select(m => $"\"{m}\""))} (entries found: {have}); {fix}.");
        }
        var ignored = entries.Where((_, i) => !used[i]).Select(e => e.Key).ToArray();
        return new ClassDescriptions(source, classNames.ToArray(), sentences, ignored);
    }

    private static string ComputeHash(IReadOnlyList<string> classNames, IReadOnlyList<IReadOnlyList<string>> sentences)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int c = 0; c < classNames.Count; c++)
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"class\u001f{classNames[c]}\u001f{sentences[c].Count}\u001e"));
            foreach (var s in sentences[c]) sha.AppendData(Encoding.UTF8.GetBytes(s + "\u001e"));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
