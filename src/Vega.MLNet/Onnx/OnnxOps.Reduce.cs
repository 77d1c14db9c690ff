using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

internal static partial class OnnxOps
{
    private enum ReduceKind { Mean, Sum, Max, Min, L2, L1, SumSquare }

    private static void AddReductions(List<OnnxOpInfo> list)
    {
        const string axes = "axes attribute before opset {0}, optional int64 input from {0}; keepdims; noop_with_empty_axes (with the input form)";
        list.Add(new("ReduceMean", 1, n => Reduce(n, ReduceKind.Mean, 18), string.Format(axes, 18) + "; float32 (float64 accumulation)"));
        list.Add(new("ReduceSum", 1, n => Reduce(n, ReduceKind.Sum, 13), string.Format(axes, 13) + "; float32 and integers"));
        list.Add(new("ReduceMax", 1, n => Reduce(n, ReduceKind.Max, 18), string.Format(axes, 18) + "; gradient shared among tied maxima"));
        list.Add(new("ReduceMin", 1, n => Reduce(n, ReduceKind.Min, 18), string.Format(axes, 18)));
        list.Add(new("ReduceL2", 1, n => Reduce(n, ReduceKind.L2, 18), string.Format(axes, 18) + "; float32"));
        list.Add(new("ReduceL1", 1, n => Reduce(n, ReduceKind.L1, 18), string.Format(axes, 18) + "; float32"));
        list.Add(new("ReduceSumSquare", 1, n => Reduce(n, ReduceKind.SumSquare, 18), string.Format(axes, 18) + "; float32"));
        list.Add(new("ArgMax", 1, n => Arg(n, max: true), "axis, keepdims, select_last_index (opset 12); float32 or integer data → int64"));
        list.Add(new("ArgMin", 1, n => Arg(n, max: false), "as ArgMax"));
    }

    private static OnnxKernel Reduce(OnnxNode n, ReduceKind kind, int axesInputSince)
    {
        bool keepDims = n.Int("keepdims", 1) != 0;
        bool noopWithEmpty = n.Int("noop_with_empty_axes", 0) != 0;
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            var axesRaw = AxesFrom(n, i, 1, axesInputSince);
            if ((axesRaw is null || axesRaw.Length == 0) && noopWithEmpty && n.Opset >= axesInputSince)
            {
                o[0] = x;
                return;
            }
            int[] axes;
            if (axesRaw is null || axesRaw.Length == 0)
            {
                axes = new int[x.Rank];
                for (int k = 0; k < axes.Length; k++) axes[k] = k;
            }
            else
            {
                axes = new int[axesRaw.Length];
                for (int k = 0; k < axes.Length; k++) axes[k] = NormalizeAxis(n, axesRaw[k], x.Rank, "reduce axis");
                Array.Sort(axes);
                for (int k = 1; k < axes.Length; k++) if (axes[k] == axes[k - 1]) throw n.Error($"axis {axes[k]} is listed twice.");
            }
            if (x.Rank == 0)
            {
                o[0] = x;
                return;
            }
            if (x.IsFloat)
            {
                var t = x.Tensor!;
                Tensor y = kind switch
                {
                    ReduceKind.Mean => Ops.Mean(t, axes, keepDims),
                    ReduceKind.Sum => Ops.Sum(t, axes, keepDims),
                    ReduceKind.Max => Ops.Max(t, axes, keepDims),
                    ReduceKind.Min => Ops.Neg(Ops.Max(Ops.Neg(t), axes, keepDims)),
                    ReduceKind.L2 => Ops.Sqrt(Ops.Sum(Ops.Mul(t, t), axes, keepDims)),
                    ReduceKind.L1 => Ops.Sum(Ops.Abs(t), axes, keepDims),
                    _ => Ops.Sum(Ops.Mul(t, t), axes, keepDims),
                };
                o[0] = OnnxValue.FromTensor(y);
                return;
            }
            o[0] = IntReduce(n, x, axes, keepDims, kind);
        };
    }

    private static OnnxValue IntReduce(OnnxNode n, OnnxValue x, int[] axes, bool keepDims, ReduceKind kind)
    {
        if (kind is not (ReduceKind.Sum or ReduceKind.Max or ReduceKind.Min or ReduceKind.Mean or ReduceKind.SumSquare or ReduceKind.L1))
            throw n.Error($"reduces {x.Type} data; only float32 is supported for this reduction.");
        var keepShape = Ops.ReducedShape(x.Shape, axes, keepDims: true);
        var outShape = Ops.ReducedShape(x.Shape, axes, keepDims);
        long count = Shapes.Product(keepShape);
        var acc = new long[count];
        var seen = new bool[count];
        // For every input element, its reduced output position.
        var outIndex = BroadcastIndex(keepShape, x.Shape);
        var src = x.Ints!;
        for (int k = 0; k < src.Length; k++)
        {
            int j = outIndex[k];
            long v = kind switch { ReduceKind.SumSquare => src[k] * src[k], ReduceKind.L1 => Math.Abs(src[k]), _ => src[k] };
            if (!seen[j]) { acc[j] = v; seen[j] = true; continue; }
            acc[j] = kind switch
            {
                ReduceKind.Max => Math.Max(acc[j], v),
                ReduceKind.Min => Math.Min(acc[j], v),
                _ => acc[j] + v,
            };
        }
        if (kind == ReduceKind.Mean)
        {
            long per = src.Length / Math.Max(count, 1);
            for (int j = 0; j < count; j++) acc[j] = per == 0 ? 0 : acc[j] / per;
        }
        for (int j = 0; j < count; j++) acc[j] = OnnxValue.Wrap(acc[j], x.Type);
        return OnnxValue.FromInts(acc, outShape, x.Type);
    }

    private static OnnxKernel Arg(OnnxNode n, bool max)
    {
        long axis = n.Int("axis", 0);
        bool keepDims = n.Int("keepdims", 1) != 0;
        bool last = n.Opset >= 12 && n.Int("select_last_index", 0) != 0;
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            int ax = NormalizeAxis(n, axis, x.Rank);
            int dim = x.Shape[ax];
            if (dim == 0) throw n.Error($"reduces an empty axis {ax}.");
            long outer = Shapes.Product(x.Shape.AsSpan(0, ax));
            long inner = Shapes.Product(x.Shape.AsSpan(ax + 1));
            var r = new long[outer * inner];
            if (x.IsFloat)
            {
                var data = FloatData(x.Tensor!);
                for (long oi = 0; oi < outer; oi++)
                    for (long j = 0; j < inner; j++)
                    {
                        long baseIndex = oi * dim * inner + j;
                        int best = 0;
                        float bv = data[(int)baseIndex];
                        for (int k = 1; k < dim; k++)
                        {
                            float v = data[(int)(baseIndex + k * inner)];
                            bool better = max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                            if (better || (float.IsNaN(v) && !float.IsNaN(bv))) { bv = v; best = k; }
                        }
                        r[oi * inner + j] = best;
                    }
            }
            else
            {
                var data = x.Ints!;
                for (long oi = 0; oi < outer; oi++)
                    for (long j = 0; j < inner; j++)
                    {
                        long baseIndex = oi * dim * inner + j;
                        int best = 0;
                        long bv = data[baseIndex];
                        for (int k = 1; k < dim; k++)
                        {
                            long v = data[baseIndex + k * inner];
                            if (max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv)) { bv = v; best = k; }
                        }
                        r[oi * inner + j] = best;
                    }
            }
            var shape = new List<int>(x.Shape);
            if (keepDims) shape[ax] = 1;
            else shape.RemoveAt(ax);
            o[0] = OnnxValue.FromInts(r, shape.ToArray());
        };
    }
}
