using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>The paper preset against the direct, unoptimised computation of the formulas (NaiveVega) to 1e-9.</summary>
public sealed class PaperPresetTests
{
    /// <summary>
    /// C classes with random unit texts; most classes get many images near their text, class C−2 gets 2 and class C−1
    /// gets 1 (left out of the edge term), so class sizes differ and the minimum-size rule is exercised.
    /// </summary>
    internal static (EmbeddingMatrix Images, EmbeddingMatrix Texts) SkewedTask(int seed, int c, int d, int perClass, double noise)
    {
        var rng = new Random(seed);
        var protos = Synthetic.Prototypes(rng, c, d);
        var labels = new List<int>();
        for (int k = 0; k < c - 2; k++) for (int i = 0; i < perClass + 7 * k; i++) labels.Add(k);
        labels.AddRange([c - 2, c - 2, c - 1]);
        var texts = Synthetic.Around(rng, protos, d, Enumerable.Range(0, c).ToArray(), 0.1);
        var images = Synthetic.Around(rng, protos, d, labels, noise);
        return (images, texts);
    }

    public static TheoryData<int, int, int, double> Tasks() => new()
    {
        { 1, 8, 12, 0.6 },
        { 2, 6, 80, 0.9 },   // D = 80: several Cholesky blocks and the trailing rank updates
        { 3, 9, 5, 1.4 },    // noisy: pseudo-labels differ from the true classes
    };

    [Theory]
    [MemberData(nameof(Tasks))]
    public void PaperPresetMatchesTheDirectComputationTo1e9(int seed, int c, int d, double noise)
    {
        var (images, texts) = SkewedTask(seed, c, d, perClass: 30, noise);
        var o = new SelectionOptions { Vega = VegaOptions.Paper };
        var s = ModelSelector.Score("m", images, texts, o);
        var naive = NaiveVega.Compute(images, texts, o);

        Assert.False(s.Vega.EdgeDegenerate, s.Vega.EdgeDegenerateReason);
        Assert.Equal(naive.Valid, s.Vega.Classes.Where(x => x.InEdgeTerm).Select(x => x.ClassIndex));
        Assert.Equal(naive.NodeScore, s.Vega.NodeScore, 1e-9);
        Assert.Equal(naive.Correlation!.Value, s.Vega.EdgeCorrelation!.Value, 1e-9);
        Assert.Equal(naive.EdgeScore, s.Vega.EdgeScore, 1e-9);
        Assert.Equal(naive.Vega, s.Metric(SelectionMetric.Vega), 1e-9);
        Assert.Equal(naive.Msp, s.Metric(SelectionMetric.MaxSoftmax), 1e-9);
        Assert.Equal(naive.NegEntropy, s.Metric(SelectionMetric.NegativeEntropy), 1e-9);
        Assert.Equal(naive.Margin, s.Metric(SelectionMetric.Margin), 1e-9);
        Assert.Equal(naive.MaxCosine, s.Metric(SelectionMetric.MaxCosine), 1e-9);
        Assert.Equal(naive.Dispersity, s.Metric(SelectionMetric.Dispersity), 1e-9);
        for (int i = 0; i < naive.Valid.Length; i++)
        {
            double alpha = s.Vega.Classes[naive.Valid[i]].Shrinkage!.Value;
            Assert.Equal(naive.Alpha[i], alpha, 1e-9);
            Assert.True(alpha >= 0.1, $"the paper's floor: α = max(α_LW, 0.1), got {alpha}");
        }
        // Every edge: the kept float64 edges are exp(−(D_B − min D_B)).
        var edges = s.Material!.Edges!;
        int v = naive.Valid.Length;
        double minDb = double.PositiveInfinity;
        for (int i = 0; i < v; i++) for (int j = 0; j < v; j++) if (i != j) minDb = Math.Min(minDb, naive.Distances[i, j]);
        for (int i = 0; i < v; i++)
            for (int j = 0; j < v; j++)
                if (i != j) Assert.Equal(naive.Distances[i, j] - minDb, -Math.Log(edges.Visual[i * v + j]), 1e-9);
    }

    [Fact]
    public void PaperPresetIsTheIssuesDefinition()
    {
        var p = VegaOptions.Paper;
        Assert.Equal(0.05, p.Temperature);
        Assert.Equal(VisualEdgeKind.ExpNegativeBhattacharyya, p.EdgeKind);
        Assert.Equal(CovarianceMode.FullLedoitWolf, p.Covariance);
        Assert.Equal(0.1, p.ShrinkageFloor);
        Assert.Equal(0, p.VarianceFloor);
        Assert.Null(p.FullSubspaceDimension);
        Assert.Equal(2, p.MinImagesPerClass);
        Assert.Equal(0, p.UndefinedEdgeScore);
        Assert.Same(p, VegaOptions.Preset(" PAPER "));
        Assert.Equal(new VegaOptions(), VegaOptions.Preset("default"));
        Assert.Contains("default or paper", Assert.Throws<ArgumentException>(() => VegaOptions.Preset("iclr")).Message);
    }

    [Fact]
    public void PaperPresetDependsOnNoSeedAndNoThreadCount()
    {
        var (images, texts) = SkewedTask(4, 7, 40, perClass: 25, noise: 0.8);
        var a = ModelSelector.Score("m", images, texts, new SelectionOptions { Vega = VegaOptions.Paper, MaxDegreeOfParallelism = 1, Bootstrap = new BootstrapOptions { Seed = 1 } });
        var b = ModelSelector.Score("m", images, texts, new SelectionOptions { Vega = VegaOptions.Paper, MaxDegreeOfParallelism = 3, Bootstrap = new BootstrapOptions { Seed = 99 } });
        Assert.Equal(a.Metrics, b.Metrics); // bitwise
    }

    [Fact]
    public void AnUndefinedEdgeCorrelationScoresZeroInThePaperPreset()
    {
        // Two classes only: no correlation over fewer than 3 classes; the paper's s_e is 0 (the default's 0.5).
        var (images, texts, _) = Synthetic.Task(seed: 3, n: 60, c: 2, d: 6, imageNoise: 0.5);
        var paper = ModelSelector.Score("m", images, texts, new SelectionOptions { Vega = VegaOptions.Paper });
        Assert.True(paper.Vega.EdgeDegenerate);
        Assert.Equal(0, paper.Vega.EdgeScore);
        Assert.Equal(paper.Vega.NodeScore, paper.Vega.Score);
        Assert.Equal(0.5, ModelSelector.Score("m", images, texts).Vega.EdgeScore);
    }

    [Fact]
    public void AClassOfIdenticalImagesIsLeftOutWithoutAVarianceFloor()
    {
        var (images, texts) = SkewedTask(5, 6, 8, perClass: 20, noise: 0.5);
        // Append three copies of class 4's text as images: they form a class whose images are identical... merged
        // into class 4 they would not be; give them their own class by using a fresh text direction.
        int d = texts.Dimension, c = texts.Count;
        var t2 = new EmbeddingMatrix(c + 1, d);
        texts.Data.CopyTo(t2.Data, 0);
        var extra = new float[d];
        extra[0] = 1; extra[1] = -1; extra[2] = 1;
        extra.CopyTo(t2.Row(c));
        var i2 = new EmbeddingMatrix(images.Count + 3, d);
        images.Data.CopyTo(i2.Data, 0);
        for (int r = 0; r < 3; r++) extra.CopyTo(i2.Row(images.Count + r));
        var s = ModelSelector.Score("m", i2, t2, new SelectionOptions { Vega = VegaOptions.Paper });
        Assert.Equal(3, s.Vega.Classes[c].ImageCount);
        Assert.False(s.Vega.Classes[c].InEdgeTerm);
        Assert.Contains(s.Vega.Warnings, w => w.Contains("without spread"));
        Assert.False(s.Vega.EdgeDegenerate, s.Vega.EdgeDegenerateReason);
    }
}
