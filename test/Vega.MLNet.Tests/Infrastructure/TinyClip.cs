using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Infrastructure;

/// <summary>
/// Small real CLIP packages written with <see cref="OnnxGraphBuilder"/> (Hugging Face split layout with the fixture
/// tokenizer), IDX image files and a runner for the real <c>vega</c> executable, for the reliability tests.
/// Image tower: pixels [batch, 3, S, S] flattened per image, times a seeded [3·S², D] matrix. Text tower: the sum of the
/// token ids times a seeded [1, D] row plus a seeded bias.
/// </summary>
internal static class TinyClip
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;

    /// <summary>
    /// Writes a model folder. <paramref name="fixedBatch"/> declares a fixed batch dimension on both towers;
    /// <paramref name="failAboveOne"/> makes the image tower reshape to exactly one image, so that any batch of more
    /// than one image fails inside ONNX Runtime (a real run-time failure) while the one-image probe at load works.
    /// </summary>
    public static string Create(int size = 8, int dim = 8, ulong seed = 1, int? fixedBatch = null, bool failAboveOne = false,
        string? configJson = null, string? preprocessorJson = null)
    {
        string dir = Fixtures.TempDir("vega-tiny");
        var rng = new Rng(seed);
        int features = 3 * size * size;
        OnnxDim batch = fixedBatch is int b ? b : "batch";

        var v = new OnnxGraphBuilder("vision");
        string x = v.Input("pixel_values", F32, batch, 3, size, size);
        var w = new float[features * dim];
        rng.FillNormal(w, 0, 0.05);
        string flat = v.Node("Reshape", [x, v.Int64s(failAboveOne ? 1 : -1, features)]);
        v.Output(v.Identity(v.Node("MatMul", [flat, v.Initializer("proj", w, features, dim)]), "image_embeds"), F32, batch, dim);
        OnnxModelFile.Save(v.Build(), Path.Combine(dir, "vision_model.onnx"));

        var t = new OnnxGraphBuilder("text");
        string ids = t.Input("input_ids", I64, batch, "sequence");
        var row = new float[dim];
        var bias = new float[dim];
        rng.FillNormal(row, 0, 1e-4);
        rng.FillNormal(bias);
        string sum = t.Node("ReduceSum", [t.Node("Cast", [ids], null, ("to", (long)F32)), t.Int64s(1)], null, ("keepdims", 1L));
        string emb = t.Node("Add", [t.Node("MatMul", [sum, t.Initializer("row", row, 1, dim)]), t.Initializer("bias", bias, dim)]);
        t.Output(t.Identity(emb, "text_embeds"), F32, batch, dim);
        OnnxModelFile.Save(t.Build(), Path.Combine(dir, "text_model.onnx"));

        File.CreateSymbolicLink(Path.Combine(dir, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "vocab.json"));
        File.CreateSymbolicLink(Path.Combine(dir, "merges.txt"), Path.Combine(Fixtures.Tokenizer, "merges.txt"));
        if (configJson is not null) File.WriteAllText(Path.Combine(dir, "config.json"), configJson);
        if (preprocessorJson is not null) File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), preprocessorJson);
        return dir;
    }

    /// <summary>An IDX image file of <paramref name="count"/> seeded random gray images of rows × cols.</summary>
    public static string Idx(int count, int rows = 8, int cols = 8, ulong seed = 3, string? directory = null)
    {
        var bytes = new byte[16 + count * rows * cols];
        bytes[2] = 0x08;
        bytes[3] = 3;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        var rng = new Rng(seed);
        for (int i = 16; i < bytes.Length; i++) bytes[i] = (byte)rng.NextInt(256);
        string path = Path.Combine(directory ?? Fixtures.TempDir(), "images-idx3-ubyte");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>An IDX label file.</summary>
    public static string IdxLabels(byte[] labels, string? directory = null)
    {
        var bytes = new byte[8 + labels.Length];
        bytes[2] = 0x08;
        bytes[3] = 1;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), labels.Length);
        labels.CopyTo(bytes, 8);
        string path = Path.Combine(directory ?? Fixtures.TempDir(), "labels-idx1-ubyte");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>The <c>vega</c> executable beside the tests; VEGA_TEST_EXE runs the CLI tests against another build
    /// (e.g. an older commit, to see them fail there).</summary>
    public static string Executable => Environment.GetEnvironmentVariable("VEGA_TEST_EXE") ?? Path.Combine(AppContext.BaseDirectory, "vega");

    /// <summary>What a <c>vega</c> process did.</summary>
    public sealed record CliRun(int ExitCode, string StdOut, string StdErr, bool TimedOut)
    {
        public string[] ErrorLines => StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        /// <summary>Standard output with every run of white space (including the terminal's line wrapping) as one space.</summary>
        public string FlatOut => System.Text.RegularExpressions.Regex.Replace(StdOut, @"\s+", " ");
        public override string ToString() => $"exit {ExitCode}{(TimedOut ? " (timed out, killed)" : "")}\nstderr:\n{StdErr}\nstdout:\n{StdOut}";
    }

    /// <summary>
    /// Runs the real <c>vega</c> executable (the one built beside the tests) with <paramref name="args"/>; a process
    /// still running after <paramref name="timeout"/> is killed and reported as timed out (the caller fails the test).
    /// <paramref name="shellPrefix"/> runs it through <c>bash -c</c> after that prefix (e.g. <c>ulimit -f 64;</c>);
    /// <paramref name="dropFileCapabilities"/> takes away root's permission override so that file modes apply.
    /// </summary>
    public static CliRun Vega(IReadOnlyList<string> args, TimeSpan? timeout = null, string? shellPrefix = null, bool dropFileCapabilities = false, string? workingDirectory = null)
    {
        string vega = Executable;
        ProcessStartInfo start;
        string command = string.Join(' ', new[] { vega }.Concat(args).Select(Quote));
        if (dropFileCapabilities && Environment.UserName == "root")
            command = "setpriv --bounding-set=-dac_override,-dac_read_search -- " + command;
        if (shellPrefix is not null || dropFileCapabilities)
            start = new ProcessStartInfo("bash", ["-c", (shellPrefix ?? "") + " exec " + command]);
        else
            start = new ProcessStartInfo(vega, args);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.StandardOutputEncoding = Encoding.UTF8;
        start.StandardErrorEncoding = Encoding.UTF8;
        start.Environment["NO_COLOR"] = "1";
        start.Environment["COLUMNS"] = "200";
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(timeout ?? TimeSpan.FromSeconds(120));
        if (!exited)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        return new CliRun(exited ? p.ExitCode : -1, stdout.Result, stderr.Result, !exited);
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
