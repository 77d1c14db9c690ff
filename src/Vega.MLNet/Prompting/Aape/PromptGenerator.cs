using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// The trainable part of the AAPE head: the prompt generator h = Linear(D, R) → ReLU → Linear(R, D) (R = D/r) and
/// the class-weight projection g = ReLU(Linear(2D, D)) on [w_c; h(x)]. Weights are [out, in] (PyTorch layout); the
/// first D columns of <see cref="G"/> act on w_c, the last D on h(x).
/// </summary>
internal sealed record GeneratorWeights(Tensor W1, Tensor B1, Tensor W2, Tensor B2, Tensor G, Tensor Gb)
{
    public Tensor[] All => [W1, B1, W2, B2, G, Gb];

    public int Dimension => W1.Shape[1];

    public int Bottleneck => W1.Shape[0];

    /// <summary>
    /// Fresh weights. h: first layer PyTorch's nn.Linear default (U(±1/√D) for weight and bias), last layer zero, so
    /// h(x) = 0 at the start. g: identity on the w_c half, nn.Linear default U(±1/√(2D)) on the h half, and a
    /// per-dimension bias b_d = max(0, −min_c w_c[d]) + 1/√D that keeps the output ReLU open for every training class:
    /// the untrained head scores cos(x, w_c + b).
    /// </summary>
    public static GeneratorWeights Create(int d, int bottleneck, ReadOnlySpan<float> classWeights, int classes, Rng rng)
    {
        var w1 = Tensor.Parameter([bottleneck, d], "h.fc1.weight");
        var b1 = Tensor.Parameter([bottleneck], "h.fc1.bias");
        double bound1 = 1 / Math.Sqrt(d);
        Init.Uniform(w1, rng, -bound1, bound1);
        Init.Uniform(b1, rng, -bound1, bound1);
        var w2 = Tensor.Parameter([d, bottleneck], "h.fc2.weight");
        var b2 = Tensor.Parameter([d], "h.fc2.bias");
        var g = Tensor.Parameter([d, 2 * d], "g.weight");
        var gs = g.Span;
        double bound = 1 / Math.Sqrt(2 * d);
        for (int i = 0; i < d; i++)
        {
            gs[i * 2 * d + i] = 1f;
            rng.FillUniform(gs.Slice(i * 2 * d + d, d), -bound, bound);
        }
        var gb = Tensor.Parameter([d], "g.bias");
        var bs = gb.Span;
        float margin = 1f / MathF.Sqrt(d);
        for (int j = 0; j < d; j++)
        {
            float min = 0;
            for (int c = 0; c < classes; c++) min = Math.Min(min, classWeights[c * d + j]);
            bs[j] = -min + margin;
        }
        return new GeneratorWeights(w1, b1, w2, b2, g, gb);
    }
}

/// <summary>The differentiable forward pass of the head on the tensor core (training; also the reference for the
/// fast inference kernel in <see cref="AapeHead"/>).</summary>
internal static class PromptGenerator
{
    /// <summary>h(x) for unit-norm images x [B, D] → [B, D].</summary>
    public static Tensor Prompt(GeneratorWeights w, Tensor x) => Ops.Linear(Ops.Relu(Ops.Linear(x, w.W1, w.B1)), w.W2, w.B2);

    /// <summary>
    /// Logits [B, C] = cos(x, w_c(x))/τ with w_c(x) = ReLU(G_w·w_c + G_h·h(x) + b), all classes at once: G_w·w_c is
    /// computed once per call ([C, D]), G_h·h(x) + b once per image ([B, D]), and their broadcast sum [B, C, D] gives every
    /// class weight. <paramref name="x"/> [B, D] and <paramref name="classWeights"/> [C, D] are unit-norm rows;
    /// <paramref name="prompt"/> receives h(x).
    /// </summary>
    public static Tensor Logits(GeneratorWeights w, Tensor x, Tensor classWeights, float temperature, out Tensor prompt)
    {
        int b = x.Shape[0], d = x.Shape[1], c = classWeights.Shape[0];
        prompt = Prompt(w, x);
        var gw = Ops.Slice(w.G, 1, 0, d);
        var gh = Ops.Slice(w.G, 1, d, 2 * d);
        var a = Ops.Linear(classWeights, gw);                                   // [C, D]
        var u = Ops.Linear(prompt, gh, w.Gb);                                   // [B, D]
        var weights = Ops.Relu(Ops.Add(Ops.Unsqueeze(u, 1), Ops.Unsqueeze(a, 0))); // [B, C, D]
        var unit = Ops.L2Normalize(weights, -1);
        var cos = Ops.Reshape(Ops.MatMul(unit, Ops.Unsqueeze(x, 2)), b, c);     // [B, C]
        return Ops.MulScalar(cos, 1f / temperature);
    }
}

/// <summary>
/// CoOp's learning-rate schedule (Dassl's ConstantWarmupScheduler around CosineAnnealingLR, stepped per epoch): the
/// first <c>warmupEpochs</c> epochs use the constant warm-up rate, then epoch e uses
/// peak·½(1 + cos(π·(e − W)/T)) with T the total number of epochs.
/// </summary>
internal sealed class CoOpSchedule(double peak, int epochs, int warmupEpochs, double warmupRate) : LearningRateSchedule
{
    /// <summary>The rate of epoch <paramref name="step"/> (0-based).</summary>
    public override double At(int step) =>
        step < warmupEpochs ? warmupRate : 0.5 * peak * (1 + Math.Cos(Math.PI * (step - warmupEpochs) / epochs));
}
