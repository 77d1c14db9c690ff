using System.Numerics.Tensors;
using Vega.MLNet.Tensors;
using Tensor = Vega.MLNet.Tensors.Tensor;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// The linear-probe baseline: multinomial logistic regression on frozen, L2-normalised image embeddings,
/// logits = √D·x·Wᵀ + b (the √D makes the inputs' entries O(1)), trained from zero weights by full-batch AdamW on the
/// class-balanced cross-entropy with decoupled weight decay. No validation split exists in k-shot, so the L2 strength is
/// fixed (docs/aape.md); CLIP's own protocol sweeps it on a validation set.
/// </summary>
internal sealed class LinearProbe
{
    private readonly float[] _w; // [C, D]
    private readonly float[] _b; // [C]

    private LinearProbe(float[] w, float[] b, int classes, int dimension)
    {
        _w = w;
        _b = b;
        Classes = classes;
        Dimension = dimension;
    }

    public int Classes { get; }
    public int Dimension { get; }

    /// <summary>Trains on unit-norm rows <paramref name="images"/> [N, D] with labels in [0, C).</summary>
    public static LinearProbe Train(float[] images, int[] labels, int classes, int steps = 300, double learningRate = 0.01, double weightDecay = 0.01)
    {
        int n = labels.Length, d = images.Length / n;
        var w = Tensor.Parameter([classes, d], "probe.weight");
        var b = Tensor.Parameter([classes], "probe.bias");
        var x = Tensor.Wrap(Scaled(images, d), n, d);
        var optimizer = new AdamW([w, b], new AdamWOptions(learningRate, WeightDecay: weightDecay));
        for (int s = 0; s < steps; s++)
        {
            using var tape = new Tape();
            var loss = Ops.CrossEntropy(Ops.Linear(x, w, b), labels);
            optimizer.ZeroGrad();
            tape.Backward(loss);
            optimizer.Step();
        }
        return new LinearProbe(w.ToArray(), b.ToArray(), classes, d);
    }

    private static float[] Scaled(float[] images, int d)
    {
        var x = (float[])images.Clone();
        TensorPrimitives.Multiply(x, MathF.Sqrt(d), x);
        return x;
    }

    /// <summary>The predicted class of every row of <paramref name="images"/> (unit-norm, [N, D]).</summary>
    public int[] Classify(float[] images)
    {
        int d = Dimension, n = images.Length / d;
        var result = new int[n];
        var scores = new float[Classes];
        float scale = MathF.Sqrt(d);
        for (int i = 0; i < n; i++)
        {
            var xi = images.AsSpan(i * d, d);
            for (int c = 0; c < Classes; c++) scores[c] = scale * TensorPrimitives.Dot<float>(xi, _w.AsSpan(c * d, d)) + _b[c];
            result[i] = TensorPrimitives.IndexOfMax<float>(scores);
        }
        return result;
    }
}
