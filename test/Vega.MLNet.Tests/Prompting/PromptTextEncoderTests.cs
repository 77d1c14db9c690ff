using Vega.MLNet.Onnx;
using Vega.MLNet.Prompting;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Prompting;

/// <summary>
/// The prompt encoder against independent oracles: with the placeholder token's own embedding as context it must equal
/// ONNX Runtime on the unmodified tower fed with the layout's ids; the context gradient must equal the sum of the
/// token-embedding gradients at its slots (computed by binding E directly); and the exported injected model run by ONNX
/// Runtime with random context must equal the interpreter.
/// </summary>
public sealed class PromptTextEncoderTests
{
    private static readonly string[] Names = ["cat", "T-shirt/top", "ankle boot", "golden retriever"];

    public static TheoryData<string, string> Towers() => new()
    {
        { "openai/textual.onnx", "End" },
        { "openai/textual.onnx", "Middle" },
        { "hf/text_model.onnx", "End" },
        { "hf/text_model.onnx", "Front" },
    };

    private static readonly Dictionary<string, PromptTextEncoder> Cache = [];

    private static PromptTextEncoder Encoder(string model)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(model, out var e)) Cache[model] = e = PromptTextEncoder.Load(Path.Combine(Fixtures.Onnx, model));
            return e;
        }
    }

    private static float[] OrtTextEmbeds(string modelPath, PromptLayout layout, PromptTextEncoder enc, float[]? embeds = null)
    {
        using var s = OnnxSession.Open(modelPath);
        long c = layout.ClassCount, l = layout.SequenceLength;
        var inputs = new List<OnnxInput> { OnnxInput.Create(enc.IdsInput, layout.Ids, c, l) };
        if (enc.MaskInput is not null) inputs.Add(OnnxInput.Create(enc.MaskInput, layout.AttentionMask(), c, l));
        if (embeds is not null) inputs.Add(OnnxInput.Create(PromptInjection.EmbedsInput, embeds, c, l, enc.Width));
        using var r = s.Run(inputs);
        return r.GetFloats(enc.Output).ToArray();
    }

    [Theory]
    [MemberData(nameof(Towers))]
    public void PlaceholderContextReproducesTheTowerOnTheLayoutIds(string model, string positionName)
    {
        var position = Enum.Parse<ClassTokenPosition>(positionName);
        var enc = Encoder(model);
        var tok = PromptLayoutTests.Tokenizer.Value;
        var layout = enc.Layout(tok, Names, 6, position);
        Assert.Equal(enc.FixedLength is null ? layout.Lengths.Max() : 77, layout.SequenceLength);
        var prompts = enc.Prepare(layout);
        int x = tok.Encode("X").Single();
        var ctx = Tensor.Wrap(Enumerable.Range(0, 6).SelectMany(_ => enc.TokenEmbedding.ToArray().AsSpan(x * enc.Width, enc.Width).ToArray()).ToArray(), 6, enc.Width);
        var ours = enc.Encode(prompts, ctx).ToArray();
        var ort = OrtTextEmbeds(Path.Combine(Fixtures.Onnx, model), layout, enc);
        Assert.True(Fixtures.MaxAbsDiff(ort, ours) <= 1e-4, $"max |encoder − ONNX Runtime| = {Fixtures.MaxAbsDiff(ort, ours):G3}");
        // Forward normalises.
        var f = enc.Forward(prompts, ctx).ToArray();
        for (int c = 0; c < Names.Length; c++)
            Assert.Equal(1.0, Math.Sqrt(f.AsSpan(c * 32, 32).ToArray().Sum(v => (double)v * v)), 5);
    }

    [Theory]
    [InlineData("openai/textual.onnx", false)]
    [InlineData("openai/textual.onnx", true)]
    [InlineData("hf/text_model.onnx", false)]
    [InlineData("hf/text_model.onnx", true)]
    public void ContextGradientIsTheSumOfEmbeddingGradientsAtItsSlots(string model, bool classSpecific)
    {
        var enc = Encoder(model);
        var layout = enc.Layout(PromptLayoutTests.Tokenizer.Value, Names, 5, ClassTokenPosition.Middle);
        var prompts = enc.Prepare(layout);
        var ctx = enc.InitialContext(layout, classSpecific, seed: 11);
        var r = new float[Names.Length * 32];
        new Rng(3).FillNormal(r);
        float[] ctxGrad, eGrad, embeds;
        using (var tape = new Tape())
        {
            var features = enc.Forward(prompts, ctx);
            tape.Backward(Ops.Sum(Ops.Mul(features, Tensor.FromArray(r, Names.Length, 32))));
            ctxGrad = ctx.Grad!.ToArray();
            Assert.Null(enc.TokenEmbedding.Grad);
            Assert.All(enc.Interpreter.ConstantTensors(), t => Assert.Null(t.Grad));
        }
        using (Tape.NoGrad()) embeds = enc.InputEmbeddings(prompts, ctx).ToArray();
        // Second route: E as a leaf fed to the bound Gather output, same loss.
        int l = layout.SequenceLength, w = enc.Width, m = layout.ContextTokens;
        var e = Tensor.Parameter(embeds, [Names.Length, l, w], "E");
        using (var tape = new Tape())
        {
            var feeds = new Dictionary<string, OnnxValue> { [enc.IdsInput] = prompts.Ids, [enc.GatherOutput] = OnnxValue.FromTensor(e) };
            if (enc.MaskInput is not null) feeds[enc.MaskInput] = prompts.Mask!;
            var y = Ops.L2Normalize(enc.Interpreter.Run(feeds)[enc.Output].Tensor!, -1);
            tape.Backward(Ops.Sum(Ops.Mul(y, Tensor.FromArray(r, Names.Length, 32))));
            eGrad = e.Grad!.ToArray();
        }
        var expected = new double[ctxGrad.Length];
        for (int c = 0; c < Names.Length; c++)
            for (int j = 0; j < m; j++)
            {
                int pos = layout.ContextPositions[c * m + j];
                int dst = classSpecific ? (c * m + j) * w : j * w;
                for (int d = 0; d < w; d++) expected[dst + d] += eGrad[(c * l + pos) * w + d];
            }
        double scale = expected.Max(Math.Abs);
        Assert.True(scale > 0);
        for (int i = 0; i < ctxGrad.Length; i++)
            Assert.True(Math.Abs(ctxGrad[i] - expected[i]) <= 1e-5 * scale, $"ctx grad [{i}] {ctxGrad[i]:G6} vs {expected[i]:G6}");
    }

    [Theory]
    [MemberData(nameof(Towers))]
    public void ExportedModelRunsInOnnxRuntimeWithLearnedContext(string model, string positionName)
    {
        var position = Enum.Parse<ClassTokenPosition>(positionName);
        var enc = Encoder(model);
        var layout = enc.Layout(PromptLayoutTests.Tokenizer.Value, Names, 8, position);
        var prompts = enc.Prepare(layout);
        var ctx = enc.InitialContext(layout, classSpecific: position == ClassTokenPosition.Middle, seed: 99, std: 0.05f);
        string path = Path.Combine(Fixtures.TempDir(), "prompted.onnx");
        enc.ExportOnnx(path);
        float[] embeds, ours;
        using (Tape.NoGrad())
        {
            embeds = enc.InputEmbeddings(prompts, ctx).ToArray();
            ours = enc.Encode(prompts, ctx).ToArray();
        }
        var ort = OrtTextEmbeds(path, layout, enc, embeds);
        Assert.True(Fixtures.MaxAbsDiff(ort, ours) <= 1e-4, $"max |interpreter − ONNX Runtime| = {Fixtures.MaxAbsDiff(ort, ours):G3}");
        // The interpreter on the exported file agrees too (it is an ordinary ONNX model with an inputs_embeds input).
        var onExport = OnnxInterpreter.Load(path);
        var feeds = new Dictionary<string, OnnxValue>
        {
            [enc.IdsInput] = prompts.Ids,
            [PromptInjection.EmbedsInput] = OnnxValue.FromTensor(Tensor.Wrap(embeds, layout.ClassCount, layout.SequenceLength, enc.Width)),
        };
        if (enc.MaskInput is not null) feeds[enc.MaskInput] = prompts.Mask!;
        Assert.True(Fixtures.MaxAbsDiff(ours, onExport.Run(feeds)[enc.Output].ToFloatArray()) <= 1e-5);
    }

    [Theory]
    [InlineData("openai/textual.onnx", false)]
    [InlineData("hf/text_model.onnx", true)]
    public void ChunkedStepGivesTheOneShotLossAndGradient(string model, bool classSpecific)
    {
        var enc = Encoder(model);
        string[] names = ["cat", "T-shirt/top", "ankle boot", "golden retriever", "a", "hot air balloon", "sneaker"];
        var prompts = enc.Prepare(enc.Layout(PromptLayoutTests.Tokenizer.Value, names, 4, ClassTokenPosition.End));
        var images = new float[5 * 32];
        new Rng(17).FillNormal(images);
        int[] labels = [0, 3, 6, 2, 5];
        Tensor Loss(Tensor features) =>
            Ops.CrossEntropy(Ops.MulScalar(Ops.MatMul(Tensor.FromArray(images, 5, 32), Ops.Transpose(features, 1, 0)), 10f), labels);
        var ctxA = enc.InitialContext(prompts.Layout, classSpecific, seed: 4);
        var ctxB = enc.InitialContext(prompts.Layout, classSpecific, seed: 4);
        float one = enc.Step(prompts, ctxA, Loss);
        float chunked = enc.Step(prompts, ctxB, Loss, classesPerChunk: 3);
        Assert.Equal(one, chunked, 5);
        var a = ctxA.Grad!.ToArray();
        var b = ctxB.Grad!.ToArray();
        double scale = a.Max(v => Math.Abs((double)v));
        Assert.True(scale > 0);
        Assert.True(Fixtures.MaxAbsDiff(a, b) <= 1e-4 * scale, $"max diff {Fixtures.MaxAbsDiff(a, b):G3} of {scale:G3}");
    }

    /// <summary>The benchmark towers generate their token table in-graph: the encoder finds it after constant folding.</summary>
    [Theory]
    [InlineData("openai-vit-b32/textual.onnx")]
    [InlineData("hf-vit-b32/text_model.onnx")]
    public void BenchmarkTowersWithAGeneratedTokenTableWork(string file)
    {
        string path = Path.Combine(Fixtures.Shared, "bench", file);
        var enc = PromptTextEncoder.Load(path);
        Assert.Equal(49408, enc.VocabularySize);
        Assert.Equal(512, enc.Width);
        var tok = PromptLayoutTests.Tokenizer.Value;
        var layout = enc.Layout(tok, Names, 16, ClassTokenPosition.End);
        var prompts = enc.Prepare(layout);
        int x = tok.Encode("X").Single();
        var row = enc.TokenEmbedding.ToArray().AsSpan(x * enc.Width, enc.Width).ToArray();
        var ctx = Tensor.Wrap(Enumerable.Range(0, 16).SelectMany(_ => row).ToArray(), 16, enc.Width);
        var ours = enc.Encode(prompts, ctx).ToArray();
        var ort = OrtTextEmbeds(path, layout, enc);
        double scale = Math.Max(1, ort.Max(v => Math.Abs((double)v)));
        Assert.True(Fixtures.MaxAbsDiff(ort, ours) <= 1e-4 * scale, $"max |encoder − ONNX Runtime| = {Fixtures.MaxAbsDiff(ort, ours):G3} (outputs up to {scale:G3})");
    }

    [Fact]
    public void ContextOfTheWrongShapeIsAClearError()
    {
        var enc = Encoder("openai/textual.onnx");
        var prompts = enc.Prepare(enc.Layout(PromptLayoutTests.Tokenizer.Value, Names, 4, ClassTokenPosition.End));
        var e = Assert.Throws<ArgumentException>(() => enc.Forward(prompts, Tensor.Zeros(3, 64)));
        Assert.Contains("[4, 64]", e.Message);
    }
}
