using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Selection;

/// <summary>Small dense float64 linear algebra used by the scorers (row-major square matrices in spans).</summary>
internal static class DenseMath
{
    /// <summary>
    /// In-place lower Cholesky factor of the symmetric positive-definite n×n matrix <paramref name="a"/> (only the lower
    /// triangle is read; the strict upper triangle is left as it was). Returns ln det A, or NaN if A is not positive definite.
    /// </summary>
    public static unsafe double CholeskyLogDet(Span<double> a, int n)
    {
        if (a.Length < n * n) throw new ArgumentException("The matrix span is too short.", nameof(a));
        double logDet = 0;
        Span<double> inverseDiagonal = n <= 256 ? stackalloc double[n] : new double[n];
        fixed (double* pa = a)
        {
            for (int i = 0; i < n; i++)
            {
                double* ri = pa + (long)i * n;
                for (int j = 0; j < i; j++)
                {
                    double* rj = pa + (long)j * n;
                    ri[j] = (ri[j] - Dot(ri, rj, j)) * inverseDiagonal[j];
                }
                double d = ri[i] - Dot(ri, ri, i);
                if (!(d > 0) || double.IsInfinity(d)) return double.NaN;
                double l = Math.Sqrt(d);
                ri[i] = l;
                inverseDiagonal[i] = 1 / l;
                logDet += Math.Log(d);
            }
        }
        return logDet;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe double Dot(double* a, double* b, int length)
    {
        int k = 0;
        double s = 0;
        if (Vector256.IsHardwareAccelerated && length >= 8)
        {
            Vector256<double> acc0 = Vector256<double>.Zero, acc1 = Vector256<double>.Zero;
            for (; k + 8 <= length; k += 8)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + k), Vector256.Load(b + k), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + k + 4), Vector256.Load(b + k + 4), acc1);
            }
            s = Vector256.Sum(acc0 + acc1);
        }
        for (; k < length; k++) s += a[k] * b[k];
        return s;
    }

    /// <summary>
    /// Eigen-decomposition of the symmetric n×n matrix <paramref name="a"/> (full row-major storage; destroyed):
    /// Householder reduction to tridiagonal form, then the implicit QL iteration with Wilkinson shifts. Eigenvalues go
    /// to <paramref name="values"/> in descending order; when <paramref name="vectorRows"/> is not empty (n×n), row k
    /// receives the unit eigenvector of values[k]. O(n³), deterministic (no random start).
    /// </summary>
    /// <exception cref="ArithmeticException">The QL iteration did not converge (a non-finite input).</exception>
    public static void SymmetricEigenTridiagonal(Span<double> a, int n, Span<double> values, Span<double> vectorRows)
    {
        if (a.Length < n * n || values.Length < n) throw new ArgumentException("Spans are too short.");
        bool vectors = !vectorRows.IsEmpty;
        if (vectors && vectorRows.Length < n * n) throw new ArgumentException("The eigenvector span is too short.", nameof(vectorRows));
        if (n == 0) return;
        var d = new double[n];
        var e = new double[n];
        // Row k of `reflectors` holds the Householder vector of step k on coordinates k+1..n−1 (kept for the vectors).
        var reflectors = new double[vectors ? n * n : n];
        var betas = new double[n];
        var p = new double[n];
        // 1. Householder: step k zeroes row/column k beyond the first off-diagonal, acting on coordinates k+1..n−1.
        for (int k = 0; k + 2 < n; k++)
        {
            int m = n - k - 1;
            Span<double> x = a.Slice(k * n + k + 1, m);
            double sigma = Math.Sqrt(TensorPrimitives.SumOfSquares<double>(x));
            d[k] = a[k * n + k];
            if (sigma == 0) { e[k] = 0; continue; }
            double alpha = x[0] >= 0 ? -sigma : sigma;
            Span<double> v = vectors ? reflectors.AsSpan(k * n + k + 1, m) : reflectors.AsSpan(0, m);
            x.CopyTo(v);
            v[0] -= alpha;
            double beta = 2 / TensorPrimitives.SumOfSquares<double>(v);
            betas[k] = beta;
            // p = β·A22·v, q = p − (β/2)(vᵀp)·v, A22 −= v qᵀ + q vᵀ.
            Span<double> q = p.AsSpan(0, m);
            for (int i = 0; i < m; i++) q[i] = beta * TensorPrimitives.Dot<double>(a.Slice((k + 1 + i) * n + k + 1, m), v);
            double half = 0.5 * beta * TensorPrimitives.Dot<double>(v, q);
            TensorPrimitives.MultiplyAdd<double>(v, -half, q, q);
            for (int i = 0; i < m; i++)
            {
                Span<double> row = a.Slice((k + 1 + i) * n + k + 1, m);
                TensorPrimitives.MultiplyAdd<double>(q, -v[i], row, row);
                TensorPrimitives.MultiplyAdd<double>(v, -q[i], row, row);
            }
            e[k] = alpha;
        }
        if (n >= 2)
        {
            d[n - 2] = a[(n - 2) * n + n - 2];
            e[n - 2] = a[(n - 2) * n + n - 1];
        }
        d[n - 1] = a[(n - 1) * n + n - 1];
        e[n - 1] = 0;

        // 2. Implicit QL on the tridiagonal (d, e); the rotations act on the rows of R = Zᵀ.
        Span<double> r = vectorRows;
        if (vectors)
        {
            r[..(n * n)].Clear();
            for (int i = 0; i < n; i++) r[i * n + i] = 1;
        }
        for (int l = 0; l < n; l++)
        {
            for (int iteration = 0; ; iteration++)
            {
                int m = l;
                for (; m < n - 1; m++)
                {
                    double dd = Math.Abs(d[m]) + Math.Abs(d[m + 1]);
                    if (Math.Abs(e[m]) <= 2.2e-16 * dd) break;
                }
                if (m == l) break;
                if (iteration == 100 || !double.IsFinite(e[l]) || !double.IsFinite(d[l]))
                    throw new ArithmeticException("The symmetric eigenvalue iteration did not converge (is the matrix finite?).");
                double g = (d[l + 1] - d[l]) / (2 * e[l]);
                double rr = Hypot(g, 1);
                g = d[m] - d[l] + e[l] / (g + (g >= 0 ? rr : -rr));
                double s = 1, c = 1, shift = 0;
                bool deflated = false;
                for (int i = m - 1; i >= l; i--)
                {
                    double f = s * e[i], b = c * e[i];
                    rr = Hypot(f, g);
                    e[i + 1] = rr;
                    if (rr == 0)
                    {
                        d[i + 1] -= shift;
                        e[m] = 0;
                        deflated = true;
                        break;
                    }
                    s = f / rr;
                    c = g / rr;
                    g = d[i + 1] - shift;
                    rr = (d[i] - g) * s + 2 * c * b;
                    shift = s * rr;
                    d[i + 1] = g + shift;
                    g = c * rr - b;
                    if (vectors) Rotate(r.Slice(i * n, n), r.Slice((i + 1) * n, n), c, s);
                }
                if (deflated) continue;
                d[l] -= shift;
                e[l] = g;
                e[m] = 0;
            }
        }

        // 3. Back to A's coordinates: V = R·H_{n−3}⋯H_0 (each H = I − β v vᵀ on coordinates k+1..n−1).
        if (vectors)
            for (int k = n - 3; k >= 0; k--)
            {
                double beta = betas[k];
                if (beta == 0) continue;
                int m = n - k - 1;
                ReadOnlySpan<double> v = reflectors.AsSpan(k * n + k + 1, m);
                for (int row = 0; row < n; row++)
                {
                    Span<double> x = r.Slice(row * n + k + 1, m);
                    double t = beta * TensorPrimitives.Dot<double>(x, v);
                    if (t != 0) TensorPrimitives.MultiplyAdd<double>(v, -t, x, x);
                }
            }

        // 4. Descending order (ties by position).
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        Array.Sort(order, (x, y) => d[y] != d[x] ? d[y].CompareTo(d[x]) : x.CompareTo(y));
        for (int i = 0; i < n; i++) values[i] = d[order[i]];
        if (vectors)
        {
            var copy = r[..(n * n)].ToArray();
            for (int i = 0; i < n; i++) copy.AsSpan(order[i] * n, n).CopyTo(r.Slice(i * n, n));
        }
    }

    private static double Hypot(double x, double y)
    {
        double ax = Math.Abs(x), ay = Math.Abs(y);
        if (ax < ay) (ax, ay) = (ay, ax);
        if (ax == 0) return 0;
        double q = ay / ax;
        return ax * Math.Sqrt(1 + q * q);
    }

    // (x, y) ← (c·x − s·y, s·x + c·y), element-wise.
    private static void Rotate(Span<double> x, Span<double> y, double c, double s)
    {
        for (int k = 0; k < x.Length; k++)
        {
            double a = x[k], b = y[k];
            x[k] = c * a - s * b;
            y[k] = s * a + c * b;
        }
    }

    /// <summary>
    /// Orthonormal basis (d×p, row-major, columns by decreasing eigenvalue) of the dominant p-dimensional eigenspace of
    /// the symmetric d×d matrix <paramref name="w"/>, from the full deterministic decomposition
    /// (<see cref="SymmetricEigenTridiagonal"/>).
    /// </summary>
    public static double[] TopEigenvectors(ReadOnlySpan<double> w, int d, int p)
    {
        var copy = w[..(d * d)].ToArray();
        var values = new double[d];
        var rows = new double[d * d];
        SymmetricEigenTridiagonal(copy, d, values, rows);
        var result = new double[d * p];
        for (int b = 0; b < p; b++)
            for (int i = 0; i < d; i++) result[i * p + b] = rows[b * d + i];
        return result;
    }

    public static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Offset of row <paramref name="i"/> (its diagonal element) in a packed upper triangle of order <paramref name="d"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PackedRowOffset(int i, int d) => i * d - i * (i - 1) / 2;

    /// <summary>Length of a packed upper triangle of order <paramref name="d"/>.</summary>
    public static int PackedLength(int d) => d * (d + 1) / 2;

    /// <summary>
    /// result (d×p) = Q·M for the symmetric d×d matrix Q given as a packed upper triangle and the row-major d×p matrix M.
    /// </summary>
    public static unsafe void PackedSymmetricMultiply(ReadOnlySpan<double> packed, int d, ReadOnlySpan<double> m, int p, Span<double> result)
    {
        if (packed.Length < PackedLength(d) || m.Length < d * p || result.Length < d * p) throw new ArgumentException("Spans are too short.");
        result[..(d * p)].Clear();
        fixed (double* pk = packed, pm = m, pr = result)
        {
            for (int r = 0; r < d; r++)
            {
                double* row = pk + PackedRowOffset(r, d) - r; // row[j] = Q(r, j), j ≥ r
                double* mr = pm + (long)r * p, tr = pr + (long)r * p;
                Axpy(row[r], mr, tr, p);
                for (int j = r + 1; j < d; j++)
                {
                    double q = row[j];
                    Axpy(q, pm + (long)j * p, tr, p);    // (QM)[r,:] += Q(r,j)·M[j,:]
                    Axpy(q, mr, pr + (long)j * p, p);    // (QM)[j,:] += Q(j,r)·M[r,:]
                }
            }
        }
    }

    /// <summary>y += a·x over <paramref name="length"/> doubles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Axpy(double a, double* x, double* y, int length)
    {
        int k = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a);
            for (; k + 4 <= length; k += 4) Vector256.FusedMultiplyAdd(va, Vector256.Load(x + k), Vector256.Load(y + k)).Store(y + k);
        }
        for (; k < length; k++) y[k] += a * x[k];
    }
}
