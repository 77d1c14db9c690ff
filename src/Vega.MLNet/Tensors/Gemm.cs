namespace Vega.MLNet.Tensors;

/// <summary>Which matrix-multiply kernel <see cref="Gemm"/> uses.</summary>
internal enum GemmBackend
{
    /// <summary>
    /// The managed kernel on CPUs with AVX-512 (Debian's OpenBLAS 0.3.21 runs its AVX2 Haswell kernels there and was
    /// measured slower: 159 vs 280 GFLOP/s at 4096×512×2048, docs/benchmarks.md); otherwise OpenBLAS when
    /// <c>libopenblas.so.0</c> loads; otherwise the managed kernel.
    /// </summary>
    Auto,

    /// <summary>Always OpenBLAS (throws when it is not installed).</summary>
    OpenBlas,

    /// <summary>Always the managed blocked AVX-512/AVX2 kernel.</summary>
    Managed,
}

/// <summary>
/// Single-precision GEMM, C = alpha·op(A)·op(B) + beta·C on row-major matrices, dispatched to OpenBLAS or to
/// <see cref="ManagedGemm"/>. With beta = 0 the previous contents of C are ignored (they may be NaN).
/// The backend is process-wide: <see cref="Backend"/>, initialised from the environment variable <c>VEGA_GEMM</c>
/// (<c>auto</c>, <c>openblas</c>, <c>managed</c>).
/// </summary>
internal static unsafe class Gemm
{
    public static GemmBackend Backend { get; set; } = FromEnvironment();

    private static GemmBackend FromEnvironment() =>
        Environment.GetEnvironmentVariable("VEGA_GEMM")?.Trim().ToLowerInvariant() switch
        {
            "openblas" => GemmBackend.OpenBlas,
            "managed" => GemmBackend.Managed,
            _ => GemmBackend.Auto,
        };

    /// <summary>The kernel that runs now (Auto resolved).</summary>
    public static GemmBackend Effective => Backend switch
    {
        GemmBackend.Auto => System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated || !OpenBlas.IsAvailable ? GemmBackend.Managed : GemmBackend.OpenBlas,
        _ => Backend,
    };

    /// <summary>C[m×n] = alpha·op(A)[m×k]·op(B)[k×n] + beta·C. op(X) = Xᵀ when the flag is set; ld* are row strides.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"GEMM sizes must be non-negative (m={m}, n={n}, k={k}).");
        if (lda < Math.Max(1, transA ? m : k) || ldb < Math.Max(1, transB ? k : n) || ldc < Math.Max(1, n))
            throw new ArgumentException($"GEMM leading dimensions too small: lda={lda}, ldb={ldb}, ldc={ldc} for m={m}, n={n}, k={k}, transA={transA}, transB={transB}.");
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0)
        {
            ManagedGemm.ScaleC(m, n, beta, c, ldc);
            return;
        }
        if (Effective == GemmBackend.OpenBlas)
        {
            if (beta == 0) ManagedGemm.ScaleC(m, n, 0f, c, ldc); // never let stale NaNs leak through 0·NaN
            OpenBlas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        }
        else ManagedGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Parallelism.ThreadCount);
    }

    /// <summary>Array form with element offsets (pins the arrays for the call).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float[] a, int aOffset, int lda,
        float[] b, int bOffset, int ldb, float beta, float[] c, int cOffset, int ldc)
    {
        CheckExtent(a, aOffset, transA ? k : m, lda, transA ? m : k, "A");
        CheckExtent(b, bOffset, transB ? n : k, ldb, transB ? k : n, "B");
        CheckExtent(c, cOffset, m, ldc, n, "C");
        fixed (float* pa = a, pb = b, pc = c)
            Sgemm(transA, transB, m, n, k, alpha, pa + aOffset, lda, pb + bOffset, ldb, beta, pc + cOffset, ldc);
    }

    private static void CheckExtent(float[] x, int offset, int rows, int ld, int cols, string name)
    {
        if (rows == 0 || cols == 0) return;
        long end = offset + (long)(rows - 1) * ld + cols;
        if (offset < 0 || end > x.Length)
            throw new ArgumentException($"GEMM operand {name}: {rows}×{cols} with row stride {ld} at offset {offset} needs {end} elements, the array has {x.Length}.");
    }
}
