namespace Vega.MLNet.Tensors;

/// <summary>Padding modes of <see cref="Ops.Pad"/> (ONNX Pad's modes).</summary>
internal enum PadMode
{
    /// <summary>New elements take a constant value.</summary>
    Constant,
    /// <summary>Mirror without repeating the border element (numpy "reflect").</summary>
    Reflect,
    /// <summary>Repeat the border element.</summary>
    Edge,
}

/// <summary>Average pooling with ONNX semantics and padding (new ops for the ONNX interpreter, each with its backward).</summary>
internal static partial class Ops
{
    /// <summary>
    /// Average pooling over the 1 to 3 spatial dimensions of <paramref name="x"/> [N, C, spatial…]: window
    /// <paramref name="kernel"/>, <paramref name="strides"/>, explicit padding before and after each spatial axis, and
    /// <paramref name="outSpatial"/> output positions per axis (the caller applies ONNX's floor/ceil rule). A window
    /// spans [o·s − padBegin, o·s − padBegin + k) clipped to the padded extent; it averages the input elements inside
    /// it, divided by their number, or with <paramref name="countIncludePad"/> by the window's size within the padded
    /// extent (ONNX Runtime and PyTorch's rule). Sums in float64.
    /// </summary>
    public static Tensor AveragePool(Tensor x, int[] kernel, int[] strides, int[] padBegin, int[] padEnd, int[] outSpatial, bool countIncludePad)
    {
        int k = x.Rank - 2;
        if (k < 1 || k > 3) throw new ArgumentException($"AveragePool: expected [N, C, d1 (, d2 (, d3))], got {x.ShapeString}.", nameof(x));
        if (kernel.Length != k || strides.Length != k || padBegin.Length != k || padEnd.Length != k || outSpatial.Length != k)
            throw new ArgumentException($"AveragePool: {k} spatial axes need {k} kernel sizes, strides, pads and output sizes.");
        for (int d = 0; d < k; d++)
        {
            if (kernel[d] < 1 || strides[d] < 1) throw new ArgumentException($"AveragePool: kernel {kernel[d]} and stride {strides[d]} must be at least 1 (axis {d}).");
            if (padBegin[d] < 0 || padEnd[d] < 0)
                throw new ArgumentException($"AveragePool: pads ({padBegin[d]}, {padEnd[d]}) on axis {d} must not be negative.");
            if (outSpatial[d] < 0) throw new ArgumentException($"AveragePool: the output would have {outSpatial[d]} positions on axis {d}.");
        }
        if (x.Length == 0 || outSpatial.Any(o => o == 0))
        {
            var empty = new int[x.Rank];
            empty[0] = x.Shape[0];
            empty[1] = x.Shape[1];
            outSpatial.CopyTo(empty, 2);
            return Tensor.Zeros(empty); // nothing to average (and nothing to differentiate)
        }
        // Work on three spatial axes [D, H, W]: missing leading axes have size 1, kernel 1, stride 1.
        int[] In = new int[3], K = new int[3], S = new int[3], P = new int[3], E = new int[3], O = new int[3];
        for (int d = 0; d < 3; d++)
        {
            int src = d - (3 - k);
            In[d] = src < 0 ? 1 : x.Shape[2 + src];
            K[d] = src < 0 ? 1 : kernel[src];
            S[d] = src < 0 ? 1 : strides[src];
            P[d] = src < 0 ? 0 : padBegin[src];
            E[d] = src < 0 ? 0 : padEnd[src];
            O[d] = src < 0 ? 1 : outSpatial[src];
        }
        // Per axis and output position: the valid input range [lo, hi) and the window size in the padded extent.
        var lo = new int[3][];
        var hi = new int[3][];
        var span = new int[3][];
        for (int d = 0; d < 3; d++)
        {
            lo[d] = new int[O[d]];
            hi[d] = new int[O[d]];
            span[d] = new int[O[d]];
            for (int o = 0; o < O[d]; o++)
            {
                long start = (long)o * S[d] - P[d];
                long end = Math.Min(start + K[d], (long)In[d] + E[d]);
                span[d][o] = (int)Math.Max(0, end - start);
                lo[d][o] = (int)Math.Clamp(start, 0, In[d]);
                hi[d][o] = (int)Math.Clamp(end, lo[d][o], In[d]);
            }
        }
        int planes = x.Shape[0] * x.Shape[1];
        int inPlane = In[0] * In[1] * In[2], outPlane = O[0] * O[1] * O[2];
        var outShape = new int[x.Rank];
        outShape[0] = x.Shape[0];
        outShape[1] = x.Shape[1];
        for (int d = 0; d < k; d++) outShape[2 + d] = outSpatial[d];
        var xc = Kernels.Contiguous(x);
        var y = Tensor.Empty(outShape);
        // 1/divisor per output position of a plane (the same for every plane).
        var inv = new double[outPlane];
        for (int a = 0, q = 0; a < O[0]; a++)
            for (int b = 0; b < O[1]; b++)
                for (int c = 0; c < O[2]; c++, q++)
                {
                    long count = countIncludePad
                        ? (long)span[0][a] * span[1][b] * span[2][c]
                        : (long)(hi[0][a] - lo[0][a]) * (hi[1][b] - lo[1][b]) * (hi[2][c] - lo[2][c]);
                    inv[q] = count > 0 ? 1.0 / count : 0;
                }
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        long cost = (long)outPlane * K[0] * K[1] * K[2] + 1;
        Parallelism.For(planes, cost, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int src = xo + p * inPlane, dst = p * outPlane;
                for (int a = 0, q = 0; a < O[0]; a++)
                    for (int b = 0; b < O[1]; b++)
                        for (int c = 0; c < O[2]; c++, q++)
                        {
                            double sum = 0;
                            for (int i = lo[0][a]; i < hi[0][a]; i++)
                                for (int j = lo[1][b]; j < hi[1][b]; j++)
                                {
                                    int row = src + (i * In[1] + j) * In[2];
                                    for (int l = lo[2][c]; l < hi[2][c]; l++) sum += xa[row + l];
                                }
                            ya[dst + q] = (float)(sum * inv[q]);
                        }
            }
        });
        if (Tape.Needs(x))
            Tape.Record("AveragePool", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var buf = Tape.GradBuffer(x)!;
                float[] ga = gc.Data, ba = buf.Data;
                int go = gc.Offset, bo = buf.Offset;
                Parallelism.For(planes, cost, (p0, p1) =>
                {
                    for (int p = p0; p < p1; p++)
                    {
                        int dst = bo + p * inPlane, src = go + p * outPlane;
                        for (int a = 0, q = 0; a < O[0]; a++)
                            for (int b = 0; b < O[1]; b++)
                                for (int c = 0; c < O[2]; c++, q++)
                                {
                                    float v = (float)(ga[src + q] * inv[q]);
                                    for (int i = lo[0][a]; i < hi[0][a]; i++)
                                        for (int j = lo[1][b]; j < hi[1][b]; j++)
                                        {
                                            int row = dst + (i * In[1] + j) * In[2];
                                            for (int l = lo[2][c]; l < hi[2][c]; l++) ba[row + l] += v;
                                        }
                                }
                    }
                });
            });
        return y;
    }

    /// <summary>
    /// For every element of the padded shape (row-major), the linear index of the input element it copies, or −1 for a
    /// constant-padded element. <paramref name="padBegin"/>/<paramref name="padEnd"/> may be negative (cropping).
    /// </summary>
    public static int[] PadSourceIndex(int[] shape, int[] padBegin, int[] padEnd, PadMode mode, out int[] outShape)
    {
        int rank = shape.Length;
        if (padBegin.Length != rank || padEnd.Length != rank)
            throw new ArgumentException($"Pad: a rank-{rank} tensor needs {rank} pads before and after each axis, got {padBegin.Length} and {padEnd.Length}.");
        outShape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            long size = (long)shape[d] + padBegin[d] + padEnd[d];
            if (size < 0) throw new ArgumentException($"Pad: pads ({padBegin[d]}, {padEnd[d]}) remove more than the {shape[d]} elements of axis {d}.");
            if (size > int.MaxValue) throw new ArgumentException($"Pad: axis {d} would have {size} elements.");
            outShape[d] = (int)size;
            if (mode != PadMode.Constant && shape[d] == 0 && size > 0)
                throw new ArgumentException($"Pad: {mode} padding of axis {d} needs at least one element to copy; it is empty.");
        }
        long total = Shapes.Product(outShape);
        if (total > int.MaxValue) throw new ArgumentException($"Pad: the result would have {total} elements.");
        var index = new int[total];
        if (total == 0) return index;
        var maps = new int[rank][];
        for (int d = 0; d < rank; d++)
        {
            int size = outShape[d];
            var map = maps[d] = new int[size];
            for (int o = 0; o < size; o++)
            {
                long i = (long)o - padBegin[d];
                int n = shape[d];
                if (i >= 0 && i < n) { map[o] = (int)i; continue; }
                map[o] = mode switch
                {
                    PadMode.Constant => -1,
                    PadMode.Edge => i < 0 ? 0 : n - 1,
                    _ => Reflect(i, n),
                };
            }
        }
        var strides = Shapes.ContiguousStrides(shape);
        var pos = new int[rank];
        for (long e = 0; e < total; e++)
        {
            long src = 0;
            for (int d = 0; d < rank; d++)
            {
                int s = maps[d][pos[d]];
                if (s < 0) { src = -1; break; }
                src += (long)s * strides[d];
            }
            index[e] = (int)src;
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++pos[d] < outShape[d]) break;
                pos[d] = 0;
            }
        }
        return index;
    }

    private static int Reflect(long i, int n)
    {
        if (n == 1) return 0;
        long period = 2L * (n - 1);
        long m = ((i % period) + period) % period;
        return (int)(m < n ? m : period - m);
    }

    /// <summary>
    /// Pads (or, with negative pads, crops) every axis of <paramref name="x"/>: constant <paramref name="value"/>,
    /// reflection or edge replication. The gradient of each output element goes back to the element it copies.
    /// </summary>
    public static Tensor Pad(Tensor x, int[] padBegin, int[] padEnd, PadMode mode, float value = 0f)
    {
        var index = PadSourceIndex(x.Shape, padBegin, padEnd, mode, out var outShape);
        var xc = Kernels.Contiguous(x);
        var y = Tensor.Empty(outShape);
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        for (int e = 0; e < index.Length; e++) ya[e] = index[e] < 0 ? value : xa[xo + index[e]];
        if (Tape.Needs(x))
            Tape.Record("Pad", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var buf = Tape.GradBuffer(x)!;
                float[] ga = gc.Data, ba = buf.Data;
                int go = gc.Offset, bo = buf.Offset;
                for (int e = 0; e < index.Length; e++)
                    if (index[e] >= 0) ba[bo + index[e]] += ga[go + e];
            });
        return y;
    }
}
