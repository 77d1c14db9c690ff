using System.Runtime.InteropServices;
using System.Text.Json;

namespace Vega.MLNet.Tests.Infrastructure;

/// <summary>
/// Locates the oracle fixtures in ../shared (relative to the repository root) and reads their raw tensors. A test that
/// needs them fails loudly when they are missing; nothing is skipped.
/// </summary>
internal static class Fixtures
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    public static string RepositoryRoot => Root.Value;

    public static string Shared
    {
        get
        {
            string dir = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));
            if (!File.Exists(Path.Combine(dir, "README.md")))
                throw new InvalidOperationException(
                    $"The oracle fixtures are missing: expected them at '{dir}' (../shared beside the repository). " +
                    "These tests compare against them and cannot run without them.");
            return dir;
        }
    }

    public static string Path_(params string[] parts) => Path.Combine([Shared, .. parts]);

    public static string Tokenizer => Path_("clip-tokenizer");
    public static string Images => Path_("images");
    public static string Onnx => Path_("onnx");

    public static float[] ReadF32(string path) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();
    public static long[] ReadI64(string path) => MemoryMarshal.Cast<byte, long>(File.ReadAllBytes(path)).ToArray();

    public static JsonDocument Json(string path) => JsonDocument.Parse(File.ReadAllBytes(path));

    public static IEnumerable<(string Text, int[] Ids)> Jsonl(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            yield return (doc.RootElement.GetProperty("text").GetString()!,
                doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        }
    }

    public static string TempDir(string prefix = "vega-test")
    {
        string dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Vega.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException($"Cannot find the repository root (Vega.MLNet.sln) above '{AppContext.BaseDirectory}'.");
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }
}
