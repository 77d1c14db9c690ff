using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics.Tensors;

namespace Vega.MLNet.Selection;

/// <summary>The edges that entered the correlation (valid classes only, row-major v×v), kept for the class bootstrap.</summary>
/// <param name="Valid">The class indices of the edge term, ascending.</param>
/// <param name="Textual">E_T on the valid classes.</param>
/// <param name="Visual">E_V on the valid classes (after the edge kind's transform).</param>
internal sealed record EdgeSample(int[] Valid, double[] Textual, double[] Visual);

/// <summary>
/// Turns the per-class statistics into VEGA: node score, textual graph, visual graph of class Gaussians (Bhattacharyya
/// distances under the configured covariance estimator), edge correlation. Formulas and choices: docs/vega.md.
/// </summary>
internal static class VisualGraph
{
    private const int MaxListedClasses = 20;

    public static (VegaResult Result, EdgeSample? Edges) Compute(ScoringAccumulator.ClassStatistics s, VegaOptions o, int threads)
    {
        int c = s.ClassCount, d = s.Dimension;
        var warnings = new List<string>();

        // Node score: mean over all images of the softmax probability of the pseudo-labelled class.
        double nodeTotal = 0;
        for (int k = 0; k < c; k++) nodeTotal += s.NodeSum(k);
        double sn = nodeTotal / s.Images;

        var valid = new List<int>();
        var small = new List<int>();
        for (int k = 0; k < c; k++) (s.Count(k) >= o.MinImagesPerClass ? valid : small).Add(k);
        if (small.Count > 0)
            warnings.Add($"{small.Count} of {c} classes have fewer than {o.MinImagesPerClass} pseudo-labelled images and are left out of the edge term: "
                + List(small) + ".");

        // Without a variance floor, a class whose images are all identical has no Gaussian: leave it out too.
        bool usesMoments = o.EdgeKind != VisualEdgeKind.MeanCosine;
        if (usesMoments && o.VarianceFloor == 0)
        {
            var flat = valid.Where(k => SpreadOf(s, k) <= 0).ToList();
            if (flat.Count > 0 && flat.Count < valid.Count)
            {
                valid.RemoveAll(flat.Contains);
                warnings.Add($"{flat.Count} class(es) have images without spread (all identical) and no variance floor is set; they are left out of the edge term: {List(flat)}.");
            }
        }

        // Textual graph: cosine similarities of the normalised class text embeddings (float64).
        var textual = new double[c * c];
        for (int i = 0; i < c; i++)
            for (int j = i; j < c; j++)
                textual[i * c + j] = textual[j * c + i] = TensorPrimitives.Dot(s.Texts.Slice(i * d, d), s.Texts.Slice(j * d, d));

        var shrinkage = new double?[c];
        int v = valid.Count;
        double[]? visual = null;           // v×v over the valid classes
        string? degenerate = null;
        double? negligible = null;
        bool visualFilled = false;
        if (v < 3)
            degenerate = $"only {v} class(es) have at least {o.MinImagesPerClass} pseudo-labelled images; the edge correlation needs at least 3";
        else
        {
            visual = new double[v * v];
            degenerate = o.EdgeKind == VisualEdgeKind.MeanCosine
                ? MeanCosines(s, valid, visual)
                : BhattacharyyaDistances(s, valid, o, threads, visual, shrinkage);
            visualFilled = degenerate is null;
            if (degenerate is null)
            {
                if (o.EdgeKind == VisualEdgeKind.NegativeBhattacharyya)
                    for (int i = 0; i < visual.Length; i++) visual[i] = -visual[i];
                else if (o.EdgeKind == VisualEdgeKind.ExpNegativeBhattacharyya)
                    negligible = ExpInLogDomain(visual, v, warnings);
            }
        }

        double? r = null;
        EdgeSample? sample = null;
        if (degenerate is null)
        {
            var et = new double[v * (v - 1) / 2];
            var ev = new double[et.Length];
            var tv = new double[v * v];
            int m = 0;
            for (int i = 0; i < v; i++)
                for (int j = 0; j < v; j++)
                {
                    tv[i * v + j] = textual[valid[i] * c + valid[j]];
                    if (j > i) { et[m] = tv[i * v + j]; ev[m] = visual![i * v + j]; m++; }
                }
            (r, degenerate) = Pearson(et, ev);
            if (degenerate is null) sample = new EdgeSample([.. valid], tv, visual!);
        }
        if (degenerate is not null) warnings.Add($"The edge term is degenerate ({degenerate}); s_e is set to {o.UndefinedEdgeScore:G3}.");
        double se = r is double rr ? (rr + 1) / 2 : o.UndefinedEdgeScore;

        var classes = new ClassDiagnostics[c];
        var isValid = new bool[c];
        foreach (int k in valid) isValid[k] = true;
        for (int k = 0; k < c; k++)
            classes[k] = new ClassDiagnostics
            {
                ClassIndex = k,
                ImageCount = s.Count(k),
                NodeSimilarity = s.Count(k) > 0 ? s.NodeSum(k) / s.Count(k) : null,
                InEdgeTerm = isValid[k],
                Shrinkage = shrinkage[k],
            };

        EdgeMatrices? edges = null;
        if (o.KeepEdgeMatrices)
        {
            var vis = new float[c * c];
            vis.AsSpan().Fill(float.NaN);
            if (visualFilled)
                for (int i = 0; i < v; i++)
                    for (int j = 0; j < v; j++)
                        if (i != j) vis[valid[i] * c + valid[j]] = (float)visual![i * v + j];
            var tex = new float[c * c];
            for (int i = 0; i < tex.Length; i++) tex[i] = (float)textual[i];
            edges = new EdgeMatrices { ClassCount = c, Textual = tex, Visual = vis };
        }

        var result = new VegaResult
        {
            Score = sn + se,
            NodeScore = sn,
            EdgeScore = se,
            EdgeCorrelation = r,
            EdgeDegenerate = degenerate is not null,
            EdgeDegenerateReason = degenerate,
            EdgeClassCount = v,
            ExpNegligibleFraction = negligible,
            EdgeKind = o.EdgeKind,
            Covariance = o.Covariance,
            Classes = classes,
            Edges = edges,
            Warnings = warnings,
        };
        return (result, sample);
    }

    private static string List(List<int> classes) =>
        string.Join(", ", classes.Take(MaxListedClasses)) + (classes.Count > MaxListedClasses ? ", …" : "");

    // tr(S_k) = Σ‖x‖²/n − ‖μ‖² (0 for a class of identical images, up to rounding).
    private static double SpreadOf(ScoringAccumulator.ClassStatistics s, int k)
    {
        double n = s.Count(k);
        double mu2 = TensorPrimitives.SumOfSquares(s.Sum(k)) / (n * n);
        double t = s.SumSquaredNorm(k) / n - mu2;
        return t > 1e-14 * (s.SumSquaredNorm(k) / n) ? t : 0;
    }

    /// <summary>Pearson correlation; null with a reason when a side is constant or not finite.</summary>
    internal static (double? R, string? Degenerate) Pearson(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int n = x.Length;
        if (n < 2) return (null, "fewer than 2 edges");
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
        if (!double.IsFinite(mx)) return (null, "the textual edges are not finite");
        if (!double.IsFinite(my)) return (null, "the visual edges are not finite");
        mx /= n; my /= n;
        double sxx = 0, syy = 0, sxy = 0;
        for (int i = 0; i < n; i++)
        {
            double a = x[i] - mx, b = y[i] - my;
            sxx += a * a; syy += b * b; sxy += a * b;
        }
        if (!(sxx > 0)) return (null, "all textual edges are equal");
        if (!(syy > 0)) return (null, "all visual edges are equal");
        return (Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1, 1), null);
    }

    // exp(−D_B) computed as exp(−(D_B − min D_B)): a constant factor exp(−min D_B) that Pearson ignores, and no overflow.
    private static double ExpInLogDomain(double[] distances, int v, List<string> warnings)
    {
        double min = double.PositiveInfinity;
        for (int i = 0; i < v; i++) for (int j = 0; j < v; j++) if (i != j) min = Math.Min(min, distances[i * v + j]);
        int tiny = 0, total = 0;
        for (int i = 0; i < v; i++)
            for (int j = 0; j < v; j++)
            {
                if (i == j) { distances[i * v + j] = 1; continue; }
                double e = Math.Exp(-(distances[i * v + j] - min));
                distances[i * v + j] = e;
                total++;
                if (e < 1e-16) tiny++;
            }
        double fraction = (double)tiny / total;
        if (Math.Exp(-min) == 0)
            warnings.Add($"exp(−D_B) underflows to 0 in float64 for every class pair (smallest D_B = {min:G4}); the edges are computed in the log domain, scaled by exp({min:G4}).");
        if (tiny > 0)
            warnings.Add($"{fraction:P1} of the exp(−D_B) visual edges are below 1e-16 of the largest (D_B spans {min:G4} and more); the edge correlation is dominated by the closest class pairs — consider the −D_B edge kind.");
        return fraction;
    }

    private static string? MeanCosines(ScoringAccumulator.ClassStatistics s, List<int> valid, double[] visual)
    {
        int v = valid.Count, d = s.Dimension;
        var means = new double[v * d];
        for (int i = 0; i < v; i++)
        {
            Span<double> mu = means.AsSpan(i * d, d);
            s.Sum(valid[i]).CopyTo(mu);
            double norm = Math.Sqrt(TensorPrimitives.SumOfSquares<double>(mu));
            if (!(norm > 0)) return $"the image embeddings of class {valid[i]} average to zero, so the cosine of class means is undefined";
            TensorPrimitives.Divide<double>(mu, norm, mu);
        }
        for (int i = 0; i < v; i++)
            for (int j = i; j < v; j++)
                visual[i * v + j] = visual[j * v + i] = i == j ? 1 : TensorPrimitives.Dot<double>(means.AsSpan(i * d, d), means.AsSpan(j * d, d));
        return null;
    }

    /// <summary>Fills <paramref name="distances"/> (v×v) with D_B between the valid classes' Gaussians; returns a reason if impossible.</summary>
    internal static string? BhattacharyyaDistances(ScoringAccumulator.ClassStatistics s, List<int> valid, VegaOptions o, int threads, double[] distances, double?[] shrinkage)
    {
        int v = valid.Count, d = s.Dimension;
        var means = new double[v * d];
        var traceOverD = new double[v];   // m_k = tr(S_k)/D
        double pooled = 0, weight = 0;
        for (int i = 0; i < v; i++)
        {
            int k = valid[i];
            double n = s.Count(k);
            Span<double> mu = means.AsSpan(i * d, d);
            TensorPrimitives.Divide<double>(s.Sum(k), n, mu);
            traceOverD[i] = Math.Max(s.SumSquaredNorm(k) / n - TensorPrimitives.SumOfSquares<double>(mu), 0) / d;
            pooled += n * traceOverD[i];
            weight += n;
        }
        pooled /= weight;
        if (!(pooled > 0)) return "the images of every pseudo-class are identical, so the class Gaussians have no spread";
        double floor = o.VarianceFloor * pooled;
        var po = new ParallelOptions { MaxDegreeOfParallelism = threads };

        switch (o.Covariance)
        {
            case CovarianceMode.Isotropic:
            {
                var variance = new double[v];
                for (int i = 0; i < v; i++) variance[i] = traceOverD[i] + floor;
                Parallel.For(0, v, po, i =>
                {
                    double[] diff = ArrayPool<double>.Shared.Rent(d);
                    for (int j = i + 1; j < v; j++)
                    {
                        Span<double> delta = diff.AsSpan(0, d);
                        TensorPrimitives.Subtract<double>(means.AsSpan(i * d, d), means.AsSpan(j * d, d), delta);
                        double q = TensorPrimitives.SumOfSquares<double>(delta), bar = 0.5 * (variance[i] + variance[j]);
                        double db = q / (8 * bar) + 0.5 * d * (Math.Log(bar) - 0.5 * (Math.Log(variance[i]) + Math.Log(variance[j])));
                        distances[i * v + j] = distances[j * v + i] = db;
                    }
                    ArrayPool<double>.Shared.Return(diff);
                });
                return null;
            }
            case CovarianceMode.Diagonal:
            {
                double beta = o.FixedShrinkage;
                var variance = new double[v * d];
                var logDet = new double[v];
                for (int i = 0; i < v; i++)
                {
                    int k = valid[i];
                    double n = s.Count(k);
                    ReadOnlySpan<double> sq = s.SumSquares(k), mu = means.AsSpan(i * d, d);
                    Span<double> var_ = variance.AsSpan(i * d, d);
                    double mean = 0;
                    for (int t = 0; t < d; t++) { var_[t] = Math.Max(sq[t] / n - mu[t] * mu[t], 0); mean += var_[t]; }
                    mean /= d;
                    for (int t = 0; t < d; t++) var_[t] = (1 - beta) * var_[t] + beta * mean + floor;
                    double ld = 0;
                    for (int t = 0; t < d; t++) ld += Math.Log(var_[t]);
                    if (!double.IsFinite(ld)) return $"the diagonal covariance of class {k} has a zero variance; raise VarianceFloor";
                    logDet[i] = ld;
                    shrinkage[k] = beta;
                }
                double ln2 = Math.Log(2);
                Parallel.For(0, v, po, i =>
                {
                    double[] buffer = ArrayPool<double>.Shared.Rent(2 * d);
                    Span<double> sumVar = buffer.AsSpan(0, d), delta = buffer.AsSpan(d, d);
                    for (int j = i + 1; j < v; j++)
                    {
                        // D_B = 1/8 Σ Δ²/s̄ + 1/2 Σ ln s̄ − 1/4 (ln|Σ_i| + ln|Σ_j|),  s̄ = (s_i + s_j)/2.
                        TensorPrimitives.Add<double>(variance.AsSpan(i * d, d), variance.AsSpan(j * d, d), sumVar);
                        TensorPrimitives.Subtract<double>(means.AsSpan(i * d, d), means.AsSpan(j * d, d), delta);
                        TensorPrimitives.Multiply<double>(delta, delta, delta);
                        TensorPrimitives.Divide<double>(delta, sumVar, delta);
                        double maha = 2 * TensorPrimitives.Sum<double>(delta);
                        TensorPrimitives.Log<double>(sumVar, sumVar);
                        double logBar = TensorPrimitives.Sum<double>(sumVar) - d * ln2;
                        double db = maha / 8 + 0.5 * logBar - 0.25 * (logDet[i] + logDet[j]);
                        distances[i * v + j] = distances[j * v + i] = db;
                    }
                    ArrayPool<double>.Shared.Return(buffer);
                });
                return null;
            }
            default:
                return FullDistances(s, valid, o, po, means, traceOverD, floor, distances, shrinkage);
        }
    }

    /// <summary>
    /// Full covariance Σ_k = (1−α_k)·S_k + (α_k·m_k + ε)·I: exactly (p ≥ D, blocked Cholesky per class pair), or kept
    /// exactly in the span of the p leading pooled within-class eigenvectors and isotropic (one variance per class) in
    /// the orthogonal complement.
    /// </summary>
    private static string? FullDistances(ScoringAccumulator.ClassStatistics s, List<int> valid, VegaOptions o, ParallelOptions po,
        double[] means, double[] traceOverD, double floor, double[] distances, double?[] shrinkage)
    {
        int v = valid.Count, d = s.Dimension;
        int p = o.FullSubspaceDimension is int q && q < d ? q : d;
        bool exact = p == d;

        // Shrinkage intensities α_k.
        var alpha = new double[v];
        Parallel.For(0, v, po, i =>
        {
            int k = valid[i];
            double n = s.Count(k);
            double[] scatter = s.Scatter(k)!;
            ReadOnlySpan<double> mu = means.AsSpan(i * d, d);
            if (o.Covariance == CovarianceMode.FullFixedShrinkage) { alpha[i] = o.FixedShrinkage; return; }
            // ‖S‖²_F and μᵀSμ from the packed Σxxᵀ, S = Σxxᵀ/n − μμᵀ.
            double frob = 0, muSmu = 0;
            for (int r = 0; r < d; r++)
            {
                ReadOnlySpan<double> row = scatter.AsSpan(DenseMath.PackedRowOffset(r, d), d - r);
                for (int t = 0; t < row.Length; t++)
                {
                    int col = r + t;
                    double sv = row[t] / n - mu[r] * mu[col];
                    double w = col == r ? 1 : 2;
                    frob += w * sv * sv;
                    muSmu += w * mu[r] * sv * mu[col];
                }
            }
            alpha[i] = LedoitWolf(n, d, traceOverD[i], frob, muSmu, TensorPrimitives.SumOfSquares<double>(mu), o.ShrinkageFloor);
        });
        for (int i = 0; i < v; i++) shrinkage[valid[i]] = alpha[i];
        return exact
            ? ExactDistances(s, valid, po, means, traceOverD, floor, alpha, distances)
            : SubspaceDistances(s, valid, po, p, means, traceOverD, floor, alpha, distances);
    }

    /// <summary>
    /// The exact estimator: per pair, Σ̄ = (Σ_i + Σ_j)/2 is formed from the two packed co-moment triangles, factorised by
    /// the blocked upper Cholesky, and D_B = ⅛‖U⁻ᵀΔ‖² + ½[ln|Σ̄| − ½(ln|Σ_i| + ln|Σ_j|)].
    /// </summary>
    private static unsafe string? ExactDistances(ScoringAccumulator.ClassStatistics s, List<int> valid, ParallelOptions po,
        double[] means, double[] traceOverD, double floor, double[] alpha, double[] distances)
    {
        int v = valid.Count, d = s.Dimension, ld = Float64Kernels.Padded(d);
        // Σ_k(r, c) = a_k·M_k(r, c) − ν_k[r]·ν_k[c] + δ_rc·τ_k with a_k = (1−α_k)/n_k, ν_k = √(1−α_k)·μ_k, τ_k = α_k·m_k + ε.
        var a = new double[v];
        var nu = new double[v * d];
        var tau = new double[v];
        var scatters = new double[v][];
        for (int i = 0; i < v; i++)
        {
            int k = valid[i];
            a[i] = (1 - alpha[i]) / s.Count(k);
            TensorPrimitives.Multiply<double>(means.AsSpan(i * d, d), Math.Sqrt(1 - alpha[i]), nu.AsSpan(i * d, d));
            tau[i] = alpha[i] * traceOverD[i] + floor;
            scatters[i] = s.Scatter(k)!;
        }

        // Fills the upper triangle of w (stride ld) with wi·Σ_i + wj·Σ_j (wj = 0: Σ_i alone).
        void Form(Span<double> w, int i, double wi, int j, double wj)
        {
            double[] mi = scatters[i];
            double[]? mj = wj == 0 ? null : scatters[j];
            for (int r = 0; r < d; r++)
            {
                int off = DenseMath.PackedRowOffset(r, d), len = d - r;
                Span<double> row = w.Slice(r * ld + r, len);
                TensorPrimitives.Multiply<double>(mi.AsSpan(off, len), wi * a[i], row);
                TensorPrimitives.MultiplyAdd<double>(nu.AsSpan(i * d + r, len), -wi * nu[i * d + r], row, row);
                double diagonal = wi * tau[i];
                if (mj is not null)
                {
                    TensorPrimitives.MultiplyAdd<double>(mj.AsSpan(off, len), wj * a[j], row, row);
                    TensorPrimitives.MultiplyAdd<double>(nu.AsSpan(j * d + r, len), -wj * nu[j * d + r], row, row);
                    diagonal += wj * tau[j];
                }
                row[0] += diagonal;
            }
        }

        var logDet = new double[v];
        var local = new ConcurrentBag<double[]>();
        double[] Rent() => local.TryTake(out var w) ? w : new double[d * ld + d];
        Parallel.For(0, v, po, i =>
        {
            var w = Rent();
            Form(w, i, 1, i, 0);
            fixed (double* pw = w) logDet[i] = Float64Kernels.CholeskyUpper(pw, ld, d);
            local.Add(w);
        });
        for (int i = 0; i < v; i++)
            if (double.IsNaN(logDet[i])) return $"the covariance of class {valid[i]} is not positive definite; raise VarianceFloor";

        // Pairs in row-major order of the upper triangle, dealt out in contiguous chunks.
        long pairs = (long)v * (v - 1) / 2;
        var rowStart = new long[v + 1];
        for (int i = 0; i < v; i++) rowStart[i + 1] = rowStart[i] + (v - 1 - i);
        int anyFailed = 0;
        Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0L, pairs, Math.Max(1, Math.Min(64, pairs / (4L * po.MaxDegreeOfParallelism) + 1))), po, range =>
        {
            var w = Rent();
            Span<double> delta = w.AsSpan(d * ld, d);
            int i = Array.BinarySearch(rowStart, range.Item1);
            if (i < 0) i = ~i - 1;
            while (rowStart[i + 1] <= range.Item1) i++;
            for (long q = range.Item1; q < range.Item2; q++)
            {
                while (q >= rowStart[i + 1]) i++;
                int j = i + 1 + (int)(q - rowStart[i]);
                Form(w, i, 0.5, j, 0.5);
                double db;
                fixed (double* pw = w)
                {
                    double lbar = Float64Kernels.CholeskyUpper(pw, ld, d);
                    if (double.IsNaN(lbar)) { Interlocked.Exchange(ref anyFailed, 1); distances[i * v + j] = distances[j * v + i] = double.NaN; continue; }
                    TensorPrimitives.Subtract<double>(means.AsSpan(i * d, d), means.AsSpan(j * d, d), delta);
                    fixed (double* pd = delta) Float64Kernels.SolveUpperTransposed(pw, ld, d, pd);
                    db = TensorPrimitives.SumOfSquares<double>(delta) / 8 + 0.5 * (lbar - 0.5 * (logDet[i] + logDet[j]));
                }
                distances[i * v + j] = distances[j * v + i] = db;
            }
            local.Add(w);
        });
        return anyFailed != 0 ? "a pooled class covariance is not positive definite; raise VarianceFloor" : null;
    }

    /// <summary>
    /// The structured estimator: Σ_k = P A_k Pᵀ + c_k (I − PPᵀ) with P the p leading eigenvectors of the pooled
    /// within-class covariance (deterministic eigen-decomposition); D_B splits exactly into a p-dimensional part and an
    /// isotropic remainder, one p×p Cholesky per pair.
    /// </summary>
    private static string? SubspaceDistances(ScoringAccumulator.ClassStatistics s, List<int> valid, ParallelOptions po, int p,
        double[] means, double[] traceOverD, double floor, double[] alpha, double[] distances)
    {
        int v = valid.Count, d = s.Dimension;
        int rest = d - p;

        // The subspace: P = top-p eigenvectors of the pooled within-class covariance W = Σ n_k S_k / Σ n_k.
        var w = new double[d * d];
        double total = 0;
        for (int i = 0; i < v; i++)
        {
            int k = valid[i];
            double n = s.Count(k);
            total += n;
            double[] scatter = s.Scatter(k)!;
            ReadOnlySpan<double> mu = means.AsSpan(i * d, d);
            for (int r = 0; r < d; r++)
            {
                ReadOnlySpan<double> row = scatter.AsSpan(DenseMath.PackedRowOffset(r, d), d - r);
                Span<double> wr = w.AsSpan(r * d + r, d - r);
                double nm = n * mu[r];
                for (int t = 0; t < row.Length; t++) wr[t] += row[t] - nm * mu[r + t];
            }
        }
        for (int r = 0; r < d; r++)
            for (int t = r; t < d; t++) w[t * d + r] = w[r * d + t] = w[r * d + t] / total;
        double[] basis = DenseMath.TopEigenvectors(w, d, p);
        var basisT = new double[p * d];
        for (int r = 0; r < d; r++) for (int t = 0; t < p; t++) basisT[t * d + r] = basis[r * p + t];

        // Per class: A_k (p×p) = Pᵀ Σ_k P, c_k the complement variance, a_k = Pᵀ μ_k, ln det A_k.
        var a = new double[v * p * p];
        var proj = new double[v * p];
        var comp = new double[v];
        var logDet = new double[v];
        var failed = new bool[v];
        Parallel.For(0, v, po, () => new double[d * p], (i, _, work) =>
        {
            int k = valid[i];
            double n = s.Count(k);
            double[] scatter = s.Scatter(k)!;
            ReadOnlySpan<double> mu = means.AsSpan(i * d, d);
            double al = alpha[i], m = traceOverD[i];
            Span<double> ai = a.AsSpan(i * p * p, p * p);
            // a_k = Pᵀμ; T = S_k P = (Σxxᵀ P)/n − μ a_kᵀ (D×p); B = Pᵀ T; A_k = (1−α) B.
            Span<double> pk = proj.AsSpan(i * p, p);
            for (int t = 0; t < p; t++) pk[t] = TensorPrimitives.Dot<double>(mu, basisT.AsSpan(t * d, d));
            Span<double> tmat = work.AsSpan(0, d * p);
            DenseMath.PackedSymmetricMultiply(scatter, d, basis, p, tmat);
            for (int r = 0; r < d; r++)
            {
                Span<double> tr = tmat.Slice(r * p, p);
                TensorPrimitives.Multiply<double>(tr, 1 / n, tr);
                TensorPrimitives.MultiplyAdd<double>(pk, -mu[r], tr, tr);
            }
            ai.Clear();
            for (int r = 0; r < d; r++)
            {
                ReadOnlySpan<double> tr = tmat.Slice(r * p, p), br = basis.AsSpan(r * p, p);
                for (int x = 0; x < p; x++) TensorPrimitives.MultiplyAdd<double>(tr, br[x], ai.Slice(x * p, p), ai.Slice(x * p, p));
            }
            double traceB = 0;
            for (int x = 0; x < p; x++)
            {
                traceB += ai[x * p + x];
                for (int y = 0; y < x; y++) ai[x * p + y] = ai[y * p + x] = 0.5 * (ai[x * p + y] + ai[y * p + x]);
            }
            TensorPrimitives.Multiply<double>(ai, 1 - al, ai);
            double residual = Math.Max(m * d - traceB, 0) / rest;
            comp[i] = (1 - al) * residual + al * m + floor;
            for (int t = 0; t < p; t++) ai[t * p + t] += al * m + floor;
            double[] chol = ArrayPool<double>.Shared.Rent(p * p);
            ai.CopyTo(chol);
            logDet[i] = DenseMath.CholeskyLogDet(chol.AsSpan(0, p * p), p);
            ArrayPool<double>.Shared.Return(chol);
            failed[i] = double.IsNaN(logDet[i]) || !(comp[i] > 0);
            return work;
        }, _ => { });
        for (int i = 0; i < v; i++)
            if (failed[i]) return $"the covariance of class {valid[i]} is not positive definite; raise VarianceFloor";

        // Pairwise D_B: Ā = (A_i + A_j)/2 by the blocked upper Cholesky (stride padded for the tile kernel).
        int anyFailed = 0, ldp = Float64Kernels.Padded(p);
        Parallel.For(0, v, po, i =>
        {
            double[] work = ArrayPool<double>.Shared.Rent(p * ldp + p + d);
            Span<double> y = work.AsSpan(p * ldp, p), delta = work.AsSpan(p * ldp + p, d);
            for (int j = i + 1; j < v; j++)
            {
                for (int r = 0; r < p; r++)
                {
                    Span<double> row = work.AsSpan(r * ldp + r, p - r);
                    TensorPrimitives.Add<double>(a.AsSpan(i * p * p + r * p + r, p - r), a.AsSpan(j * p * p + r * p + r, p - r), row);
                    TensorPrimitives.Multiply<double>(row, 0.5, row);
                }
                double ld;
                unsafe
                {
                    fixed (double* pw = work) ld = Float64Kernels.CholeskyUpper(pw, ldp, p);
                }
                if (double.IsNaN(ld)) { Interlocked.Exchange(ref anyFailed, 1); distances[i * v + j] = distances[j * v + i] = double.NaN; continue; }
                TensorPrimitives.Subtract<double>(proj.AsSpan(i * p, p), proj.AsSpan(j * p, p), y);
                double projected = TensorPrimitives.SumOfSquares<double>(y);
                unsafe
                {
                    fixed (double* pw = work)
                    fixed (double* py = y) Float64Kernels.SolveUpperTransposed(pw, ldp, p, py);
                }
                double db = TensorPrimitives.SumOfSquares<double>(y) / 8 + 0.5 * (ld - 0.5 * (logDet[i] + logDet[j]));
                TensorPrimitives.Subtract<double>(means.AsSpan(i * d, d), means.AsSpan(j * d, d), delta);
                double r2 = Math.Max(TensorPrimitives.SumOfSquares<double>(delta) - projected, 0);
                double cb = 0.5 * (comp[i] + comp[j]);
                db += r2 / (8 * cb) + 0.5 * rest * (Math.Log(cb) - 0.5 * (Math.Log(comp[i]) + Math.Log(comp[j])));
                distances[i * v + j] = distances[j * v + i] = db;
            }
            ArrayPool<double>.Shared.Return(work);
        });
        return anyFailed != 0 ? "a pooled class covariance is not positive definite; raise VarianceFloor" : null;
    }

    /// <summary>
    /// Ledoit–Wolf (2004) shrinkage intensity towards m·I for unit-norm samples, from the sufficient statistics:
    /// α = min(b̄², d²)/d², d² = ‖S − mI‖²_F, b̄² = (Σ‖x̃_i‖⁴ − n‖S‖²_F)/n², floored at <paramref name="floor"/>.
    /// </summary>
    internal static double LedoitWolf(double n, int d, double m, double frobeniusSquared, double muSmu, double muNorm2, double floor)
    {
        // Σ_i ‖x_i − μ‖⁴ with ‖x_i‖ = 1: Σ (a − 2 x_iᵀμ)², a = 1 + ‖μ‖²; Σ x_iᵀμ = n‖μ‖², Σ (x_iᵀμ)² = n(μᵀSμ + ‖μ‖⁴).
        double aa = 1 + muNorm2;
        double fourth = n * aa * aa - 4 * aa * n * muNorm2 + 4 * n * (muSmu + muNorm2 * muNorm2);
        double bBar = Math.Max(fourth - n * frobeniusSquared, 0) / (n * n);
        double dd = frobeniusSquared - d * m * m;
        double alpha = dd > 0 ? Math.Min(bBar, dd) / dd : 1;
        return Math.Clamp(Math.Max(alpha, floor), 0, 1);
    }
}
