using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Tensors;

/// <summary>Elementwise binary operations of the broadcasting kernel.</summary>
internal enum BinaryOp
{
    Add, Sub, Mul, Div, Pow, Max, Min,
    /// <summary>1 where a == b, else 0.</summary>
    Equal,
    /// <summary>1 where a &gt; b, else 0.</summary>
    Greater,
}

/// <summary>
/// The strided iteration engine behind every elementwise op. Up to four operands (output first) share one iteration
/// shape; each has its own element strides (0 on broadcast dimensions). Dimensions of size 1 are dropped and adjacent
/// dimensions that are contiguous for every operand are merged, so the innermost run is as long as possible; runs
/// with unit or zero strides go to <see cref="TensorPrimitives"/> (vectorised), others to scalar loops. Outer
/// iterations are split into contiguous chunks across threads (each chunk writes its own part of the output).
/// </summary>
internal static unsafe class Kernels
{
    /// <summary>An iteration plan: coalesced shape (rank ≥ 1) and per-operand strides.</summary>
    internal sealed class Plan
    {
        public int[] Shape = [];
        public int[][] Strides = [];
        public int Inner => Shape[^1];
        public long Outer;
    }

    public static Plan MakePlan(int[] shape, params int[][] strides)
    {
        int ops = strides.Length;
        var dims = new List<int>(shape.Length);
        var st = new List<int[]>(shape.Length);
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            var s = new int[ops];
            for (int k = 0; k < ops; k++) s[k] = strides[k][i];
            if (dims.Count > 0)
            {
                int last = dims.Count - 1;
                bool merge = true;
                for (int k = 0; k < ops && merge; k++) merge = st[last][k] == s[k] * shape[i];
                if (merge)
                {
                    dims[last] *= shape[i];
                    st[last] = s;
                    continue;
                }
            }
            dims.Add(shape[i]);
            st.Add(s);
        }
        if (dims.Count == 0)
        {
            dims.Add(shape.Length == 0 || Shapes.Product(shape) > 0 ? 1 : 0);
            st.Add(new int[ops]);
        }
        var plan = new Plan { Shape = dims.ToArray(), Strides = new int[ops][] };
        for (int k = 0; k < ops; k++)
        {
            plan.Strides[k] = new int[dims.Count];
            for (int d = 0; d < dims.Count; d++) plan.Strides[k][d] = st[d][k];
        }
        long outer = 1;
        for (int d = 0; d < dims.Count - 1; d++) outer *= dims[d];
        plan.Outer = dims[^1] == 0 ? 0 : outer;
        return plan;
    }

    /// <summary>Body of a strided loop: one run of n elements per call.</summary>
    internal interface IRun
    {
        void Run(float* o, int so, float* a, int sa, float* b, int sb, float* c, int sc, int n);
    }

    /// <summary>Runs <paramref name="body"/> over <paramref name="plan"/> (operands: o, a, b, c; unused ones may be null with zero strides).</summary>
    public static void Loop<T>(Plan plan, float* o, float* a, float* b, float* c, T body) where T : struct, IRun
    {
        long outer = plan.Outer;
        if (outer == 0) return;
        int inner = plan.Inner;
        int chunks = Parallelism.Chunks(outer, inner);
        if (chunks <= 1)
        {
            LoopRange(plan, 0, outer, o, a, b, c, body);
            return;
        }
        nint po = (nint)o, pa = (nint)a, pb = (nint)b, pc = (nint)c;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, ch =>
        {
            long start = outer * ch / chunks, end = outer * (ch + 1) / chunks;
            LoopRange(plan, start, end, (float*)po, (float*)pa, (float*)pb, (float*)pc, body);
        });
    }

    private static void LoopRange<T>(Plan plan, long start, long end, float* o, float* a, float* b, float* c, T body) where T : struct, IRun
    {
        int rank = plan.Shape.Length;
        int inner = plan.Inner;
        int[] so = plan.Strides[0];
        int[] sa = plan.Strides.Length > 1 ? plan.Strides[1] : new int[rank];
        int[] sb = plan.Strides.Length > 2 ? plan.Strides[2] : new int[rank];
        int[] sc = plan.Strides.Length > 3 ? plan.Strides[3] : new int[rank];
        int iso = so[rank - 1], isa = sa[rank - 1], isb = sb[rank - 1], isc = sc[rank - 1];
        if (rank == 1)
        {
            body.Run(o, iso, a, isa, b, isb, c, isc, inner);
            return;
        }
        // Odometer over the outer dimensions, starting at linear index 'start'.
        Span<int> idx = stackalloc int[rank - 1];
        long rem = start;
        long oo = 0, oa = 0, ob = 0, oc = 0;
        for (int d = rank - 2; d >= 0; d--)
        {
            idx[d] = (int)(rem % plan.Shape[d]);
            rem /= plan.Shape[d];
            oo += (long)idx[d] * so[d]; oa += (long)idx[d] * sa[d]; ob += (long)idx[d] * sb[d]; oc += (long)idx[d] * sc[d];
        }
        for (long r = start; r < end; r++)
        {
            body.Run(o + oo, iso, a + oa, isa, b + ob, isb, c + oc, isc, inner);
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++idx[d] < plan.Shape[d])
                {
                    oo += so[d]; oa += sa[d]; ob += sb[d]; oc += sc[d];
                    break;
                }
                idx[d] = 0;
                oo -= (long)(plan.Shape[d] - 1) * so[d]; oa -= (long)(plan.Shape[d] - 1) * sa[d];
                ob -= (long)(plan.Shape[d] - 1) * sb[d]; oc -= (long)(plan.Shape[d] - 1) * sc[d];
            }
        }
    }

    // ---------------------------------------------------------------- binary

    internal readonly struct BinaryRun(BinaryOp op) : IRun
    {
        public void Run(float* o, int so, float* a, int sa, float* b, int sb, float* c, int sc, int n)
        {
            if (so == 1)
            {
                var dst = new Span<float>(o, n);
                if (sa == 1 && sb == 1)
                {
                    var x = new ReadOnlySpan<float>(a, n);
                    var y = new ReadOnlySpan<float>(b, n);
                    switch (op)
                    {
                        case BinaryOp.Add: TensorPrimitives.Add(x, y, dst); return;
                        case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, dst); return;
                        case BinaryOp.Mul: TensorPrimitives.Multiply(x, y, dst); return;
                        case BinaryOp.Div: TensorPrimitives.Divide(x, y, dst); return;
                        case BinaryOp.Pow: TensorPrimitives.Pow(x, y, dst); return;
                        case BinaryOp.Max: TensorPrimitives.Max(x, y, dst); return;
                        case BinaryOp.Min: TensorPrimitives.Min(x, y, dst); return;
                    }
                }
                else if (sa == 1 && sb == 0)
                {
                    var x = new ReadOnlySpan<float>(a, n);
                    float y = *b;
                    switch (op)
                    {
                        case BinaryOp.Add: TensorPrimitives.Add(x, y, dst); return;
                        case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, dst); return;
                        case BinaryOp.Mul: TensorPrimitives.Multiply(x, y, dst); return;
                        case BinaryOp.Div: TensorPrimitives.Divide(x, y, dst); return;
                        case BinaryOp.Pow: TensorPrimitives.Pow(x, y, dst); return;
                        case BinaryOp.Max: TensorPrimitives.Max(x, y, dst); return;
                        case BinaryOp.Min: TensorPrimitives.Min(x, y, dst); return;
                    }
                }
                else if (sa == 0 && sb == 1)
                {
                    float x = *a;
                    var y = new ReadOnlySpan<float>(b, n);
                    switch (op)
                    {
                        case BinaryOp.Add: TensorPrimitives.Add(y, x, dst); return;
                        case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, dst); return;
                        case BinaryOp.Mul: TensorPrimitives.Multiply(y, x, dst); return;
                        case BinaryOp.Div: TensorPrimitives.Divide(x, y, dst); return;
                        case BinaryOp.Pow: TensorPrimitives.Pow(x, y, dst); return;
                        case BinaryOp.Max: TensorPrimitives.Max(y, x, dst); return;
                        case BinaryOp.Min: TensorPrimitives.Min(y, x, dst); return;
                    }
                }
            }
            Scalar(op, o, so, a, sa, b, sb, n);
        }

        private static void Scalar(BinaryOp op, float* o, int so, float* a, int sa, float* b, int sb, int n)
        {
            switch (op)
            {
                case BinaryOp.Add: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] + b[(nint)i * sb]; break;
                case BinaryOp.Sub: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] - b[(nint)i * sb]; break;
                case BinaryOp.Mul: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] * b[(nint)i * sb]; break;
                case BinaryOp.Div: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] / b[(nint)i * sb]; break;
                case BinaryOp.Pow: for (int i = 0; i < n; i++) o[(nint)i * so] = MathF.Pow(a[(nint)i * sa], b[(nint)i * sb]); break;
                case BinaryOp.Max: for (int i = 0; i < n; i++) o[(nint)i * so] = MaxNaN(a[(nint)i * sa], b[(nint)i * sb]); break;
                case BinaryOp.Min: for (int i = 0; i < n; i++) o[(nint)i * so] = MinNaN(a[(nint)i * sa], b[(nint)i * sb]); break;
                case BinaryOp.Equal: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] == b[(nint)i * sb] ? 1f : 0f; break;
                case BinaryOp.Greater: for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] > b[(nint)i * sb] ? 1f : 0f; break;
                default: throw new ArgumentOutOfRangeException(nameof(op));
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float MaxNaN(float x, float y) => float.IsNaN(x) || float.IsNaN(y) ? float.NaN : Math.Max(x, y);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float MinNaN(float x, float y) => float.IsNaN(x) || float.IsNaN(y) ? float.NaN : Math.Min(x, y);
    }

    /// <summary>out = a op b with broadcasting into the contiguous (or strided, same shape as the broadcast) <paramref name="output"/>.</summary>
    public static void Binary(BinaryOp op, Tensor a, Tensor b, Tensor output)
    {
        var shape = output.Shape;
        var plan = MakePlan(shape, output.Strides, Shapes.BroadcastStrides(a, shape), Shapes.BroadcastStrides(b, shape));
        fixed (float* po = output.Data, pa = a.Data, pb = b.Data)
            Loop(plan, po + output.Offset, pa + a.Offset, pb + b.Offset, null, new BinaryRun(op));
    }

    /// <summary>A new contiguous tensor a op b (broadcast shape). Not recorded.</summary>
    public static Tensor Binary(BinaryOp op, Tensor a, Tensor b)
    {
        var output = Tensor.Empty(Shapes.Broadcast(a.Shape, b.Shape, op.ToString()));
        Binary(op, a, b, output);
        return output;
    }

    /// <summary><paramref name="destination"/> += <paramref name="source"/> (same shape, destination contiguous or strided).</summary>
    public static void AddInto(Tensor destination, Tensor source)
    {
        if (destination.IsContiguous && source.IsContiguous)
        {
            var d = destination.Span;
            TensorPrimitives.Add(d, source.Span, d);
            return;
        }
        Binary(BinaryOp.Add, destination, source, destination);
    }

    // ---------------------------------------------------------------- copy / fill / where

    internal readonly struct CopyRun : IRun
    {
        public void Run(float* o, int so, float* a, int sa, float* b, int sb, float* c, int sc, int n)
        {
            if (so == 1 && sa == 1) new ReadOnlySpan<float>(a, n).CopyTo(new Span<float>(o, n));
            else if (so == 1 && sa == 0) new Span<float>(o, n).Fill(*a);
            else for (int i = 0; i < n; i++) o[(nint)i * so] = a[(nint)i * sa];
        }
    }

    /// <summary>Copies <paramref name="source"/> (broadcast to the destination's shape) into <paramref name="destination"/> (any strides).</summary>
    public static void Copy(Tensor source, Tensor destination)
    {
        var shape = destination.Shape;
        var plan = MakePlan(shape, destination.Strides, Shapes.BroadcastStrides(source, shape));
        fixed (float* po = destination.Data, pa = source.Data)
            Loop(plan, po + destination.Offset, pa + source.Offset, null, null, new CopyRun());
    }

    /// <summary>Copies a (possibly strided) tensor into <paramref name="destination"/> in row-major order.</summary>
    public static void StridedCopy(Tensor source, Span<float> destination)
    {
        var shape = source.Shape;
        var plan = MakePlan(shape, Shapes.ContiguousStrides(shape), source.Strides);
        fixed (float* po = destination, pa = source.Data)
            Loop(plan, po, pa + source.Offset, null, null, new CopyRun());
    }

    /// <summary>The tensor itself when contiguous, otherwise a contiguous copy (not recorded).</summary>
    public static Tensor Contiguous(Tensor t)
    {
        if (t.IsContiguous) return t;
        var r = Tensor.Empty(t.Shape);
        StridedCopy(t, r.Span);
        return r;
    }

    internal readonly struct WhereRun : IRun
    {
        // o = (a != 0) ? b : c
        public void Run(float* o, int so, float* a, int sa, float* b, int sb, float* c, int sc, int n)
        {
            int i = 0;
            if (so == 1 && sa == 1 && (sb | 1) == 1 && (sc | 1) == 1 && Vector256.IsHardwareAccelerated)
            {
                // Contiguous output and condition; each value operand contiguous or a scalar.
                var zero = Vector256<float>.Zero;
                for (; i <= n - 8; i += 8)
                {
                    var cond = Vector256.Equals(Vector256.Load(a + i), zero);
                    var vb = sb == 1 ? Vector256.Load(b + i) : Vector256.Create(*b);
                    var vc = sc == 1 ? Vector256.Load(c + i) : Vector256.Create(*c);
                    Vector256.Store(Vector256.ConditionalSelect(cond, vc, vb), o + i);
                }
            }
            for (; i < n; i++) o[(nint)i * so] = a[(nint)i * sa] != 0 ? b[(nint)i * sb] : c[(nint)i * sc];
        }
    }

    /// <summary>output = cond ? x : y with broadcasting (cond is nonzero = true).</summary>
    public static void Where(Tensor cond, Tensor x, Tensor y, Tensor output)
    {
        var shape = output.Shape;
        var plan = MakePlan(shape, output.Strides, Shapes.BroadcastStrides(cond, shape), Shapes.BroadcastStrides(x, shape), Shapes.BroadcastStrides(y, shape));
        fixed (float* po = output.Data, pa = cond.Data, pb = x.Data, pc = y.Data)
            Loop(plan, po + output.Offset, pa + cond.Offset, pb + x.Offset, pc + y.Offset, new WhereRun());
    }

    // ---------------------------------------------------------------- reductions

    /// <summary>
    /// Sums <paramref name="x"/> over <paramref name="axes"/> (sorted, distinct) into <paramref name="output"/>
    /// (contiguous, shape of x with the reduced axes removed or kept as 1: same element order either way), with float64
    /// accumulation.
    /// </summary>
    public static void Sum(Tensor x, int[] axes, Tensor output) => Reduce(x, axes, output, max: false);

    /// <summary>Maximum over <paramref name="axes"/> (NaN propagates).</summary>
    public static void Max(Tensor x, int[] axes, Tensor output) => Reduce(x, axes, output, max: true);

    private static void Reduce(Tensor x, int[] axes, Tensor output, bool max)
    {
        int rank = x.Rank;
        var reduced = new bool[rank];
        foreach (int ax in axes) reduced[ax] = true;
        // Output strides aligned with x: 0 on reduced axes.
        var outShapeKeep = new int[rank];
        for (int i = 0; i < rank; i++) outShapeKeep[i] = reduced[i] ? 1 : x.Shape[i];
        var outStridesKeep = Shapes.ContiguousStrides(outShapeKeep);
        for (int i = 0; i < rank; i++) if (reduced[i]) outStridesKeep[i] = 0;
        int outLen = output.Length;
        if (x.Length == 0)
        {
            output.Span.Fill(max ? float.NegativeInfinity : 0f);
            return;
        }
        // Plan over x's shape with operand 0 = output (strides 0 on reduced axes), operand 1 = x.
        var plan = MakePlan(x.Shape, outStridesKeep, x.Strides);
        int r = plan.Shape.Length;
        bool innerReduced = plan.Strides[0][r - 1] == 0 && plan.Shape[r - 1] > 1;
        var acc = System.Buffers.ArrayPool<double>.Shared.Rent(Math.Max(outLen, 1));
        Array.Fill(acc, max ? double.NegativeInfinity : 0.0, 0, outLen);
        var outSpan = output.Span;
        // The output index set is partitioned over threads only along kept dimensions; to stay simple and deterministic
        // we parallelise when the outermost plan dimension is kept (each chunk then owns distinct outputs).
        bool outerKept = r >= 2 && plan.Strides[0][0] != 0;
        fixed (float* px = x.Data)
        fixed (double* pacc = acc)
        {
            float* xb = px + x.Offset;
            nint xn = (nint)xb, an = (nint)pacc;
            if (outerKept && Parallelism.Chunks(x.Length, 1) > 1)
            {
                int d0 = plan.Shape[0];
                Parallelism.For(d0, x.Length / Math.Max(d0, 1), (s, e) =>
                {
                    for (int i = s; i < e; i++)
                        ReduceBlock(plan, 1, (double*)an + (long)i * plan.Strides[0][0], (float*)xn + (long)i * plan.Strides[1][0], innerReduced, max);
                });
            }
            else ReduceBlock(plan, 0, pacc, xb, innerReduced, max);
        }
        for (int i = 0; i < outLen; i++) outSpan[i] = (float)acc[i];
        System.Buffers.ArrayPool<double>.Shared.Return(acc);
    }

    // Reduces the sub-plan starting at dimension 'dim' (outer odometer over dims dim..r-2, inner run r-1).
    private static void ReduceBlock(Plan plan, int dim, double* acc, float* x, bool innerReduced, bool max)
    {
        int r = plan.Shape.Length;
        int inner = plan.Inner;
        int sxInner = plan.Strides[1][r - 1];
        int soInner = plan.Strides[0][r - 1];
        int outerDims = r - 1 - dim;
        Span<int> idx = stackalloc int[Math.Max(outerDims, 1)];
        long count = 1;
        for (int d = dim; d < r - 1; d++) count *= plan.Shape[d];
        long oo = 0, ox = 0;
        for (long it = 0; it < count; it++)
        {
            float* run = x + ox;
            double* dst = acc + oo;
            if (innerReduced)
            {
                if (max) { double m = MaxRun(run, sxInner, inner); if (m > *dst || double.IsNaN(m)) *dst = m; }
                else *dst += SumRun(run, sxInner, inner);
            }
            else
            {
                if (max) for (int i = 0; i < inner; i++) { double v = run[(nint)i * sxInner]; if (v > dst[(nint)i * soInner] || double.IsNaN(v)) dst[(nint)i * soInner] = v; }
                else if (sxInner == 1 && soInner == 1) AddWiden(run, dst, inner);
                else for (int i = 0; i < inner; i++) dst[(nint)i * soInner] += run[(nint)i * sxInner];
            }
            for (int k = outerDims - 1; k >= 0; k--)
            {
                int d = dim + k;
                if (++idx[k] < plan.Shape[d])
                {
                    oo += plan.Strides[0][d]; ox += plan.Strides[1][d];
                    break;
                }
                idx[k] = 0;
                oo -= (long)(plan.Shape[d] - 1) * plan.Strides[0][d];
                ox -= (long)(plan.Shape[d] - 1) * plan.Strides[1][d];
            }
        }
    }

    /// <summary>Sum of a run in float64 (vectorised for unit stride).</summary>
    public static double SumRun(float* x, int stride, int n)
    {
        if (stride != 1)
        {
            double s = 0;
            for (int i = 0; i < n; i++) s += x[(nint)i * stride];
            return s;
        }
        return SumDouble(new ReadOnlySpan<float>(x, n));
    }

    /// <summary>Σ x in float64, 8 lanes of double accumulators (deterministic order).</summary>
    public static double SumDouble(ReadOnlySpan<float> x)
    {
        int i = 0;
        double total = 0;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            var a0 = System.Runtime.Intrinsics.Vector256<double>.Zero;
            var a1 = System.Runtime.Intrinsics.Vector256<double>.Zero;
            fixed (float* p = x)
            {
                for (; i <= x.Length - 8; i += 8)
                {
                    var v = System.Runtime.Intrinsics.Vector256.Load(p + i);
                    var (lo, hi) = System.Runtime.Intrinsics.Vector256.Widen(v);
                    a0 += lo;
                    a1 += hi;
                }
            }
            total = System.Runtime.Intrinsics.Vector256.Sum(a0 + a1);
        }
        for (; i < x.Length; i++) total += x[i];
        return total;
    }

    /// <summary>Σ x·y in float64.</summary>
    public static double DotDouble(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int i = 0;
        double total = 0;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            var a0 = System.Runtime.Intrinsics.Vector256<double>.Zero;
            var a1 = System.Runtime.Intrinsics.Vector256<double>.Zero;
            fixed (float* p = x, q = y)
            {
                for (; i <= x.Length - 8; i += 8)
                {
                    var (lo, hi) = System.Runtime.Intrinsics.Vector256.Widen(System.Runtime.Intrinsics.Vector256.Load(p + i));
                    var (lo2, hi2) = System.Runtime.Intrinsics.Vector256.Widen(System.Runtime.Intrinsics.Vector256.Load(q + i));
                    a0 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(lo, lo2, a0);
                    a1 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(hi, hi2, a1);
                }
            }
            total = System.Runtime.Intrinsics.Vector256.Sum(a0 + a1);
        }
        for (; i < x.Length; i++) total += (double)x[i] * y[i];
        return total;
    }

    private static double MaxRun(float* x, int stride, int n)
    {
        if (stride == 1 && n > 0)
        {
            var span = new ReadOnlySpan<float>(x, n);
            return TensorPrimitives.Max(span);
        }
        double m = double.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            double v = x[(nint)i * stride];
            if (v > m || double.IsNaN(v)) m = v;
            if (double.IsNaN(m)) break;
        }
        return m;
    }

    private static void AddWiden(float* x, double* acc, int n)
    {
        for (int i = 0; i < n; i++) acc[i] += x[i];
    }
}
