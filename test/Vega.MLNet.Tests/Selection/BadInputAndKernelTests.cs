using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

public sealed class BadInputAndKernelTests
{
    private static readonly EmbeddingMatrix Texts = new([1, 0, 0, 0, 1, 0, 0, 0, 1], 3, 3);
    private static readonly EmbeddingMatrix Images = new([1, 0.1f, 0, 0.1f, 1, 0, 0, 0.2f, 1, 0.9f, 0.1f, 0.1f], 4, 3);

    [Fact]
    public void DimensionMismatchBetweenTowersNamesTheModelAndBothDimensions()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelSelector.Score("clip-b32", new EmbeddingMatrix(5, 4), Texts));
        Assert.Contains("clip-b32", e.Message);
        Assert.Contains("dimension 4", e.Message);
        Assert.Contains("have 3", e.Message);
    }

    [Fact]
    public void NoImagesIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", new EmbeddingMatrix(0, 3), Texts));
        Assert.Contains("no image embeddings", e.Message);
        var acc = new ScoringAccumulator("m", Texts, new SelectionOptions());
        Assert.Contains("no image embeddings", Assert.Throws<InvalidOperationException>(acc.Finish).Message);
    }

    [Fact]
    public void OneClassIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", Images, new EmbeddingMatrix([1, 0, 0], 1, 3)));
        Assert.Contains("at least 2 classes", e.Message);
    }

    [Fact]
    public void NaNAndZeroEmbeddingsNameTheRow()
    {
        var bad = new EmbeddingMatrix((float[])Images.Data.Clone(), 4, 3);
        bad.Row(2)[1] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", bad, Texts));
        Assert.Contains("row 2 contains NaN", e.Message);
        bad.Row(2)[1] = float.PositiveInfinity;
        Assert.Contains("row 2 contains NaN or infinity", Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", bad, Texts)).Message);
        var zero = new EmbeddingMatrix((float[])Images.Data.Clone(), 4, 3);
        zero.Row(3).Clear();
        Assert.Contains("row 3 is all zeros", Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", zero, Texts)).Message);
        // Beyond the first internal chunk, and in a later batch of a stream: the index counts every row added so far.
        var (many, texts, _) = Synthetic.Task(seed: 1, n: 2000, c: 3, d: 3, imageNoise: 0.5);
        many.Row(1500)[0] = float.NaN;
        Assert.Contains("row 1500 contains NaN", Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", many, texts)).Message);
        var stream = new ScoringAccumulator("m", texts, new SelectionOptions());
        stream.Add(Images);
        Assert.Contains("row 1504 contains NaN", Assert.Throws<ArgumentException>(() => stream.Add(many)).Message);
        var badText = new EmbeddingMatrix([1, 0, 0, 0, float.NaN, 0, 0, 0, 1], 3, 3);
        Assert.Contains("class text embedding 1 contains NaN", Assert.Throws<ArgumentException>(() => ModelSelector.Score("m", Images, badText)).Message);
    }

    [Fact]
    public void RankingRejectsDuplicateNamesEmptyListsAndDifferentClassSets()
    {
        Assert.Contains("No candidate", Assert.Throws<ArgumentException>(() => ModelSelector.RankModels([])).Message);
        Assert.Contains("named 'a'", Assert.Throws<ArgumentException>(() => ModelSelector.RankModels([("a", Images, Texts), ("a", Images, Texts)])).Message);
        var twoClasses = new EmbeddingMatrix([1, 0, 0, 0, 1, 0], 2, 3);
        Assert.Contains("same classes", Assert.Throws<ArgumentException>(() => ModelSelector.RankModels([("a", Images, Texts), ("b", Images, twoClasses)])).Message);
        var fewer = new EmbeddingMatrix(Images.Data[..9], 3, 3);
        var r = ModelSelector.RankModels([("a", Images, Texts), ("b", fewer, Texts)]);
        Assert.Contains(r.Warnings, w => w.Contains("scored on 3 images"));
    }

    [Fact]
    public void OptionsOutOfRangeAreRejectedWithTheirDefault()
    {
        Assert.Contains("default 0.05", Assert.Throws<ArgumentOutOfRangeException>(() => ModelSelector.Score("m", Images, Texts, new SelectionOptions { Vega = new VegaOptions { Temperature = 0 } })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelSelector.Score("m", Images, Texts, new SelectionOptions { Vega = new VegaOptions { MinImagesPerClass = 1 } }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelSelector.Score("m", Images, Texts, new SelectionOptions { Vega = new VegaOptions { FixedShrinkage = 1.5 } }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelSelector.Score("m", Images, Texts, new SelectionOptions { BaselineTemperature = double.NaN }));
        Assert.Equal(SelectionMetric.NegativeEntropy, SelectionMetrics.Parse("NEG_ENTROPY"));
        Assert.Contains("vega-edge", Assert.Throws<ArgumentException>(() => SelectionMetrics.Parse("accuracy")).Message);
        foreach (var m in SelectionMetrics.All) Assert.Equal(m, SelectionMetrics.Parse(SelectionMetrics.Name(m)));
    }

    [Fact]
    public void MergingIncompatibleAccumulatorsFails()
    {
        var a = new ScoringAccumulator("a", Texts, new SelectionOptions());
        var b = new ScoringAccumulator("b", new EmbeddingMatrix([1, 0, 0, 0, 1, 0, 0, 1, 1], 3, 3), new SelectionOptions());
        Assert.Contains("share the class text embeddings", Assert.Throws<ArgumentException>(() => a.Merge(b)).Message);
        var c = new ScoringAccumulator("c", Texts, new SelectionOptions { Vega = new VegaOptions { Temperature = 0.1 } });
        Assert.Throws<ArgumentException>(() => a.Merge(c));
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 7, 3)]
    [InlineData(67, 130, 37)]
    [InlineData(128, 64, 512)]
    public void SimilarityGemmMatchesFloat64Dots(int rows, int cols, int dim)
    {
        var rng = new Random(rows * 1000 + cols);
        var a = Synthetic.Gaussian(rng, rows * dim);
        var b = Synthetic.Gaussian(rng, cols * dim);
        var c = new float[rows * cols];
        SimilarityKernel.MultiplyTransposed(a, rows, b, cols, dim, c);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                double s = 0, scale = 0;
                for (int k = 0; k < dim; k++) { s += (double)a[i * dim + k] * b[j * dim + k]; scale += Math.Abs((double)a[i * dim + k] * b[j * dim + k]); }
                Assert.True(Math.Abs(s - c[i * cols + j]) <= 1e-6 * scale + 1e-7, $"({i},{j}): {s} vs {c[i * cols + j]}");
            }
    }

    [Fact]
    public void CholeskyAndEigenMatchDefinitions()
    {
        var rng = new Random(8);
        int n = 9;
        var g = Enumerable.Range(0, n * n).Select(_ => DenseMath.Gaussian(rng)).ToArray();
        var spd = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) { double s = i == j ? 0.5 : 0; for (int k = 0; k < n; k++) s += g[i * n + k] * g[j * n + k]; spd[i * n + j] = s; }

        // Cholesky: L Lᵀ = A and ln det from the eigenvalues.
        var l = (double[])spd.Clone();
        double logDet = DenseMath.CholeskyLogDet(l, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int k = 0; k <= j; k++) s += l[i * n + k] * l[j * n + k];
                Assert.Equal(spd[i * n + j], s, 1e-10);
            }
        var values = new double[n];
        var vectors = new double[n * n];
        Jacobi.SymmetricEigen((double[])spd.Clone(), n, values, vectors);
        Assert.Equal(values.Sum(Math.Log), logDet, 1e-9);
        for (int i = 1; i < n; i++) Assert.True(values[i] <= values[i - 1]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++) s += vectors[i * n + k] * values[k] * vectors[j * n + k];
                Assert.Equal(spd[i * n + j], s, 1e-9);
            }
        Assert.True(double.IsNaN(DenseMath.CholeskyLogDet(new double[] { 1, 2, 2, 1 }, 2)), "indefinite matrices are reported");

        // Top eigenvectors span the same space as the leading eigenvectors from Jacobi (projector comparison).
        int p = 3;
        var top = DenseMath.TopEigenvectors(spd, n, p);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double a = 0, b = 0;
                for (int k = 0; k < p; k++) { a += top[i * p + k] * top[j * p + k]; b += vectors[i * n + k] * vectors[j * n + k]; }
                Assert.Equal(b, a, 1e-6);
            }
    }

    [Fact]
    public void RowStatisticsMatchAFloat64Softmax()
    {
        var rng = new Random(12);
        var cos = Enumerable.Range(0, 37).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var probabilities = new double[cos.Length];
        var s = SimilarityKernel.Row(cos, 0.05, 0.01, probabilities, new double[cos.Length]);
        double max = cos.Max();
        int label = Array.IndexOf(cos, max);
        double Z(double t) => cos.Sum(c => Math.Exp((c - max) / t));
        var pRow = cos.Select(c => Math.Exp((c - max) / 0.01) / Z(0.01)).ToArray();
        var p = pRow.OrderDescending().ToArray();
        Assert.Equal(label, s.Label);
        Assert.Equal(1 / Z(0.05), s.NodeProbability, 1e-13);
        Assert.Equal(p[0], s.MaxProbability, 1e-13);
        Assert.Equal(p[0] - p[1], s.Margin, 1e-13);
        Assert.Equal(-p.Where(z => z > 0).Sum(z => z * Math.Log(z)), s.Entropy, 1e-12);
        for (int k = 0; k < cos.Length; k++) Assert.Equal(pRow[k], probabilities[k], 1e-14);
    }
}
