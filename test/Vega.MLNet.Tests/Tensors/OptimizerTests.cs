using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>Optimiser steps, schedules and clipping against values computed by hand (worked out in the comments).</summary>
public sealed class OptimizerTests
{
    private static Tensor Param(params float[] v) => Tensor.Parameter(v, [v.Length]);

    private static void SetGrad(Tensor p, params float[] g)
    {
        using var tape = new Tape();
        tape.Backward(Ops.Sum(Ops.Mul(p, Tensor.FromArray(g, g.Length)))); // dL/dp = g
    }

    [Fact]
    public void PlainSgdWithWeightDecay()
    {
        // p = 1, g = 0.5, lr = 0.1, λ = 0.1: d = 0.5 + 0.1·1 = 0.6 → p = 1 − 0.06 = 0.94
        var p = Param(1f);
        var opt = new Sgd([p], new SgdOptions(0.1, WeightDecay: 0.1));
        SetGrad(p, 0.5f);
        opt.Step();
        Assert.Equal(0.94f, p.Span[0], 6);
    }

    [Fact]
    public void SgdMomentum()
    {
        // μ = 0.9, lr = 0.1, g = 0.5 each step.
        // step 1: b = 0.5, p = 1 − 0.05 = 0.95
        // step 2: b = 0.9·0.5 + 0.5 = 0.95, p = 0.95 − 0.095 = 0.855
        // step 3: b = 0.9·0.95 + 0.5 = 1.355, p = 0.855 − 0.1355 = 0.7195
        var p = Param(1f);
        var opt = new Sgd([p], new SgdOptions(0.1, Momentum: 0.9));
        float[] expected = [0.95f, 0.855f, 0.7195f];
        foreach (float e in expected)
        {
            opt.ZeroGrad();
            SetGrad(p, 0.5f);
            opt.Step();
            Assert.Equal(e, p.Span[0], 5);
        }
    }

    [Fact]
    public void SgdNesterov()
    {
        // μ = 0.9, lr = 0.1, g = 0.5.
        // step 1: b = 0.5, d = 0.5 + 0.45 = 0.95, p = 1 − 0.095 = 0.905
        // step 2: b = 0.95, d = 0.5 + 0.855 = 1.355, p = 0.905 − 0.1355 = 0.7695
        var p = Param(1f);
        var opt = new Sgd([p], new SgdOptions(0.1, Momentum: 0.9, Nesterov: true));
        foreach (float e in new[] { 0.905f, 0.7695f })
        {
            opt.ZeroGrad();
            SetGrad(p, 0.5f);
            opt.Step();
            Assert.Equal(e, p.Span[0], 5);
        }
        Assert.Throws<ArgumentException>(() => new Sgd([p], new SgdOptions(0.1, Nesterov: true)));
    }

    [Fact]
    public void AdamWFirstTwoSteps()
    {
        // lr = 0.1, β = (0.9, 0.999), ε = 1e-8, λ = 0.01; p = [1, −2], g = [0.5, −0.25] then [0.1, 0.3].
        // step 1: decay p·(1 − 0.001) = [0.999, −1.998]; m̂ = g, v̂ = g² → update lr·g/(|g| + ε) ≈ ±0.1
        //         p = [0.899, −1.898]  (to ~1e-8)
        // step 2 (element 0): m = 0.9·0.05 + 0.1·0.1 = 0.055; v = 0.999·0.00025 + 0.001·0.01 = 0.00025975
        //         m̂ = 0.055/0.19 = 0.289473684; v̂ = 0.00025975/0.001999 = 0.129939970; √v̂ = 0.360471871
        //         p = 0.899·0.999 − 0.1·0.289473684/(0.360471871 + ε) = 0.898101 − 0.080304098 ≈ 0.817796906
        // step 2 (element 1): m = 0.9·(−0.025) + 0.1·0.3 = 0.0075; v = 0.999·0.0000625 + 0.001·0.09 = 0.0001524375
        //         m̂ = 0.039473684; v̂ = 0.076256878; √v̂ = 0.276146480
        //         p = −1.898·0.999 − 0.1·0.039473684/(0.276146480 + ε) = −1.896102 − 0.014294473 ≈ −1.910396475
        var p = Param(1f, -2f);
        var opt = new AdamW([p], new AdamWOptions(0.1, 0.9, 0.999, 1e-8, 0.01));
        SetGrad(p, 0.5f, -0.25f);
        opt.Step();
        Assert.Equal(0.899f, p.Span[0], 5);
        Assert.Equal(-1.898f, p.Span[1], 5);
        opt.ZeroGrad();
        SetGrad(p, 0.1f, 0.3f);
        opt.Step();
        Assert.Equal(0.817796906f, p.Span[0], 5);
        Assert.Equal(-1.910396475f, p.Span[1], 5);
        Assert.Equal(2, opt.StepCount);
    }

    [Fact]
    public void ParametersWithoutGradientsAreLeftAlone()
    {
        var p = Param(1f);
        var q = Param(2f);
        var opt = new AdamW([p, q], new AdamWOptions(0.1));
        SetGrad(p, 1f);
        opt.Step();
        Assert.Equal(2f, q.Span[0]);
        Assert.NotEqual(1f, p.Span[0]);
        Assert.Throws<ArgumentException>(() => new AdamW([Tensor.Zeros(2)], new AdamWOptions()));
    }

    [Fact]
    public void Schedules()
    {
        // Peak 1e-3, 10 warm-up steps, 110 total, min 1e-5.
        var s = new CosineWithWarmupSchedule(1e-3, 10, 110, 1e-5);
        Assert.Equal(1e-4, s.At(0), 12);         // 1e-3·1/10
        Assert.Equal(5e-4, s.At(4), 12);         // 1e-3·5/10
        Assert.Equal(1e-3, s.At(10), 12);        // start of the cosine
        Assert.Equal(1e-5 + 0.5 * (1e-3 - 1e-5), s.At(60), 12); // halfway: cos(π/2) = 0
        Assert.Equal(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.Cos(Math.PI * 0.25)), s.At(35), 12);
        Assert.Equal(1e-5, s.At(110), 12);
        Assert.Equal(1e-5, s.At(500), 12);
        Assert.Equal(3e-4, new ConstantSchedule(3e-4).At(12345));
        var p = Param(1f);
        var opt = new Sgd([p], new SgdOptions(1));
        s.Apply(opt);
        Assert.Equal(1e-4, opt.LearningRate, 12);
    }

    [Fact]
    public void GradientClipping()
    {
        // Gradients [3, 4] and [12]: global norm 13. Clip to 6.5 → factor 6.5/(13 + 1e-6).
        var a = Param(0f, 0f);
        var b = Param(0f);
        SetGrad(a, 3f, 4f);
        SetGrad(b, 12f);
        double norm = GradClip.ClipNorm([a, b], 6.5);
        Assert.Equal(13.0, norm, 6);
        double f = 6.5 / (13 + 1e-6);
        Assert.Equal((float)(3 * f), a.Grad!.Span[0], 6);
        Assert.Equal((float)(4 * f), a.Grad!.Span[1], 6);
        Assert.Equal((float)(12 * f), b.Grad!.Span[0], 6);
        // Below the threshold nothing changes.
        Assert.Equal(6.5, GradClip.ClipNorm([a, b], 100), 4);
        Assert.Equal((float)(12 * f), b.Grad!.Span[0], 6);
        GradClip.ClipValue([a, b], 2f);
        Assert.Equal(2f, b.Grad!.Span[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExportedStateResumesBitForBit(bool adam)
    {
        Optimizer Make(Tensor p) => adam ? new AdamW([p], new AdamWOptions(0.05, WeightDecay: 0.01)) : new Sgd([p], new SgdOptions(0.05, 0.9, 1e-3, Nesterov: true));
        void StepOnce(Optimizer o, Tensor p)
        {
            using (var tape = new Tape())
            {
                var loss = Ops.Sum(Ops.Mul(Ops.Mul(p, p), Tensor.FromArray([1f, 2f, 3f], 3)));
                tape.Backward(loss);
            }
            o.Step();
            o.ZeroGrad();
        }
        var straight = Tensor.Parameter([1f, -2f, 0.5f], [3]);
        var o1 = Make(straight);
        for (int i = 0; i < 5; i++) StepOnce(o1, straight);

        var resumed = Tensor.Parameter([1f, -2f, 0.5f], [3]);
        var o2 = Make(resumed);
        for (int i = 0; i < 3; i++) StepOnce(o2, resumed);
        var (state, steps) = o2.ExportState();
        var copy = Tensor.Parameter(resumed.ToArray(), [3]);
        var o3 = Make(copy);
        o3.ImportState(state, steps);
        for (int i = 0; i < 2; i++) StepOnce(o3, copy);
        Assert.Equal(straight.ToArray(), copy.ToArray());
    }
}
