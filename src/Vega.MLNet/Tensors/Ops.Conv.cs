namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>
    /// 2-D convolution (cross-correlation, groups 1, dilation 1): x [N, C, H, W], weight [O, C, KH, KW], bias [O] or
    /// null → [N, O, Ho, Wo] with Ho = (H + 2·padH − KH)/strideH + 1. Computed per image as im2col + GEMM
    /// (weight [O, C·KH·KW] · columns [C·KH·KW, Ho·Wo]); small images run in parallel, one GEMM each.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0) =>
        Conv2d(x, weight, bias, stride, stride, padding, padding);

    /// <inheritdoc cref="Conv2d(Tensor, Tensor, Tensor?, int, int)"/>
    public static unsafe Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int strideH, int strideW, int padH, int padW)
    {
        if (x.Rank != 4) throw new ArgumentException($"Conv2d expects x [N, C, H, W]; got {x.ShapeString}.", nameof(x));
        if (weight.Rank != 4) throw new ArgumentException($"Conv2d expects weight [O, C, KH, KW]; got {weight.ShapeString}.", nameof(weight));
        if (strideH < 1 || strideW < 1 || padH < 0 || padW < 0) throw new ArgumentException($"Conv2d: strides must be ≥ 1 and paddings ≥ 0 (got {strideH}, {strideW}, {padH}, {padW}).");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        int o = weight.Shape[0], kh = weight.Shape[2], kw = weight.Shape[3];
        if (weight.Shape[1] != c) throw new ArgumentException($"Conv2d: weight {weight.ShapeString} expects {weight.Shape[1]} input channels, x {x.ShapeString} has {c}.", nameof(weight));
        if (bias is not null && (bias.Rank != 1 || bias.Shape[0] != o)) throw new ArgumentException($"Conv2d: bias must be [{o}]; got {bias.ShapeString}.", nameof(bias));
        int ho = (h + 2 * padH - kh) / strideH + 1, wo = (w + 2 * padW - kw) / strideW + 1;
        if (h + 2 * padH < kh || w + 2 * padW < kw || ho <= 0 || wo <= 0)
            throw new ArgumentException($"Conv2d: kernel {kh}×{kw} does not fit the padded input {h + 2 * padH}×{w + 2 * padW}.", nameof(weight));
        var geo = new ConvGeometry(c, h, w, kh, kw, strideH, strideW, padH, padW, ho, wo);
        int ckk = c * kh * kw, hw = ho * wo;
        var xc = Kernels.Contiguous(x);
        var wc = Kernels.Contiguous(weight);
        var y = Tensor.Empty(n, o, ho, wo);
        float[] xa = xc.Data, wa = wc.Data, ya = y.Data;
        int xo = xc.Offset, wOff = wc.Offset;
        double flopsPerImage = 2.0 * o * ckk * hw;
        int chunks = flopsPerImage < 2e6 ? Parallelism.Chunks(n, (long)flopsPerImage / 4) : 1;
        RunChunks(n, chunks, (chunk, s, e) =>
        {
            var col = TensorPool.Rent(ckk * hw);
            try
            {
                for (int img = s; img < e; img++)
                {
                    Im2Col(xa, xo + img * c * h * w, geo, col);
                    Tensors.Gemm.Sgemm(false, false, o, hw, ckk, 1f, wa, wOff, ckk, col, 0, hw, 0f, ya, img * o * hw, hw);
                }
            }
            finally { TensorPool.Return(col); }
        });
        if (bias is not null)
        {
            var bc = Kernels.Contiguous(bias);
            var yr = Reshape(y.Detach(), n, o, hw);
            Kernels.Binary(BinaryOp.Add, yr, bc.View(bc.Offset, [o, 1], [1, 0]), yr);
        }
        var inputs = bias is null ? new[] { x, weight } : new[] { x, weight, bias };
        if (Tape.Needs(inputs))
            Tape.Record("Conv2d", y, inputs, g =>
            {
                var gc = Kernels.Contiguous(g);
                float[] ga = gc.Data;
                int go = gc.Offset;
                var dx = x.RequiresGrad ? Tape.GradBuffer(x) : null;
                bool needW = weight.RequiresGrad;
                var partialW = needW ? new float[chunks][] : null;
                RunChunks(n, chunks, (chunk, s, e) =>
                {
                    var col = TensorPool.Rent(ckk * hw);
                    float[]? dw = needW ? partialW![chunk] = new float[o * ckk] : null;
                    try
                    {
                        for (int img = s; img < e; img++)
                        {
                            int gOff = go + img * o * hw;
                            if (dw is not null)
                            {
                                Im2Col(xa, xo + img * c * h * w, geo, col);
                                // dW += dY[img] (O×HW) · colᵀ (HW×CKK)
                                Tensors.Gemm.Sgemm(false, true, o, ckk, hw, 1f, ga, gOff, hw, col, 0, hw, 1f, dw, 0, ckk);
                            }
                            if (dx is not null)
                            {
                                // dcol = Wᵀ (CKK×O) · dY[img] (O×HW), then scatter-add into dx[img].
                                Tensors.Gemm.Sgemm(true, false, ckk, hw, o, 1f, wa, wOff, ckk, ga, gOff, hw, 0f, col, 0, hw);
                                Col2ImAdd(col, geo, dx.Data, dx.Offset + img * c * h * w);
                            }
                        }
                    }
                    finally { TensorPool.Return(col); }
                });
                if (needW)
                {
                    var dW = Tensor.Zeros(weight.Shape);
                    var span = dW.Span;
                    for (int k = 0; k < chunks; k++)
                        if (partialW![k] is { } p) System.Numerics.Tensors.TensorPrimitives.Add(span, p, span);
                    Tape.Accumulate(weight, dW);
                }
                if (bias is { RequiresGrad: true })
                    Tape.Accumulate(bias, Reshape(SumToShape(Reshape(gc, n, o, hw), [o, 1]), o));
            });
        return y;
    }

    private readonly record struct ConvGeometry(int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int HO, int WO);

    private static void RunChunks(int count, int chunks, Action<int, int, int> body)
    {
        if (chunks <= 1)
        {
            if (count > 0) body(0, 0, count);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, k =>
        {
            int s = (int)((long)count * k / chunks), e = (int)((long)count * (k + 1) / chunks);
            if (e > s) body(k, s, e);
        });
    }

    // col[(ci·KH + i)·KW + j, oh·WO + ow] = x[ci, oh·SH − PH + i, ow·SW − PW + j] (0 outside).
    private static void Im2Col(float[] x, int xOff, in ConvGeometry g, float[] col)
    {
        int hw = g.HO * g.WO;
        for (int ci = 0; ci < g.C; ci++)
            for (int i = 0; i < g.KH; i++)
                for (int j = 0; j < g.KW; j++)
                {
                    int row = (ci * g.KH + i) * g.KW + j;
                    int dst = row * hw;
                    for (int oh = 0; oh < g.HO; oh++)
                    {
                        int ih = oh * g.SH - g.PH + i;
                        int d = dst + oh * g.WO;
                        if ((uint)ih >= (uint)g.H)
                        {
                            Array.Clear(col, d, g.WO);
                            continue;
                        }
                        int src = xOff + (ci * g.H + ih) * g.W;
                        if (g.SW == 1)
                        {
                            // Contiguous run with zero borders.
                            int iw0 = -g.PW + j;
                            int lo = Math.Max(0, -iw0), hi = Math.Min(g.WO, g.W - iw0);
                            if (hi <= lo) { Array.Clear(col, d, g.WO); continue; }
                            if (lo > 0) Array.Clear(col, d, lo);
                            Array.Copy(x, src + iw0 + lo, col, d + lo, hi - lo);
                            if (hi < g.WO) Array.Clear(col, d + hi, g.WO - hi);
                        }
                        else
                        {
                            for (int ow = 0; ow < g.WO; ow++)
                            {
                                int iw = ow * g.SW - g.PW + j;
                                col[d + ow] = (uint)iw < (uint)g.W ? x[src + iw] : 0f;
                            }
                        }
                    }
                }
    }

    private static void Col2ImAdd(float[] col, in ConvGeometry g, float[] dx, int dxOff)
    {
        int hw = g.HO * g.WO;
        for (int ci = 0; ci < g.C; ci++)
            for (int i = 0; i < g.KH; i++)
                for (int j = 0; j < g.KW; j++)
                {
                    int row = (ci * g.KH + i) * g.KW + j;
                    int srcRow = row * hw;
                    for (int oh = 0; oh < g.HO; oh++)
                    {
                        int ih = oh * g.SH - g.PH + i;
                        if ((uint)ih >= (uint)g.H) continue;
                        int dst = dxOff + (ci * g.H + ih) * g.W;
                        int s = srcRow + oh * g.WO;
                        for (int ow = 0; ow < g.WO; ow++)
                        {
                            int iw = ow * g.SW - g.PW + j;
                            if ((uint)iw < (uint)g.W) dx[dst + iw] += col[s + ow];
                        }
                    }
                }
    }

    // ---------------------------------------------------------------- pooling

    /// <summary>Max pooling over <paramref name="kernel"/>×<paramref name="kernel"/> windows (x [N, C, H, W]; padding counts as −∞).</summary>
    public static Tensor MaxPool2d(Tensor x, int kernel, int stride = 0, int padding = 0)
    {
        var (n, c, h, w, ho, wo, s) = PoolGeometry(x, kernel, stride, padding, "MaxPool2d");
        var xc = Kernels.Contiguous(x);
        var y = Tensor.Empty(n, c, ho, wo);
        if ((long)h * w >= 1 << 24) throw new ArgumentException($"MaxPool2d: planes of {h}×{w} are too large (max 2^24 elements).", nameof(x));
        var argT = Tensor.Empty(n, c, ho, wo); // index of the maximum within its plane (exact in float32: planes < 2^24)
        var arg = argT.Data;
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        Parallelism.For(n * c, (long)ho * wo * kernel * kernel, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int src = xo + p * h * w, dst = p * ho * wo;
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                    {
                        float best = float.NegativeInfinity;
                        int bi = -1;
                        for (int i = 0; i < kernel; i++)
                        {
                            int ih = oh * s - padding + i;
                            if ((uint)ih >= (uint)h) continue;
                            for (int j = 0; j < kernel; j++)
                            {
                                int iw = ow * s - padding + j;
                                if ((uint)iw >= (uint)w) continue;
                                float v = xa[src + ih * w + iw];
                                if (v > best || bi < 0 || float.IsNaN(v)) { best = v; bi = ih * w + iw; if (float.IsNaN(v)) goto done; }
                            }
                        }
                    done:
                        ya[dst + oh * wo + ow] = best;
                        arg[dst + oh * wo + ow] = bi;
                    }
            }
        });
        if (Tape.Needs(x))
            Tape.Record("MaxPool2d", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var buf = Tape.GradBuffer(x)!;
                float[] ga = gc.Data, ba = buf.Data;
                int go = gc.Offset, bo = buf.Offset;
                Parallelism.For(n * c, (long)ho * wo, (p0, p1) =>
                {
                    for (int p = p0; p < p1; p++)
                        for (int q = 0; q < ho * wo; q++)
                        {
                            int idx = (int)arg[p * ho * wo + q];
                            if (idx >= 0) ba[bo + p * h * w + idx] += ga[go + p * ho * wo + q];
                        }
                });
            });
        return y;
    }

    /// <summary>Average pooling over <paramref name="kernel"/>×<paramref name="kernel"/> windows (no padding).</summary>
    public static Tensor AvgPool2d(Tensor x, int kernel, int stride = 0)
    {
        var (n, c, h, w, ho, wo, s) = PoolGeometry(x, kernel, stride, 0, "AvgPool2d");
        var xc = Kernels.Contiguous(x);
        var y = Tensor.Empty(n, c, ho, wo);
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        float inv = 1f / (kernel * kernel);
        Parallelism.For(n * c, (long)ho * wo * kernel * kernel, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                    {
                        double sum = 0;
                        for (int i = 0; i < kernel; i++)
                            for (int j = 0; j < kernel; j++)
                                sum += xa[xo + p * h * w + (oh * s + i) * w + ow * s + j];
                        ya[p * ho * wo + oh * wo + ow] = (float)(sum * inv);
                    }
        });
        if (Tape.Needs(x))
            Tape.Record("AvgPool2d", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var buf = Tape.GradBuffer(x)!;
                float[] ga = gc.Data, ba = buf.Data;
                int go = gc.Offset, bo = buf.Offset;
                Parallelism.For(n * c, (long)ho * wo * kernel * kernel, (p0, p1) =>
                {
                    for (int p = p0; p < p1; p++)
                        for (int oh = 0; oh < ho; oh++)
                            for (int ow = 0; ow < wo; ow++)
                            {
                                float v = ga[go + p * ho * wo + oh * wo + ow] * inv;
                                for (int i = 0; i < kernel; i++)
                                    for (int j = 0; j < kernel; j++)
                                        ba[bo + p * h * w + (oh * s + i) * w + ow * s + j] += v;
                            }
                });
            });
        return y;
    }

    private static (int N, int C, int H, int W, int HO, int WO, int Stride) PoolGeometry(Tensor x, int kernel, int stride, int padding, string op)
    {
        if (x.Rank != 4) throw new ArgumentException($"{op} expects x [N, C, H, W]; got {x.ShapeString}.", nameof(x));
        if (kernel < 1) throw new ArgumentOutOfRangeException(nameof(kernel), kernel, $"{op}: the kernel size must be ≥ 1.");
        int s = stride <= 0 ? kernel : stride;
        if (padding < 0 || padding * 2 > kernel) throw new ArgumentOutOfRangeException(nameof(padding), padding, $"{op}: padding must be in [0, kernel/2].");
        int h = x.Shape[2], w = x.Shape[3];
        int ho = (h + 2 * padding - kernel) / s + 1, wo = (w + 2 * padding - kernel) / s + 1;
        if (h + 2 * padding < kernel || w + 2 * padding < kernel)
            throw new ArgumentException($"{op}: kernel {kernel} is larger than the padded input {h + 2 * padding}×{w + 2 * padding}.", nameof(kernel));
        return (x.Shape[0], x.Shape[1], h, w, ho, wo, s);
    }
}
