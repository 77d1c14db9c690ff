using Vega.MLNet.Onnx;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// Reverse-mode gradients through the fixture text towers against the golden dLoss/dE of ../shared/onnx/golden:
/// the tower is evaluated from E (the token-embedding Gather output) with the ids still used for pooling,
/// loss = Σ text_embeds ⊙ R, and dLoss/dE must satisfy max|ours − golden| ≤ 1e-5·max|golden|. E is fed both ways the
/// interpreter allows: by binding the Gather output of the original graph, and through the <c>inputs_embeds</c> input
/// of the graph after <see cref="PromptInjection"/>. Frozen weights must get no gradient buffers.
/// </summary>
public sealed class OnnxGradientTests
{
    private const string GatherOutput = "/token_embedding/Gather_output_0";

    public sealed record Tower(string Model, string Prefix, string Ids, string? Mask, int Sequence, double Loss, string Output)
    {
        public override string ToString() => Prefix;
    }

    private static readonly Tower OpenAi = new("openai/textual.onnx", "openai_textual", "input_ids_ctx77.i64", null, 77, 15.0113525390625, "openai_textual.f32");
    private static readonly Tower Hf = new("hf/text_model.onnx", "hf_text", "input_ids_longest.i64", "attention_mask_longest.i64", 8, 2.8443522453308105, "hf_text_longest.f32");

    public static TheoryData<string, bool> Cases() => new() { { "openai", false }, { "openai", true }, { "hf", false }, { "hf", true } };

    private static Tower Get(string name) => name == "openai" ? OpenAi : Hf;

    private static string Golden(string f) => OnnxInterpreterParityTests.Golden(f);

    /// <summary>The interpreter fed from E, and the name of the E input.</summary>
    private static (OnnxInterpreter Interp, string EInput) Build(Tower t, bool injected)
    {
        string path = Path.Combine(Fixtures.Onnx, t.Model);
        if (!injected) return (OnnxInterpreter.Load(path, new OnnxInterpreterOptions { BoundValues = [GatherOutput] }), GatherOutput);
        var result = PromptInjection.ExposeTokenEmbeddings(OnnxModelFile.Load(path), "input_ids", t.Model);
        return (OnnxInterpreter.Create(result.Model, t.Model + " (injected)"), PromptInjection.EmbedsInput);
    }

    private static Dictionary<string, OnnxValue> Feeds(Tower t, string eInput, Tensor e)
    {
        var feeds = new Dictionary<string, OnnxValue>
        {
            ["input_ids"] = OnnxValue.FromInts(Fixtures.ReadI64(Golden(t.Ids)), [4, t.Sequence]),
            [eInput] = OnnxValue.FromTensor(e),
        };
        if (t.Mask is not null) feeds["attention_mask"] = OnnxValue.FromInts(Fixtures.ReadI64(Golden(t.Mask)), [4, t.Sequence]);
        return feeds;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GradientOfTheLossWithRespectToTheTokenEmbeddingsMatchesTheGolden(string tower, bool injected)
    {
        var t = Get(tower);
        var (interp, eInput) = Build(t, injected);
        var eValues = Fixtures.ReadF32(Golden(t.Prefix + ".E.f32"));
        var golden = Fixtures.ReadF32(Golden(t.Prefix + ".dLdE.f32"));
        var r = Fixtures.ReadF32(Golden("grad_R.f32"));

        var e = Tensor.Parameter(eValues, [4, t.Sequence, 64], "E");
        float[] grad;
        double loss;
        float[] embeds;
        using (var tape = new Tape())
        {
            var outputs = interp.Run(Feeds(t, eInput, e));
            var textEmbeds = outputs["text_embeds"].Tensor!;
            Assert.True(textEmbeds.RequiresGrad);
            embeds = textEmbeds.ToArray();
            var lossTensor = Ops.Sum(Ops.Mul(textEmbeds, Tensor.FromArray(r, 4, 32)));
            loss = lossTensor.Item();
            tape.Backward(lossTensor);
            grad = e.Grad!.ToArray();
        }

        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Golden(t.Output)), embeds) <= 1e-4);
        Assert.True(Math.Abs(loss - t.Loss) <= 1e-5 * Math.Abs(t.Loss) + 1e-5, $"loss {loss:R}, golden {t.Loss:R}");
        double maxGolden = golden.Max(v => Math.Abs((double)v));
        double maxDiff = Fixtures.MaxAbsDiff(golden, grad);
        Assert.True(maxDiff <= 1e-5 * maxGolden, $"max |dL/dE − golden| = {maxDiff:G3}, allowed {1e-5 * maxGolden:G3}");

        // Frozen weights: no constant requires a gradient or has a gradient buffer.
        foreach (var c in interp.ConstantTensors())
        {
            Assert.False(c.RequiresGrad);
            Assert.Null(c.Grad);
        }
    }

    /// <summary>
    /// Central finite differences of the loss (fourth-order stencil, float32 evaluation by the interpreter without a
    /// tape, loss accumulated in float64) at coordinates with large golden gradients agree with the tape's gradient.
    /// The tensor core computes in float32 only, so the step is large (1e-3 on values of ~0.02) and the tolerance is 2 %.
    /// </summary>
    [Theory]
    [InlineData("openai")]
    [InlineData("hf")]
    public void FiniteDifferencesAgreeWithTheTape(string tower)
    {
        var t = Get(tower);
        var (interp, eInput) = Build(t, injected: false);
        var eValues = Fixtures.ReadF32(Golden(t.Prefix + ".E.f32"));
        var golden = Fixtures.ReadF32(Golden(t.Prefix + ".dLdE.f32"));
        var r = Fixtures.ReadF32(Golden("grad_R.f32"));

        var e = Tensor.Parameter(eValues, [4, t.Sequence, 64], "E");
        float[] grad;
        using (var tape = new Tape())
        {
            var y = interp.Run(Feeds(t, eInput, e))["text_embeds"].Tensor!;
            var loss = Ops.Sum(Ops.Mul(y, Tensor.FromArray(r, 4, 32)));
            tape.Backward(loss);
            grad = e.Grad!.ToArray();
        }

        double Loss(float[] values)
        {
            var y = interp.Run(Feeds(t, eInput, Tensor.Wrap(values, 4, t.Sequence, 64)))["text_embeds"].ToFloatArray();
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += (double)y[i] * r[i];
            return s;
        }

        // The 6 coordinates with the largest golden gradient and 6 spread over the real tokens.
        var picks = Enumerable.Range(0, golden.Length).OrderByDescending(i => Math.Abs(golden[i])).Take(6)
            .Concat(Enumerable.Range(0, 6).Select(k => (k * 7919 + 13) % (t.Sequence * 64) + (k % 4) * t.Sequence * 64).Where(i => Math.Abs(golden[i]) > 0.5))
            .Distinct().ToArray();
        Assert.True(picks.Length >= 6);
        const float h = 1e-3f;
        foreach (int i in picks)
        {
            var v = (float[])eValues.Clone();
            double At(float delta)
            {
                v[i] = eValues[i] + delta;
                double l = Loss(v);
                v[i] = eValues[i];
                return l;
            }
            double fd = (8 * (At(h) - At(-h)) - (At(2 * h) - At(-2 * h))) / (12.0 * h);
            Assert.True(Math.Abs(fd - grad[i]) <= 2e-2 * Math.Abs(grad[i]) + 5e-2, $"coordinate {i}: finite difference {fd:G5}, tape {grad[i]:G5}");
        }
    }
}
