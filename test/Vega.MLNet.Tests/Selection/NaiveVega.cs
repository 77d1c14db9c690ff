using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>
/// A second, deliberately naive implementation of VEGA and the baselines, written straight from the formulas in
/// docs/vega.md: float64 throughout, explicit D×D covariances from the raw samples, Ledoit–Wolf in scikit-learn's form on
/// the centred samples, Gaussian elimination (LU) instead of Cholesky. Only the orthonormal basis of the subspace mode is
/// shared with the production code (any orthonormal basis defines a valid estimator; the test checks the rest).
/// </summary>
internal static class NaiveVega
{
    public sealed record Result(double NodeScore, double EdgeScore, double? Correlation, double Msp, double NegEntropy, double Margin, double MaxCosine,
        int[] Valid, double[,] Distances, double[] Alpha, double Dispersity)
    {
        public double Vega => NodeScore + EdgeScore;
    }

    public static Result Compute(EmbeddingMatrix images, EmbeddingMatrix texts, SelectionOptions o)
    {
        int n = images.Count, c = texts.Count, d = texts.Dimension;
        var v = o.Vega;
        double[][] t = Enumerable.Range(0, c).Select(k => Normalize(texts.Row(k).ToArray())).ToArray();
        double[][] x = Enumerable.Range(0, n).Select(i => Normalize(images.Row(i).ToArray())).ToArray();
        var labels = new int[n];
        double node = 0, msp = 0, ent = 0, margin = 0, maxCos = 0;
        var gram = new double[c * c]; // PᵀP of the baseline softmax predictions, formed directly
        for (int i = 0; i < n; i++)
        {
            var cos = t.Select(tk => Dot(x[i], tk)).ToArray();
            int label = 0;
            for (int k = 1; k < c; k++) if (cos[k] > cos[label]) label = k;
            labels[i] = label;
            var pNode = Softmax(cos, v.Temperature);
            node += pNode[label];
            var pb = Softmax(cos, o.BaselineTemperature);
            var sorted = pb.OrderByDescending(z => z).ToArray();
            msp += sorted[0];
            margin += sorted[0] - sorted[1];
            ent += -pb.Where(z => z > 0).Sum(z => z * Math.Log(z));
            maxCos += cos[label];
            for (int a = 0; a < c; a++) for (int b = 0; b < c; b++) gram[a * c + b] += pb[a] * pb[b];
        }
        // Nuclear norm of P = Σ singular values = Σ √λ(PᵀP), eigenvalues by Jacobi rotations; normalised by √(N·min(N, C)).
        var eig = new double[c];
        Jacobi.SymmetricEigen(gram, c, eig, new double[c * c]);
        double dispersity = eig.Sum(l => Math.Sqrt(Math.Max(l, 0))) / Math.Sqrt((double)n * Math.Min(n, c));

        var members = Enumerable.Range(0, c).Select(k => Enumerable.Range(0, n).Where(i => labels[i] == k).Select(i => x[i]).ToArray()).ToArray();
        int[] valid = Enumerable.Range(0, c).Where(k => members[k].Length >= v.MinImagesPerClass).ToArray();
        int nv = valid.Length;
        var means = valid.Select(k => Mean(members[k], d)).ToArray();
        var cov = valid.Select((k, i) => Covariance(members[k], means[i], d)).ToArray();
        var m = cov.Select(s => Trace(s, d) / d).ToArray();
        double pooled = valid.Select((k, i) => members[k].Length * m[i]).Sum() / valid.Sum(k => members[k].Length);
        double eps = v.VarianceFloor * pooled;
        var alpha = new double[nv];
        var sigma = new double[nv][,];
        for (int i = 0; i < nv; i++)
        {
            var s = cov[i];
            var sig = new double[d, d];
            switch (v.Covariance)
            {
                case CovarianceMode.Isotropic:
                    for (int a = 0; a < d; a++) sig[a, a] = m[i] + eps;
                    break;
                case CovarianceMode.Diagonal:
                    alpha[i] = v.FixedShrinkage;
                    for (int a = 0; a < d; a++) sig[a, a] = (1 - alpha[i]) * s[a, a] + alpha[i] * m[i] + eps;
                    break;
                default:
                    alpha[i] = v.Covariance == CovarianceMode.FullFixedShrinkage ? v.FixedShrinkage
                        : Math.Max(LedoitWolfSklearn(members[valid[i]], means[i], d), v.ShrinkageFloor);
                    for (int a = 0; a < d; a++)
                        for (int b = 0; b < d; b++) sig[a, b] = (1 - alpha[i]) * s[a, b] + (a == b ? alpha[i] * m[i] + eps : 0);
                    break;
            }
            sigma[i] = sig;
        }
        int p = v.FullSubspaceDimension is int q && q < d ? q : d;
        if (v.Covariance is CovarianceMode.FullLedoitWolf or CovarianceMode.FullFixedShrinkage && p < d)
        {
            // Structured estimator: Σ_k = P Pᵀ Σ_k^full P Pᵀ + c_k (I − P Pᵀ).
            var w = new double[d * d];
            double total = 0;
            for (int i = 0; i < nv; i++)
            {
                int cnt = members[valid[i]].Length;
                total += cnt;
                for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) w[a * d + b] += cnt * cov[i][a, b];
            }
            for (int a = 0; a < d * d; a++) w[a] /= total;
            double[] basis = DenseMath.TopEigenvectors(w, d, p);
            var proj = new double[d, d]; // P Pᵀ
            for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) for (int z = 0; z < p; z++) proj[a, b] += basis[a * p + z] * basis[b * p + z];
            for (int i = 0; i < nv; i++)
            {
                var full = sigma[i];
                var ps = Mul(Mul(proj, full, d), proj, d);
                // trace of Pᵀ S P for the complement variance.
                var pSp = Mul(Mul(proj, cov[i], d), proj, d);
                double ck = (1 - alpha[i]) * (Trace(cov[i], d) - Trace(pSp, d)) / (d - p) + alpha[i] * m[i] + eps;
                var sig = new double[d, d];
                for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) sig[a, b] = ps[a, b] + ck * ((a == b ? 1 : 0) - proj[a, b]);
                sigma[i] = sig;
            }
        }

        var dist = new double[nv, nv];
        for (int i = 0; i < nv; i++)
            for (int j = 0; j < nv; j++)
            {
                if (i == j) continue;
                if (v.EdgeKind == VisualEdgeKind.MeanCosine) { dist[i, j] = Dot(Normalize(means[i]), Normalize(means[j])); continue; }
                var bar = new double[d, d];
                for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) bar[a, b] = 0.5 * (sigma[i][a, b] + sigma[j][a, b]);
                var delta = means[i].Zip(means[j], (u, w) => u - w).ToArray();
                var (sol, ldBar) = SolveLu(bar, delta, d);
                double maha = Dot(delta, sol);
                double db = maha / 8 + 0.5 * (ldBar - 0.5 * (SolveLu(sigma[i], delta, d).LogDet + SolveLu(sigma[j], delta, d).LogDet));
                dist[i, j] = db;
            }

        var et = new List<double>();
        var ev = new List<double>();
        for (int i = 0; i < nv; i++)
            for (int j = i + 1; j < nv; j++)
            {
                et.Add(Dot(t[valid[i]], t[valid[j]]));
                ev.Add(v.EdgeKind switch
                {
                    VisualEdgeKind.NegativeBhattacharyya => -dist[i, j],
                    VisualEdgeKind.ExpNegativeBhattacharyya => Math.Exp(-dist[i, j]),
                    _ => dist[i, j],
                });
            }
        double? r = nv >= 3 ? PearsonNaive(et, ev) : null;
        double se = r is double rr ? (rr + 1) / 2 : v.UndefinedEdgeScore;
        return new Result(node / n, se, r, msp / n, -ent / n, margin / n, maxCos / n, valid, dist, alpha, dispersity);
    }

    /// <summary>scikit-learn's ledoit_wolf_shrinkage on the centred samples, written out.</summary>
    public static double LedoitWolfSklearn(double[][] samples, double[] mean, int d)
    {
        int n = samples.Length;
        var xc = samples.Select(s => s.Zip(mean, (a, b) => a - b).ToArray()).ToArray();
        var emp = new double[d, d];
        foreach (var r in xc) for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) emp[a, b] += r[a] * r[b] / n;
        double mu = Trace(emp, d) / d;
        double beta_ = xc.Sum(r => Math.Pow(r.Sum(z => z * z), 2));
        double delta_ = 0;
        foreach (var e in emp) delta_ += e * e;
        double beta = 1.0 / (d * n) * (beta_ / n - delta_);
        double delta = (delta_ - 2 * mu * Trace(emp, d) + d * mu * mu) / d;
        beta = Math.Min(beta, delta);
        return beta == 0 ? 0 : beta / delta;
    }

    public static double PearsonNaive(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = x.Zip(y, (a, b) => (a - mx) * (b - my)).Sum();
        double sxx = x.Sum(a => (a - mx) * (a - mx)), syy = y.Sum(b => (b - my) * (b - my));
        return sxy / Math.Sqrt(sxx * syy);
    }

    private static double[] Softmax(double[] cos, double temperature)
    {
        double max = cos.Max();
        var e = cos.Select(z => Math.Exp((z - max) / temperature)).ToArray();
        double s = e.Sum();
        return e.Select(z => z / s).ToArray();
    }

    private static (double[] Solution, double LogDet) SolveLu(double[,] matrix, double[] rhs, int d)
    {
        var a = (double[,])matrix.Clone();
        var b = (double[])rhs.Clone();
        double logDet = 0;
        for (int col = 0; col < d; col++)
        {
            int piv = col;
            for (int r = col + 1; r < d; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[piv, col])) piv = r;
            if (piv != col)
            {
                for (int z = 0; z < d; z++) (a[col, z], a[piv, z]) = (a[piv, z], a[col, z]);
                (b[col], b[piv]) = (b[piv], b[col]);
            }
            logDet += Math.Log(Math.Abs(a[col, col]));
            for (int r = col + 1; r < d; r++)
            {
                double f = a[r, col] / a[col, col];
                for (int z = col; z < d; z++) a[r, z] -= f * a[col, z];
                b[r] -= f * b[col];
            }
        }
        var sol = new double[d];
        for (int r = d - 1; r >= 0; r--)
        {
            double s = b[r];
            for (int z = r + 1; z < d; z++) s -= a[r, z] * sol[z];
            sol[r] = s / a[r, r];
        }
        return (sol, logDet);
    }

    private static double[,] Mul(double[,] a, double[,] b, int d)
    {
        var r = new double[d, d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { double s = 0; for (int k = 0; k < d; k++) s += a[i, k] * b[k, j]; r[i, j] = s; }
        return r;
    }

    private static double[] Normalize(float[] v) => Normalize(v.Select(z => (double)z).ToArray());

    private static double[] Normalize(double[] v)
    {
        double norm = Math.Sqrt(v.Sum(z => z * z));
        return v.Select(z => z / norm).ToArray();
    }

    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }

    private static double[] Mean(double[][] rows, int d)
    {
        var m = new double[d];
        foreach (var r in rows) for (int a = 0; a < d; a++) m[a] += r[a] / rows.Length;
        return m;
    }

    private static double[,] Covariance(double[][] rows, double[] mean, int d)
    {
        var s = new double[d, d];
        foreach (var r in rows) for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) s[a, b] += (r[a] - mean[a]) * (r[b] - mean[b]) / rows.Length;
        return s;
    }

    private static double Trace(double[,] s, int d) { double t = 0; for (int a = 0; a < d; a++) t += s[a, a]; return t; }
}

/// <summary>Synthetic tasks: class prototypes (random unit vectors), texts near them, images = prototype of the true class + noise.</summary>
internal static class Synthetic
{
    public static float[] Gaussian(Random rng, int count)
    {
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)DenseMath.Gaussian(rng);
        return v;
    }

    public static float[] Prototypes(Random rng, int c, int d)
    {
        var p = Gaussian(rng, c * d);
        for (int k = 0; k < c; k++) EmbeddingMatrix.NormalizeInPlace(p.AsSpan(k * d, d));
        return p;
    }

    /// <summary>Rows = prototype[label] + noise·g/√D with g standard normal (so ‖noise‖ ≈ noise).</summary>
    public static EmbeddingMatrix Around(Random rng, float[] prototypes, int d, IReadOnlyList<int> labels, double noise)
    {
        var data = new float[labels.Count * d];
        double s = noise / Math.Sqrt(d);
        for (int i = 0; i < labels.Count; i++)
            for (int a = 0; a < d; a++)
                data[i * d + a] = prototypes[labels[i] * d + a] + (float)(s * DenseMath.Gaussian(rng));
        return new EmbeddingMatrix(data, labels.Count, d);
    }

    public static int[] Labels(Random rng, int n, int c)
    {
        var l = new int[n];
        for (int i = 0; i < n; i++) l[i] = i < c ? i : rng.Next(c);
        return l;
    }

    /// <summary>One task: texts = prototypes + small noise, images around the prototypes of their labels.</summary>
    public static (EmbeddingMatrix Images, EmbeddingMatrix Texts, int[] Labels) Task(int seed, int n, int c, int d, double imageNoise, double textNoise = 0.2)
    {
        var rng = new Random(seed);
        var protos = Prototypes(rng, c, d);
        var labels = Labels(rng, n, c);
        var texts = Around(rng, protos, d, Enumerable.Range(0, c).ToArray(), textNoise);
        var images = Around(rng, protos, d, labels, imageNoise);
        return (images, texts, labels);
    }
}
