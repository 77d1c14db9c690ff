namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>Sum over <paramref name="axes"/> (null or empty: all), accumulated in float64.</summary>
    public static Tensor Sum(Tensor x, int[]? axes = null, bool keepDims = false)
    {
        var ax = Shapes.NormalizeAxes(axes, x.Rank, nameof(axes));
        var y = Tensor.Empty(ReducedShape(x.Shape, ax, keepDims));
        Kernels.Sum(x, ax, y);
        if (Tape.Needs(x)) Tape.Record("Sum", y, [x], g => Tape.Accumulate(x, ExpandBack(g, x.Shape, ax)));
        return y;
    }

    /// <summary>Mean over <paramref name="axes"/> (null or empty: all).</summary>
    public static Tensor Mean(Tensor x, int[]? axes = null, bool keepDims = false)
    {
        var ax = Shapes.NormalizeAxes(axes, x.Rank, nameof(axes));
        long count = 1;
        foreach (int a in ax) count *= x.Shape[a];
        var y = Tensor.Empty(ReducedShape(x.Shape, ax, keepDims));
        Kernels.Sum(x, ax, y);
        float inv = count == 0 ? float.NaN : (float)(1.0 / count);
        System.Numerics.Tensors.TensorPrimitives.Multiply(y.Span, inv, y.Span);
        if (Tape.Needs(x))
            Tape.Record("Mean", y, [x], g =>
            {
                var e = ExpandBack(g, x.Shape, ax);
                Tape.Accumulate(x, MapUnaryRaw(e, (s, d) => System.Numerics.Tensors.TensorPrimitives.Multiply(s, inv, d)));
            });
        return y;
    }

    /// <summary>Maximum over <paramref name="axes"/>; the gradient is shared equally among tied maxima.</summary>
    public static Tensor Max(Tensor x, int[]? axes = null, bool keepDims = false)
    {
        var ax = Shapes.NormalizeAxes(axes, x.Rank, nameof(axes));
        foreach (int a in ax)
            if (x.Shape[a] == 0) throw new ArgumentException($"Max over axis {a} of size 0 (shape {x.ShapeString}) has no value.", nameof(axes));
        var y = Tensor.Empty(ReducedShape(x.Shape, ax, keepDims));
        Kernels.Max(x, ax, y);
        if (Tape.Needs(x))
            Tape.Record("Max", y, [x], g =>
            {
                var keep = ReducedShape(x.Shape, ax, keepDims: true);
                var yk = Reshape(y.Detach(), keep);
                var mask = Kernels.Binary(BinaryOp.Equal, x, yk);
                var count = Tensor.Empty(keep);
                Kernels.Sum(mask, ax, count);
                var share = Kernels.Binary(BinaryOp.Div, ExpandBack(g, keep, ax), count);
                Kernels.Binary(BinaryOp.Mul, mask, share, mask);
                Tape.Accumulate(x, mask);
            });
        return y;
    }

    /// <summary>Index of the first maximum along <paramref name="axis"/> (shape of x without that axis, row-major).</summary>
    public static int[] ArgMax(Tensor x, int axis = -1)
    {
        int ax = Shapes.NormalizeAxis(axis, x.Rank, nameof(axis));
        int n = x.Shape[ax];
        if (n == 0) throw new ArgumentException($"ArgMax over an axis of size 0 (shape {x.ShapeString}).", nameof(axis));
        var xc = Kernels.Contiguous(x);
        int inner = 1, outer = 1;
        for (int i = ax + 1; i < x.Rank; i++) inner *= x.Shape[i];
        for (int i = 0; i < ax; i++) outer *= x.Shape[i];
        var result = new int[outer * inner];
        var data = xc.Data;
        int off = xc.Offset;
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++)
            {
                int best = 0;
                float bv = data[off + (o * n) * inner + j];
                for (int k = 1; k < n; k++)
                {
                    float v = data[off + (o * n + k) * inner + j];
                    if (v > bv || (float.IsNaN(v) && !float.IsNaN(bv))) { bv = v; best = k; }
                }
                result[o * inner + j] = best;
            }
        return result;
    }

    internal static int[] ReducedShape(int[] shape, int[] axes, bool keepDims)
    {
        var r = new List<int>(shape.Length);
        int k = 0;
        for (int i = 0; i < shape.Length; i++)
        {
            bool reduced = k < axes.Length && axes[k] == i;
            if (reduced) k++;
            if (!reduced) r.Add(shape[i]);
            else if (keepDims) r.Add(1);
        }
        return r.ToArray();
    }

    /// <summary>Views a reduced gradient (with or without kept dims) as broadcast to <paramref name="shape"/>.</summary>
    internal static Tensor ExpandBack(Tensor g, int[] shape, int[] axes)
    {
        var keep = ReducedShape(shape, axes, keepDims: true);
        var gk = Kernels.Contiguous(g);
        var view = gk.View(gk.Offset, keep, Shapes.ContiguousStrides(keep));
        return view.View(view.Offset, shape, Shapes.BroadcastStrides(view, shape));
    }
}
