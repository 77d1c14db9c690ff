using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Selection;

/// <summary>
/// Float64 dense kernels of the scorers, all built on one register-tiled product kernel: 8×16 tiles of
/// Σ_r a(r, i)·b(r, j) with fused multiply-adds, accumulated in the order r = 0, 1, … (so every element is a fixed
/// sequence of roundings, independent of tiling and thread count). On top of it: the symmetric rank-k update of an
/// upper triangle (co-moments, Gram matrices, Cholesky trailing updates), a product for the cosine matrix, a blocked
/// upper Cholesky factorisation with its log-determinant, and triangular solves.
/// </summary>
/// <remarks>
/// Matrices are row-major. A matrix that feeds the tile kernel as <c>b</c> must have at least
/// <see cref="Padded"/>(n) readable doubles per row (the tile reads whole 16-wide column blocks; values past n never
/// reach a stored result).
/// </remarks>
internal static unsafe class Float64Kernels
{
    public const int TileRows = 8, TileColumns = 16, DepthBlock = 256, CholeskyBlock = 64;

    /// <summary>
    /// Use the 256-bit kernels even when 512-bit vectors are available (tests run both). Both accumulate every element
    /// with the same sequence of fused multiply-adds, so their results are identical.
    /// </summary>
    internal static bool ForceVector256 { get; set; }

    private static bool Use512 => Vector512.IsHardwareAccelerated && !ForceVector256;

    /// <summary>n rounded up to a multiple of 16: the row stride every tile-kernel operand needs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Padded(int n) => (n + TileColumns - 1) & ~(TileColumns - 1);

    /// <summary>
    /// out[a·16 + c] = Σ_{r&lt;k} a(r, a)·b(r, c) for a &lt; 8, c &lt; 16, where a(r, a) = <paramref name="a"/>[r·ar + a·ai]
    /// and b(r, c) = <paramref name="b"/>[r·ldb + c].
    /// </summary>
    public static void Tile(double* a, long ar, long ai, double* b, long ldb, int k, double* output)
    {
        if (Use512) Tile512(a, ar, ai, b, ldb, k, output);
        else
        {
            Tile256(a, ar, ai, b, ldb, k, output);
            Tile256(a, ar, ai, b + 8, ldb, k, output + 8);
            Tile256(a + 4 * ai, ar, ai, b, ldb, k, output + 64);
            Tile256(a + 4 * ai, ar, ai, b + 8, ldb, k, output + 72);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile512(double* a, long ar, long ai, double* b, long ldb, int k, double* output)
    {
        Vector512<double> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<double> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        double* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai, a4 = a + 4 * ai, a5 = a + 5 * ai, a6 = a + 6 * ai, a7 = a + 7 * ai;
        for (long r = 0, ra = 0; r < k; r++, ra += ar, b += ldb)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 8);
            var x = Vector512.Create(a0[ra]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a1[ra]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a2[ra]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a3[ra]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a4[ra]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a5[ra]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a6[ra]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a7[ra]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
        }
        c00.Store(output); c01.Store(output + 8); c10.Store(output + 16); c11.Store(output + 24);
        c20.Store(output + 32); c21.Store(output + 40); c30.Store(output + 48); c31.Store(output + 56);
        c40.Store(output + 64); c41.Store(output + 72); c50.Store(output + 80); c51.Store(output + 88);
        c60.Store(output + 96); c61.Store(output + 104); c70.Store(output + 112); c71.Store(output + 120);
    }

    // A 4×8 quarter of the tile with 256-bit vectors (8 accumulators: fits the 16 registers of AVX2).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile256(double* a, long ar, long ai, double* b, long ldb, int k, double* output)
    {
        Vector256<double> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        double* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai;
        for (long r = 0, ra = 0; r < k; r++, ra += ar, b += ldb)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 4);
            var x = Vector256.Create(a0[ra]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a1[ra]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a2[ra]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a3[ra]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
        }
        c00.Store(output); c01.Store(output + 4); c10.Store(output + 16); c11.Store(output + 20);
        c20.Store(output + 32); c21.Store(output + 36); c30.Store(output + 48); c31.Store(output + 52);
    }

    /// <summary>
    /// target(i, j) += alpha·Σ_{r&lt;k} x[r·ldx + i]·x[r·ldx + j] for 0 ≤ i ≤ j &lt; n, where element (i, j) of the target
    /// is <paramref name="target"/>[<paramref name="rowBase"/>[i] + j] (a packed triangle, a square matrix or a block of
    /// one). Every row of x needs <see cref="Padded"/>(n) readable doubles. Depth is processed in blocks of 256 rows.
    /// </summary>
    public static void SyrkUpper(double* x, long ldx, int k, int n, double alpha, double* target, long* rowBase) =>
        SyrkUpperRows(x, ldx, k, n, alpha, target, rowBase, 0, n);

    /// <summary>
    /// <see cref="SyrkUpper"/> with the tile rows split over <paramref name="threads"/> tasks of about equal work (each
    /// task owns whole target rows, so the result does not depend on the thread count).
    /// </summary>
    public static void SyrkUpperParallel(double* x, long ldx, int k, int n, double alpha, double* target, long* rowBase, int threads)
    {
        int tileRows = (n + TileRows - 1) / TileRows;
        int parts = Math.Min(threads, tileRows);
        if (parts <= 1 || (double)k * n * n < 4e6) { SyrkUpperRows(x, ldx, k, n, alpha, target, rowBase, 0, n); return; }
        // Row i carries n − i columns: cut the triangle into parts of equal area.
        var bounds = new int[parts + 1];
        bounds[parts] = n;
        for (int p = 1; p < parts; p++)
        {
            double f = 1 - Math.Sqrt(1 - (double)p / parts);
            bounds[p] = Math.Min(n, (int)Math.Round(f * n / TileRows) * TileRows);
        }
        nint xp = (nint)x, tp = (nint)target, rp = (nint)rowBase;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, p =>
        {
            if (bounds[p] < bounds[p + 1]) SyrkUpperRows((double*)xp, ldx, k, n, alpha, (double*)tp, (long*)rp, bounds[p], bounds[p + 1]);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SyrkUpperRows(double* x, long ldx, int k, int n, double alpha, double* target, long* rowBase, int rowStart, int rowEnd)
    {
        double* tile = stackalloc double[TileRows * TileColumns];
        for (int r0 = 0; r0 < k; r0 += DepthBlock)
        {
            int kb = Math.Min(DepthBlock, k - r0);
            double* xb = x + r0 * ldx;
            for (int i0 = rowStart; i0 < rowEnd; i0 += TileRows)
            {
                for (int j0 = i0 & ~(TileColumns - 1); j0 < n; j0 += TileColumns)
                {
                    // Rows i0..i0+7 beyond n read padding columns of x; their results are dropped.
                    Tile(xb + i0, ldx, 1, xb + j0, ldx, kb, tile);
                    bool interior = j0 >= i0 + TileRows - 1 && j0 + TileColumns <= n && i0 + TileRows <= n;
                    if (interior) AddTile(tile, alpha, target, rowBase, i0, j0);
                    else
                        for (int a = 0; a < TileRows && i0 + a < n; a++)
                        {
                            int i = i0 + a;
                            double* row = target + rowBase[i];
                            for (int c = Math.Max(0, i - j0); c < TileColumns && j0 + c < n; c++) row[j0 + c] += alpha * tile[a * TileColumns + c];
                        }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AddTile(double* tile, double alpha, double* target, long* rowBase, int i0, int j0)
    {
        for (int a = 0; a < TileRows; a++)
        {
            double* row = target + rowBase[i0 + a] + j0;
            double* t = tile + a * TileColumns;
            if (Use512)
            {
                var va = Vector512.Create(alpha);
                Vector512.FusedMultiplyAdd(va, Vector512.Load(t), Vector512.Load(row)).Store(row);
                Vector512.FusedMultiplyAdd(va, Vector512.Load(t + 8), Vector512.Load(row + 8)).Store(row + 8);
            }
            else
            {
                var va = Vector256.Create(alpha);
                for (int c = 0; c < TileColumns; c += 4) Vector256.FusedMultiplyAdd(va, Vector256.Load(t + c), Vector256.Load(row + c)).Store(row + c);
            }
        }
    }

    /// <summary>
    /// output[i·ldo + j] = Σ_{r&lt;k} a[i·lda + r]·bt[r·ldb + j] for i &lt; rows, j &lt; cols: rows of <paramref name="a"/> times
    /// the columns of <paramref name="bt"/> (the transposed right operand, <see cref="Padded"/>(cols) wide). Row i0+7
    /// of <paramref name="a"/> must be readable for every started tile (callers keep 7 rows of slack).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyRowsByColumns(double* a, long lda, int rows, double* bt, long ldb, int cols, int k, double* output, long ldo)
    {
        double* tile = stackalloc double[TileRows * TileColumns];
        for (int j0 = 0; j0 < cols; j0 += TileColumns)
            for (int i0 = 0; i0 < rows; i0 += TileRows)
            {
                Tile(a + i0 * lda, 1, lda, bt + j0, ldb, k, tile);
                int nr = Math.Min(TileRows, rows - i0), nc = Math.Min(TileColumns, cols - j0);
                for (int x = 0; x < nr; x++)
                    new ReadOnlySpan<double>(tile + x * TileColumns, nc).CopyTo(new Span<double>(output + (i0 + x) * ldo + j0, nc));
            }
    }

    /// <summary>
    /// In-place blocked upper Cholesky factorisation A = UᵀU of the symmetric positive-definite n×n matrix stored
    /// row-major with stride <paramref name="ld"/> ≥ <see cref="Padded"/>(n); only the upper triangle (j ≥ i) is read and
    /// overwritten by U. Returns ln det A = 2 Σ ln U_ii, or NaN when A is not positive definite (a pivot ≤ 0 or not finite).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double CholeskyUpper(double* a, long ld, int n)
    {
        double logDet = 0;
        long* rowBase = stackalloc long[n];
        double* tile = stackalloc double[TileRows * TileColumns];
        for (int s = 0; s < n; s += CholeskyBlock)
        {
            int b = Math.Min(CholeskyBlock, n - s);
            // 1. The b×b diagonal block, right-looking.
            for (int j = 0; j < b; j++)
            {
                double* rj = a + (s + j) * ld + s;
                double d = rj[j];
                if (!(d > 0) || double.IsInfinity(d)) return double.NaN;
                double u = Math.Sqrt(d);
                rj[j] = u;
                logDet += Math.Log(d);
                double inv = 1 / u;
                for (int c = j + 1; c < b; c++) rj[c] *= inv;
                for (int i = j + 1; i < b; i++)
                {
                    double f = rj[i];
                    if (f != 0) DenseMath.Axpy(-f, rj + i, a + (s + i) * ld + s + i, b - i);
                }
            }
            int m = n - s - b;
            if (m == 0) break;
            // 2. The panel U12 = U11⁻ᵀ A12, eight rows at a time: the rows above through the tile kernel
            //    (A12[j0..j0+8) −= U11[0..j0, j0..j0+8)ᵀ · U12[0..j0)), then the 8×8 triangle by substitution.
            double* panel = a + s * ld + s + b;
            for (int j0 = 0; j0 < b; j0 += TileRows)
            {
                int jb = Math.Min(TileRows, b - j0);
                if (j0 > 0)
                    for (int c0 = 0; c0 < m; c0 += TileColumns)
                    {
                        Tile(a + s * ld + s + j0, ld, 1, panel + c0, ld, j0, tile);
                        int nc = Math.Min(TileColumns, m - c0);
                        for (int x = 0; x < jb; x++)
                        {
                            double* row = panel + (j0 + x) * ld + c0;
                            double* t = tile + x * TileColumns;
                            for (int c = 0; c < nc; c++) row[c] -= t[c];
                        }
                    }
                for (int j = j0; j < j0 + jb; j++)
                {
                    double* rj = panel + j * ld;
                    for (int l = j0; l < j; l++)
                    {
                        double u = a[(s + l) * ld + s + j];
                        if (u != 0) DenseMath.Axpy(-u, panel + l * ld, rj, m);
                    }
                    double inv = 1 / a[(s + j) * ld + s + j];
                    for (int c = 0; c < m; c++) rj[c] *= inv;
                }
            }
            // 3. The trailing matrix: A22 −= U12ᵀ U12 (upper triangle).
            for (int i = 0; i < m; i++) rowBase[i] = (s + b + i) * ld + s + b;
            SyrkUpper(a + s * ld + s + b, ld, b, m, -1, a, rowBase);
        }
        return logDet;
    }

    /// <summary>Solves Uᵀy = v in place (v becomes y) with the upper factor from <see cref="CholeskyUpper"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SolveUpperTransposed(double* u, long ld, int n, double* v)
    {
        for (int j = 0; j < n; j++)
        {
            double* rj = u + j * ld;
            double y = v[j] / rj[j];
            v[j] = y;
            if (y != 0 && j + 1 < n) DenseMath.Axpy(-y, rj + j + 1, v + j + 1, n - j - 1);
        }
    }
}
