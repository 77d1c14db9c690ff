using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>VEGA and the baselines against hand-computed small cases and against the naive second implementation.</summary>
public sealed class VegaFormulaTests
{
    private static EmbeddingMatrix M(int d, params double[] values) => new(values.Select(v => (float)v).ToArray(), values.Length / d, d);

    [Fact]
    public void NodeScoreAndBaselinesMatchClosedForms()
    {
        // Texts e1, e2. Image (1,0): cosines (1, 0), label 0. Image (0.6, 0.8): cosines (0.6, 0.8), label 1.
        var texts = M(2, 1, 0, 0, 1);
        var images = M(2, 1, 0, 0.6, 0.8);
        var s = ModelSelector.Score("m", images, texts);
        double node = 0.5 * (1 / (1 + Math.Exp(-20)) + 1 / (1 + Math.Exp(-4)));      // T = 0.05
        double q1 = Math.Exp(-100) / (1 + Math.Exp(-100)), q2 = Math.Exp(-20) / (1 + Math.Exp(-20)); // T = 0.01: the losing class
        double p1 = 1 - q1, p2 = 1 - q2;
        double Hq(double q) => -(q * Math.Log(q) + (1 - q) * Math.Log(1 - q));
        Assert.Equal(node, s.Vega.NodeScore, 1e-6);
        Assert.Equal(0.5 * (p1 + p2), s.Metric(SelectionMetric.MaxSoftmax), 1e-6);
        Assert.Equal(-0.5 * (Hq(q1) + Hq(q2)), s.Metric(SelectionMetric.NegativeEntropy), 1e-6);
        Assert.Equal(0.5 * ((2 * p1 - 1) + (2 * p2 - 1)), s.Metric(SelectionMetric.Margin), 1e-6);
        Assert.Equal(0.9, s.Metric(SelectionMetric.MaxCosine), 1e-6);
        Assert.Equal(1, s.Vega.Classes[0].ImageCount);
        Assert.Equal(1 / (1 + Math.Exp(-4)), s.Vega.Classes[1].NodeSimilarity!.Value, 1e-6);
        // Two classes with one image each: no edge term, flagged, s_e = 0.5.
        Assert.True(s.Vega.EdgeDegenerate);
        Assert.Equal(0.5, s.Vega.EdgeScore);
        Assert.Contains(s.Vega.Warnings, w => w.Contains("fewer than 2 pseudo-labelled images"));
        Assert.Equal(node + 0.5, s.Metric(SelectionMetric.Vega), 1e-6);
    }

    [Fact]
    public void MeanCosineEdgeScoreMatchesHandComputedPearson()
    {
        // E_T over pairs (01, 02, 12) = (0.8, 0, 0); class means (1,0,0,0), (0,1,0,0), (0.6,0,0.8,0) give E_V = (0, 0.6, 0).
        // Pearson = −0.16 / √(0.42667 · 0.24) = −0.5 exactly, so s_e = 0.25.
        var texts = M(4, 1, 0, 0, 0, 0.8, 0.6, 0, 0, 0, 0, 1, 0);
        var images = M(4, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0.6, 0, 0.8, 0, 0.6, 0, 0.8, 0);
        var o = new SelectionOptions { Vega = new VegaOptions { EdgeKind = VisualEdgeKind.MeanCosine } };
        var s = ModelSelector.Score("m", images, texts, o);
        Assert.Equal(-0.5, s.Vega.EdgeCorrelation!.Value, 1e-6);
        Assert.Equal(0.25, s.Vega.EdgeScore, 1e-6);
        double node = (1 / (1 + Math.Exp(-4) + Math.Exp(-20)) + 1 / (1 + 2 * Math.Exp(-12)) + 1 / (1 + Math.Exp(-4) + Math.Exp(-6.4))) / 3;
        Assert.Equal(node, s.Vega.NodeScore, 1e-6);
        Assert.Equal(node + 0.25, s.Vega.Score, 1e-6);
        Assert.Equal(0.6, s.Vega.Edges!.Visual[0 * 3 + 2], 1e-6);
        Assert.Equal(0.8, s.Vega.Edges.Textual[0 * 3 + 1], 1e-6);
    }

    // Class k: two unit images at angles θ_k ± φ in the plane. Mean = cos φ·u_k, covariance = sin²φ·n_k n_kᵀ (n_k ⟂ u_k).
    private static (EmbeddingMatrix Images, EmbeddingMatrix Texts) TwoPointClasses(double[] theta, double phi)
    {
        var img = new List<double>();
        var txt = new List<double>();
        foreach (double t in theta)
        {
            txt.AddRange([Math.Cos(t), Math.Sin(t)]);
            img.AddRange([Math.Cos(t + phi), Math.Sin(t + phi), Math.Cos(t - phi), Math.Sin(t - phi)]);
        }
        return (M(2, [.. img]), M(2, [.. txt]));
    }

    private static readonly double[] Angles = [0, Math.PI / 2, 3.5];
    private const double Phi = 0.2;

    [Fact]
    public void IsotropicBhattacharyyaMatchesClosedForm()
    {
        var (images, texts) = TwoPointClasses(Angles, Phi);
        var o = new SelectionOptions { Vega = new VegaOptions { Covariance = CovarianceMode.Isotropic, VarianceFloor = 0 } };
        var s = ModelSelector.Score("m", images, texts, o);
        // σ² = sin²φ / 2 for every class, so D_B = ‖Δμ‖²/(8σ²) = cos²φ·2(1 − cos Δθ) / (4 sin²φ).
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
            {
                if (i == j) continue;
                double db = Math.Cos(Phi) * Math.Cos(Phi) * 2 * (1 - Math.Cos(Angles[i] - Angles[j])) / (4 * Math.Sin(Phi) * Math.Sin(Phi));
                Assert.Equal(-db, s.Vega.Edges!.Visual[i * 3 + j], Math.Abs(db) * 1e-5);
            }
        Assert.False(s.Vega.EdgeDegenerate);
    }

    [Fact]
    public void DiagonalAndFullBhattacharyyaMatchClosedForms()
    {
        var (images, texts) = TwoPointClasses(Angles, Phi);
        double beta = 0.3;
        double sin2 = Math.Sin(Phi) * Math.Sin(Phi), cos = Math.Cos(Phi);
        // Shrunk covariance of class k: (1−β) sin²φ n nᵀ + β (sin²φ/2) I, n = (−sin θ, cos θ).
        double[,] Sigma(double t, bool diagonal)
        {
            double nx = -Math.Sin(t), ny = Math.Cos(t);
            var s = new double[2, 2] { { (1 - beta) * sin2 * nx * nx + beta * sin2 / 2, (1 - beta) * sin2 * nx * ny }, { (1 - beta) * sin2 * nx * ny, (1 - beta) * sin2 * ny * ny + beta * sin2 / 2 } };
            if (diagonal) s[0, 1] = s[1, 0] = 0;
            return s;
        }
        double Det(double[,] s) => s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0];
        double Bhattacharyya(double ti, double tj, bool diagonal)
        {
            var a = Sigma(ti, diagonal);
            var b = Sigma(tj, diagonal);
            var m = new double[2, 2] { { (a[0, 0] + b[0, 0]) / 2, (a[0, 1] + b[0, 1]) / 2 }, { (a[1, 0] + b[1, 0]) / 2, (a[1, 1] + b[1, 1]) / 2 } };
            double dx = cos * (Math.Cos(ti) - Math.Cos(tj)), dy = cos * (Math.Sin(ti) - Math.Sin(tj));
            double det = Det(m);
            double maha = (m[1, 1] * dx * dx - 2 * m[0, 1] * dx * dy + m[0, 0] * dy * dy) / det; // 2×2 inverse written out
            return maha / 8 + 0.5 * Math.Log(det / Math.Sqrt(Det(a) * Det(b)));
        }
        foreach (var mode in new[] { CovarianceMode.Diagonal, CovarianceMode.FullFixedShrinkage })
        {
            var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode, FixedShrinkage = beta, VarianceFloor = 0, FullSubspaceDimension = null } };
            var s = ModelSelector.Score("m", images, texts, o);
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                {
                    if (i == j) continue;
                    double db = Bhattacharyya(Angles[i], Angles[j], mode == CovarianceMode.Diagonal);
                    Assert.True(Math.Abs(-db - s.Vega.Edges!.Visual[i * 3 + j]) <= Math.Abs(db) * 1e-5, $"{mode} ({i},{j}): expected {-db}, got {s.Vega.Edges!.Visual[i * 3 + j]}");
                }
            Assert.All(s.Vega.Classes, c => Assert.Equal(beta, c.Shrinkage));
        }
    }

    [Fact]
    public void OneDimensionalBhattacharyyaIsTheTextbookFormula()
    {
        // With the exact full covariance and one-dimensional spread, D_B reduces to the 1-D formula along the spread
        // direction when the means differ only along it: check the blocked Cholesky's log-det and solve on a 1×1 "matrix".
        double s1 = 0.3, s2 = 1.7, mu = 0.9;
        var bar = new double[Float64Kernels.Padded(1)];
        bar[0] = (s1 + s2) / 2;
        double[] y = [mu];
        double ld;
        unsafe
        {
            fixed (double* pb = bar, py = y)
            {
                ld = Float64Kernels.CholeskyUpper(pb, bar.Length, 1);
                Float64Kernels.SolveUpperTransposed(pb, bar.Length, 1, py);
            }
        }
        double db = y[0] * y[0] / 8 + 0.5 * (ld - 0.5 * (Math.Log(s1) + Math.Log(s2)));
        double textbook = 0.25 * mu * mu / (s1 + s2) + 0.5 * Math.Log((s1 + s2) / (2 * Math.Sqrt(s1 * s2)));
        Assert.Equal(textbook, db, 1e-12);
    }

    public static TheoryData<CovarianceMode, VisualEdgeKind, int?> Modes() => new()
    {
        { CovarianceMode.Diagonal, VisualEdgeKind.NegativeBhattacharyya, null },
        { CovarianceMode.Isotropic, VisualEdgeKind.NegativeBhattacharyya, null },
        { CovarianceMode.FullLedoitWolf, VisualEdgeKind.NegativeBhattacharyya, null },
        { CovarianceMode.FullFixedShrinkage, VisualEdgeKind.NegativeBhattacharyya, null },
        { CovarianceMode.FullLedoitWolf, VisualEdgeKind.NegativeBhattacharyya, 3 },
        { CovarianceMode.FullFixedShrinkage, VisualEdgeKind.ExpNegativeBhattacharyya, 5 },
        { CovarianceMode.Diagonal, VisualEdgeKind.ExpNegativeBhattacharyya, null },
        { CovarianceMode.Diagonal, VisualEdgeKind.MeanCosine, null },
    };

    [Theory]
    [MemberData(nameof(Modes))]
    public void ProductionMatchesTheNaiveImplementation(CovarianceMode mode, VisualEdgeKind kind, int? subspace)
    {
        var (images, texts, _) = Synthetic.Task(seed: 7, n: 240, c: 6, d: 8, imageNoise: 0.9, textNoise: 0.3);
        var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode, EdgeKind = kind, FullSubspaceDimension = subspace, MinImagesPerClass = 3 } };
        var s = ModelSelector.Score("m", images, texts, o);
        var naive = NaiveVega.Compute(images, texts, o);

        Assert.Equal(naive.NodeScore, s.Vega.NodeScore, 1e-5);
        Assert.Equal(naive.Msp, s.Metric(SelectionMetric.MaxSoftmax), 1e-5);
        Assert.Equal(naive.NegEntropy, s.Metric(SelectionMetric.NegativeEntropy), 1e-5);
        Assert.Equal(naive.Margin, s.Metric(SelectionMetric.Margin), 1e-5);
        Assert.Equal(naive.MaxCosine, s.Metric(SelectionMetric.MaxCosine), 1e-6);
        Assert.False(s.Vega.EdgeDegenerate, s.Vega.EdgeDegenerateReason);
        Assert.Equal(naive.Valid.Length, s.Vega.EdgeClassCount);
        Assert.Equal(naive.Correlation!.Value, s.Vega.EdgeCorrelation!.Value, 1e-5);
        Assert.Equal(naive.NodeScore + naive.EdgeScore, s.Vega.Score, 1e-5);
        if (kind == VisualEdgeKind.NegativeBhattacharyya)
        {
            int c = texts.Count;
            for (int i = 0; i < naive.Valid.Length; i++)
                for (int j = 0; j < naive.Valid.Length; j++)
                {
                    if (i == j) continue;
                    double expected = -naive.Distances[i, j], got = s.Vega.Edges!.Visual[naive.Valid[i] * c + naive.Valid[j]];
                    Assert.True(Math.Abs(expected - got) <= 1e-4 * Math.Max(1, Math.Abs(expected)), $"edge ({i},{j}): naive {expected}, production {got}");
                }
        }
        if (mode is CovarianceMode.FullLedoitWolf)
            for (int i = 0; i < naive.Valid.Length; i++)
                Assert.Equal(naive.Alpha[i], s.Vega.Classes[naive.Valid[i]].Shrinkage!.Value, 1e-4);
    }

    [Fact]
    public void LedoitWolfIntensityIsBetweenFloorAndOneAndMatchesScikitLearnsFormula()
    {
        var rng = new Random(3);
        int d = 6;
        foreach (int n in new[] { 3, 5, 20, 200 })
        {
            var rows = Enumerable.Range(0, n).Select(_ =>
            {
                var r = Enumerable.Range(0, d).Select(a => DenseMath.Gaussian(rng) * (a + 1)).ToArray();
                double norm = Math.Sqrt(r.Sum(z => z * z));
                return r.Select(z => z / norm).ToArray();
            }).ToArray();
            var mu = Enumerable.Range(0, d).Select(a => rows.Average(r => r[a])).ToArray();
            var s = new double[d, d];
            foreach (var r in rows) for (int a = 0; a < d; a++) for (int b = 0; b < d; b++) s[a, b] += (r[a] - mu[a]) * (r[b] - mu[b]) / n;
            double frob = 0, muSmu = 0, trace = 0;
            for (int a = 0; a < d; a++) { trace += s[a, a]; for (int b = 0; b < d; b++) { frob += s[a, b] * s[a, b]; muSmu += mu[a] * s[a, b] * mu[b]; } }
            double got = VisualGraph.LedoitWolf(n, d, trace / d, frob, muSmu, mu.Sum(z => z * z), floor: 0);
            double expected = NaiveVega.LedoitWolfSklearn(rows, mu, d);
            Assert.Equal(expected, got, 1e-9);
            Assert.InRange(got, 0, 1);
            Assert.Equal(Math.Max(expected, 0.4), VisualGraph.LedoitWolf(n, d, trace / d, frob, muSmu, mu.Sum(z => z * z), floor: 0.4), 1e-9);
        }
    }

    [Fact]
    public void OrthogonalClassMeansGiveADegenerateMeanCosineGraph()
    {
        // Three classes whose images are exactly the three axes: every cosine of class means is 0 → constant E_V.
        var texts = M(3, 1, 0.1, 0.1, 0.1, 1, 0.1, 0.1, 0.1, 1.2);
        var images = M(3, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1);
        var s = ModelSelector.Score("m", images, texts, new SelectionOptions { Vega = new VegaOptions { EdgeKind = VisualEdgeKind.MeanCosine } });
        Assert.True(s.Vega.EdgeDegenerate);
        Assert.Equal("all visual edges are equal", s.Vega.EdgeDegenerateReason);
        Assert.Null(s.Vega.EdgeCorrelation);
        Assert.Equal(0.5, s.Vega.EdgeScore);
        Assert.Equal(s.Vega.NodeScore + 0.5, s.Vega.Score, 1e-12);
    }

    [Fact]
    public void IdenticalImagesWithinEveryClassAreReportedNotCrashed()
    {
        var texts = M(3, 1, 0.1, 0.1, 0.1, 1, 0.1, 0.1, 0.1, 1.2);
        var images = M(3, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1);
        var s = ModelSelector.Score("m", images, texts);
        Assert.True(s.Vega.EdgeDegenerate);
        Assert.Contains("no spread", s.Vega.EdgeDegenerateReason);
    }

    [Fact]
    public void ExpEdgesInHighDimensionAreComputedInTheLogDomainAndFlagged()
    {
        // D = 256, well-separated classes: D_B is in the hundreds, so exp(−D_B) underflows or spans > 16 decades.
        var (images, texts, _) = Synthetic.Task(seed: 11, n: 600, c: 8, d: 256, imageNoise: 0.5, textNoise: 0.1);
        var expOpt = new SelectionOptions { Vega = new VegaOptions { EdgeKind = VisualEdgeKind.ExpNegativeBhattacharyya } };
        var negOpt = new SelectionOptions { Vega = new VegaOptions { EdgeKind = VisualEdgeKind.NegativeBhattacharyya } };
        var e = ModelSelector.Score("m", images, texts, expOpt);
        var n = ModelSelector.Score("m", images, texts, negOpt);
        Assert.False(n.Vega.EdgeDegenerate);
        Assert.NotNull(e.Vega.ExpNegligibleFraction);
        Assert.True(e.Vega.ExpNegligibleFraction > 0, $"negligible fraction {e.Vega.ExpNegligibleFraction}");
        Assert.Contains(e.Vega.Warnings, w => w.Contains("below 1e-16"));
        // The stored edges are exp(−(D_B − min D_B)) = exp(min D_B)·exp(−D_B): the largest is exactly 1.
        float max = e.Vega.Edges!.Visual.Where(float.IsFinite).Max();
        Assert.Equal(1f, max);
        // And they are the exponentials of the −D_B edges, shifted.
        int c = texts.Count;
        double minDb = n.Vega.Edges!.Visual.Where(float.IsFinite).Select(x => -(double)x).Min();
        for (int i = 0; i < c * c; i++)
            if (float.IsFinite(n.Vega.Edges.Visual[i]))
                Assert.Equal(Math.Exp(n.Vega.Edges.Visual[i] + minDb), e.Vega.Edges.Visual[i], 1e-4);
    }
}
