using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Managed single-precision GEMM in the GotoBLAS/BLIS structure: C is computed in blocks of KC (depth) × NC (columns);
/// each depth block of op(B) is packed once into column panels of NR, each row block of op(A) (MC rows, one task per
/// block) is packed into row panels of MR, and a register-tiled micro-kernel computes MR×NR tiles of C with fused
/// multiply-adds. The tile is 8×32 with 512-bit vectors (16 zmm accumulators), 6×16 with 256-bit vectors (AVX2), or
/// 4×8 with 128-bit vectors, which every CPU .NET runs on accelerates (SSE, NEON); <see cref="Gemm.Backend"/> picks it.
/// Edge tiles are computed on zero-padded panels into a scratch tile. Every element of C is produced by one task with
/// a fixed summation order, so results are deterministic for any thread count.
/// </summary>
internal static unsafe class ManagedGemm
{
    public const int KC = 256, MC = 192, NC = 2048;

    /// <summary>Micro-tile of the kernel in use.</summary>
    public static (int MR, int NR) Tile => TileOf(Gemm.Effective);

    internal static (int MR, int NR) TileOf(GemmBackend kernel) => kernel switch
    {
        GemmBackend.Avx512 => (8, 32),
        GemmBackend.Avx2 => (6, 16),
        _ => (4, 8),
    };

    [ThreadStatic] private static float* t_apack;
    [ThreadStatic] private static nuint t_apackLen;
    [ThreadStatic] private static float* t_bpack;
    [ThreadStatic] private static nuint t_bpackLen;

    private static float* Buffer(ref float* p, ref nuint len, nuint need)
    {
        if (len < need)
        {
            if (p != null) NativeMemory.AlignedFree(p);
            p = (float*)NativeMemory.AlignedAlloc(need * sizeof(float), 64);
            len = need;
        }
        return p;
    }

    /// <summary>C = beta·C over m rows of n (beta = 0 writes zeros without reading C).</summary>
    public static void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        if (beta == 1) return;
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (nint)i * ldc, n);
            if (beta == 0) row.Clear();
            else System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }

    /// <summary>C[m×n] = alpha·op(A)·op(B) + beta·C (see <see cref="Gemm.Sgemm(bool, bool, int, int, int, float, float*, int, float*, int, float, float*, int)"/>).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda,
        float* b, int ldb, float beta, float* c, int ldc, int threads)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        var kernel = Gemm.Effective;
        var (mr, nr) = TileOf(kernel);
        if (2.0 * m * n * k < 2e6) threads = 1;
        int kcMax = Math.Min(KC, k);
        int ncMax = Math.Min(NC, n);
        float* bp = Buffer(ref t_bpack, ref t_bpackLen, (nuint)(kcMax * RoundUp(ncMax, nr)));
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            int panels = (nc + nr - 1) / nr;
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                float betaEff = pc == 0 ? beta : 1f;

                if (threads > 1 && panels >= 2 * threads && (long)kc * nc >= 1 << 16)
                {
                    nint bpn = (nint)bp, bn = (nint)b;
                    int t0 = threads;
                    Parallel.For(0, t0, new ParallelOptions { MaxDegreeOfParallelism = t0 }, t =>
                        PackB(transB, (float*)bn, ldb, pc, jc, kc, nc, panels * t / t0, panels * (t + 1) / t0, nr, (float*)bpn));
                }
                else PackB(transB, b, ldb, pc, jc, kc, nc, 0, panels, nr, bp);

                // Row blocks: a multiple of the thread count, as even as the MR granularity allows.
                int mBlocks = (m + MC - 1) / MC;
                if (threads > 1) mBlocks = RoundUp(Math.Max(mBlocks, threads), threads);
                int mc = RoundUp((m + mBlocks - 1) / mBlocks, mr);
                mBlocks = (m + mc - 1) / mc;
                int nSplit = 1;
                if (threads > 1 && mBlocks < threads) nSplit = Math.Min(panels, (threads + mBlocks - 1) / mBlocks);
                int tasks = mBlocks * nSplit;
                var job = new Job(transA, m, nc, kc, alpha, (nint)a, lda, pc, (nint)bp, betaEff, (nint)c, ldc, jc, mc, nSplit, panels, mr, nr, kernel);
                if (tasks == 1 || threads == 1)
                {
                    for (int t = 0; t < tasks; t++) RunBlock(job, t);
                }
                else
                {
                    Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => RunBlock(job, t));
                }
            }
        }
    }

    private readonly record struct Job(bool TransA, int M, int Nc, int Kc, float Alpha, nint A, int Lda, int Pc, nint Bp,
        float Beta, nint C, int Ldc, int Jc, int Mc, int NSplit, int Panels, int MR, int NR, GemmBackend Kernel);

    private static void RunBlock(in Job job, int task)
    {
        int mr = job.MR, nr = job.NR, kc = job.Kc;
        int ib = task / job.NSplit, js = task % job.NSplit;
        int i0 = ib * job.Mc, mcur = Math.Min(job.Mc, job.M - i0);
        if (mcur <= 0) return;
        int p0 = job.Panels * js / job.NSplit, p1 = job.Panels * (js + 1) / job.NSplit;
        int mPanels = (mcur + mr - 1) / mr;
        float* ap = Buffer(ref t_apack, ref t_apackLen, (nuint)(mPanels * mr * kc));
        PackA(job.TransA, (float*)job.A, job.Lda, i0, job.Pc, mcur, kc, mr, ap);
        float* tile = stackalloc float[8 * 32];
        float* bp = (float*)job.Bp, c = (float*)job.C;
        for (int p = p0; p < p1; p++)
        {
            int j = p * nr;
            int ncur = Math.Min(nr, job.Nc - j);
            float* bpanel = bp + (nint)p * kc * nr;
            for (int q = 0; q < mPanels; q++)
            {
                int i = q * mr;
                int rows = Math.Min(mr, mcur - i);
                float* apanel = ap + (nint)q * mr * kc;
                float* cptr = c + (nint)(i0 + i) * job.Ldc + job.Jc + j;
                if (rows == mr && ncur == nr)
                {
                    MicroKernel(job.Kernel, kc, apanel, bpanel, cptr, job.Ldc, job.Alpha, job.Beta);
                }
                else
                {
                    MicroKernel(job.Kernel, kc, apanel, bpanel, tile, nr, 1f, 0f);
                    for (int r = 0; r < rows; r++)
                    {
                        float* crow = cptr + (nint)r * job.Ldc;
                        float* trow = tile + r * nr;
                        // Same rounding as the vector store (α·acc, or fma(acc, α, β·c)), so a row's values do not
                        // depend on whether it lands in a full or an edge tile (i.e. on the thread count).
                        if (job.Beta == 0) for (int x = 0; x < ncur; x++) crow[x] = job.Alpha * trow[x];
                        else for (int x = 0; x < ncur; x++) crow[x] = MathF.FusedMultiplyAdd(trow[x], job.Alpha, crow[x] * job.Beta);
                    }
                }
            }
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MicroKernel(GemmBackend kernel, int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        if (kernel == GemmBackend.Avx512) Kernel8x32(kc, a, b, c, ldc, alpha, beta);
        else if (kernel == GemmBackend.Avx2) Kernel6x16(kc, a, b, c, ldc, alpha, beta);
        else Kernel4x8(kc, a, b, c, ldc, alpha, beta);
    }

    // Packed B: panel p (nr columns of op(B)) holds kc rows of nr floats.
    private static void PackB(bool transB, float* b, int ldb, int pc, int jc, int kc, int nc, int p0, int p1, int nr, float* bp)
    {
        for (int p = p0; p < p1; p++)
        {
            int j0 = jc + p * nr;
            int w = Math.Min(nr, nc - p * nr);
            float* dst = bp + (nint)p * kc * nr;
            if (!transB)
            {
                float* src = b + (nint)pc * ldb + j0;
                if (w == nr && nr == 32 && Vector512.IsHardwareAccelerated)
                {
                    for (int kk = 0; kk < kc; kk++, src += ldb, dst += 32)
                    {
                        Vector512.Store(Vector512.Load(src), dst);
                        Vector512.Store(Vector512.Load(src + 16), dst + 16);
                    }
                }
                else if (w == nr && nr == 16)
                {
                    for (int kk = 0; kk < kc; kk++, src += ldb, dst += 16)
                    {
                        Vector256.Store(Vector256.Load(src), dst);
                        Vector256.Store(Vector256.Load(src + 8), dst + 8);
                    }
                }
                else
                {
                    for (int kk = 0; kk < kc; kk++, src += ldb, dst += nr)
                    {
                        int x = 0;
                        for (; x < w; x++) dst[x] = src[x];
                        for (; x < nr; x++) dst[x] = 0;
                    }
                }
            }
            else
            {
                // op(B)[k, j] = b[j·ldb + k]: read along k, write with stride nr.
                for (int x = 0; x < w; x++)
                {
                    float* src = b + (nint)(j0 + x) * ldb + pc;
                    float* d = dst + x;
                    for (int kk = 0; kk < kc; kk++) d[kk * nr] = src[kk];
                }
                for (int x = w; x < nr; x++)
                    for (int kk = 0; kk < kc; kk++) dst[kk * nr + x] = 0;
            }
        }
    }

    // Packed A: panel q (mr rows of op(A)) holds kc columns of mr floats.
    private static void PackA(bool transA, float* a, int lda, int i0, int pc, int mcur, int kc, int mr, float* ap)
    {
        for (int i = 0; i < mcur; i += mr)
        {
            int h = Math.Min(mr, mcur - i);
            float* dst = ap + (nint)i * kc;
            if (!transA)
            {
                for (int r = 0; r < h; r++)
                {
                    float* src = a + (nint)(i0 + i + r) * lda + pc;
                    float* d = dst + r;
                    for (int kk = 0; kk < kc; kk++) d[kk * mr] = src[kk];
                }
                for (int r = h; r < mr; r++)
                    for (int kk = 0; kk < kc; kk++) dst[kk * mr + r] = 0;
            }
            else
            {
                // op(A)[i, k] = a[k·lda + i]: contiguous runs of mr.
                for (int kk = 0; kk < kc; kk++)
                {
                    float* src = a + (nint)(pc + kk) * lda + i0 + i;
                    float* d = dst + kk * mr;
                    int r = 0;
                    for (; r < h; r++) d[r] = src[r];
                    for (; r < mr; r++) d[r] = 0;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x32(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a += 8; b += 32;
        }
        Store512(c, c00, c01, alpha, beta); c += ldc;
        Store512(c, c10, c11, alpha, beta); c += ldc;
        Store512(c, c20, c21, alpha, beta); c += ldc;
        Store512(c, c30, c31, alpha, beta); c += ldc;
        Store512(c, c40, c41, alpha, beta); c += ldc;
        Store512(c, c50, c51, alpha, beta); c += ldc;
        Store512(c, c60, c61, alpha, beta); c += ldc;
        Store512(c, c70, c71, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> v0, Vector512<float> v1, float alpha, float beta)
    {
        var va = Vector512.Create(alpha);
        if (beta == 0)
        {
            Vector512.Store(v0 * va, c);
            Vector512.Store(v1 * va, c + 16);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Vector512.Store(Vector512.FusedMultiplyAdd(v0, va, Vector512.Load(c) * vb), c);
            Vector512.Store(Vector512.FusedMultiplyAdd(v1, va, Vector512.Load(c + 16) * vb), c + 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
            a += 6; b += 16;
        }
        Store256(c, c00, c01, alpha, beta); c += ldc;
        Store256(c, c10, c11, alpha, beta); c += ldc;
        Store256(c, c20, c21, alpha, beta); c += ldc;
        Store256(c, c30, c31, alpha, beta); c += ldc;
        Store256(c, c40, c41, alpha, beta); c += ldc;
        Store256(c, c50, c51, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> v0, Vector256<float> v1, float alpha, float beta)
    {
        var va = Vector256.Create(alpha);
        if (beta == 0)
        {
            Vector256.Store(v0 * va, c);
            Vector256.Store(v1 * va, c + 8);
        }
        else
        {
            var vb = Vector256.Create(beta);
            Vector256.Store(Vector256.FusedMultiplyAdd(v0, va, Vector256.Load(c) * vb), c);
            Vector256.Store(Vector256.FusedMultiplyAdd(v1, va, Vector256.Load(c + 8) * vb), c + 8);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x8(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var x = Vector128.Create(a[0]); c00 = Vector128.FusedMultiplyAdd(x, b0, c00); c01 = Vector128.FusedMultiplyAdd(x, b1, c01);
            x = Vector128.Create(a[1]); c10 = Vector128.FusedMultiplyAdd(x, b0, c10); c11 = Vector128.FusedMultiplyAdd(x, b1, c11);
            x = Vector128.Create(a[2]); c20 = Vector128.FusedMultiplyAdd(x, b0, c20); c21 = Vector128.FusedMultiplyAdd(x, b1, c21);
            x = Vector128.Create(a[3]); c30 = Vector128.FusedMultiplyAdd(x, b0, c30); c31 = Vector128.FusedMultiplyAdd(x, b1, c31);
            a += 4; b += 8;
        }
        Store128(c, c00, c01, alpha, beta); c += ldc;
        Store128(c, c10, c11, alpha, beta); c += ldc;
        Store128(c, c20, c21, alpha, beta); c += ldc;
        Store128(c, c30, c31, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store128(float* c, Vector128<float> v0, Vector128<float> v1, float alpha, float beta)
    {
        var va = Vector128.Create(alpha);
        if (beta == 0)
        {
            Vector128.Store(v0 * va, c);
            Vector128.Store(v1 * va, c + 4);
        }
        else
        {
            var vb = Vector128.Create(beta);
            Vector128.Store(Vector128.FusedMultiplyAdd(v0, va, Vector128.Load(c) * vb), c);
            Vector128.Store(Vector128.FusedMultiplyAdd(v1, va, Vector128.Load(c + 4) * vb), c + 4);
        }
    }
}
