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
        var e1 = Assert.Throws<InvalidDataException>(() => OnnxSession.Open(text));
        Assert.Contains(text, e1.Message);

        string truncated = Path.Combine(dir, "truncated.onnx");
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e2 = Assert.Throws<InvalidDataException>(() => OnnxSession.Open(truncated));
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
        var e5 = Assert.Throws<InvalidOperationException>(() => session.Run([OnnxInput.Create("input_ids", ids, 1, 77)]));
        Assert.Contains("textual.onnx", e5.Message);
    }

    [Fact]
    public void AnUnusableGpuIsAClearErrorNamingTheDeviceAndWhatIsMissing()
    {
        // This machine has no CUDA and the CPU build of ONNX Runtime: the real failure path, not a simulation.
        var warnings = new List<string>();
        var e = Assert.Throws<InvalidOperationException>(() => OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"),
            new OnnxSessionOptions { GpuDeviceId = 3, Warning = warnings.Add }));
        Assert.Contains("CUDA device 3", e.Message);
        Assert.Contains("CUDAExecutionProvider", e.Message);
        Assert.Contains("vision_model.onnx", e.Message);
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", e.Message);
        Assert.Contains("libcublasLt.so.13", e.Message);
        Assert.Contains("fallbackToCpu", e.Message);
        Assert.Empty(warnings);
    }

    [Fact]
    public void WithFallbackAnUnusableGpuWarnsOnceAndRunsOnTheCpu()
    {
        var warnings = new List<string>();
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"),
            new OnnxSessionOptions { GpuDeviceId = 0, FallbackToCpu = true, Warning = warnings.Add });
        Assert.Equal("CPU", session.Device);
        var w = Assert.Single(warnings);
        Assert.Contains("CUDA device 0", w);
        Assert.Contains("Running on the CPU instead", w);
        var ids = Fixtures.ReadI64(Path.Combine(Fixtures.Onnx, "golden", "input_ids_ctx77.i64"));
        using var r = session.Run([OnnxInput.Create("input_ids", ids, 4, 77)]);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "openai_textual.f32")), r.GetFloats("text_embeds")) <= 1e-4);
    }

    [Fact]
    public void TheDefaultThreadCountIsEveryCoreOfTheProcess()
    {
        Assert.Equal(Environment.ProcessorCount, OnnxSessionOptions.Default.EffectiveIntraOpThreads);
        Assert.Equal(1, new OnnxSessionOptions { IntraOpThreads = 1 }.EffectiveIntraOpThreads);
    }

    [Fact]
    public void TheOptimisedModelIsKeptAndReusedAndABrokenCopyIsRebuilt()
    {
        string dir = Fixtures.TempDir();
        var warnings = new List<string>();
        var options = new OnnxSessionOptions { OptimizedModelDirectory = dir, Warning = warnings.Add };
        string model = Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx");
        var pixels = Fixtures.ReadF32(Path.Combine(Fixtures.Images, "golden", "grace_hopper.f32"));
        var expected = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "hf_vision.f32")).AsSpan(0, 32).ToArray();
        float[] RunOnce()
        {
            using var s = OnnxSession.Open(model, options);
            using var r = s.Run([OnnxInput.Create("pixel_values", pixels, 1, 3, 224, 224)]);
            return r.GetFloats("image_embeds").ToArray();
        }

        var first = RunOnce();
        string kept = Assert.Single(Directory.GetFiles(dir));
        Assert.EndsWith(".optimized.onnx", kept);
        Assert.Equal(OptimizedModelCache.FinalPath(options, model), kept);
        var second = RunOnce(); // from the kept file
        Assert.Equal(first, second);
        Assert.True(Fixtures.MaxAbsDiff(expected, second) <= 1e-4);

        File.WriteAllText(kept, "torn");
        var third = RunOnce();
        Assert.Equal(first, third);
        Assert.Contains(warnings, w => w.Contains("could not be loaded and is rebuilt", StringComparison.Ordinal));
        Assert.True(new FileInfo(kept).Length > 1000);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public void CancellationStopsARun()
    {
        using var session = OnnxSession.Open(Path.Combine(Fixtures.Onnx, "hf", "vision_model.onnx"));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => session.Run([OnnxInput.Create("pixel_values", new float[3 * 224 * 224], 1, 3, 224, 224)], null, cts.Token));
    }
}
