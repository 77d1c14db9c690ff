namespace Vega.MLNet.Text;

/// <summary>
/// Prompt templates that turn a class name into a text, with <c>{}</c> marking where the class name goes (e.g.
/// <c>"a photo of a {}."</c>). Several templates are ensembled: each class embedding is the renormalised mean of its
/// templates' normalised embeddings.
/// </summary>
internal sealed class PromptTemplates
{
    /// <summary>The placeholder for the class name.</summary>
    public const string Placeholder = "{}";

    private PromptTemplates(IReadOnlyList<string> templates) => Templates = templates;

    /// <summary>The templates.</summary>
    public IReadOnlyList<string> Templates { get; }

    /// <summary>Number of templates.</summary>
    public int Count => Templates.Count;

    /// <summary>CLIP's default single template, <c>"a photo of a {}."</c>.</summary>
    public static PromptTemplates Default { get; } = new(["a photo of a {}."]);

    /// <summary>A small general-purpose ensemble for photographs.</summary>
    public static PromptTemplates PhotoEnsemble { get; } = new(
    [
        "a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.", "a bright photo of a {}.",
        "a dark photo of a {}.", "a blurry photo of a {}.", "a cropped photo of a {}.", "a good photo of a {}.",
    ]);

    /// <summary>Templates from code; each must contain <c>{}</c>.</summary>
    public static PromptTemplates Create(IEnumerable<string> templates)
    {
        ArgumentNullException.ThrowIfNull(templates);
        var list = templates.ToList();
        if (list.Count == 0) throw new ArgumentException("At least one prompt template is needed.", nameof(templates));
        for (int i = 0; i < list.Count; i++)
            if (!list[i].Contains(Placeholder, StringComparison.Ordinal))
                throw new ArgumentException($"Template {i + 1} \"{list[i]}\" has no {Placeholder} placeholder for the class name.", nameof(templates));
        return new PromptTemplates(list);
    }

    /// <summary>Reads templates from a UTF-8 text file, one per line (blank lines and lines starting with # are skipped).</summary>
    public static PromptTemplates FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The templates file '{path}' does not exist.", path);
        var list = new List<string>();
        int lineNo = 0;
        string content = System.Text.Encoding.UTF8.GetString(Common.SafeFile.ReadAllBytesOrInvalid(path, MaxClassFileBytes, "templates file")).TrimStart('\uFEFF');
        foreach (var raw in content.Split('\n'))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (!line.Contains(Placeholder, StringComparison.Ordinal))
                throw new InvalidDataException($"Line {lineNo} of the templates file '{path}' (\"{line}\") has no {Placeholder} placeholder for the class name.");
            list.Add(line);
        }
        if (list.Count == 0) throw new InvalidDataException($"The templates file '{path}' holds no template; write one per line, e.g. \"a photo of a {{}}.\".");
        return new PromptTemplates(list);
    }

    /// <summary>Fills the placeholder(s) of <paramref name="template"/> with <paramref name="className"/>.</summary>
    public static string Fill(string template, string className) => template.Replace(Placeholder, className, StringComparison.Ordinal);

    /// <summary>Most classes a list may hold (a larger file is almost certainly not a class list).</summary>
    public const int MaxClasses = 100_000;

    /// <summary>Class files larger than this are refused before reading (16 MiB).</summary>
    public const long MaxClassFileBytes = 16L << 20;

    /// <summary>
    /// Reads a class file (docs/reliability.md): UTF-8 (a byte-order mark is allowed), one class per line, surrounding
    /// white space trimmed, blank lines ignored, lines whose first non-blank character is <c>#</c> are comments. A
    /// name with a control character, two names that are the same class for a CLIP text tower (equal ignoring case
    /// and runs of white space, e.g. "Cat" and "cat"), more than <see cref="MaxClasses"/> names, no name at all, or
    /// bytes that are not UTF-8 are <see cref="InvalidDataException"/>s naming the file and the line(s). Labels of
    /// IDX files are line numbers in this list, counting classes only (the first class is label 0).
    /// </summary>
    public static IReadOnlyList<string> ReadClassNames(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path) && !Directory.Exists(path) && new FileInfo(path).LinkTarget is null)
            throw new FileNotFoundException($"The class names file '{path}' does not exist.", path);
        byte[] bytes;
        try
        {
            bytes = Common.SafeFile.ReadAllBytes(path, MaxClassFileBytes);
        }
        catch (Common.SafeFile.RefusedException e)
        {
            throw new InvalidDataException($"The class names file '{path}' cannot be read: {e.Reason}.", e);
        }
        string text;
        try
        {
            text = new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            int line = 1;
            for (int i = 0; i < Math.Min(e.Index < 0 ? 0 : e.Index, bytes.Length); i++) if (bytes[i] == (byte)'\n') line++;
            throw new InvalidDataException($"The class names file '{path}' is not UTF-8 text (invalid bytes on line {line}); save it as UTF-8.", e);
        }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var names = new List<string>();
        var lines = new List<int>();
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.TrimEnd('\r').Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            foreach (char c in line)
                if (char.IsControl(c) || c is '\u2028' or '\u2029')
                    throw new InvalidDataException($"Line {lineNo} of the class names file '{path}' contains the control character U+{(int)c:X4}; class names are plain text, one per line.");
            if (names.Count == MaxClasses)
                throw new InvalidDataException($"The class names file '{path}' has more than {MaxClasses} classes (line {lineNo}); is it really a class list?");
            names.Add(line);
            lines.Add(lineNo);
        }
        if (names.Count == 0)
            throw new InvalidDataException($"The class names file '{path}' holds no class name; write one per line (lines starting with # are comments).");
        if (FirstDuplicate(names) is var (first, second))
            throw new InvalidDataException(
                $"The class names file '{path}': line {lines[first]} \"{names[first]}\" and line {lines[second]} \"{names[second]}\" are the same class " +
                "(CLIP lower-cases text and ignores repeated spaces, so the model cannot tell them apart); keep one.");
        return names.AsReadOnly();
    }

    /// <summary>
    /// Throws when the list is empty, has a blank name, a control character, or two names that are the same class for
    /// a CLIP text tower (equal ignoring case and runs of white space, e.g. "Cat" and "cat").
    /// </summary>
    public static void ValidateClassNames(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        if (classNames.Count == 0) throw new ArgumentException("The class list is empty; give at least one class name.", nameof(classNames));
        for (int i = 0; i < classNames.Count; i++)
        {
            string name = classNames[i];
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"Class {i + 1} has an empty name.", nameof(classNames));
            foreach (char c in name)
                if (char.IsControl(c) || c is '\u2028' or '\u2029')
                    throw new ArgumentException($"Class {i + 1} (\"{name.Replace("\n", "\\n", StringComparison.Ordinal)}\") contains the control character U+{(int)c:X4}.", nameof(classNames));
        }
        if (FirstDuplicate(classNames) is var (first, second))
            throw new ArgumentException(classNames[first] == classNames[second]
                ? $"The class name \"{classNames[first]}\" appears twice (classes {first + 1} and {second + 1}); class names must be distinct."
                : $"The class names \"{classNames[first]}\" (class {first + 1}) and \"{classNames[second]}\" (class {second + 1}) are the same class for CLIP, which lower-cases text and ignores repeated spaces; keep one.",
                nameof(classNames));
    }

    /// <summary>The first pair of names that are the same class: equal after lower-casing and collapsing white space.</summary>
    private static (int First, int Second)? FirstDuplicate(IReadOnlyList<string> names)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++)
        {
            string key = string.Join(' ', names[i].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).ToLowerInvariant();
            if (!seen.TryAdd(key, i)) return (seen[key], i);
        }
        return null;
    }
}
