namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    // ---------------------------------------------------------------- views

    /// <summary>
    /// The same values with another shape (one dimension may be −1 = inferred). A view when x is contiguous, else a copy.
    /// </summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var target = ResolveShape(x, shape);
        Tensor y;
        if (x.IsContiguous) y = x.View(x.Offset, target, Shapes.ContiguousStrides(target));
        else if (ViewStrides(x.Shape, x.Strides, target) is { } strides) y = x.View(x.Offset, target, strides);
        else
        {
            y = Tensor.Empty(target);
            Kernels.StridedCopy(x, y.Span);
        }
        if (Tape.Needs(x)) Tape.Record("Reshape", y, [x], g => Tape.Accumulate(x, ReshapeRaw(g, x.Shape)));
        return y;
    }

    private static Tensor ReshapeRaw(Tensor g, int[] shape)
    {
        if (!g.IsContiguous && ViewStrides(g.Shape, g.Strides, shape) is { } strides) return g.View(g.Offset, shape, strides);
        var gc = Kernels.Contiguous(g);
        return gc.View(gc.Offset, shape, Shapes.ContiguousStrides(shape));
    }

    /// <summary>
    /// Strides that present a strided tensor of <paramref name="shape"/> as <paramref name="target"/> (same element
    /// order) without copying, or null when the reshape merges dimensions that are not contiguous with each other.
    /// Groups of old dimensions are matched with groups of new dimensions of equal product; within a group the old
    /// dimensions must nest (stride[i] = stride[i+1]·dim[i+1]), then the new strides are derived from the group's
    /// innermost stride. Size-1 dimensions are free.
    /// </summary>
    internal static int[]? ViewStrides(int[] shape, int[] strides, int[] target)
    {
        if (Shapes.Product(shape) == 0) return null;
        var od = new List<int>();
        var os = new List<int>();
        for (int i = 0; i < shape.Length; i++)
            if (shape[i] != 1) { od.Add(shape[i]); os.Add(strides[i]); }
        var ns = new int[target.Length];
        int oi = 0, ni = 0;
        // Leading new dims of size 1 (and any size-1 dims met between groups) get a harmless stride.
        while (ni < target.Length && oi < od.Count)
        {
            if (target[ni] == 1) { ns[ni] = 0; ni++; continue; }
            int nj = ni + 1, oj = oi + 1;
            long np = target[ni], op = od[oi];
            while (np != op)
            {
                if (np < op)
                {
                    if (nj >= target.Length) return null;
                    np *= target[nj++];
                }
                else
                {
                    if (oj >= od.Count) return null;
                    op *= od[oj++];
                }
            }
            for (int k = oi; k < oj - 1; k++)
                if (os[k] != od[k + 1] * os[k + 1]) return null;
            ns[nj - 1] = os[oj - 1];
            for (int k = nj - 1; k > ni; k--) ns[k - 1] = ns[k] * target[k];
            ni = nj;
            oi = oj;
        }
        if (oi < od.Count) return null;
        for (; ni < target.Length; ni++)
        {
            if (target[ni] != 1) return null;
            ns[ni] = 0;
        }
        return ns;
    }

    private static int[] ResolveShape(Tensor x, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var r = (int[])shape.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < r.Length; i++)
        {
            if (r[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"Reshape to {Shapes.ToString(shape)}: only one dimension can be −1.", nameof(shape));
                infer = i;
            }
            else if (r[i] < 0) throw new ArgumentException($"Reshape to {Shapes.ToString(shape)}: negative dimension {r[i]}.", nameof(shape));
            else known *= r[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || x.Length % known != 0)
                throw new ArgumentException($"Cannot reshape {x.ShapeString} ({x.Length} values) to {Shapes.ToString(shape)}.", nameof(shape));
            r[infer] = (int)(x.Length / known);
        }
        else if (known != x.Length)
            throw new ArgumentException($"Cannot reshape {x.ShapeString} ({x.Length} values) to {Shapes.ToString(shape)} ({known} values).", nameof(shape));
        return r;
    }

    /// <summary>Inserts a dimension of size 1 at <paramref name="axis"/> (−1 = last).</summary>
    public static Tensor Unsqueeze(Tensor x, int axis)
    {
        int a = axis < 0 ? axis + x.Rank + 1 : axis;
        if (a < 0 || a > x.Rank) throw new ArgumentOutOfRangeException(nameof(axis), axis, $"Unsqueeze axis out of range for rank {x.Rank}.");
        var s = new List<int>(x.Shape);
        s.Insert(a, 1);
        return Reshape(x, s.ToArray());
    }

    /// <summary>Removes the size-1 dimension <paramref name="axis"/>.</summary>
    public static Tensor Squeeze(Tensor x, int axis)
    {
        int a = Shapes.NormalizeAxis(axis, x.Rank, nameof(axis));
        if (x.Shape[a] != 1) throw new ArgumentException($"Squeeze: axis {axis} of {x.ShapeString} has size {x.Shape[a]}, not 1.", nameof(axis));
        var s = new List<int>(x.Shape);
        s.RemoveAt(a);
        return Reshape(x, s.ToArray());
    }

    /// <summary>Permutes the dimensions (a view): result dimension i is input dimension perm[i].</summary>
    public static Tensor Transpose(Tensor x, params int[] perm)
    {
        int rank = x.Rank;
        if (perm.Length != rank) throw new ArgumentException($"Transpose of {x.ShapeString} needs a permutation of {rank} axes, got [{string.Join(", ", perm)}].", nameof(perm));
        var p = new int[rank];
        var seen = new bool[rank];
        for (int i = 0; i < rank; i++)
        {
            p[i] = Shapes.NormalizeAxis(perm[i], rank, nameof(perm));
            if (seen[p[i]]) throw new ArgumentException($"Transpose: [{string.Join(", ", perm)}] is not a permutation.", nameof(perm));
            seen[p[i]] = true;
        }
        var shape = new int[rank];
        var strides = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            shape[i] = x.Shape[p[i]];
            strides[i] = x.Strides[p[i]];
        }
        var y = x.View(x.Offset, shape, strides);
        if (Tape.Needs(x))
            Tape.Record("Transpose", y, [x], g =>
            {
                var inv = new int[rank];
                for (int i = 0; i < rank; i++) inv[p[i]] = i;
                var gs = new int[rank];
                var gst = new int[rank];
                for (int i = 0; i < rank; i++)
                {
                    gs[i] = g.Shape[inv[i]];
                    gst[i] = g.Strides[inv[i]];
                }
                Tape.Accumulate(x, g.View(g.Offset, gs, gst));
            });
        return y;
    }

    /// <summary>Swaps two axes (a view).</summary>
    public static Tensor SwapAxes(Tensor x, int axis0, int axis1)
    {
        var perm = new int[x.Rank];
        for (int i = 0; i < perm.Length; i++) perm[i] = i;
        int a = Shapes.NormalizeAxis(axis0, x.Rank, nameof(axis0)), b = Shapes.NormalizeAxis(axis1, x.Rank, nameof(axis1));
        (perm[a], perm[b]) = (perm[b], perm[a]);
        return Transpose(x, perm);
    }

    /// <summary>Elements start, start+step, … before end along <paramref name="axis"/> (Python/ONNX clamping; a view).</summary>
    public static Tensor Slice(Tensor x, int axis, int start, int end, int step = 1) =>
        Slice(x, [start], [end], [axis], [step]);

    /// <summary>ONNX-style multi-axis slice (a view). Out-of-range starts/ends are clamped; negative values count from the end.</summary>
    public static Tensor Slice(Tensor x, int[] starts, int[] ends, int[]? axes = null, int[]? steps = null)
    {
        int n = starts.Length;
        if (ends.Length != n || (axes is not null && axes.Length != n) || (steps is not null && steps.Length != n))
            throw new ArgumentException("Slice: starts, ends, axes and steps must have the same length.", nameof(starts));
        var shape = (int[])x.Shape.Clone();
        var strides = (int[])x.Strides.Clone();
        int offset = x.Offset;
        var seen = new bool[x.Rank];
        var spec = new (int Axis, int Start, int Step, int Count)[n];
        for (int i = 0; i < n; i++)
        {
            int ax = Shapes.NormalizeAxis(axes is null ? i : axes[i], x.Rank, nameof(axes));
            if (seen[ax]) throw new ArgumentException($"Slice: axis {ax} is listed twice.", nameof(axes));
            seen[ax] = true;
            int step = steps is null ? 1 : steps[i];
            if (step == 0) throw new ArgumentException("Slice: a step cannot be 0.", nameof(steps));
            int dim = x.Shape[ax];
            long s = starts[i], e = ends[i];
            if (s < 0) s += dim;
            if (e < 0) e += dim;
            int count;
            if (step > 0)
            {
                s = Math.Clamp(s, 0, dim);
                e = Math.Clamp(e, 0, dim);
                count = e > s ? (int)((e - s + step - 1) / step) : 0;
            }
            else
            {
                s = Math.Clamp(s, -1, dim - 1);
                e = Math.Clamp(e, -1, dim - 1);
                count = s > e ? (int)((s - e + (-step) - 1) / (-step)) : 0;
            }
            if (count > 0) offset += (int)s * x.Strides[ax];
            shape[ax] = count;
            strides[ax] = x.Strides[ax] * step;
            spec[i] = (ax, (int)s, step, count);
        }
        var y = x.View(offset, shape, strides);
        if (Tape.Needs(x))
            Tape.Record("Slice", y, [x], g =>
            {
                var buf = Tape.GradBuffer(x);
                if (buf is null || y.Length == 0) return;
                int off = buf.Offset;
                var st = (int[])buf.Strides.Clone();
                foreach (var (ax, s, step, count) in spec)
                {
                    if (count > 0) off += s * buf.Strides[ax];
                    st[ax] = buf.Strides[ax] * step;
                }
                Kernels.AddInto(buf.View(off, y.Shape, st), g);
            });
        return y;
    }

    /// <summary>Broadcasts x to <paramref name="shape"/> (ONNX Expand: the result has the broadcast of both shapes; a view).</summary>
    public static Tensor Expand(Tensor x, params int[] shape)
    {
        var target = Shapes.Broadcast(x.Shape, shape, "Expand");
        var y = x.View(x.Offset, target, Shapes.BroadcastStrides(x, target));
        if (Tape.Needs(x)) Tape.Record("Expand", y, [x], g => Tape.Accumulate(x, SumToShape(g, x.Shape)));
        return y;
    }

    /// <summary>x itself when contiguous, otherwise a contiguous copy (recorded).</summary>
    public static Tensor Contiguous(Tensor x)
    {
        if (x.IsContiguous) return x;
        var y = Tensor.Empty(x.Shape);
        Kernels.StridedCopy(x, y.Span);
        if (Tape.Needs(x)) Tape.Record("Contiguous", y, [x], g => Tape.Accumulate(x, g));
        return y;
    }

    // ---------------------------------------------------------------- concat / gather

    /// <summary>Joins tensors along <paramref name="axis"/>; all other dimensions must match.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> tensors, int axis)
    {
        if (tensors.Count == 0) throw new ArgumentException("Concat needs at least one tensor.", nameof(tensors));
        var first = tensors[0];
        int ax = Shapes.NormalizeAxis(axis, first.Rank, nameof(axis));
        var shape = (int[])first.Shape.Clone();
        int total = 0;
        foreach (var t in tensors)
        {
            if (t.Rank != first.Rank) throw new ArgumentException($"Concat: ranks differ ({first.ShapeString} vs {t.ShapeString}).", nameof(tensors));
            for (int i = 0; i < t.Rank; i++)
                if (i != ax && t.Shape[i] != first.Shape[i])
                    throw new ArgumentException($"Concat along axis {ax}: shapes {first.ShapeString} and {t.ShapeString} differ in dimension {i}.", nameof(tensors));
            total += t.Shape[ax];
        }
        shape[ax] = total;
        var y = Tensor.Empty(shape);
        int pos = 0;
        var offsets = new int[tensors.Count];
        for (int k = 0; k < tensors.Count; k++)
        {
            var t = tensors[k];
            offsets[k] = pos;
            if (t.Length > 0)
            {
                var part = y.View(y.Offset + pos * y.Strides[ax], t.Shape, y.Strides);
                Kernels.Copy(t, part);
            }
            pos += t.Shape[ax];
        }
        var inputs = tensors.ToArray();
        if (Tape.Needs(inputs))
            Tape.Record("Concat", y, inputs, g =>
            {
                for (int k = 0; k < inputs.Length; k++)
                {
                    var t = inputs[k];
                    if (!t.RequiresGrad) continue;
                    Tape.Accumulate(t, g.View(g.Offset + offsets[k] * g.Strides[ax], t.Shape, g.Strides));
                }
            });
        return y;
    }

    /// <summary>
    /// ONNX Gather: picks entries of x along <paramref name="axis"/> by <paramref name="indices"/> (negative = from the
    /// end); the result shape is x.shape[:axis] + indicesShape + x.shape[axis+1:]. The gradient scatter-adds.
    /// </summary>
    public static Tensor Gather(Tensor x, int axis, int[] indices, int[] indicesShape)
    {
        int ax = Shapes.NormalizeAxis(axis, x.Rank, nameof(axis));
        if (Shapes.Product(indicesShape) != indices.Length)
            throw new ArgumentException($"Gather: {indices.Length} indices do not fill the index shape {Shapes.ToString(indicesShape)}.", nameof(indicesShape));
        int dim = x.Shape[ax];
        var idx = new int[indices.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            int v = indices[i] < 0 ? indices[i] + dim : indices[i];
            if ((uint)v >= (uint)dim) throw new ArgumentOutOfRangeException(nameof(indices), indices[i], $"Gather index {indices[i]} is out of range for axis {ax} of size {dim} ({x.ShapeString}).");
            idx[i] = v;
        }
        int outer = 1, inner = 1;
        for (int i = 0; i < ax; i++) outer *= x.Shape[i];
        for (int i = ax + 1; i < x.Rank; i++) inner *= x.Shape[i];
        var shape = new List<int>();
        shape.AddRange(x.Shape[..ax]);
        shape.AddRange(indicesShape);
        shape.AddRange(x.Shape[(ax + 1)..]);
        var y = Tensor.Empty(shape.ToArray());
        var xc = Kernels.Contiguous(x);
        float[] src = xc.Data, dst = y.Data;
        int so = xc.Offset, k = idx.Length;
        Parallelism.For(outer * k, inner, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                int o = r / k, j = r % k;
                Array.Copy(src, so + (o * dim + idx[j]) * inner, dst, (long)r * inner, inner);
            }
        });
        if (Tape.Needs(x))
            Tape.Record("Gather", y, [x], g =>
            {
                var buf = Tape.GradBuffer(x)!;
                var gc = Kernels.Contiguous(g);
                float[] ga = gc.Data, ba = buf.Data;
                int go = gc.Offset, bo = buf.Offset;
                // Sequential over indices (duplicates add up in a fixed order); parallel over the outer dimension only.
                Parallelism.For(outer, (long)k * inner, (s, e) =>
                {
                    for (int o = s; o < e; o++)
                        for (int j = 0; j < k; j++)
                        {
                            var from = ga.AsSpan(go + (o * k + j) * inner, inner);
                            var to = ba.AsSpan(bo + (o * dim + idx[j]) * inner, inner);
                            System.Numerics.Tensors.TensorPrimitives.Add(to, from, to);
                        }
                });
            });
        return y;
    }

    /// <summary>Embedding lookup: rows of <paramref name="table"/> [V, D] for <paramref name="ids"/> → [..idsShape, D].</summary>
    public static Tensor Embedding(Tensor table, int[] ids, params int[] idsShape)
    {
        if (table.Rank != 2) throw new ArgumentException($"An embedding table must be [vocabulary, dimension]; got {table.ShapeString}.", nameof(table));
        return Gather(table, 0, ids, idsShape);
    }

    /// <summary>For x [B, T, …] and one index per row, returns [B, …] with row b = x[b, indices[b]] (end-token pooling).</summary>
    public static Tensor TakePerRow(Tensor x, int[] indices)
    {
        if (x.Rank < 2) throw new ArgumentException($"TakePerRow needs rank ≥ 2; got {x.ShapeString}.", nameof(x));
        int b = x.Shape[0], t = x.Shape[1];
        if (indices.Length != b) throw new ArgumentException($"TakePerRow: {indices.Length} indices for {b} rows.", nameof(indices));
        int inner = 1;
        for (int i = 2; i < x.Rank; i++) inner *= x.Shape[i];
        // Flatten to [B·T, inner] and gather rows b·T + index.
        var flat = new int[b];
        for (int i = 0; i < b; i++)
        {
            int v = indices[i] < 0 ? indices[i] + t : indices[i];
            if ((uint)v >= (uint)t) throw new ArgumentOutOfRangeException(nameof(indices), indices[i], $"TakePerRow index {indices[i]} is out of range for axis 1 of size {t}.");
            flat[i] = i * t + v;
        }
        var rows = Reshape(x, b * t, inner);
        var picked = Gather(rows, 0, flat, [b]);
        var shape = new int[x.Rank - 1];
        shape[0] = b;
        for (int i = 2; i < x.Rank; i++) shape[i - 1] = x.Shape[i];
        return Reshape(picked, shape);
    }

    // ---------------------------------------------------------------- selection

    /// <summary>cond ? a : b with broadcasting of all three (cond nonzero = true; cond gets no gradient).</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b)
    {
        var shape = Shapes.Broadcast(cond.Shape, a.Shape, b.Shape, "Where");
        var y = Tensor.Empty(shape);
        Kernels.Where(cond, a, b, y);
        if (Tape.Needs(a, b))
            Tape.Record("Where", y, [a, b], g =>
            {
                var zero = Tensor.Scalar(0f);
                if (a.RequiresGrad)
                {
                    var ga = Tensor.Empty(shape);
                    Kernels.Where(cond, g, zero, ga);
                    Tape.Accumulate(a, SumToShape(ga, a.Shape));
                }
                if (b.RequiresGrad)
                {
                    var gb = Tensor.Empty(shape);
                    Kernels.Where(cond, zero, g, gb);
                    Tape.Accumulate(b, SumToShape(gb, b.Shape));
                }
            });
        return y;
    }

    /// <summary>x with <paramref name="value"/> where <paramref name="mask"/> (broadcast to x) is nonzero.</summary>
    public static Tensor MaskedFill(Tensor x, Tensor mask, float value)
    {
        var shape = Shapes.Broadcast(x.Shape, mask.Shape, "MaskedFill");
        if (!Shapes.SameShape(shape, x.Shape))
            throw new ArgumentException($"MaskedFill: the mask {mask.ShapeString} must broadcast to x {x.ShapeString} without growing it.", nameof(mask));
        var y = Tensor.Empty(shape);
        var v = Tensor.Scalar(value);
        Kernels.Where(mask, v, x, y);
        if (Tape.Needs(x))
            Tape.Record("MaskedFill", y, [x], g =>
            {
                var gx = Tensor.Empty(shape);
                Kernels.Where(mask, Tensor.Scalar(0f), g, gx);
                Tape.Accumulate(x, gx);
            });
        return y;
    }
}
