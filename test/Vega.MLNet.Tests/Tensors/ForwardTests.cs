using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>Forward values of the ops against naive float64 reference implementations written here from the definitions.</summary>
public sealed class ForwardTests
{
    private static float[] Rand(ulong seed, int n, double lo = -1, double hi = 1)
    {
        var v = new float[n];
        new Rng(seed).FillUniform(v, lo, hi);
        return v;
    }

    private static void Close(double expected, double actual, double tol, string what)
    {
        Assert.True(Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected:G9}, got {actual:G9}");
    }

    private static int Offset(int[] index, int[] shape)
    {
        // Row-major offset with broadcasting: index has the output rank, shape is right-aligned.
        int o = 0, shift = index.Length - shape.Length;
        for (int i = 0; i < shape.Length; i++) o = o * shape[i] + (shape[i] == 1 ? 0 : index[i + shift]);
        return o;
    }

    private static IEnumerable<int[]> Indices(int[] shape)
    {
        long total = Shapes.Product(shape);
        var idx = new int[shape.Length];
        for (long k = 0; k < total; k++)
        {
            yield return (int[])idx.Clone();
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }

    [Theory]
    [InlineData(new[] { 2, 3, 4 }, new[] { 4 })]
    [InlineData(new[] { 3, 1 }, new[] { 1, 5 })]
    [InlineData(new[] { 2, 1, 3, 1 }, new[] { 4, 1, 5 })]
    [InlineData(new int[0], new[] { 2, 2 })]
    public void BroadcastArithmeticMatchesIndexMath(int[] sa, int[] sb)
    {
        var a = Rand(1, (int)Shapes.Product(sa));
        var b = Rand(2, (int)Shapes.Product(sb), 0.5, 2);
        var ta = Tensor.FromArray(a, sa);
        var tb = Tensor.FromArray(b, sb);
        var shape = Shapes.Broadcast(sa, sb, "test");
        var results = new (Func<Tensor, Tensor, Tensor> Op, Func<double, double, double> Ref)[]
        {
            (Ops.Add, (x, y) => x + y), (Ops.Sub, (x, y) => x - y), (Ops.Mul, (x, y) => x * y), (Ops.Div, (x, y) => x / y),
            (Ops.Pow, (x, y) => Math.Pow(Math.Abs(x), y)),
        };
        foreach (var (op, reference) in results)
        {
            var r = reference(3, 2) == 9 ? op(Ops.Abs(ta), tb) : op(ta, tb);
            Assert.Equal(shape, r.Shape);
            var values = r.ToArray();
            int k = 0;
            foreach (var idx in Indices(shape))
            {
                double x = a[Offset(idx, sa)], y = b[Offset(idx, sb)];
                Close(reference(x, y), values[k++], 1e-6, $"{Shapes.ToString(sa)} op {Shapes.ToString(sb)} at [{string.Join(",", idx)}]");
            }
        }
    }

    [Fact]
    public void BroadcastErrorNamesTheShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Zeros(2, 3), Tensor.Zeros(4)));
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[4]", e.Message);
    }

    [Fact]
    public void MatMulBatchedBroadcastMatchesLoops()
    {
        int[] sa = [2, 1, 3, 5], sb = [4, 5, 6];
        var a = Rand(3, 30);
        var b = Rand(4, 120);
        var r = Ops.MatMul(Tensor.FromArray(a, sa), Tensor.FromArray(b, sb));
        Assert.Equal(new[] { 2, 4, 3, 6 }, r.Shape);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                for (int m = 0; m < 3; m++)
                    for (int n = 0; n < 6; n++)
                    {
                        double s = 0;
                        for (int k = 0; k < 5; k++) s += (double)a[(i * 3 + m) * 5 + k] * b[(j * 5 + k) * 6 + n];
                        Close(s, r[i, j, m, n], 1e-6, "matmul");
                    }
    }

    [Fact]
    public void MatMulWithTransposedViewsEqualsMaterialisedTranspose()
    {
        var q = Tensor.FromArray(Rand(5, 2 * 3 * 7 * 8), 2, 3, 7, 8);
        var k = Tensor.FromArray(Rand(6, 2 * 3 * 9 * 8), 2, 3, 9, 8);
        var kt = Ops.SwapAxes(k, -1, -2);
        Assert.False(kt.IsContiguous);
        var viaView = Ops.MatMul(q, kt).ToArray();
        var viaCopy = Ops.MatMul(q, Ops.Contiguous(kt)).ToArray();
        Assert.Equal(viaCopy.Length, viaView.Length);
        Assert.True(Fixtures.MaxAbsDiff(viaCopy, viaView) < 1e-6);
    }

    [Fact]
    public void Conv2dMatchesDirectLoops()
    {
        int n = 2, c = 3, h = 7, w = 6, o = 4, kh = 3, kw = 2, sh = 2, sw = 1, ph = 1, pw = 1;
        var x = Rand(7, n * c * h * w);
        var wt = Rand(8, o * c * kh * kw);
        var bias = Rand(9, o);
        var y = Ops.Conv2d(Tensor.FromArray(x, n, c, h, w), Tensor.FromArray(wt, o, c, kh, kw), Tensor.FromArray(bias, o), sh, sw, ph, pw);
        int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1;
        Assert.Equal(new[] { n, o, ho, wo }, y.Shape);
        for (int b = 0; b < n; b++)
            for (int oc = 0; oc < o; oc++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++)
                    {
                        double s = bias[oc];
                        for (int ci = 0; ci < c; ci++)
                            for (int u = 0; u < kh; u++)
                                for (int v = 0; v < kw; v++)
                                {
                                    int ii = i * sh - ph + u, jj = j * sw - pw + v;
                                    if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                                    s += (double)x[((b * c + ci) * h + ii) * w + jj] * wt[((oc * c + ci) * kh + u) * kw + v];
                                }
                        Close(s, y[b, oc, i, j], 1e-6, "conv2d");
                    }
    }

    [Fact]
    public void PoolingMatchesDirectLoops()
    {
        var x = Rand(10, 1 * 2 * 5 * 5);
        var t = Tensor.FromArray(x, 1, 2, 5, 5);
        var mp = Ops.MaxPool2d(t, 3, 2, 1);
        Assert.Equal(new[] { 1, 2, 3, 3 }, mp.Shape);
        var ap = Ops.AvgPool2d(t, 2, 2);
        Assert.Equal(new[] { 1, 2, 2, 2 }, ap.Shape);
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                {
                    double m = double.NegativeInfinity;
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++)
                        {
                            int ii = i * 2 - 1 + u, jj = j * 2 - 1 + v;
                            if (ii >= 0 && ii < 5 && jj >= 0 && jj < 5) m = Math.Max(m, x[(c * 5 + ii) * 5 + jj]);
                        }
                    Assert.Equal((float)m, mp[0, c, i, j]);
                    if (i < 2 && j < 2)
                    {
                        double s = 0;
                        for (int u = 0; u < 2; u++) for (int v = 0; v < 2; v++) s += x[(c * 5 + i * 2 + u) * 5 + j * 2 + v];
                        Close(s / 4, ap[0, c, i, j], 1e-6, "avgpool");
                    }
                }
    }

    [Fact]
    public void SoftmaxLayerNormCrossEntropyMatchDefinitions()
    {
        int rows = 3, n = 7;
        var x = Rand(11, rows * n, -4, 4);
        x[3] = 80f; // large logit: max subtraction must keep it finite
        var gamma = Rand(12, n, 0.5, 1.5);
        var beta = Rand(13, n);
        var t = Tensor.FromArray(x, rows, n);
        var sm = Ops.Softmax(t);
        var lsm = Ops.LogSoftmax(t);
        var ln = Ops.LayerNorm(t, Tensor.FromArray(gamma, n), Tensor.FromArray(beta, n), 1e-5f);
        int[] targets = [2, 0, 6];
        var ce = Ops.CrossEntropy(t, targets).Item();
        double ceRef = 0;
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < n; j++) max = Math.Max(max, x[r * n + j]);
            double z = 0;
            for (int j = 0; j < n; j++) z += Math.Exp(x[r * n + j] - max);
            double mean = 0, var = 0;
            for (int j = 0; j < n; j++) mean += x[r * n + j];
            mean /= n;
            for (int j = 0; j < n; j++) var += Math.Pow(x[r * n + j] - mean, 2);
            var /= n;
            for (int j = 0; j < n; j++)
            {
                Close(Math.Exp(x[r * n + j] - max) / z, sm[r, j], 1e-6, "softmax");
                Close(x[r * n + j] - max - Math.Log(z), lsm[r, j], 1e-6, "log_softmax");
                Close((x[r * n + j] - mean) / Math.Sqrt(var + 1e-5) * gamma[j] + beta[j], ln[r, j], 1e-5, "layer_norm");
            }
            ceRef += max + Math.Log(z) - x[r * n + targets[r]];
        }
        Close(ceRef / rows, ce, 1e-6, "cross_entropy");
        // Soft targets equal to one-hot give the hard loss.
        var onehot = new float[rows * n];
        for (int r = 0; r < rows; r++) onehot[r * n + targets[r]] = 1;
        Close(ce, Ops.CrossEntropy(t, Tensor.FromArray(onehot, rows, n)).Item(), 1e-6, "soft = hard on one-hot targets");
    }

    [Fact]
    public void ReductionsMatchLoops()
    {
        var x = Rand(14, 2 * 3 * 4);
        var t = Tensor.FromArray(x, 2, 3, 4);
        var s = Ops.Sum(t, [0, 2]);
        var m = Ops.Max(t, [1], keepDims: true);
        var mean = Ops.Mean(t);
        Assert.Equal(new[] { 3 }, s.Shape);
        Assert.Equal(new[] { 2, 1, 4 }, m.Shape);
        Assert.Empty(mean.Shape);
        for (int j = 0; j < 3; j++)
        {
            double acc = 0;
            for (int i = 0; i < 2; i++) for (int k = 0; k < 4; k++) acc += x[(i * 3 + j) * 4 + k];
            Close(acc, s[j], 1e-6, "sum");
        }
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 4; k++)
            {
                float mx = float.NegativeInfinity;
                for (int j = 0; j < 3; j++) mx = Math.Max(mx, x[(i * 3 + j) * 4 + k]);
                Assert.Equal(mx, m[i, 0, k]);
            }
        Close(x.Select(v => (double)v).Average(), mean.Item(), 1e-6, "mean");
        var arg = Ops.ArgMax(t, 1);
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 4; k++)
                Assert.Equal(m[i, 0, k], x[(i * 3 + arg[i * 4 + k]) * 4 + k]);
    }

    [Fact]
    public void SliceConcatGatherWhereFollowOnnxSemantics()
    {
        var x = Tensor.FromArray(Enumerable.Range(0, 20).Select(i => (float)i).ToArray(), 4, 5);
        // x[1:, ::-2] (ONNX starts [1, -1], ends [big, INT_MIN], steps [1, -2])
        var s = Ops.Slice(x, [1, -1], [100, int.MinValue], [0, 1], [1, -2]);
        Assert.Equal(new[] { 3, 3 }, s.Shape);
        Assert.Equal(new float[] { 9, 7, 5, 14, 12, 10, 19, 17, 15 }, s.ToArray());
        var c = Ops.Concat([Ops.Slice(x, 0, 0, 1), Ops.Slice(x, 0, 3, 4)], 0);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 15, 16, 17, 18, 19 }, c.ToArray());
        var g = Ops.Gather(x, 1, [4, -5, 1, 1], [2, 2]);
        Assert.Equal(new[] { 4, 2, 2 }, g.Shape);
        Assert.Equal(new float[] { 4, 0, 1, 1 }, g.ToArray()[..4]);
        var w = Ops.Where(Tensor.FromArray([1, 0, 1, 0, 1], 5), x, Tensor.Scalar(-1f));
        Assert.Equal(new float[] { 0, -1, 2, -1, 4 }, w.ToArray()[..5]);
        var e = Ops.Expand(Tensor.FromArray([1, 2, 3], 3, 1), 2, 3, 6);
        Assert.Equal(new[] { 2, 3, 6 }, e.Shape);
        Assert.Equal(3f, e[1, 2, 5]);
        var tr = Ops.Transpose(Tensor.FromArray(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), 2, 3, 4), 2, 0, 1);
        Assert.Equal(new[] { 4, 2, 3 }, tr.Shape);
        Assert.Equal(13f, tr[1, 1, 0]); // original [1, 0, 1] = 12 + 1
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Gather(x, 0, [4], [1]));
        Assert.Throws<ArgumentException>(() => Ops.Reshape(x, 3, -1));
    }

    [Fact]
    public void ActivationsMatchFormulas()
    {
        var x = Rand(15, 64, -6, 6);
        var t = Tensor.FromArray(x, 64);
        var gelu = Ops.Gelu(t).ToArray();
        var quick = Ops.QuickGelu(t).ToArray();
        var sig = Ops.Sigmoid(t).ToArray();
        var tanh = Ops.Tanh(t).ToArray();
        var relu = Ops.Relu(t).ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            Close(0.5 * v * (1 + SpecialFunctions.Erf(v / Math.Sqrt(2))), gelu[i], 2e-7, "gelu");
            Close(v / (1 + Math.Exp(-1.702 * v)), quick[i], 2e-6, "quick_gelu");
            Close(1 / (1 + Math.Exp(-v)), sig[i], 2e-7, "sigmoid");
            Close(Math.Tanh(v), tanh[i], 2e-7, "tanh");
            Assert.Equal(Math.Max(x[i], 0f), relu[i]);
        }
    }

    [Fact]
    public void L2NormalizeCosineAndDropout()
    {
        var a = Rand(16, 4 * 8);
        var t = Tensor.FromArray(a, 4, 8);
        var n = Ops.L2Normalize(t);
        for (int r = 0; r < 4; r++)
        {
            double ss = 0;
            for (int j = 0; j < 8; j++) ss += (double)n[r, j] * n[r, j];
            Close(1, ss, 1e-6, "unit norm");
        }
        var zero = Ops.L2Normalize(Tensor.Zeros(2, 3));
        Assert.All(zero.ToArray(), v => Assert.Equal(0f, v));
        var cos = Ops.CosineSimilarity(t, Ops.MulScalar(t, 3f));
        Assert.All(cos.ToArray(), v => Close(1, v, 1e-6, "cos(x, 3x)"));
        var cosNeg = Ops.CosineSimilarity(t, Ops.Neg(t));
        Assert.All(cosNeg.ToArray(), v => Close(-1, v, 1e-6, "cos(x, −x)"));

        var ones = Tensor.Ones(10000);
        var d = Ops.Dropout(ones, 0.25f, new Rng(5)).ToArray();
        int zeros = d.Count(v => v == 0);
        Assert.All(d, v => Assert.True(v == 0 || Math.Abs(v - 1f / 0.75f) < 1e-6));
        Assert.InRange(zeros, 2500 - 5 * 43, 2500 + 5 * 43); // binomial σ ≈ 43
        Assert.Equal(d, Ops.Dropout(ones, 0.25f, new Rng(5)).ToArray()); // same seed, same mask
        Assert.Same(ones, Ops.Dropout(ones, 0.25f, new Rng(5), training: false));
    }

    [Fact]
    public void ReshapeOfStridedViewsIsAViewWhenTheStridesAllowIt()
    {
        var x = Tensor.FromArray(Rand(17, 2 * 3 * 4 * 5), 2, 3, 4, 5);
        var rng = new Rng(18);
        for (int trial = 0; trial < 200; trial++)
        {
            var perm = rng.Permutation(4);
            var t = Ops.Transpose(x, perm);
            // Random target shape with the same element count: split/merge the permuted dims.
            var dims = t.Shape.ToList();
            int op = rng.NextInt(3);
            if (op == 0 && dims.Count > 1) { int i = rng.NextInt(dims.Count - 1); dims[i] *= dims[i + 1]; dims.RemoveAt(i + 1); }
            else if (op == 1) { int i = rng.NextInt(dims.Count); dims.Insert(i, 1); }
            else { int i = rng.NextInt(dims.Count); if (dims[i] % 2 == 0) { dims[i] /= 2; dims.Insert(i, 2); } }
            var target = dims.ToArray();
            var viaReshape = Ops.Reshape(t, target);
            var viaCopy = Ops.Reshape(Ops.Contiguous(t), target);
            Assert.Equal(viaCopy.ToArray(), viaReshape.ToArray());
            bool isView = ReferenceEquals(viaReshape.Data, x.Data);
            Assert.Equal(Ops.ViewStrides(t.Shape, t.Strides, target) is not null || t.IsContiguous, isView);
        }
        // The cases the attention code relies on are views: squeeze of a slice of a permuted tensor, split of the last dim.
        var heads = Ops.Transpose(Ops.Reshape(x, 2, 3, 2, 10), 2, 0, 1, 3);
        Assert.Same(x.Data, Ops.Squeeze(Ops.Slice(heads, 0, 1, 2), 0).Data);
        Assert.Same(x.Data, Ops.Reshape(Ops.SwapAxes(x, 0, 1), 3, 2, 2, 2, 5).Data);
        Assert.NotSame(x.Data, Ops.Reshape(Ops.SwapAxes(x, 2, 3), 2, 3, 20).Data);
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        var x = Tensor.Zeros(2, 3);
        Assert.Contains("inner dimensions differ", Assert.Throws<ArgumentException>(() => Ops.MatMul(x, Tensor.Zeros(2, 3))).Message);
        Assert.Contains("input channels", Assert.Throws<ArgumentException>(() => Ops.Conv2d(Tensor.Zeros(1, 3, 5, 5), Tensor.Zeros(4, 2, 3, 3))).Message);
        Assert.Contains("does not fit", Assert.Throws<ArgumentException>(() => Ops.Conv2d(Tensor.Zeros(1, 1, 2, 2), Tensor.Zeros(1, 1, 3, 3))).Message);
        Assert.Contains("normalised shape", Assert.Throws<ArgumentException>(() => Ops.LayerNorm(x, Tensor.Ones(2), null)).Message);
        Assert.Contains("not a class index", Assert.Throws<ArgumentOutOfRangeException>(() => Ops.CrossEntropy(x, [0, 3])).Message);
        Assert.Contains("3 targets for 2 rows", Assert.Throws<ArgumentException>(() => Ops.CrossEntropy(x, [0, 1, 2])).Message);
        Assert.Contains("Axis 2 is out of range", Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Softmax(x, 2)).Message);
        Assert.Contains("cannot be broadcast", Assert.Throws<ArgumentException>(() => Ops.Where(Tensor.Ones(4), x, x)).Message);
        Assert.Contains("not a permutation", Assert.Throws<ArgumentException>(() => Ops.Transpose(x, 0, 0)).Message);
        Assert.Contains("Cannot reshape", Assert.Throws<ArgumentException>(() => Ops.Reshape(x, 4, 2)).Message);
        Assert.Contains("step cannot be 0", Assert.Throws<ArgumentException>(() => Ops.Slice(x, 0, 0, 1, 0)).Message);
        Assert.Contains("Concat along axis 0", Assert.Throws<ArgumentException>(() => Ops.Concat([x, Tensor.Zeros(2, 4)], 0)).Message);
        Assert.Contains("needs 6 values", Assert.Throws<ArgumentException>(() => Tensor.FromArray(new float[5], 2, 3)).Message);
        Assert.Contains("negative dimension", Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, -1)).Message);
        Assert.Contains("[0, 1)", Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Dropout(x, 1f, new Rng(1))).Message);
    }
}
