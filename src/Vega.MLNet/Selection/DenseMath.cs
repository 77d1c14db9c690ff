using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Vega.MLNet.Selection;

/// <summary>Small dense float64 linear algebra used by the scorers (row-major square matrices in spans).</summary>
internal static class DenseMath
{
    /// <summary>
    /// In-place lower Cholesky factor of the symmetric positive-definite n×n matrix <paramref name="a"/> (only the lower
    /// triangle is read; the strict upper triangle is left as it was). Returns ln det A, or NaN if A is not positive definite.
    /// </summary>
    public static double CholeskyLogDet(Span<double> a, int n)
    {
        double logDet = 0;
        for (int i = 0; i < n; i++)
        {
            Span<double> rowI = a.Slice(i * n, n);
            for (int j = 0; j < i; j++)
            {
                Span<double> rowJ = a.Slice(j * n, n);
                double s = rowI[j] - TensorPrimitives.Dot<double>(rowI[..j], rowJ[..j]);
                rowI[j] = s / rowJ[j];
            }
            double d = rowI[i] - TensorPrimitives.SumOfSquares<double>(rowI[..i]);
            if (!(d > 0) || double.IsInfinity(d)) return double.NaN;
            double l = Math.Sqrt(d);
            rowI[i] = l;
            logDet += Math.Log(d);
        }
        return logDet;
    }

    /// <summary>Solves L·y = b in place (forward substitution) with the lower factor from <see cref="CholeskyLogDet"/>.</summary>
    public static void ForwardSubstitute(ReadOnlySpan<double> l, int n, Span<double> b)
    {
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<double> row = l.Slice(i * n, n);
            b[i] = (b[i] - TensorPrimitives.Dot<double>(row[..i], b[..i])) / row[i];
        }
    }

    /// <summary>
    /// Eigen-decomposition of the symmetric n×n matrix <paramref name="a"/> by cyclic Jacobi rotations (destroys a).
    /// Eigenvalues go to <paramref name="values"/> (descending) and eigenvectors to the columns of <paramref name="vectors"/>.
    /// </summary>
    public static void SymmetricEigen(Span<double> a, int n, Span<double> values, Span<double> vectors)
    {
        vectors[..(n * n)].Clear();
        for (int i = 0; i < n; i++) vectors[i * n + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, total = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    double v = a[i * n + j] * a[i * n + j];
                    total += v;
                    if (i != j) off += v;
                }
            if (off <= 1e-30 * total || off == 0) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[p * n + q];
                    if (apq == 0) continue;
                    double app = a[p * n + p], aqq = a[q * n + q];
                    double theta = (aqq - app) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k * n + p], akq = a[k * n + q];
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p * n + k], aqk = a[q * n + k];
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = vectors[k * n + p], vkq = vectors[k * n + q];
                        vectors[k * n + p] = c * vkp - s * vkq;
                        vectors[k * n + q] = s * vkp + c * vkq;
                    }
                }
        }
        // Sort descending (selection sort on columns; n is small).
        for (int i = 0; i < n; i++) values[i] = a[i * n + i];
        for (int i = 0; i < n; i++)
        {
            int best = i;
            for (int j = i + 1; j < n; j++) if (values[j] > values[best]) best = j;
            if (best == i) continue;
            (values[i], values[best]) = (values[best], values[i]);
            for (int k = 0; k < n; k++) (vectors[k * n + i], vectors[k * n + best]) = (vectors[k * n + best], vectors[k * n + i]);
        }
    }

    /// <summary>Orthonormalises the columns of the d×p row-major matrix <paramref name="m"/> (modified Gram–Schmidt, twice).</summary>
    public static void OrthonormalizeColumns(Span<double> m, int d, int p, Random rng)
    {
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < p; j++)
            {
                for (int k = 0; k < j; k++)
                {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += m[i * p + j] * m[i * p + k];
                    for (int i = 0; i < d; i++) m[i * p + j] -= dot * m[i * p + k];
                }
                double norm = 0;
                for (int i = 0; i < d; i++) norm += m[i * p + j] * m[i * p + j];
                if (norm < 1e-28)
                {
                    // A rank-deficient direction: replace it by a random one and orthogonalise again.
                    for (int i = 0; i < d; i++) m[i * p + j] = rng.NextDouble() - 0.5;
                    j--;
                    continue;
                }
                double inv = 1 / Math.Sqrt(norm);
                for (int i = 0; i < d; i++) m[i * p + j] *= inv;
            }
    }

    /// <summary>
    /// Orthonormal basis (d×p, row-major, columns by decreasing eigenvalue) of the dominant p-dimensional eigenspace of
    /// the symmetric d×d matrix <paramref name="w"/>: seeded randomized subspace iteration, then Rayleigh–Ritz.
    /// </summary>
    public static double[] TopEigenvectors(ReadOnlySpan<double> w, int d, int p, int seed, int iterations = 8)
    {
        var rng = new Random(seed);
        var q = new double[d * p];
        for (int i = 0; i < q.Length; i++) q[i] = Gaussian(rng);
        OrthonormalizeColumns(q, d, p, rng);
        var z = new double[d * p];
        for (int it = 0; it < iterations; it++)
        {
            MultiplySymmetric(w, d, q, p, z);
            z.AsSpan().CopyTo(q);
            OrthonormalizeColumns(q, d, p, rng);
        }
        MultiplySymmetric(w, d, q, p, z);
        var h = new double[p * p];
        for (int a = 0; a < p; a++)
            for (int b = 0; b < p; b++)
            {
                double s = 0;
                for (int i = 0; i < d; i++) s += q[i * p + a] * z[i * p + b];
                h[a * p + b] = s;
            }
        for (int a = 0; a < p; a++) for (int b = 0; b < a; b++) h[a * p + b] = h[b * p + a] = 0.5 * (h[a * p + b] + h[b * p + a]);
        var values = new double[p];
        var vectors = new double[p * p];
        SymmetricEigen(h, p, values, vectors);
        var result = new double[d * p];
        for (int i = 0; i < d; i++)
            for (int b = 0; b < p; b++)
            {
                double s = 0;
                for (int a = 0; a < p; a++) s += q[i * p + a] * vectors[a * p + b];
                result[i * p + b] = s;
            }
        return result;
    }

    // z (d×p) = w (d×d) · q (d×p), all row-major.
    private static void MultiplySymmetric(ReadOnlySpan<double> w, int d, ReadOnlySpan<double> q, int p, Span<double> z)
    {
        z[..(d * p)].Clear();
        for (int i = 0; i < d; i++)
        {
            Span<double> zi = z.Slice(i * p, p);
            ReadOnlySpan<double> wi = w.Slice(i * d, d);
            for (int j = 0; j < d; j++)
            {
                double v = wi[j];
                if (v != 0) TensorPrimitives.MultiplyAdd<double>(q.Slice(j * p, p), v, zi, zi);
            }
        }
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
    /// packed += Σ_r x_r x_rᵀ on the packed upper triangle (row i holds columns i..d−1), for <paramref name="count"/>
    /// float64 rows of length d in <paramref name="rows"/>.
    /// </summary>
    public static void PackedRankUpdate(Span<double> packed, int d, ReadOnlySpan<double> rows, int count)
    {
        int r = 0;
        for (; r + 4 <= count; r += 4)
        {
            ReadOnlySpan<double> x0 = rows.Slice(r * d, d), x1 = rows.Slice((r + 1) * d, d), x2 = rows.Slice((r + 2) * d, d), x3 = rows.Slice((r + 3) * d, d);
            for (int i = 0; i < d; i++)
            {
                Span<double> row = packed.Slice(PackedRowOffset(i, d), d - i);
                double a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i];
                ReadOnlySpan<double> y0 = x0[i..], y1 = x1[i..], y2 = x2[i..], y3 = x3[i..];
                int len = d - i, j = 0;
                if (Vector.IsHardwareAccelerated)
                {
                    var v0 = new Vector<double>(a0); var v1 = new Vector<double>(a1); var v2 = new Vector<double>(a2); var v3 = new Vector<double>(a3);
                    int w = Vector<double>.Count;
                    for (; j + w <= len; j += w)
                    {
                        var acc = new Vector<double>(row[j..]);
                        acc += v0 * new Vector<double>(y0[j..]) + v1 * new Vector<double>(y1[j..]) + v2 * new Vector<double>(y2[j..]) + v3 * new Vector<double>(y3[j..]);
                        acc.CopyTo(row[j..]);
                    }
                }
                for (; j < len; j++) row[j] += a0 * y0[j] + a1 * y1[j] + a2 * y2[j] + a3 * y3[j];
            }
        }
        for (; r < count; r++)
        {
            ReadOnlySpan<double> x = rows.Slice(r * d, d);
            for (int i = 0; i < d; i++)
            {
                Span<double> row = packed.Slice(PackedRowOffset(i, d), d - i);
                TensorPrimitives.MultiplyAdd<double>(x[i..], x[i], row, row);
            }
        }
    }
}
