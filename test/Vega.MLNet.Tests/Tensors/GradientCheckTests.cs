using Vega.MLNet.Tensors;
using static Vega.MLNet.Tests.Tensors.GradCheck;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>Finite-difference gradient checks for every differentiable op, including broadcasting edge cases.</summary>
public sealed class GradientCheckTests
{
    // ---------------------------------------------------------------- broadcasting arithmetic

    public static TheoryData<string, int[], int[]> BroadcastCases() => new()
    {
        { "same", [3, 4], [3, 4] },
        { "scalar right", [3, 4], [] },
        { "scalar left", [], [2, 3] },
        { "row vs column", [3, 1], [1, 4] },
        { "rank mismatch", [2, 3, 4], [4] },
        { "rank mismatch size-1", [2, 1, 4], [3, 1] },
        { "one-element both", [1, 1], [1] },
        { "both expand", [2, 1, 3, 1], [1, 4, 1, 5] },
        { "middle", [2, 3, 4], [1, 3, 1] },
    };

    [Theory]
    [MemberData(nameof(BroadcastCases))]
    public void AddSubMulDivBroadcast(string name, int[] a, int[] b)
    {
        _ = name;
        var ia = Input.Random(1, a);
        var ib = Input.AwayFromZero(2, 0.5, 1.5, b);
        Check(t => Ops.Add(t[0], t[1]), ia, ib);
        Check(t => Ops.Sub(t[0], t[1]), ia, ib);
        Check(t => Ops.Mul(t[0], t[1]), ia, ib);
        Check(t => Ops.Div(t[0], t[1]), ia, ib);
    }

    [Theory]
    [MemberData(nameof(BroadcastCases))]
    public void PowBroadcast(string name, int[] a, int[] b)
    {
        _ = name;
        Check(t => Ops.Pow(t[0], t[1]), Input.Between(3, 0.5, 2.0, a), Input.Between(4, -1.5, 2.5, b));
    }

    [Fact]
    public void SameTensorOnBothSides()
    {
        // x·x + x: two uses of the same leaf in one op and across ops.
        Check(t => Ops.Add(Ops.Mul(t[0], t[0]), t[0]), Input.Random(5, 4, 3));
        Check(t => Ops.Div(t[0], Ops.AddScalar(Ops.Mul(t[0], t[0]), 1f)), Input.Random(6, 7));
    }

    [Fact]
    public void ScalarArithmetic()
    {
        var x = Input.Between(7, 0.5, 2, 3, 5);
        Check(t => Ops.AddScalar(t[0], 2.5f), x);
        Check(t => Ops.MulScalar(t[0], -1.75f), x);
        Check(t => Ops.DivScalar(t[0], 3f), x);
        foreach (float p in new[] { 2f, 0.5f, 3f, -1.5f, 1f })
            Check(t => Ops.PowScalar(t[0], p), x);
        Check(t => t[0] * 2f - 1f, x);
        Check(t => -t[0] / 4f, x);
    }

    // ---------------------------------------------------------------- unary

    [Fact]
    public void SmoothUnary()
    {
        var x = Input.Between(8, -2, 2, 4, 6);
        Check(t => Ops.Neg(t[0]), x);
        Check(t => Ops.Exp(t[0]), x);
        Check(t => Ops.Sigmoid(t[0]), x);
        Check(t => Ops.Tanh(t[0]), x);
        Check(t => Ops.Gelu(t[0]), x);
        Check(t => Ops.QuickGelu(t[0]), x);
        Check(t => Ops.Erf(t[0]), x);
        var positive = Input.Between(9, 0.3, 3, 4, 6);
        Check(t => Ops.Log(t[0]), positive);
        Check(t => Ops.Sqrt(t[0]), positive);
    }

    [Fact]
    public void GeluTailsAndLargeInputs()
    {
        var x = new Input([-6f, -4f, -3f, -1e-3f, 0f, 1e-3f, 3f, 4.5f, 7f], [9]);
        Check(t => Ops.Gelu(t[0]), [x], h: 1e-2);
        Check(t => Ops.Erf(t[0]), [x], h: 1e-2);
    }

    [Fact]
    public void KinkedUnaryAwayFromKinks()
    {
        var x = Input.AwayFromZero(10, 0.1, 2, 5, 4);
        Check(t => Ops.Abs(t[0]), x);
        Check(t => Ops.Relu(t[0]), x);
        // Clamp bounds at ±0.95: keep the inputs at least 0.05 from them.
        var values = x.Values.Select(v => Math.Abs(Math.Abs(v) - 0.95f) < 0.06f ? v * 0.8f : v).ToArray();
        Check(t => Ops.Clamp(t[0], -0.95f, 0.95f), new Input(values, x.Shape));
        Check(t => Ops.Clamp(t[0], min: 0.2f), new Input(values.Select(v => Math.Abs(v - 0.2f) < 0.06f ? v + 0.1f : v).ToArray(), x.Shape));
    }

    // ---------------------------------------------------------------- reductions

    public static TheoryData<int[]?, bool> ReduceCases() => new()
    {
        { null, false }, { null, true }, { [0], false }, { [1], true }, { [2], false }, { [0, 2], false }, { [0, 2], true }, { [-1], true }, { [-2, 0], false },
    };

    [Theory]
    [MemberData(nameof(ReduceCases))]
    public void SumMeanMax(int[]? axes, bool keep)
    {
        var x = Input.Random(11, 2, 3, 4);
        Check(t => Ops.Sum(t[0], axes, keep), x);
        Check(t => Ops.Mean(t[0], axes, keep), x);
        // Max needs unique maxima that a ±2h perturbation cannot reorder.
        Check(t => Ops.Max(t[0], axes, keep), [Input.Distinct(11, 2, 3, 4)], h: 1e-2 / 24);
    }

    [Fact]
    public void ReductionsOfStridedViews()
    {
        var x = Input.Random(12, 3, 4, 5);
        Check(t => Ops.Sum(Ops.Transpose(t[0], 2, 0, 1), [1], false), x);
        Check(t => Ops.Mean(Ops.Slice(t[0], 2, 1, 5, 2), [0, 2], true), x);
    }

    // ---------------------------------------------------------------- softmax family, norms, losses

    [Fact]
    public void SoftmaxAndLogSoftmax()
    {
        var x = Input.Between(13, -3, 3, 3, 4, 5);
        foreach (int axis in new[] { -1, 0, 1 })
        {
            Check(t => Ops.Softmax(t[0], axis), x);
            Check(t => Ops.LogSoftmax(t[0], axis), x);
        }
    }

    [Fact]
    public void LayerNormWithAndWithoutAffine()
    {
        var x = Input.Between(14, -2, 2, 3, 4, 6);
        var gamma = Input.Between(15, 0.5, 1.5, 6);
        var beta = Input.Random(16, 6);
        Check(t => Ops.LayerNorm(t[0], t[1], t[2]), x, gamma, beta);
        Check(t => Ops.LayerNorm(t[0], null, null, 1e-5f), x);
        Check(t => Ops.LayerNorm(t[0], t[1], null, 0.1f), x, gamma);
        Check(t => Ops.LayerNorm(t[0], t[1], t[2], 1e-5f, normalizedDims: 2), x, Input.Between(17, 0.5, 1.5, 4, 6), Input.Random(18, 4, 6));
    }

    [Fact]
    public void CrossEntropyHardAndSoft()
    {
        var logits = Input.Between(19, -3, 3, 5, 7);
        int[] targets = [0, 6, 3, 3, 1];
        Check(t => Ops.CrossEntropy(t[0], targets), logits);
        var q = Input.Between(20, 0, 1, 5, 7);
        Check(t => Ops.CrossEntropy(t[0], t[1]), logits, q);
        Check(t => Ops.CrossEntropy(Ops.MulScalar(t[0], 3f), Ops.Softmax(t[1])), logits, q);
    }

    [Fact]
    public void L2NormalizeAndCosine()
    {
        var x = Input.Random(21, 3, 8);
        Check(t => Ops.L2Normalize(t[0]), x);
        Check(t => Ops.L2Normalize(t[0], axis: 0), x);
        Check(t => Ops.CosineSimilarity(t[0], t[1]), Input.Random(22, 4, 1, 8), Input.Random(23, 1, 5, 8));
        Check(t => Ops.CosineSimilarity(t[0], t[1], axis: 0), Input.Random(24, 6, 3), Input.Random(25, 6, 3));
    }

    [Fact]
    public void DropoutPassesGradientThroughTheMask()
    {
        Check(t => Ops.Dropout(t[0], 0.3f, new Rng(99)), Input.Random(26, 6, 7));
    }

    // ---------------------------------------------------------------- shape ops

    [Fact]
    public void ViewsAndCopies()
    {
        var x = Input.Random(27, 2, 3, 4);
        Check(t => Ops.Reshape(t[0], 4, -1), x);
        Check(t => Ops.Reshape(Ops.Transpose(t[0], 1, 2, 0), 6, 4), x); // reshape of a strided view: a copy
        Check(t => Ops.Reshape(Ops.Transpose(t[0], 1, 0, 2), 3, 2, 2, 2), x); // … or a view when the split dim is contiguous
        Check(t => Ops.Transpose(t[0], 2, 0, 1), x);
        Check(t => Ops.SwapAxes(t[0], 0, 2), x);
        Check(t => Ops.Contiguous(Ops.Transpose(t[0], 1, 0, 2)), x);
        Check(t => Ops.Unsqueeze(Ops.Squeeze(Ops.Slice(t[0], 1, 1, 2), 1), -1), x);
        Check(t => Ops.Expand(Ops.Slice(t[0], 1, 0, 1), 5, 2, 3, 4), x);
        Check(t => Ops.Mul(Ops.Expand(t[0], 3, 4), Ops.Expand(t[1], 3, 4)), Input.Random(28, 3, 1), Input.Random(29, 4));
    }

    [Fact]
    public void Slices()
    {
        var x = Input.Random(30, 5, 6);
        Check(t => Ops.Slice(t[0], 0, 1, 4), x);
        Check(t => Ops.Slice(t[0], 1, 0, 6, 2), x);
        Check(t => Ops.Slice(t[0], 1, -1, int.MinValue, -2), x);
        Check(t => Ops.Slice(t[0], [1, -4], [100, -1], [0, 1], [2, 1]), x);
        // Overlapping slices of the same tensor accumulate.
        Check(t => Ops.Add(Ops.Slice(t[0], 0, 0, 3), Ops.Slice(t[0], 0, 2, 5)), x);
    }

    [Fact]
    public void ConcatGatherEmbeddingTakePerRow()
    {
        var a = Input.Random(31, 2, 3);
        var b = Input.Random(32, 2, 1);
        var c = Input.Random(33, 2, 4);
        Check(t => Ops.Concat([t[0], t[1], t[2]], 1), a, b, c);
        Check(t => Ops.Concat([t[0], Ops.SwapAxes(t[1], 0, 1)], 0), Input.Random(34, 2, 3), Input.Random(35, 3, 1));
        var table = Input.Random(36, 6, 4);
        Check(t => Ops.Embedding(t[0], [5, 0, 5, 2, -1, 3], 2, 3), table); // duplicates and a negative index
        Check(t => Ops.Gather(t[0], 1, [2, 0, 2], [3]), Input.Random(37, 3, 4, 2));
        Check(t => Ops.Gather(t[0], 0, [1], []), Input.Random(38, 3, 4)); // scalar index removes the axis
        Check(t => Ops.TakePerRow(t[0], [3, 0, 1]), Input.Random(39, 3, 4, 5));
    }

    [Fact]
    public void WhereAndMaskedFill()
    {
        var cond = new Input([1, 0, 0, 1, 1, 0], [2, 3, 1]).Fixed();
        Check(t => Ops.Where(t[0], t[1], t[2]), cond, Input.Random(40, 2, 3, 4), Input.Random(41, 4));
        var mask = new Input([0, 1, 0, 0, 0, 1, 1, 0, 0], [3, 3]).Fixed();
        Check(t => Ops.MaskedFill(t[1], t[0], -1e9f), mask, Input.Random(42, 2, 3, 3));
    }

    // ---------------------------------------------------------------- matmul

    [Fact]
    public void MatMulShapes()
    {
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(43, 3, 4), Input.Random(44, 4, 5));
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(45, 2, 3, 4), Input.Random(46, 2, 4, 5));
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(47, 2, 1, 3, 4), Input.Random(48, 3, 4, 2)); // batch broadcast both ways
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(49, 2, 3, 4), Input.Random(50, 4, 5));       // 2-D weight, folded batch
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(51, 4, 5), Input.Random(52, 2, 5, 3));       // 2-D left, batched right
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(53, 4), Input.Random(54, 2, 4, 3));          // vector · batch
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(55, 2, 3, 4), Input.Random(56, 4));          // batch · vector
        Check(t => Ops.MatMul(t[0], t[1]), Input.Random(57, 4), Input.Random(58, 4));                // dot
    }

    [Fact]
    public void MatMulOfTransposedViews()
    {
        // Q·Kᵀ style: the right operand is a transposed view; and a transposed left operand.
        Check(t => Ops.MatMul(t[0], Ops.SwapAxes(t[1], -1, -2)), Input.Random(59, 2, 3, 5, 4), Input.Random(60, 2, 3, 6, 4));
        Check(t => Ops.MatMul(Ops.SwapAxes(t[0], 0, 1), t[1]), Input.Random(61, 4, 3), Input.Random(62, 4, 5));
        Check(t => Ops.MatMul(Ops.Transpose(t[0], 1, 0, 2), t[1]), Input.Random(63, 3, 2, 4), Input.Random(64, 2, 4, 5)); // non-matrix strides → copy
        Check(t => Ops.Linear(t[0], t[1], t[2]), Input.Random(65, 2, 3, 4), Input.Random(66, 5, 4), Input.Random(67, 5));
        Check(t => Ops.Linear(t[0], t[1]), Input.Random(91, 4), Input.Random(92, 3, 4));
        Check(t => Ops.Linear(Ops.SwapAxes(t[0], 0, 1), Ops.SwapAxes(t[1], 0, 1), t[2]), Input.Random(93, 4, 3), Input.Random(94, 4, 5), Input.Random(95, 5));
    }

    [Fact]
    public void OnnxGemm()
    {
        Check(t => Ops.Gemm(t[0], t[1], t[2], 0.5f, 2f, transA: true, transB: true), Input.Random(68, 4, 3), Input.Random(69, 5, 4), Input.Random(70, 1, 5));
        Check(t => Ops.Gemm(t[0], t[1], t[2]), Input.Random(71, 3, 4), Input.Random(72, 4, 5), Input.Random(73, 5));
    }

    // ---------------------------------------------------------------- conv and pooling

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 0)]
    public void Conv2d(int stride, int padding)
    {
        var x = Input.Random(74, 2, 3, 7, 6);
        var w = Input.Random(75, 4, 3, 3, 3);
        var b = Input.Random(76, 4);
        Check(t => Ops.Conv2d(t[0], t[1], t[2], stride, padding), x, w, b);
    }

    [Fact]
    public void Conv2dPatchEmbeddingAndPointwise()
    {
        Check(t => Ops.Conv2d(t[0], t[1], null, stride: 4), Input.Random(77, 2, 3, 8, 8), Input.Random(78, 5, 3, 4, 4));
        Check(t => Ops.Conv2d(t[0], t[1], t[2]), Input.Random(79, 3, 2, 3, 3), Input.Random(80, 4, 2, 1, 1), Input.Random(81, 4));
        Check(t => Ops.Conv2d(t[0], t[1], null, 2, 1, 0, 2), Input.Random(82, 1, 2, 6, 5), Input.Random(83, 3, 2, 2, 3));
    }

    [Fact]
    public void Pooling()
    {
        var x = Input.Distinct(84, 2, 3, 6, 6); // unique maxima, spacing 2/216
        Check(t => Ops.MaxPool2d(t[0], 2), [x], h: 1e-3);
        Check(t => Ops.MaxPool2d(t[0], 3, 2, 1), [x], h: 1e-3);
        Check(t => Ops.AvgPool2d(t[0], 2), x);
        Check(t => Ops.AvgPool2d(t[0], 3, 1), x);
    }

    // ---------------------------------------------------------------- composite

    [Fact]
    public void CausalSelfAttentionBlock()
    {
        // One attention head block as the text tower uses it: LN → QKV → masked softmax(QKᵀ/√d)·V → out proj → residual.
        int b = 2, t = 4, d = 6;
        var mask = new float[t * t];
        for (int i = 0; i < t; i++) for (int j = 0; j < t; j++) mask[i * t + j] = j > i ? 1 : 0;
        var maskIn = new Input(mask, [t, t]).Fixed();
        // A deep composite in float32: its finite differences carry ~2e-4 of rounding noise (e.g. the key bias, whose true
        // gradient is exactly 0 because softmax ignores a constant shift), so this check uses atol 1e-3.
        Check(p =>
        {
            var x = p[0];
            var h = Ops.LayerNorm(x, p[1], p[2]);
            var qkv = Ops.Linear(h, p[3], p[4]);
            var q = Ops.Slice(qkv, 2, 0, d);
            var k = Ops.Slice(qkv, 2, d, 2 * d);
            var v = Ops.Slice(qkv, 2, 2 * d, 3 * d);
            var s = Ops.MulScalar(Ops.MatMul(q, Ops.SwapAxes(k, -1, -2)), 1f / MathF.Sqrt(d));
            s = Ops.MaskedFill(s, p[6], float.NegativeInfinity);
            var a = Ops.MatMul(Ops.Softmax(s), v);
            var o = Ops.Linear(a, p[5]);
            return Ops.Add(x, Ops.Gelu(o));
        },
        [Input.Random(85, b, t, d), Input.Between(86, 0.5, 1.5, d), Input.Random(87, d), Input.Random(88, 3 * d, d), Input.Random(89, 3 * d),
        Input.Random(90, d, d), maskIn], atol: 1e-3);
    }
}
