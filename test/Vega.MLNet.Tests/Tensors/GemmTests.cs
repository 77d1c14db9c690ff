using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>
/// GEMM kernels against each other and against a float64 reference. Agreement is measured per element relative to
/// the magnitude of the dot product, |C₁ − C₂| ≤ 1e-5 · Σₖ|a||b| (+ |β·C₀|), which is the scale of float32 rounding
/// in a dot product of that size. Switches the process-wide backend, so it runs alone.
/// </summary>
[Collection(nameof(PoolSensitive))]
public sealed class GemmTests
{
    public static TheoryData<int, int, int, bool, bool> Shapes_() => new()
    {
        { 1, 1, 1, false, false },
        { 7, 13, 5, false, false },
        { 7, 13, 5, true, false },
        { 7, 13, 5, false, true },
        { 7, 13, 5, true, true },
        { 64, 64, 64, false, false },
        { 65, 33, 257, false, true },
        { 300, 129, 517, true, false },
        { 191, 300, 260, true, true },
        { 1, 700, 300, false, true },
        { 513, 1, 77, false, false },
        { 77, 77, 64, false, true },
        { 200, 300, 600, false, false },
    };

    private static float[] Rand(ulong seed, int n)
    {
        var v = new float[n];
        new Rng(seed).FillUniform(v, -1, 1);
        return v;
    }

    /// <summary>Runs C = alpha·op(A)·op(B) + beta·C with operands embedded in larger arrays (ld > width, offsets).</summary>
    private static float[] Run(GemmBackend backend, bool transA, bool transB, int m, int n, int k, float alpha, float beta,
        out double[] magnitude)
    {
        int ra = transA ? k : m, ca = transA ? m : k, rb = transB ? n : k, cb = transB ? k : n;
        int lda = ca + 3, ldb = cb + 5, ldc = n + 2;
        var a = Rand(11, 7 + ra * lda);
        var b = Rand(12, 3 + rb * ldb);
        var c = Rand(13, 1 + m * ldc);
        var c0 = (float[])c.Clone();
        var saved = Gemm.Backend;
        try
        {
            Gemm.Backend = backend;
            Gemm.Sgemm(transA, transB, m, n, k, alpha, a, 7, lda, b, 3, ldb, beta, c, 1, ldc);
        }
        finally
        {
            Gemm.Backend = saved;
        }
        magnitude = new double[m * n];
        var result = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double mag = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[7 + p * lda + i] : a[7 + i * lda + p];
                    double bv = transB ? b[3 + j * ldb + p] : b[3 + p * ldb + j];
                    mag += Math.Abs(av * bv);
                }
                magnitude[i * n + j] = Math.Abs(alpha) * mag + Math.Abs(beta * c0[1 + i * ldc + j]);
                result[i * n + j] = c[1 + i * ldc + j];
            }
        // Padding around C must be untouched.
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc && 1 + i * ldc + j < c.Length; j++)
                Assert.Equal(c0[1 + i * ldc + j], c[1 + i * ldc + j]);
        return result;
    }

    private static double[] Reference(bool transA, bool transB, int m, int n, int k, float alpha, float beta)
    {
        int ra = transA ? k : m, ca = transA ? m : k, rb = transB ? n : k, cb = transB ? k : n;
        int lda = ca + 3, ldb = cb + 5, ldc = n + 2;
        var a = Rand(11, 7 + ra * lda);
        var b = Rand(12, 3 + rb * ldb);
        var c = Rand(13, 1 + m * ldc);
        var r = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(transA ? a[7 + p * lda + i] : a[7 + i * lda + p]) * (transB ? b[3 + j * ldb + p] : b[3 + p * ldb + j]);
                r[i * n + j] = alpha * s + beta * c[1 + i * ldc + j];
            }
        return r;
    }

    private static void AssertAgree(ReadOnlySpan<float> x, ReadOnlySpan<double> y, double[] magnitude, string what)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double tol = 1e-5 * magnitude[i] + 1e-30;
            Assert.True(Math.Abs(x[i] - y[i]) <= tol, $"{what}: element {i}: {x[i]:G9} vs {y[i]:G9} (tolerance {tol:G3})");
        }
    }

    /// <summary>Every kernel, forced, whatever the CPU accelerates (a kernel the CPU lacks is emulated: slow but exact).</summary>
    private static readonly GemmBackend[] Kernels = [GemmBackend.Avx512, GemmBackend.Avx2, GemmBackend.Portable];

    [Theory]
    [MemberData(nameof(Shapes_))]
    public void EveryKernelAgreesWithFloat64(int m, int n, int k, bool transA, bool transB)
    {
        foreach (var (alpha, beta) in new[] { (1f, 0f), (0.5f, 1f), (-2f, 0.25f) })
        {
            var reference = Reference(transA, transB, m, n, k, alpha, beta);
            string what = $"{m}×{n}×{k} tA={transA} tB={transB} α={alpha} β={beta}";
            foreach (var kernel in Kernels)
            {
                var result = Run(kernel, transA, transB, m, n, k, alpha, beta, out var mag);
                AssertAgree(result, reference, mag, $"{kernel} vs float64 " + what);
            }
        }
    }

    [Fact]
    public void BetaZeroIgnoresNaNsInTheOutput()
    {
        foreach (var backend in Kernels)
        {
            var saved = Gemm.Backend;
            try
            {
                Gemm.Backend = backend;
                var a = Rand(1, 6);
                var b = Rand(2, 6);
                var c = Enumerable.Repeat(float.NaN, 4).ToArray();
                Gemm.Sgemm(false, false, 2, 2, 3, 1f, a, 0, 3, b, 0, 2, 0f, c, 0, 2);
                Assert.All(c, v => Assert.True(float.IsFinite(v), $"{backend}: NaN leaked through beta = 0"));
            }
            finally { Gemm.Backend = saved; }
        }
    }

    [Theory]
    [InlineData("Avx512")]
    [InlineData("Avx2")]
    [InlineData("Portable")]
    public void ResultsDoNotDependOnTheThreadCount(string kernelName)
    {
        var kernel = Enum.Parse<GemmBackend>(kernelName);
        int m = 300, n = 257, k = 600;
        var a = Rand(3, m * k);
        var b = Rand(4, k * n);
        var c1 = new float[m * n];
        var c2 = new float[m * n];
        int saved = Parallelism.ThreadCount;
        var savedBackend = Gemm.Backend;
        try
        {
            Gemm.Backend = kernel;
            Rand(5, m * n).CopyTo(c1, 0);
            Rand(5, m * n).CopyTo(c2, 0);
            Parallelism.ThreadCount = 1;
            Gemm.Sgemm(false, true, m, n, k, 0.5f, a, 0, k, b, 0, k, 0.75f, c1, 0, n);
            Parallelism.ThreadCount = 2;
            Gemm.Sgemm(false, true, m, n, k, 0.5f, a, 0, k, b, 0, k, 0.75f, c2, 0, n);
        }
        finally
        {
            Parallelism.ThreadCount = saved;
            Gemm.Backend = savedBackend;
        }
        Assert.Equal(c1, c2);
    }

    [Fact]
    public void AutoPicksTheWidestAcceleratedKernelAndTheEnvironmentCanForceOne()
    {
        var saved = Gemm.Backend;
        try
        {
            Gemm.Backend = GemmBackend.Auto;
            var expected = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? GemmBackend.Avx512
                : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported ? GemmBackend.Avx2
                : GemmBackend.Portable;
            Assert.Equal(expected, Gemm.Effective);
            Assert.Equal(ManagedGemm.TileOf(expected), ManagedGemm.Tile);
            foreach (var k in Kernels)
            {
                Gemm.Backend = k;
                Assert.Equal(k, Gemm.Effective);
            }
        }
        finally { Gemm.Backend = saved; }
    }

    [Fact]
    public void ImageParallelConvolutionAndBatchParallelMatMulAgreeAcrossBackends()
    {
        // Small per-image GEMMs run on several threads at once (both backends are called concurrently).
        var x = new float[64 * 3 * 28 * 28];
        var w = new float[16 * 3 * 3 * 3];
        var q = new float[80 * 77 * 64];
        new Rng(1).FillUniform(x, -1, 1);
        new Rng(2).FillUniform(w, -1, 1);
        new Rng(3).FillUniform(q, -1, 1);
        var results = new List<(float[] Conv, float[] Attn)>();
        foreach (var backend in Kernels)
        {
            var saved = Gemm.Backend;
            try
            {
                Gemm.Backend = backend;
                using var scope = new TensorScope();
                var y = Ops.Conv2d(Tensor.FromArray(x, 64, 3, 28, 28), Tensor.FromArray(w, 16, 3, 3, 3), null, 1, 1).ToArray();
                var qt = Tensor.FromArray(q, 80, 77, 64);
                var s = Ops.MatMul(qt, Ops.SwapAxes(qt, -1, -2)).ToArray();
                results.Add((y, s));
            }
            finally { Gemm.Backend = saved; }
        }
        for (int i = 1; i < results.Count; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(results[0].Conv, results[i].Conv) < 1e-5 * 27);
            Assert.True(Fixtures.MaxAbsDiff(results[0].Attn, results[i].Attn) < 1e-5 * 64);
        }
    }

    [Fact]
    public void BadArgumentsAreReported()
    {
        var a = new float[6];
        var e = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 3, 1f, a, 0, 3, a, 0, 2, 0f, new float[3], 0, 2));
        Assert.Contains("operand C", e.Message);
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 3, 1f, a, 0, 2, a, 0, 2, 0f, new float[4], 0, 2));
    }
}
