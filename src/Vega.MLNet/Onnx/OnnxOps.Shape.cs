using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

internal static partial class OnnxOps
{
    private static void AddShapeOps(List<OnnxOpInfo> list)
    {
        list.Add(new("Constant", 1, ConstantKernel, "value (tensor), and from opset 12 value_float(s) / value_int(s); sparse and string values are not supported"));
        list.Add(new("ConstantOfShape", 9, ConstantOfShapeKernel, "value attribute float32 or integer (default float 0)"));
        list.Add(new("Shape", 1, ShapeKernel, "start/end attributes from opset 15"));
        list.Add(new("Size", 1, n => (i, o) => o[0] = OnnxValue.Scalar(n.Required(i, 0, "data").Length), "int64 scalar"));
        list.Add(new("Reshape", 5, ReshapeKernel, "shape as input (opset ≥ 5); 0 copies the input dimension unless allowzero = 1 (opset 14); −1 inferred; a view when the input is contiguous"));
        list.Add(new("Flatten", 1, FlattenKernel, "negative axis from opset 11"));
        list.Add(new("Squeeze", 1, SqueezeKernel, "axes attribute before opset 13, optional int64 input from 13"));
        list.Add(new("Unsqueeze", 1, UnsqueezeKernel, "axes attribute before opset 13, int64 input from 13; axes refer to the output rank, any order"));
        list.Add(new("Transpose", 1, TransposeKernel, "a strided view; default perm reverses the axes"));
        list.Add(new("Slice", 1, SliceKernel, "starts/ends/axes attributes before opset 10, inputs (with steps) from 10; clamping as in the spec; float slices are views"));
        list.Add(new("Concat", 4, ConcatKernel, "negative axis from opset 11"));
        list.Add(new("Gather", 1, GatherKernel, "any axis, negative indices; float data differentiable (scatter-add), indices integer"));
        list.Add(new("Expand", 8, ExpandKernel, "bidirectional broadcast; float result is a stride-0 view"));
        list.Add(new("Cast", 6, CastKernel, "between float32, integer and bool types; float → integer truncates toward zero"));
        list.Add(new("Range", 11, RangeKernel, "float32 or integer scalars; float values computed in float64 as start + i·delta"));
    }

    // ---------------------------------------------------------------- constants

    private static OnnxKernel ConstantKernel(OnnxNode n)
    {
        OnnxValue value;
        if (n.Tensor("value") is { } t) value = OnnxValue.FromProto(t, n.Source);
        else if (n.Has("value_float")) value = OnnxValue.FromTensor(Tensor.Wrap([n.Float("value_float", 0)], []));
        else if (n.Floats("value_floats") is { } fs) value = OnnxValue.FromTensor(Tensor.Wrap(fs, fs.Length));
        else if (n.Has("value_int")) value = OnnxValue.Scalar(n.Int("value_int", 0));
        else if (n.Ints("value_ints") is { } ins) value = OnnxValue.Vector(ins);
        else throw n.Error("has no supported value attribute (value, value_float(s), value_int(s)); sparse and string constants are not supported.");
        return (i, o) => o[0] = value;
    }

    private static OnnxKernel ConstantOfShapeKernel(OnnxNode n)
    {
        var attr = n.Tensor("value");
        OnnxValue? fill = attr is null ? null : OnnxValue.FromProto(attr, n.Source);
        if (fill is not null && fill.Length != 1) throw n.Error("the value attribute must hold one element.");
        return (i, o) =>
        {
            var shapeValue = n.Required(i, 0, "shape");
            var shape = ToIntShape(n, Ints(n, shapeValue, "shape"), "shape");
            Shapes.Validate(shape, "shape");
            n.CheckElements(shape);
            if (fill is null || fill.IsFloat)
            {
                float v = fill is null ? 0f : fill.Tensor!.Data[fill.Tensor.Offset];
                o[0] = OnnxValue.FromTensor(Tensor.Full(v, shape));
            }
            else
            {
                var r = new long[Shapes.Product(shape)];
                Array.Fill(r, fill.Ints![0]);
                o[0] = OnnxValue.FromInts(r, shape, fill.Type);
            }
        };
    }

    private static OnnxKernel RangeKernel(OnnxNode n) => (i, o) =>
    {
        var start = n.Required(i, 0, "start");
        var limit = n.Required(i, 1, "limit");
        var delta = n.Required(i, 2, "delta");
        if (start.Length != 1 || limit.Length != 1 || delta.Length != 1) throw n.Error("start, limit and delta must be scalars.");
        if (start.IsFloat)
        {
            double s = start.Tensor!.Data[start.Tensor.Offset], l = FloatData(Float(n, limit, "limit"))[0], d = FloatData(Float(n, delta, "delta"))[0];
            if (d == 0) throw n.Error("delta is 0.");
            double steps = Math.Ceiling((l - s) / d);
            long count = double.IsNaN(steps) || steps <= 0 ? 0 : steps >= long.MaxValue ? long.MaxValue : (long)steps;
            n.CheckElements(count);
            var t = Tensor.Empty(checked((int)count));
            var span = t.Span;
            for (int k = 0; k < count; k++) span[k] = (float)(s + k * d);
            o[0] = OnnxValue.FromTensor(t);
        }
        else
        {
            long s = ScalarInt(n, start, "start"), l = ScalarInt(n, limit, "limit"), d = ScalarInt(n, delta, "delta");
            if (d == 0) throw n.Error("delta is 0.");
            double steps = Math.Ceiling(((double)l - s) / d);
            long count = steps <= 0 ? 0 : steps >= long.MaxValue ? long.MaxValue : (long)steps;
            n.CheckElements(count);
            var r = new long[count];
            for (long k = 0; k < count; k++) r[k] = OnnxValue.Wrap(s + k * d, start.Type);
            o[0] = OnnxValue.FromInts(r, [checked((int)count)], start.Type);
        }
    };

    // ---------------------------------------------------------------- shape queries

    private static OnnxKernel ShapeKernel(OnnxNode n)
    {
        long? start = n.Opset >= 15 && n.Has("start") ? n.Int("start", 0) : null;
        long? end = n.Opset >= 15 && n.Has("end") ? n.Int("end", 0) : null;
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            int r = x.Rank;
            long s = start ?? 0, e = end ?? r;
            if (s < 0) s += r;
            if (e < 0) e += r;
            s = Math.Clamp(s, 0, r);
            e = Math.Clamp(e, 0, r);
            var dims = new long[Math.Max(e - s, 0)];
            for (int k = 0; k < dims.Length; k++) dims[k] = x.Shape[s + k];
            o[0] = OnnxValue.Vector(dims);
        };
    }

    // ---------------------------------------------------------------- reshaping

    private static OnnxValue WithShape(OnnxNode n, OnnxValue x, int[] shape)
    {
        if (Shapes.Product(shape) != x.Length)
            throw n.Error($"cannot reshape {Shapes.ToString(x.Shape)} ({x.Length} values) to {Shapes.ToString(shape)}.");
        return x.IsFloat ? OnnxValue.FromTensor(Ops.Reshape(x.Tensor!, shape)) : OnnxValue.FromInts(x.Ints!, shape, x.Type);
    }

    private static OnnxKernel ReshapeKernel(OnnxNode n)
    {
        bool allowZero = n.Opset >= 14 && n.Int("allowzero", 0) != 0;
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            var requested = Ints(n, n.Required(i, 1, "shape"), "shape");
            var shape = new int[requested.Length];
            int infer = -1;
            long known = 1;
            for (int k = 0; k < shape.Length; k++)
            {
                long d = requested[k];
                if (d == 0 && !allowZero)
                {
                    if (k >= x.Rank) throw n.Error($"shape {Shapes.ToString(ToIntShape(n, requested, "shape"))} copies dimension {k} of a rank-{x.Rank} input.");
                    d = x.Shape[k];
                }
                if (d == -1)
                {
                    if (infer >= 0) throw n.Error("the shape has more than one −1.");
                    infer = k;
                    continue;
                }
                if (d < 0 || d > int.MaxValue) throw n.Error($"invalid dimension {d} in the requested shape.");
                shape[k] = (int)d;
                known *= d;
            }
            if (infer >= 0)
            {
                if (known == 0 || x.Length % known != 0)
                    throw n.Error($"cannot reshape {Shapes.ToString(x.Shape)} ({x.Length} values) to [{string.Join(", ", requested)}].");
                shape[infer] = (int)(x.Length / known);
            }
            o[0] = WithShape(n, x, shape);
        };
    }

    private static OnnxKernel FlattenKernel(OnnxNode n)
    {
        long axis = n.Int("axis", 1);
        return (i, o) =>
        {
            var x = n.Required(i, 0, "input");
            long a = axis < 0 ? axis + x.Rank : axis;
            if (a < 0 || a > x.Rank) throw n.Error($"axis {axis} is out of range for rank {x.Rank}.");
            long outer = Shapes.Product(x.Shape.AsSpan(0, (int)a));
            long inner = Shapes.Product(x.Shape.AsSpan((int)a));
            o[0] = WithShape(n, x, [(int)outer, (int)inner]);
        };
    }

    private static long[]? AxesFrom(OnnxNode n, OnnxValue?[] i, int inputIndex, int inputSince)
    {
        if (n.Opset < inputSince) return n.Ints("axes");
        var v = inputIndex < i.Length ? i[inputIndex] : null;
        return v is null ? null : Ints(n, v, "axes");
    }

    private static OnnxKernel SqueezeKernel(OnnxNode n) => (i, o) =>
    {
        var x = n.Required(i, 0, "data");
        var axes = AxesFrom(n, i, 1, 13);
        var drop = new bool[x.Rank];
        if (axes is null || axes.Length == 0)
            for (int k = 0; k < x.Rank; k++) drop[k] = x.Shape[k] == 1;
        else
            foreach (long a in axes)
            {
                int ax = NormalizeAxis(n, a, x.Rank, "squeeze axis");
                if (x.Shape[ax] != 1) throw n.Error($"axis {a} of {Shapes.ToString(x.Shape)} has size {x.Shape[ax]}, not 1.");
                drop[ax] = true;
            }
        var shape = new List<int>();
        for (int k = 0; k < x.Rank; k++) if (!drop[k]) shape.Add(x.Shape[k]);
        o[0] = WithShape(n, x, shape.ToArray());
    };

    private static OnnxKernel UnsqueezeKernel(OnnxNode n) => (i, o) =>
    {
        var x = n.Required(i, 0, "data");
        var axes = AxesFrom(n, i, 1, 13) ?? throw n.Error("needs axes.");
        int rank = x.Rank + axes.Length;
        var insert = new bool[rank];
        foreach (long a in axes)
        {
            int ax = NormalizeAxis(n, a, rank, "unsqueeze axis");
            if (insert[ax]) throw n.Error($"axis {a} is listed twice.");
            insert[ax] = true;
        }
        var shape = new int[rank];
        int src = 0;
        for (int k = 0; k < rank; k++) shape[k] = insert[k] ? 1 : x.Shape[src++];
        o[0] = WithShape(n, x, shape);
    };

    private static OnnxKernel TransposeKernel(OnnxNode n)
    {
        var permAttr = n.Ints("perm");
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            int r = x.Rank;
            var perm = new int[r];
            if (permAttr is null) for (int k = 0; k < r; k++) perm[k] = r - 1 - k;
            else
            {
                if (permAttr.Length != r) throw n.Error($"perm [{string.Join(", ", permAttr)}] does not match rank {r}.");
                var seen = new bool[r];
                for (int k = 0; k < r; k++)
                {
                    perm[k] = NormalizeAxis(n, permAttr[k], r, "perm entry");
                    if (seen[perm[k]]) throw n.Error($"perm [{string.Join(", ", permAttr)}] is not a permutation.");
                    seen[perm[k]] = true;
                }
            }
            if (x.IsFloat)
            {
                o[0] = OnnxValue.FromTensor(Ops.Transpose(x.Tensor!, perm));
                return;
            }
            var shape = new int[r];
            for (int k = 0; k < r; k++) shape[k] = x.Shape[perm[k]];
            var inStrides = Shapes.ContiguousStrides(x.Shape);
            var strides = new long[r];
            for (int k = 0; k < r; k++) strides[k] = inStrides[perm[k]];
            o[0] = OnnxValue.FromInts(GatherStrided(x.Ints!, 0, shape, strides), shape, x.Type);
        };
    }

    /// <summary>Copies the elements of a strided view of <paramref name="src"/> in row-major order.</summary>
    private static long[] GatherStrided(long[] src, long offset, int[] shape, long[] strides)
    {
        long count = Shapes.Product(shape);
        var r = new long[count];
        int rank = shape.Length;
        var pos = new int[rank];
        long off = offset;
        for (long k = 0; k < count; k++)
        {
            r[k] = src[off];
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++pos[d] < shape[d]) { off += strides[d]; break; }
                pos[d] = 0;
                off -= strides[d] * (shape[d] - 1);
            }
        }
        return r;
    }

    // ---------------------------------------------------------------- slicing and joining

    private static OnnxKernel SliceKernel(OnnxNode n)
    {
        long[]? attrStarts = n.Opset < 10 ? n.Ints("starts") : null;
        long[]? attrEnds = n.Opset < 10 ? n.Ints("ends") : null;
        long[]? attrAxes = n.Opset < 10 ? n.Ints("axes") : null;
        if (n.Opset < 10 && (attrStarts is null || attrEnds is null)) throw n.Error("needs the starts and ends attributes (opset < 10).");
        return (i, o) =>
        {
            var x = n.Required(i, 0, "data");
            long[] starts, ends;
            long[]? axes, steps = null;
            if (n.Opset < 10) { starts = attrStarts!; ends = attrEnds!; axes = attrAxes; }
            else
            {
                starts = Ints(n, n.Required(i, 1, "starts"), "starts");
                ends = Ints(n, n.Required(i, 2, "ends"), "ends");
                axes = i.Length > 3 && i[3] is { } a ? Ints(n, a, "axes") : null;
                steps = i.Length > 4 && i[4] is { } s ? Ints(n, s, "steps") : null;
            }
            int count = starts.Length;
            if (ends.Length != count || (axes is not null && axes.Length != count) || (steps is not null && steps.Length != count))
                throw n.Error("starts, ends, axes and steps must have the same length.");
            int r = x.Rank;
            // Canonical ONNX start/step/count per axis.
            var start = new long[r];
            var step = new long[r];
            var size = (int[])x.Shape.Clone();
            for (int k = 0; k < r; k++) step[k] = 1;
            var seen = new bool[r];
            for (int k = 0; k < count; k++)
            {
                int ax = NormalizeAxis(n, axes is null ? k : axes[k], r, "slice axis");
                if (seen[ax]) throw n.Error($"axis {ax} is sliced twice.");
                seen[ax] = true;
                long st = steps is null ? 1 : steps[k];
                if (st == 0) throw n.Error("a step is 0.");
                long dim = x.Shape[ax], s = starts[k], e = ends[k];
                if (s < 0) s += dim;
                if (e < 0) e += dim;
                long c;
                if (st > 0)
                {
                    s = Math.Clamp(s, 0, dim);
                    e = Math.Clamp(e, 0, dim);
                    c = e > s ? (e - s + st - 1) / st : 0;
                }
                else
                {
                    s = Math.Clamp(s, 0, dim - 1);
                    e = Math.Clamp(e, -1, dim - 1);
                    c = s > e ? (s - e + (-st) - 1) / (-st) : 0;
                }
                start[ax] = c > 0 ? s : 0;
                step[ax] = st;
                size[ax] = (int)c;
            }
            if (x.IsFloat)
            {
                // Expressed for Ops.Slice in its own (Python) convention: start, exclusive end = start + count·step.
                var sAx = new List<int>();
                var sStart = new List<int>();
                var sEnd = new List<int>();
                var sStep = new List<int>();
                for (int ax = 0; ax < r; ax++)
                {
                    if (!seen[ax]) continue;
                    long s = start[ax], c = size[ax], st = step[ax];
                    long e = s + c * st; // exclusive; may be −1 for a negative step that reaches index 0
                    sAx.Add(ax);
                    sStart.Add(c == 0 ? 0 : (int)s);
                    sEnd.Add(c == 0 ? 0 : e < 0 ? -(x.Shape[ax] + 1) : (int)e);
                    sStep.Add((int)st);
                }
                o[0] = OnnxValue.FromTensor(Ops.Slice(x.Tensor!, sStart.ToArray(), sEnd.ToArray(), sAx.ToArray(), sStep.ToArray()));
                return;
            }
            var inStrides = Shapes.ContiguousStrides(x.Shape);
            long offset = 0;
            var strides = new long[r];
            for (int ax = 0; ax < r; ax++)
            {
                offset += start[ax] * inStrides[ax];
                strides[ax] = inStrides[ax] * step[ax];
            }
            o[0] = OnnxValue.FromInts(Shapes.Product(size) == 0 ? [] : GatherStrided(x.Ints!, offset, size, strides), size, x.Type);
        };
    }

    private static OnnxKernel ConcatKernel(OnnxNode n)
    {
        if (!n.Has("axis")) throw n.Error("needs the axis attribute.");
        long axis = n.Int("axis", 0);
        return (i, o) =>
        {
            var parts = new List<OnnxValue>();
            foreach (var v in i) if (v is not null) parts.Add(v);
            if (parts.Count == 0) throw n.Error("has no inputs.");
            var first = parts[0];
            int ax = NormalizeAxis(n, axis, first.Rank);
            foreach (var p in parts)
            {
                if (p.Type != first.Type) throw n.Error($"inputs have different types ({first.Type}, {p.Type}).");
                if (p.Rank != first.Rank) throw n.Error($"inputs have different ranks ({Shapes.ToString(first.Shape)}, {Shapes.ToString(p.Shape)}).");
                for (int d = 0; d < p.Rank; d++)
                    if (d != ax && p.Shape[d] != first.Shape[d])
                        throw n.Error($"shapes {Shapes.ToString(first.Shape)} and {Shapes.ToString(p.Shape)} differ outside axis {ax}.");
            }
            long total = 0;
            foreach (var p in parts) total += p.Length;
            n.CheckElements(total);
            if (first.IsFloat)
            {
                var tensors = new List<Tensor>(parts.Count);
                foreach (var p in parts) tensors.Add(p.Tensor!);
                o[0] = OnnxValue.FromTensor(Ops.Concat(tensors, ax));
                return;
            }
            var shape = (int[])first.Shape.Clone();
            shape[ax] = 0;
            foreach (var p in parts) shape[ax] += p.Shape[ax];
            long outer = Shapes.Product(first.Shape.AsSpan(0, ax));
            long inner = Shapes.Product(first.Shape.AsSpan(ax + 1));
            var r = new long[Shapes.Product(shape)];
            long pos = 0;
            for (long oi = 0; oi < outer; oi++)
                foreach (var p in parts)
                {
                    long len = p.Shape[ax] * inner;
                    Array.Copy(p.Ints!, oi * len, r, pos, len);
                    pos += len;
                }
            o[0] = OnnxValue.FromInts(r, shape, first.Type);
        };
    }

    private static OnnxKernel GatherKernel(OnnxNode n)
    {
        long axis = n.Int("axis", 0);
        return (i, o) =>
        {
            var data = n.Required(i, 0, "data");
            var indices = n.Required(i, 1, "indices");
            var idx = Ints(n, indices, "indices");
            int ax = NormalizeAxis(n, axis, data.Rank);
            int dim = data.Shape[ax];
            var flat = new int[idx.Length];
            for (int k = 0; k < idx.Length; k++)
            {
                long v = idx[k] < 0 ? idx[k] + dim : idx[k];
                if (v < 0 || v >= dim) throw n.Error($"index {idx[k]} is out of range for axis {ax} of size {dim}.");
                flat[k] = (int)v;
            }
            n.CheckElements(OnnxNode.SaturatingProduct([.. data.Shape[..ax], .. indices.Shape, .. data.Shape[(ax + 1)..]]));
            if (data.IsFloat)
            {
                o[0] = OnnxValue.FromTensor(Ops.Gather(data.Tensor!, ax, flat, indices.Shape));
                return;
            }
            var shape = new List<int>();
            shape.AddRange(data.Shape[..ax]);
            shape.AddRange(indices.Shape);
            shape.AddRange(data.Shape[(ax + 1)..]);
            long outer = Shapes.Product(data.Shape.AsSpan(0, ax));
            long inner = Shapes.Product(data.Shape.AsSpan(ax + 1));
            var r = new long[Shapes.Product(shape.ToArray())];
            long pos = 0;
            for (long oi = 0; oi < outer; oi++)
                foreach (int j in flat)
                {
                    Array.Copy(data.Ints!, (oi * dim + j) * inner, r, pos, inner);
                    pos += inner;
                }
            o[0] = OnnxValue.FromInts(r, shape.ToArray(), data.Type);
        };
    }

    private static OnnxKernel ExpandKernel(OnnxNode n) => (i, o) =>
    {
        var x = n.Required(i, 0, "input");
        var target = ToIntShape(n, Ints(n, n.Required(i, 1, "shape"), "shape"), "shape");
        int[] shape;
        try { shape = Shapes.Broadcast(x.Shape, target, "Expand"); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        n.CheckElements(shape);
        if (x.IsFloat)
        {
            o[0] = OnnxValue.FromTensor(Ops.Expand(x.Tensor!, shape));
            return;
        }
        var ix = BroadcastIndex(x.Shape, shape);
        var r = new long[ix.Length];
        for (int k = 0; k < r.Length; k++) r[k] = x.Ints![ix[k]];
        o[0] = OnnxValue.FromInts(r, shape, x.Type);
    };

    // ---------------------------------------------------------------- casts

    private static OnnxKernel CastKernel(OnnxNode n)
    {
        var to = (OnnxElementType)n.Int("to", 0);
        if (!OnnxValue.IsSupported(to)) throw n.Error($"casts to {to}; the interpreter supports float32, integer and bool tensors.");
        return (i, o) => o[0] = CastTo(n, n.Required(i, 0, "input"), to);
    }

    internal static OnnxValue CastTo(OnnxNode n, OnnxValue x, OnnxElementType to)
    {
        if (x.Type == to) return x;
        if (to == OnnxElementType.Float) return OnnxValue.FromTensor(x.AsTensor());
        if (!OnnxValue.IsIntegral(to)) throw n.Error($"casts to {to}; the interpreter supports float32, integer and bool tensors.");
        var r = new long[x.Length];
        if (x.IsFloat)
        {
            var f = FloatData(x.Tensor!);
            for (int k = 0; k < r.Length; k++)
            {
                float v = f[k];
                r[k] = to == OnnxElementType.Bool ? (v != 0 ? 1 : 0) : OnnxValue.Wrap(float.IsNaN(v) ? 0 : (long)Math.Clamp((double)MathF.Truncate(v), long.MinValue, long.MaxValue), to);
            }
        }
        else for (int k = 0; k < r.Length; k++) r[k] = OnnxValue.Wrap(x.Ints![k], to);
        return OnnxValue.FromInts(r, x.Shape, to);
    }
}
