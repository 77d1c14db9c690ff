namespace Vega.MLNet.Text;

/// <summary>
/// Prompt templates that turn a class name into a text, with <c>{}</c> marking where the class name goes (e.g.
/// <c>"a photo of a {}."</c>). Several templates are ensembled: each class embedding is the renormalised mean of its
/// templates' normalised embeddings.
/// </summary>
public sealed class PromptTemplates
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
        foreach (var raw in File.ReadLines(path))
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

    /// <summary>Reads class names from a text file, one per line (blank lines skipped), and validates them.</summary>
    public static IReadOnlyList<string> ReadClassNames(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The class names file '{path}' does not exist.", path);
        var names = File.ReadLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        try
        {
            ValidateClassNames(names);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The class names file '{path}': {e.Message}", e);
        }
        return names;
    }

    /// <summary>Throws when the list is empty, has a blank name or a duplicate (duplicates make two classes indistinguishable).</summary>
    public static void ValidateClassNames(IReadOnlyList<string> classNames)
    {
        if (classNames.Count == 0) throw new ArgumentException("The class list is empty; give at least one class name.", nameof(classNames));
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < classNames.Count; i++)
        {
            string name = classNames[i];
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"Class {i + 1} has an empty name.", nameof(classNames));
            if (seen.TryGetValue(name, out int first))
                throw new ArgumentException($"The class name \"{name}\" appears twice (classes {first + 1} and {i + 1}); class names must be distinct.", nameof(classNames));
            seen[name] = i;
        }
    }
}
