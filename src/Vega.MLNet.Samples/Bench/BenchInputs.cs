namespace Vega.MLNet.Samples.Bench;

/// <summary>Locates benchmark inputs: the ../shared fixtures beside the repository, and runnable model folders made
/// from its benchmark-sized towers (which ship without a vocabulary).</summary>
internal static class BenchInputs
{
    public static string SharedDirectory(string? given)
    {
        if (given is not null)
            return Directory.Exists(given) ? Path.GetFullPath(given) : throw new DirectoryNotFoundException($"--shared '{given}' does not exist.");
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "..", "shared");
            if (File.Exists(Path.Combine(dir.FullName, "Vega.MLNet.sln")) && Directory.Exists(candidate)) return Path.GetFullPath(candidate);
        }
        throw new DirectoryNotFoundException("Cannot find the ../shared fixtures beside the repository; pass --shared DIR.");
    }

    /// <summary>A temporary model folder linking a benchmark tower pair (bench/NAME) and the CLIP vocabulary.</summary>
    public static string BenchModel(string shared, string name)
    {
        string src = Path.Combine(shared, "bench", name);
        if (!Directory.Exists(src)) throw new DirectoryNotFoundException($"No benchmark towers at '{src}'.");
        string dir = Path.Combine(Path.GetTempPath(), "vega-bench-" + name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(src, "*.onnx")) Link(Path.Combine(dir, Path.GetFileName(f)), f);
        Link(Path.Combine(dir, "vocab.json"), Path.Combine(shared, "clip-tokenizer", "vocab.json"));
        Link(Path.Combine(dir, "merges.txt"), Path.Combine(shared, "clip-tokenizer", "merges.txt"));
        return dir;
    }

    private static void Link(string path, string target)
    {
        if (File.Exists(path)) File.Delete(path);
        File.CreateSymbolicLink(path, target);
    }

    /// <summary>A mixed corpus: every golden text (prompts, class names in many scripts, edge cases) and template × class captions.</summary>
    public static List<string> MixedCorpus(string shared, int captions)
    {
        var texts = new List<string>();
        foreach (var file in new[] { "golden.jsonl", "golden_classnames.jsonl" })
            foreach (var line in File.ReadLines(Path.Combine(shared, "clip-tokenizer", file)))
                texts.Add(System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!);
        string[] templates = ["a photo of a {}.", "a blurry photo of the {}.", "a close-up of a {} on a wooden table", "an origami {}.", "a sketch of a {} drawn by a child!"];
        var classes = texts.Skip(521).ToArray();
        var rng = new Random(7);
        for (int i = 0; i < captions; i++)
            texts.Add(templates[rng.Next(templates.Length)].Replace("{}", classes[rng.Next(classes.Length)]) + (i % 3 == 0 ? " It's 2024, &amp; we're at 3.5°C." : ""));
        return texts;
    }
}
