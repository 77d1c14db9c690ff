using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>The float64 kernels against their definitions written out as plain loops.</summary>
public sealed unsafe class Float64KernelTests
{
    private static double[] Gaussian(Random rng, int n) => Enumerable.Range(0, n).Select(_ => DenseMath.Gaussian(rng)).ToArray();

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 5)]
    [InlineData(17, 33)]
    [InlineData(300, 64)]
    [InlineData(40, 130)]
    public void SymmetricRankUpdateMatchesTheSumOfOuterProductsInEveryLayout(int k, int n)
    {
        var rng = new Random(k * 100 + n);
        int ld = Float64Kernels.Padded(n);
        var x = Gaussian(rng, k * ld);
        double Expected(int i, int j) { double s = 0; for (int r = 0; r < k; r++) s += x[r * ld + i] * x[r * ld + j]; return s; }

        // Packed upper triangle, starting from non-zero content, with alpha = −0.5.
        var packed = Gaussian(rng, DenseMath.PackedLength(n));
        var before = (double[])packed.Clone();
        var packedBase = Enumerable.Range(0, n).Select(i => (long)DenseMath.PackedRowOffset(i, n) - i).ToArray();
        fixed (double* px = x, pp = packed)
        fixed (long* pb = packedBase)
            Float64Kernels.SyrkUpper(px, ld, k, n, -0.5, pp, pb);
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++)
            {
                int o = DenseMath.PackedRowOffset(i, n) + j - i;
                Assert.True(Math.Abs(before[o] - 0.5 * Expected(i, j) - packed[o]) <= 1e-12 * (1 + k), $"packed ({i},{j})");
            }

        // A square matrix: the lower triangle is never touched; the parallel split and the 256-bit kernel agree bitwise.
        var square = new double[n * n];
        var squareBase = Enumerable.Range(0, n).Select(i => (long)i * n).ToArray();
        var parallel = new double[n * n];
        var narrow = new double[n * n];
        fixed (double* px = x, ps = square, pq = parallel, pn = narrow)
        fixed (long* pb = squareBase)
        {
            Float64Kernels.SyrkUpper(px, ld, k, n, 1, ps, pb);
            Float64Kernels.SyrkUpperParallel(px, ld, k, n, 1, pq, pb, threads: 3);
            Float64Kernels.ForceVector256 = true;
            try { Float64Kernels.SyrkUpper(px, ld, k, n, 1, pn, pb); }
            finally { Float64Kernels.ForceVector256 = false; }
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j < i) { Assert.Equal(0, square[i * n + j]); continue; }
                Assert.True(Math.Abs(Expected(i, j) - square[i * n + j]) <= 1e-12 * (1 + k), $"square ({i},{j})");
            }
        Assert.Equal(square, parallel);
        Assert.Equal(square, narrow);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(9, 17, 5)]
    [InlineData(64, 100, 512)]
    public void RowsByColumnsIsTheMatrixProduct(int rows, int cols, int k)
    {
        var rng = new Random(rows + cols + k);
        int ldb = Float64Kernels.Padded(cols);
        var a = Gaussian(rng, (rows + Float64Kernels.TileRows) * k);
        var bt = Gaussian(rng, k * ldb);
        var c = new double[rows * cols];
        fixed (double* pa = a, pb = bt, pc = c)
            Float64Kernels.MultiplyRowsByColumns(pa, k, rows, pb, ldb, cols, k, pc, cols);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                double s = 0;
                for (int r = 0; r < k; r++) s += a[i * k + r] * bt[r * ldb + j];
                Assert.True(Math.Abs(s - c[i * cols + j]) <= 1e-12 * k, $"({i},{j})");
            }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(150)]
    public void BlockedCholeskyReconstructsTheMatrixAndItsLogDeterminant(int n)
    {
        var rng = new Random(n);
        var g = Gaussian(rng, n * n);
        var spd = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = i == j ? n : 0;
                for (int q = 0; q < n; q++) s += g[i * n + q] * g[j * n + q];
                spd[i * n + j] = s;
            }
        int ld = Float64Kernels.Padded(n);
        var a = new double[n * ld];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) a[i * ld + j] = spd[i * n + j];
        for (int i = 0; i < n; i++) for (int j = n; j < ld; j++) a[i * ld + j] = double.NaN; // padding is never used
        double logDet;
        fixed (double* pa = a) logDet = Float64Kernels.CholeskyUpper(pa, ld, n);
        // UᵀU = A on the upper triangle.
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++)
            {
                double s = 0;
                for (int q = 0; q <= i; q++) s += a[q * ld + i] * a[q * ld + j];
                Assert.True(Math.Abs(spd[i * n + j] - s) <= 1e-10 * n, $"({i},{j}): {spd[i * n + j]} vs {s}");
            }
        // ln det from the eigenvalues (Jacobi).
        var values = new double[n];
        Jacobi.SymmetricEigen((double[])spd.Clone(), n, values, new double[n * n]);
        Assert.Equal(values.Sum(Math.Log), logDet, 1e-9 * n);
        // Uᵀy = v by substitution, checked by multiplying back.
        var v = Gaussian(rng, n);
        var y = (double[])v.Clone();
        fixed (double* pa = a, py = y) Float64Kernels.SolveUpperTransposed(pa, ld, n, py);
        for (int i = 0; i < n; i++)
        {
            double s = 0;
            for (int q = 0; q <= i; q++) s += a[q * ld + i] * y[q];
            Assert.Equal(v[i], s, 1e-10);
        }
        // Not positive definite: NaN.
        var bad = (double[])a.Clone();
        for (int i = 0; i < n; i++) for (int j = i; j < n; j++) bad[i * ld + j] = spd[i * n + j];
        bad[(n - 1) * ld + n - 1] = -1;
        fixed (double* pb = bad) Assert.True(double.IsNaN(Float64Kernels.CholeskyUpper(pb, ld, n)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(10)]
    [InlineData(57)]
    public void TridiagonalEigenSolverAgreesWithJacobiAndDiagonalises(int n)
    {
        var rng = new Random(40 + n);
        var g = Gaussian(rng, n * n);
        var sym = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) sym[i * n + j] = g[i * n + j] + g[j * n + i];
        var values = new double[n];
        var rows = new double[n * n];
        DenseMath.SymmetricEigenTridiagonal((double[])sym.Clone(), n, values, rows);
        var jacobi = new double[n];
        Jacobi.SymmetricEigen((double[])sym.Clone(), n, jacobi, new double[n * n]);
        for (int i = 0; i < n; i++) Assert.Equal(jacobi[i], values[i], 1e-10 * (1 + Math.Abs(jacobi[i])));
        for (int k = 0; k < n; k++)
        {
            // A v = λ v and ‖v‖ = 1; eigenvectors are orthogonal.
            for (int i = 0; i < n; i++)
            {
                double av = 0;
                for (int j = 0; j < n; j++) av += sym[i * n + j] * rows[k * n + j];
                Assert.Equal(values[k] * rows[k * n + i], av, 1e-9);
            }
            for (int l = 0; l <= k; l++)
            {
                double dot = 0;
                for (int i = 0; i < n; i++) dot += rows[k * n + i] * rows[l * n + i];
                Assert.Equal(k == l ? 1 : 0, dot, 1e-10);
            }
        }
        // Eigenvalues only: the same values.
        var only = new double[n];
        DenseMath.SymmetricEigenTridiagonal((double[])sym.Clone(), n, only, default);
        Assert.Equal(values, only);
    }

    [Fact]
    public void TridiagonalEigenSolverHandlesRepeatedEigenvaluesAndRankDeficiency()
    {
        // Q diag(3, 3, 1, 0, 0) Qᵀ with a random orthogonal Q (from the solver itself on a random matrix).
        var rng = new Random(5);
        int n = 5;
        var g = Gaussian(rng, n * n);
        var s = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) s[i * n + j] = g[i * n + j] + g[j * n + i];
        var q = new double[n * n];
        DenseMath.SymmetricEigenTridiagonal(s, n, new double[n], q);
        double[] lambda = [3, 3, 1, 0, 0];
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < n; k++) a[i * n + j] += q[k * n + i] * lambda[k] * q[k * n + j];
        var values = new double[n];
        DenseMath.SymmetricEigenTridiagonal(a, n, values, default);
        for (int k = 0; k < n; k++) Assert.Equal(lambda[k], values[k], 1e-12);
        Assert.Throws<ArithmeticException>(() => DenseMath.SymmetricEigenTridiagonal(new double[] { 1, double.NaN, double.NaN, 1 }, 2, new double[2], default));
    }
}
