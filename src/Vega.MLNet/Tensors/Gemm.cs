namespace Vega.MLNet.Tensors;

/// <summary>Which micro-kernel <see cref="ManagedGemm"/> uses.</summary>
internal enum GemmBackend
{
    /// <summary>The widest kernel the CPU accelerates: <see cref="Avx512"/>, else <see cref="Avx2"/> (256-bit vectors with
    /// FMA), else <see cref="Portable"/>.</summary>
    Auto,

    /// <summary>8×32 tiles of 512-bit vectors.</summary>
    Avx512,

    /// <summary>6×16 tiles of 256-bit vectors.</summary>
    Avx2,

    /// <summary>4×8 tiles of 128-bit vectors (SSE, NEON): correct and vectorised on every CPU.</summary>
    Portable,
}

/// <summary>
/// Single-precision GEMM, C = alpha·op(A)·op(B) + beta·C on row-major matrices, computed by the managed blocked kernel
/// (<see cref="ManagedGemm"/>; measured faster than Debian's OpenBLAS on this project's machines, docs/benchmarks.md).
/// With beta = 0 the previous contents of C are ignored (they may be NaN). The kernel is process-wide:
/// <see cref="Backend"/>, initialised from the environment variable <c>VEGA_GEMM</c> (<c>auto</c>, <c>avx512</c>,
/// <c>avx2</c>, <c>portable</c>); forcing a kernel the CPU does not accelerate stays correct, only slow.
/// </summary>
internal static unsafe class Gemm
{
    public static GemmBackend Backend { get; set; } = FromEnvironment();

    private static GemmBackend FromEnvironment() =>
        Environment.GetEnvironmentVariable("VEGA_GEMM")?.Trim().ToLowerInvariant() switch
        {
            "avx512" => GemmBackend.Avx512,
            "avx2" => GemmBackend.Avx2,
            "portable" => GemmBackend.Portable,
            _ => GemmBackend.Auto,
        };

    /// <summary>The kernel that runs now (Auto resolved).</summary>
    public static GemmBackend Effective => Backend switch
    {
        GemmBackend.Auto when System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated => GemmBackend.Avx512,
        GemmBackend.Auto when System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported => GemmBackend.Avx2,
        GemmBackend.Auto => GemmBackend.Portable,
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
        ManagedGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Parallelism.ThreadCount);
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
