using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Per-axis resampling coefficients of Pillow's convolution resampler (<c>precompute_coeffs</c> +
/// <c>normalize_coeffs_8bpc</c> in libImaging/Resample.c) for one (input size, output size, filter).
/// Output index i (from <see cref="First"/>, j = i − First) uses inputs <c>Start[j] .. Start[j] + Count[j] − 1</c> with the
/// 22-bit fixed-point weights <c>Weights[j·KernelSize ..]</c>. Each index is computed independently, so a table for a
/// sub-range of the outputs holds the same numbers as the full table.
/// </summary>
internal sealed class AxisKernel
{
    public const int PrecisionBits = 32 - 8 - 2;

    public AxisKernel(int inSize, int outSize, ResamplingFilter filter) : this(inSize, outSize, filter, 0, outSize) { }

    public AxisKernel(int inSize, int outSize, ResamplingFilter filter, int first, int count)
    {
        InSize = inSize;
        OutSize = outSize;
        First = first;
        double filterSupport = filter == ResamplingFilter.Bicubic ? 2.0 : 1.0;
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = filterSupport * filterScale;
        KernelSize = (int)Math.Ceiling(support) * 2 + 1;
        Start = new int[count];
        Count = new int[count];
        Weights = new int[checked(count * KernelSize)];
        Span<double> k = KernelSize <= 1024 ? stackalloc double[KernelSize] : new double[KernelSize];
        double ss = 1.0 / filterScale;
        for (int i = first; i < first + count; i++)
        {
            double center = (i + 0.5) * scale;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            double ww = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                double w = Filter(filter, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
                if (ww != 0.0) k[x] /= ww;
            var fixedWeights = Weights.AsSpan((i - first) * KernelSize, KernelSize);
            for (int x = 0; x < xmax; x++)
                fixedWeights[x] = k[x] < 0 ? (int)(-0.5 + k[x] * (1 << PrecisionBits)) : (int)(0.5 + k[x] * (1 << PrecisionBits));
            Start[i - first] = xmin;
            Count[i - first] = xmax;
        }
    }

    public int InSize { get; }
    public int OutSize { get; }
    public int First { get; }
    public int KernelSize { get; }
    public int[] Start { get; }
    public int[] Count { get; }
    public int[] Weights { get; }

    /// <summary>Approximate memory held, for the cache bound.</summary>
    public long Bytes => 4L * (Weights.Length + 2 * Start.Length);

    internal static double Filter(ResamplingFilter filter, double x)
    {
        if (x < 0.0) x = -x;
        if (filter == ResamplingFilter.Bilinear) return x < 1.0 ? 1.0 - x : 0.0;
        const double a = -0.5;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }
}

/// <summary>
/// Pillow's <c>Image.resize</c> for 8-bit RGB, exactly: a horizontal pass (only when the width changes) whose output
/// is rounded and clipped to bytes, then a vertical pass (only when the height changes). Can compute just a
/// rectangle of the resized image (e.g. the centre crop), which gives the same bytes as resizing fully and cropping,
/// because every output byte depends only on its own taps. Coefficient tables are cached per (in, out, filter).
/// Thread-safe; scratch buffers are pooled.
/// </summary>
internal static class Resampler
{
    private const long CacheLimitBytes = 64L << 20;
    private static readonly ConcurrentDictionary<(int In, int Out, ResamplingFilter Filter), AxisKernel> Cache = new();
    private static long _cacheBytes;

    /// <summary>Longest axis whose full table is cached; longer axes get a table for just the needed outputs.</summary>
    private const int CachedAxisLimit = 8192;

    /// <summary>A table covering at least outputs <paramref name="first"/> .. <paramref name="first"/>+<paramref name="count"/>−1.</summary>
    public static AxisKernel Kernel(int inSize, int outSize, ResamplingFilter filter, int first, int count) =>
        outSize <= CachedAxisLimit ? Kernel(inSize, outSize, filter) : new AxisKernel(inSize, outSize, filter, first, count);

    public static AxisKernel Kernel(int inSize, int outSize, ResamplingFilter filter)
    {
        if (Cache.TryGetValue((inSize, outSize, filter), out var kernel)) return kernel;
        kernel = new AxisKernel(inSize, outSize, filter);
        if (Interlocked.Add(ref _cacheBytes, kernel.Bytes) > CacheLimitBytes)
        {
            // Many distinct sizes: start over rather than grow without bound.
            Cache.Clear();
            Interlocked.Exchange(ref _cacheBytes, kernel.Bytes);
        }
        return Cache.GetOrAdd((inSize, outSize, filter), kernel);
    }

    /// <summary>Resizes the whole image (Pillow <c>im.resize((outW, outH), filter)</c>).</summary>
    public static void Resize(ReadOnlySpan<byte> src, int inW, int inH, Span<byte> dst, int outW, int outH, ResamplingFilter filter) =>
        ResizeRegion(src, inW, inH, outW, outH, 0, 0, outW, outH, dst, filter);

    /// <summary>
    /// Computes the rectangle <c>[left, left + width) × [top, top + height)</c> of the image resized to
    /// <paramref name="outW"/> × <paramref name="outH"/>, into <paramref name="dst"/> (HWC, <paramref name="width"/> wide).
    /// </summary>
    public static void ResizeRegion(ReadOnlySpan<byte> src, int inW, int inH, int outW, int outH,
        int left, int top, int width, int height, Span<byte> dst, ResamplingFilter filter)
    {
        if (src.Length < inW * inH * 3) throw new ArgumentException("source buffer too small", nameof(src));
        if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > outW || top + height > outH)
            throw new ArgumentOutOfRangeException(nameof(left), $"region ({left}, {top}, {width}, {height}) is outside {outW} × {outH}");
        if (dst.Length < width * height * 3) throw new ArgumentException("destination buffer too small", nameof(dst));

        bool needHorizontal = outW != inW, needVertical = outH != inH;
        AxisKernel? vk = needVertical ? Kernel(inH, outH, filter, top, height) : null;
        // Source rows the vertical pass reads.
        int firstRow = vk is null ? top : vk.Start[top - vk.First];
        int lastRow = vk is null ? top + height : vk.Start[top + height - 1 - vk.First] + vk.Count[top + height - 1 - vk.First];
        int rows = lastRow - firstRow;

        byte[]? temp = null;
        try
        {
            ReadOnlySpan<byte> plane; // rows firstRow..lastRow-1 of the horizontally resized image, columns left..left+width-1
            int stride;
            if (needHorizontal)
            {
                stride = width * 3;
                temp = ArrayPool<byte>.Shared.Rent(rows * stride);
                var hk = Kernel(inW, outW, filter, left, width);
                Horizontal(src, inW, inH, firstRow, rows, hk, left, width, temp);
                plane = temp.AsSpan(0, rows * stride);
            }
            else
            {
                stride = inW * 3;
                plane = src[(firstRow * stride + left * 3)..];
            }

            if (vk is not null)
                Vertical(plane, stride, firstRow, vk, top, height, width * 3, dst);
            else
                for (int y = 0; y < height; y++)
                    plane.Slice(y * stride, width * 3).CopyTo(dst.Slice(y * width * 3, width * 3));
        }
        finally
        {
            if (temp is not null) ArrayPool<byte>.Shared.Return(temp);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clip8(int v)
    {
        v >>= AxisKernel.PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    /// <summary>
    /// Horizontal pass over <paramref name="rows"/> source rows from <paramref name="firstRow"/>, output columns
    /// <paramref name="left"/>..<paramref name="left"/>+<paramref name="width"/>-1. With SSE4.1 one pixel's R, G, B (and a
    /// fourth, ignored byte) are accumulated together in four int32 lanes: exactly the scalar arithmetic.
    /// </summary>
    private static unsafe void Horizontal(ReadOnlySpan<byte> src, int inW, int inH, int firstRow, int rows, AxisKernel k, int left, int width, Span<byte> dst)
    {
        const int Half = 1 << (AxisKernel.PrecisionBits - 1);
        int ks = k.KernelSize;
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        fixed (int* w0 = k.Weights)
        fixed (int* starts = k.Start)
        fixed (int* counts = k.Count)
        {
            for (int r = 0; r < rows; r++)
            {
                byte* row = s0 + (long)(firstRow + r) * inW * 3;
                byte* outRow = d0 + (long)r * width * 3;
                // A 4-byte load of the image's very last pixel would read one byte past the buffer.
                bool lastRow = firstRow + r == inH - 1;
                for (int xo = 0; xo < width; xo++)
                {
                    int x = left + xo - k.First;
                    int xmin = starts[x], n = counts[x];
                    int* w = w0 + x * ks;
                    byte* p = row + xmin * 3;
                    byte* o = outRow + 3 * xo;
                    if (Sse41.IsSupported && !(lastRow && xmin + n == inW))
                    {
                        var acc = Vector128.Create(Half);
                        for (int t = 0; t < n; t++)
                            acc = Sse2.Add(acc, Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(p + 3 * t), Vector128.Create(w[t])));
                        acc = Sse2.ShiftRightArithmetic(acc, AxisKernel.PrecisionBits);
                        o[0] = Clamp255(acc.GetElement(0));
                        o[1] = Clamp255(acc.GetElement(1));
                        o[2] = Clamp255(acc.GetElement(2));
                    }
                    else
                    {
                        int a0 = Half, a1 = Half, a2 = Half;
                        for (int t = 0; t < n; t++)
                        {
                            int c = w[t];
                            a0 += p[3 * t] * c;
                            a1 += p[3 * t + 1] * c;
                            a2 += p[3 * t + 2] * c;
                        }
                        o[0] = Clip8(a0);
                        o[1] = Clip8(a1);
                        o[2] = Clip8(a2);
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clamp255(int v) => (byte)(v < 0 ? 0 : v > 255 ? 255 : v);

    /// <summary>
    /// Vertical pass: output row y (top..top+height-1) = Σ_t plane[row Start[y]+t − firstRow] · w[t]. Vectorised across
    /// the row's bytes with int32 lanes (exact, same arithmetic as the scalar form).
    /// </summary>
    private static void Vertical(ReadOnlySpan<byte> plane, int stride, int firstRow, AxisKernel k, int top, int height, int rowBytes, Span<byte> dst)
    {
        const int Half = 1 << (AxisKernel.PrecisionBits - 1);
        int ks = k.KernelSize;
        ref byte p0 = ref MemoryMarshal.GetReference(plane);
        ref byte d0 = ref MemoryMarshal.GetReference(dst);
        int vb = Vector<byte>.Count;
        for (int y = 0; y < height; y++)
        {
            int yo = top + y - k.First;
            int ymin = k.Start[yo] - firstRow, n = k.Count[yo];
            ReadOnlySpan<int> w = k.Weights.AsSpan(yo * ks, n);
            ref byte outRow = ref Unsafe.Add(ref d0, y * rowBytes);
            ref byte inRows = ref Unsafe.Add(ref p0, ymin * stride);
            int j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var half = new Vector<int>(Half);
                var max = new Vector<int>(255);
                for (; j + vb <= rowBytes; j += vb)
                {
                    Vector<int> a0 = half, a1 = half, a2 = half, a3 = half;
                    for (int t = 0; t < n; t++)
                    {
                        var bytes = Vector.LoadUnsafe(ref Unsafe.Add(ref inRows, t * stride + j));
                        Vector.Widen(bytes, out Vector<ushort> lo, out Vector<ushort> hi);
                        Vector.Widen(lo, out Vector<uint> l0, out Vector<uint> l1);
                        Vector.Widen(hi, out Vector<uint> h0, out Vector<uint> h1);
                        var c = new Vector<int>(w[t]);
                        a0 += Vector.AsVectorInt32(l0) * c;
                        a1 += Vector.AsVectorInt32(l1) * c;
                        a2 += Vector.AsVectorInt32(h0) * c;
                        a3 += Vector.AsVectorInt32(h1) * c;
                    }
                    a0 = Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a0, AxisKernel.PrecisionBits), Vector<int>.Zero), max);
                    a1 = Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a1, AxisKernel.PrecisionBits), Vector<int>.Zero), max);
                    a2 = Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a2, AxisKernel.PrecisionBits), Vector<int>.Zero), max);
                    a3 = Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a3, AxisKernel.PrecisionBits), Vector<int>.Zero), max);
                    var lo16 = Vector.Narrow(Vector.AsVectorUInt32(a0), Vector.AsVectorUInt32(a1));
                    var hi16 = Vector.Narrow(Vector.AsVectorUInt32(a2), Vector.AsVectorUInt32(a3));
                    Vector.Narrow(lo16, hi16).StoreUnsafe(ref Unsafe.Add(ref outRow, j));
                }
            }
            for (; j < rowBytes; j++)
            {
                int a = Half;
                for (int t = 0; t < n; t++) a += Unsafe.Add(ref inRows, t * stride + j) * w[t];
                Unsafe.Add(ref outRow, j) = Clip8(a);
            }
        }
    }
}
