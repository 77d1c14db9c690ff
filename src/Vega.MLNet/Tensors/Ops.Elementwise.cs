using System.Numerics.Tensors;
using VF = System.Numerics.Vector<float>;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Differentiable tensor operations. Every method computes its result into a new tensor (or returns a view) and, when
/// a tape is recording and an input requires a gradient, records a backward function. Binary arithmetic broadcasts
/// like numpy/ONNX; the gradient of a broadcast input is summed back to its shape.
/// </summary>
internal static partial class Ops
{
    // ---------------------------------------------------------------- broadcasting arithmetic

    public static Tensor Add(Tensor a, Tensor b) => BinaryRecorded(BinaryOp.Add, a, b);
    public static Tensor Sub(Tensor a, Tensor b) => BinaryRecorded(BinaryOp.Sub, a, b);
    public static Tensor Mul(Tensor a, Tensor b) => BinaryRecorded(BinaryOp.Mul, a, b);
    public static Tensor Div(Tensor a, Tensor b) => BinaryRecorded(BinaryOp.Div, a, b);

    /// <summary>a^b elementwise with broadcasting (dL/db uses ln a; it is 0 where a = 0).</summary>
    public static Tensor Pow(Tensor a, Tensor b) => BinaryRecorded(BinaryOp.Pow, a, b);

    /// <summary>1 where a == b else 0 (not differentiable; the result never requires a gradient).</summary>
    public static Tensor Equal(Tensor a, Tensor b) => Kernels.Binary(BinaryOp.Equal, a, b);

    /// <summary>1 where a &gt; b else 0 (not differentiable).</summary>
    public static Tensor Greater(Tensor a, Tensor b) => Kernels.Binary(BinaryOp.Greater, a, b);

    private static Tensor BinaryRecorded(BinaryOp op, Tensor a, Tensor b)
    {
        var y = Kernels.Binary(op, a, b);
        if (!Tape.Needs(a, b)) return y;
        Tape.Record(op.ToString(), y, [a, b], g =>
        {
            switch (op)
            {
                case BinaryOp.Add:
                    if (a.RequiresGrad) Tape.Accumulate(a, SumToShape(g, a.Shape));
                    if (b.RequiresGrad) Tape.Accumulate(b, SumToShape(g, b.Shape));
                    break;
                case BinaryOp.Sub:
                    if (a.RequiresGrad) Tape.Accumulate(a, SumToShape(g, a.Shape));
                    if (b.RequiresGrad) Tape.Accumulate(b, NegRaw(SumToShape(g, b.Shape)));
                    break;
                case BinaryOp.Mul:
                    if (a.RequiresGrad) Tape.Accumulate(a, SumToShape(Kernels.Binary(BinaryOp.Mul, g, b), a.Shape));
                    if (b.RequiresGrad) Tape.Accumulate(b, SumToShape(Kernels.Binary(BinaryOp.Mul, g, a), b.Shape));
                    break;
                case BinaryOp.Div:
                    if (a.RequiresGrad) Tape.Accumulate(a, SumToShape(Kernels.Binary(BinaryOp.Div, g, b), a.Shape));
                    if (b.RequiresGrad)
                    {
                        // d(a/b)/db = −y/b
                        var t = Kernels.Binary(BinaryOp.Mul, g, y);
                        Kernels.Binary(BinaryOp.Div, t, b, t);
                        Tape.Accumulate(b, NegRaw(SumToShape(t, b.Shape)));
                    }
                    break;
                case BinaryOp.Pow:
                    PowBackward(a, b, y, g);
                    break;
                default:
                    throw new NotSupportedException($"No gradient for {op}.");
            }
        });
        return y;
    }

    private static void PowBackward(Tensor a, Tensor b, Tensor y, Tensor g)
    {
        var gc = Kernels.Contiguous(g);
        if (a.RequiresGrad)
        {
            // b · a^(b−1) · g  (a^(b−1) already has the broadcast shape of y)
            var t = Kernels.Binary(BinaryOp.Pow, a, Kernels.Binary(BinaryOp.Sub, b, Tensor.Scalar(1f)));
            Kernels.Binary(BinaryOp.Mul, t, b, t);
            Kernels.Binary(BinaryOp.Mul, t, gc, t);
            Tape.Accumulate(a, SumToShape(t, a.Shape));
        }
        if (b.RequiresGrad)
        {
            // y · ln a · g, with 0 where a == 0
            var la = Tensor.Empty(a.Shape);
            var ac = Kernels.Contiguous(a);
            var src = ac.Span;
            var dst = la.Span;
            for (int i = 0; i < dst.Length; i++) dst[i] = src[i] == 0 ? 0f : MathF.Log(src[i]);
            var full = Kernels.Binary(BinaryOp.Mul, gc, y);
            Kernels.Binary(BinaryOp.Mul, full, la, full);
            Tape.Accumulate(b, SumToShape(full, b.Shape));
        }
    }

    /// <summary>Sums <paramref name="g"/> over the dimensions that broadcasting added or stretched, giving <paramref name="shape"/>.</summary>
    internal static Tensor SumToShape(Tensor g, int[] shape)
    {
        if (Shapes.SameShape(g.Shape, shape)) return g;
        int lead = g.Rank - shape.Length;
        if (lead < 0) throw new InvalidOperationException($"Internal error: cannot reduce {g.ShapeString} to {Shapes.ToString(shape)}.");
        var axes = new List<int>();
        for (int i = 0; i < g.Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && g.Shape[i] != 1)) axes.Add(i);
        var result = Tensor.Empty(shape);
        Kernels.Sum(g, axes.ToArray(), result);
        return result;
    }

    private static Tensor NegRaw(Tensor t)
    {
        var r = Tensor.Empty(t.Shape);
        if (t.IsContiguous) TensorPrimitives.Negate(t.Span, r.Span);
        else
        {
            Kernels.StridedCopy(t, r.Span);
            TensorPrimitives.Negate(r.Span, r.Span);
        }
        return r;
    }

    // ---------------------------------------------------------------- scalar arithmetic

    /// <summary>x + c.</summary>
    public static Tensor AddScalar(Tensor x, float c)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Add(s, c, d));
        if (Tape.Needs(x)) Tape.Record("AddScalar", y, [x], g => Tape.Accumulate(x, g));
        return y;
    }

    /// <summary>x · c.</summary>
    public static Tensor MulScalar(Tensor x, float c)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Multiply(s, c, d));
        if (Tape.Needs(x)) Tape.Record("MulScalar", y, [x], g => Tape.Accumulate(x, MapUnaryRaw(g, (s, d) => TensorPrimitives.Multiply(s, c, d))));
        return y;
    }

    /// <summary>x / c (true division, as PyTorch and ONNX do it).</summary>
    public static Tensor DivScalar(Tensor x, float c)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Divide(s, c, d));
        if (Tape.Needs(x)) Tape.Record("DivScalar", y, [x], g => Tape.Accumulate(x, MapUnaryRaw(g, (s, d) => TensorPrimitives.Divide(s, c, d))));
        return y;
    }

    /// <summary>x^p for a constant exponent.</summary>
    public static Tensor PowScalar(Tensor x, float p)
    {
        Tensor y = p switch
        {
            2f => MapUnary(x, (s, d) => TensorPrimitives.Multiply(s, s, d)),
            1f => MapUnary(x, (s, d) => s.CopyTo(d)),
            0.5f => MapUnary(x, (s, d) => TensorPrimitives.Sqrt(s, d)),
            _ => MapUnary(x, (s, d) => TensorPrimitives.Pow(s, p, d)),
        };
        if (Tape.Needs(x))
            Tape.Record("PowScalar", y, [x], g =>
            {
                // p · x^(p−1) · g
                var xc = Kernels.Contiguous(x);
                var t = Tensor.Empty(x.Shape);
                if (p == 2f) TensorPrimitives.Multiply(xc.Span, 2f, t.Span);
                else if (p == 1f) t.Span.Fill(1f);
                else
                {
                    TensorPrimitives.Pow(xc.Span, p - 1f, t.Span);
                    TensorPrimitives.Multiply(t.Span, p, t.Span);
                }
                Kernels.Binary(BinaryOp.Mul, t, g, t);
                Tape.Accumulate(x, t);
            });
        return y;
    }

    // ---------------------------------------------------------------- unary

    public static Tensor Neg(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Negate(s, d));
        if (Tape.Needs(x)) Tape.Record("Neg", y, [x], g => Tape.Accumulate(x, NegRaw(g)));
        return y;
    }

    public static Tensor Exp(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Exp(s, d));
        if (Tape.Needs(x)) Tape.Record("Exp", y, [x], g => Tape.Accumulate(x, Kernels.Binary(BinaryOp.Mul, g, y)));
        return y;
    }

    public static Tensor Log(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Log(s, d));
        if (Tape.Needs(x)) Tape.Record("Log", y, [x], g => Tape.Accumulate(x, Kernels.Binary(BinaryOp.Div, g, x)));
        return y;
    }

    public static Tensor Sqrt(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Sqrt(s, d));
        if (Tape.Needs(x))
            Tape.Record("Sqrt", y, [x], g =>
            {
                var t = Kernels.Binary(BinaryOp.Div, g, y);
                TensorPrimitives.Multiply(t.Span, 0.5f, t.Span);
                Tape.Accumulate(x, t);
            });
        return y;
    }

    public static Tensor Abs(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Abs(s, d));
        if (Tape.Needs(x))
            Tape.Record("Abs", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) =>
            {
                for (int i = 0; i < d.Length; i++) d[i] = xs[i] > 0 ? gs[i] : xs[i] < 0 ? -gs[i] : 0f;
            })));
        return y;
    }

    /// <summary>min(max(x, min), max); the gradient passes where min ≤ x ≤ max (as in PyTorch).</summary>
    public static Tensor Clamp(Tensor x, float min = float.NegativeInfinity, float max = float.PositiveInfinity)
    {
        if (min > max) throw new ArgumentException($"Clamp: min {min} is greater than max {max}.", nameof(min));
        var y = MapUnary(x, (s, d) =>
        {
            TensorPrimitives.Max(s, min, d);
            TensorPrimitives.Min(d, max, d);
        });
        if (Tape.Needs(x))
            Tape.Record("Clamp", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) =>
            {
                for (int i = 0; i < d.Length; i++) d[i] = xs[i] >= min && xs[i] <= max ? gs[i] : 0f;
            })));
        return y;
    }

    public static Tensor Relu(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Max(s, 0f, d));
        if (Tape.Needs(x))
            Tape.Record("Relu", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(y, g, (ys, gs, d) =>
            {
                int i = 0;
                for (; i <= d.Length - VF.Count; i += VF.Count)
                {
                    var v = new VF(ys[i..]);
                    System.Numerics.Vector.ConditionalSelect(System.Numerics.Vector.GreaterThan(v, VF.Zero), new VF(gs[i..]), VF.Zero).CopyTo(d[i..]);
                }
                for (; i < d.Length; i++) d[i] = ys[i] > 0 ? gs[i] : 0f;
            })));
        return y;
    }

    public static Tensor Sigmoid(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Sigmoid(s, d));
        if (Tape.Needs(x))
            Tape.Record("Sigmoid", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(y, g, (ys, gs, d) =>
            {
                int i = 0;
                for (; i <= d.Length - VF.Count; i += VF.Count)
                {
                    var v = new VF(ys[i..]);
                    (new VF(gs[i..]) * v * (VF.One - v)).CopyTo(d[i..]);
                }
                for (; i < d.Length; i++) d[i] = gs[i] * ys[i] * (1f - ys[i]);
            })));
        return y;
    }

    public static Tensor Tanh(Tensor x)
    {
        var y = MapUnary(x, (s, d) => TensorPrimitives.Tanh(s, d));
        if (Tape.Needs(x))
            Tape.Record("Tanh", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(y, g, (ys, gs, d) =>
            {
                int i = 0;
                for (; i <= d.Length - VF.Count; i += VF.Count)
                {
                    var v = new VF(ys[i..]);
                    (new VF(gs[i..]) * (VF.One - v * v)).CopyTo(d[i..]);
                }
                for (; i < d.Length; i++) d[i] = gs[i] * (1f - ys[i] * ys[i]);
            })));
        return y;
    }

    /// <summary>The error function (float64-accurate, see <see cref="SpecialFunctions"/>).</summary>
    public static Tensor Erf(Tensor x)
    {
        var y = MapUnary(x, (s, d) => SpecialFunctions.Apply(SpecialFunctions.Fn.Erf, s, default, d));
        if (Tape.Needs(x))
            Tape.Record("Erf", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) => SpecialFunctions.Apply(SpecialFunctions.Fn.ErfBackward, xs, gs, d))));
        return y;
    }

    /// <summary>Exact GELU: x·Φ(x) = ½x(1 + erf(x/√2)).</summary>
    public static Tensor Gelu(Tensor x)
    {
        var y = MapUnary(x, (s, d) => SpecialFunctions.Apply(SpecialFunctions.Fn.Gelu, s, default, d));
        if (Tape.Needs(x))
            Tape.Record("Gelu", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) => SpecialFunctions.Apply(SpecialFunctions.Fn.GeluBackward, xs, gs, d))));
        return y;
    }

    /// <summary>OpenAI CLIP's QuickGELU: x·σ(1.702x).</summary>
    public static Tensor QuickGelu(Tensor x)
    {
        var y = MapUnary(x, (s, d) =>
        {
            TensorPrimitives.Multiply(s, 1.702f, d);
            TensorPrimitives.Sigmoid(d, d);
            TensorPrimitives.Multiply(d, s, d);
        });
        if (Tape.Needs(x))
            Tape.Record("QuickGelu", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) =>
            {
                // d = g·(σ + 1.702x·σ(1 − σ)), σ = σ(1.702x)
                TensorPrimitives.Multiply(xs, 1.702f, d);
                TensorPrimitives.Sigmoid(d, d);
                int i = 0;
                var k = new VF(1.702f);
                for (; i <= d.Length - VF.Count; i += VF.Count)
                {
                    var sv = new VF(d[i..]);
                    (new VF(gs[i..]) * (sv + k * new VF(xs[i..]) * sv * (VF.One - sv))).CopyTo(d[i..]);
                }
                for (; i < d.Length; i++)
                {
                    float s = d[i];
                    d[i] = gs[i] * (s + 1.702f * xs[i] * s * (1f - s));
                }
            })));
        return y;
    }

    // ---------------------------------------------------------------- helpers

    internal delegate void SpanMap(ReadOnlySpan<float> source, Span<float> destination);
    internal delegate void SpanMap2(ReadOnlySpan<float> x, ReadOnlySpan<float> g, Span<float> destination);

    /// <summary>y = f(x) over contiguous chunks in parallel (x made contiguous first); not recorded.</summary>
    internal static Tensor MapUnaryRaw(Tensor x, SpanMap f)
    {
        var xc = Kernels.Contiguous(x);
        var y = Tensor.Empty(x.Shape);
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset, n = x.Length;
        Parallelism.For(n, 8, (s, e) => f(xa.AsSpan(xo + s, e - s), ya.AsSpan(s, e - s)));
        return y;
    }

    private static Tensor MapUnary(Tensor x, SpanMap f) => MapUnaryRaw(x, f);

    /// <summary>d = f(x, g) elementwise (x and g of equal shape); not recorded.</summary>
    internal static Tensor MapBinaryRaw(Tensor x, Tensor g, SpanMap2 f)
    {
        var xc = Kernels.Contiguous(x);
        var gc = Kernels.Contiguous(g);
        var d = Tensor.Empty(x.Shape);
        float[] xa = xc.Data, ga = gc.Data, da = d.Data;
        int xo = xc.Offset, go = gc.Offset, n = x.Length;
        Parallelism.For(n, 8, (s, e) => f(xa.AsSpan(xo + s, e - s), ga.AsSpan(go + s, e - s), da.AsSpan(s, e - s)));
        return d;
    }
}
