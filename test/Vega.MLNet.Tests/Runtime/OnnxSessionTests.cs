using System.Text.Json;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Runtime;

public sealed class OnnxSessionTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        using var index = Fixtures.Json(Path.Combine(Fixtures.Onnx, "golden", "index.json"));
        foreach (var c in index.RootElement.GetProperty("cases").EnumerateArray()) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    internal static OnnxInput LoadInput(string name, JsonElement spec)
    {
        var shape = spec.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        string dtype = spec.GetProperty("dtype").GetString()!;
        if (spec.TryGetProperty("concat_of_files", out var files))
        {
            var all = files.EnumerateArray().SelectMany(f => Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, f.GetString()!))).ToArray();
            return OnnxInput.Create(name, all, shape);
        }
        string file = Path.Combine(Fixtures.Onnx, spec.GetProperty("file").GetString()!);
        return dtype == "int64" ? OnnxInput.Create(name, Fixtures.ReadI64(file), shape) : OnnxInput.Create(name, Fixtures.ReadF32(file), shape);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryGoldenCaseRunsWithin1e4(string caseName)
    {
        using var index = Fixtures.Json(Path.Combine(Fixtures.Onnx, "golden", "index.json"));
        var c = index.RootElement.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == caseName);
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, c.GetProperty("model").GetString()!));
        var inputs = c.GetProperty("inputs").EnumerateObject().Select(p => LoadInput(p.Name, p.Value)).ToArray();
        var outputs = c.GetProperty("outputs").EnumerateObject().ToArray();
        using var results = session.Run(inputs, outputs.Select(o => o.Name).ToArray());
        foreach (var o in outputs)
        {
            var expected = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, o.Value.GetProperty("file").GetString()!));
            var (type, shape) = results.Describe(o.Name);
            Assert.Equal(OnnxElementType.Float, type);
            Assert.Equal(o.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), shape);
            double diff = Fixtures.MaxAbsDiff(expected, results.GetFloats(o.Name));
            Assert.True(diff <= 1e-4, $"{caseName}/{o.Name}: max abs diff {diff}");
        }
    }

    [Fact]
    public void MetadataReportsNamesTypesAndSymbolicDimensions()
    {
        using var text = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "text_model.onnx"));
        Assert.Equal(["input_ids", "attention_mask"], text.Inputs.Select(i => i.Name));
        Assert.All(text.Inputs, i => Assert.Equal(OnnxElementType.Int64, i.ElementType));
        Assert.Equal([-1L, -1L], text.Inputs[0].Shape);
        Assert.All(text.Inputs[0].SymbolicShape, s => Assert.False(string.IsNullOrEmpty(s)));
        Assert.Equal("text_embeds", text.Outputs[0].Name);
        Assert.Equal(32, text.Outputs[0].Shape[1]);

        using var openai = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"));
        Assert.Equal(77, openai.Inputs[0].Shape[1]);
        Assert.Equal("batch", openai.Inputs[0].SymbolicShape[0]);
    }

    [Fact]
    public void RunIntoWritesStraightIntoCallerMemory()
    {
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"));
        var ids = Fixtures.ReadI64(Path.Combine(Fixtures.Onnx, "golden", "input_ids_ctx77.i64"));
        var expected = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "openai_textual.f32"));
        var big = new float[10 * 32];
        session.RunInto([OnnxInput.Create("input_ids", ids, 4, 77)], [new OnnxOutputTarget("text_embeds", big.AsMemory(3 * 32, 4 * 32), [4, 32])]);
        Assert.True(Fixtures.MaxAbsDiff(expected, big.AsSpan(3 * 32, 4 * 32)) <= 1e-4);
        Assert.All(big.AsSpan(0, 3 * 32).ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ConcurrentRunsOnOneSessionGiveTheSameResults()
    {
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "text_model.onnx"), new OnnxSessionOptions { IntraOpThreads = 1 });
        var ids = Fixtures.ReadI64(Path.Combine(Fixtures.Onnx, "golden", "input_ids_longest.i64"));
        var mask = Fixtures.ReadI64(Path.Combine(Fixtures.Onnx, "golden", "attention_mask_longest.i64"));
        var expected = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "hf_text_longest.f32"));
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            using var r = session.Run([OnnxInput.Create("input_ids", ids, 4, 8), OnnxInput.Create("attention_mask", mask, 4, 8)]);
            Assert.True(Fixtures.MaxAbsDiff(expected, r.GetFloats("text_embeds")) <= 1e-4);
        });
    }

    [Fact]
    public void MissingTruncatedOrNonOnnxFilesGiveClearErrors()
    {
        string dir = Fixtures.TempDir();
        var missing = Assert.Throws<FileNotFoundException>(() => OnnxSession.Open(Path.Combine(dir, "nope.onnx")));
        Assert.Contains("nope.onnx", missing.Message);

        string text = Path.Combine(dir, "text.onnx");
        File.WriteAllText(text, "this is not a model");
        var e1 = Assert.Throws<OnnxRuntimeException>(() => OnnxSession.Open(text));
        Assert.Contains(text, e1.Message);

        string truncated = Path.Combine(dir, "truncated.onnx");
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e2 = Assert.Throws<OnnxRuntimeException>(() => OnnxSession.Open(truncated));
        Assert.Contains(truncated, e2.Message);
        Assert.Contains("valid ONNX", e2.Message);
    }

    [Fact]
    public void WrongElementTypeShapeOrNameIsRejectedBeforeTheRun()
    {
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"));
        var e1 = Assert.Throws<ArgumentException>(() => session.Run([OnnxInput.Create("input_ids", new int[77], 1, 77)]));
        Assert.Contains("must be int64", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => session.Run([OnnxInput.Create("input_ids", new long[76], 1, 76)]));
        Assert.Contains("dimension 1 = 77", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => session.Run([OnnxInput.Create("ids", new long[77], 1, 77)]));
        Assert.Contains("has no input 'ids'", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => OnnxInput.Create("input_ids", new long[70], 1, 77));
        Assert.Contains("needs 77", e4.Message);
        // An error inside ORT carries ORT's own message: token id out of the embedding table's range.
        var ids = new long[77];
        ids[0] = 49406; ids[1] = 1_000_000; ids[2] = 49407;
        var e5 = Assert.Throws<OnnxRuntimeException>(() => session.Run([OnnxInput.Create("input_ids", ids, 1, 77)]));
        Assert.Contains("textual.onnx", e5.Message);
    }

    [Fact]
    public void CudaWithoutTheProviderIsAClearError()
    {
        var e = Assert.Throws<NotSupportedException>(() => OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"),
            new OnnxSessionOptions { Provider = ExecutionProvider.Cuda }));
        Assert.Contains("CUDA", e.Message);
        Assert.Contains("libonnxruntime_providers_cuda.so", e.Message);
    }

    [Fact]
    public void CancellationStopsARun()
    {
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => session.Run([OnnxInput.Create("pixel_values", new float[3 * 224 * 224], 1, 3, 224, 224)], null, cts.Token));
    }

    [Fact]
    public void LibraryLocatorFollowsOptionThenEnvironmentThenAppFolder()
    {
        string dir = Fixtures.TempDir();
        string native = Path.Combine(dir, "runtimes", "linux-x64", "native");
        Directory.CreateDirectory(native);
        string inApp = Path.Combine(native, "libonnxruntime.so.1");
        File.WriteAllText(inApp, "");
        string envDir = Fixtures.TempDir();
        string inEnv = Path.Combine(envDir, "libonnxruntime.so.1");
        File.WriteAllText(inEnv, "");
        string explicitFile = Path.Combine(Fixtures.TempDir(), "custom.so");
        File.WriteAllText(explicitFile, "");

        Assert.Equal(explicitFile, OrtLibraryLocator.Resolve(explicitFile, envDir, dir));
        Assert.Equal(inEnv, OrtLibraryLocator.Resolve(null, envDir, dir));
        Assert.Equal(inApp, OrtLibraryLocator.Resolve(null, null, dir));

        var e1 = Assert.Throws<OnnxRuntimeNotFoundException>(() => OrtLibraryLocator.Resolve(null, "/no/such/dir", dir));
        Assert.Contains("VEGA_ONNXRUNTIME_PATH", e1.Message);
        Assert.Contains("scripts/setup.sh", e1.Message);
        var e2 = Assert.Throws<OnnxRuntimeNotFoundException>(() => OrtLibraryLocator.Resolve(null, null, Fixtures.TempDir()));
        Assert.Contains("not found", e2.Message);
        Assert.Contains("scripts/setup.sh", e2.Message);
    }
}
