using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>Streaming = batch = merged shards; invariance to class order and embedding scale.</summary>
public sealed class StreamingAndInvarianceTests
{
    public static TheoryData<CovarianceMode, int?> Modes() => new()
    {
        { CovarianceMode.Diagonal, null },
        { CovarianceMode.Isotropic, null },
        { CovarianceMode.FullLedoitWolf, null },
        { CovarianceMode.FullLedoitWolf, 4 },
        { CovarianceMode.FullFixedShrinkage, 4 },
    };

    private static EmbeddingMatrix Slice(EmbeddingMatrix m, int start, int count) =>
        new(m.Data.AsSpan(start * m.Dimension, count * m.Dimension).ToArray(), count, m.Dimension);

    private static void AssertSameScores(ModelScores expected, ModelScores actual, double tolerance)
    {
        foreach (var (name, value) in expected.Metrics)
            Assert.True(Math.Abs(value - actual.Metrics[name]) <= tolerance, $"{name}: {value} vs {actual.Metrics[name]} (diff {Math.Abs(value - actual.Metrics[name]):G3})");
        Assert.Equal(expected.Vega.Classes.Select(c => c.ImageCount), actual.Vega.Classes.Select(c => c.ImageCount));
        for (int k = 0; k < expected.ClassCount; k++)
        {
            double? a = expected.Vega.Classes[k].NodeSimilarity, b = actual.Vega.Classes[k].NodeSimilarity;
            Assert.Equal(a.HasValue, b.HasValue);
            if (a.HasValue) Assert.True(Math.Abs(a.Value - b!.Value) <= tolerance, $"class {k} node similarity {a} vs {b}");
        }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void StreamingBatchAndMergedShardsAgreeWithin1e6(CovarianceMode mode, int? subspace)
    {
        var (images, texts, _) = Synthetic.Task(seed: 5, n: 2500, c: 12, d: 24, imageNoise: 1.0);
        var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode, FullSubspaceDimension = subspace } };
        var batch = ModelSelector.Score("m", images, texts, o);

        // Streaming in uneven batches (1, 7, 333, ... rows), single-threaded.
        var serial = o with { MaxDegreeOfParallelism = 1 };
        var stream = new ScoringAccumulator("m", texts, serial);
        int[] sizes = [1, 7, 333, 1024, 1, 1100];
        int at = 0;
        foreach (int size in sizes.Append(images.Count))
        {
            int n = Math.Min(size, images.Count - at);
            if (n <= 0) break;
            stream.Add(Slice(images, at, n));
            at += n;
        }
        Assert.Equal(images.Count, at);
        var streamed = ModelSelector.Finish(stream, TimeSpan.Zero);
        AssertSameScores(batch, streamed, 1e-6);

        // Three shards, merged in two different orders.
        ScoringAccumulator Shard(int start, int count)
        {
            var a = new ScoringAccumulator("m", texts, o);
            a.Add(Slice(images, start, count));
            return a;
        }
        var (s1, s2, s3) = (Shard(0, 900), Shard(900, 700), Shard(1600, 900));
        s1.Merge(s2);
        s1.Merge(s3);
        var (t1, t2, t3) = (Shard(0, 900), Shard(900, 700), Shard(1600, 900));
        t3.Merge(t2);
        t3.Merge(t1);
        AssertSameScores(batch, ModelSelector.Finish(s1, TimeSpan.Zero), 1e-6);
        AssertSameScores(batch, ModelSelector.Finish(t3, TimeSpan.Zero), 1e-6);
    }

    [Fact]
    public void ScoresDoNotDependOnTheThreadCount()
    {
        var (images, texts, _) = Synthetic.Task(seed: 9, n: 3000, c: 10, d: 32, imageNoise: 1.2);
        foreach (var mode in new[] { CovarianceMode.Diagonal, CovarianceMode.FullLedoitWolf })
        {
            var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode } };
            var one = ModelSelector.Score("m", images, texts, o with { MaxDegreeOfParallelism = 1 });
            var many = ModelSelector.Score("m", images, texts, o with { MaxDegreeOfParallelism = 3 });
            AssertSameScores(one, many, 0); // bit-identical: the work split never changes the order of additions
        }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void PermutingTheClassesChangesNothing(CovarianceMode mode, int? subspace)
    {
        var (images, texts, _) = Synthetic.Task(seed: 21, n: 800, c: 9, d: 16, imageNoise: 1.0);
        var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode, FullSubspaceDimension = subspace } };
        var baseline = ModelSelector.Score("m", images, texts, o);
        int c = texts.Count, d = texts.Dimension;
        int[] perm = [4, 0, 8, 2, 7, 1, 6, 3, 5];
        var permuted = new EmbeddingMatrix(c, d);
        for (int k = 0; k < c; k++) texts.Row(perm[k]).CopyTo(permuted.Row(k));
        var p = ModelSelector.Score("m", images, permuted, o);
        foreach (var (name, value) in baseline.Metrics)
            Assert.True(Math.Abs(value - p.Metrics[name]) <= 1e-6, $"{name}: {value} vs {p.Metrics[name]}");
        for (int k = 0; k < c; k++) Assert.Equal(baseline.Vega.Classes[perm[k]].ImageCount, p.Vega.Classes[k].ImageCount);
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++)
            {
                float a = baseline.Vega.Edges!.Visual[perm[i] * c + perm[j]], b = p.Vega.Edges!.Visual[i * c + j];
                Assert.True(float.IsNaN(a) ? float.IsNaN(b) : Math.Abs(a - b) <= 1e-4 * Math.Max(1, Math.Abs(a)), $"E_V({i},{j}) {a} vs {b}");
            }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void ScalingTheEmbeddingsChangesNothing(CovarianceMode mode, int? subspace)
    {
        var (images, texts, _) = Synthetic.Task(seed: 22, n: 800, c: 9, d: 16, imageNoise: 1.0);
        var o = new SelectionOptions { Vega = new VegaOptions { Covariance = mode, FullSubspaceDimension = subspace } };
        var baseline = ModelSelector.Score("m", images, texts, o);
        var rng = new Random(1);
        // Every image row and every text row gets its own positive scale over six orders of magnitude.
        var scaledImages = new EmbeddingMatrix(images.Count, images.Dimension);
        for (int i = 0; i < images.Count; i++)
        {
            float f = (float)Math.Pow(10, rng.NextDouble() * 6 - 3);
            for (int a = 0; a < images.Dimension; a++) scaledImages.Row(i)[a] = images.Row(i)[a] * f;
        }
        var scaledTexts = new EmbeddingMatrix(texts.Count, texts.Dimension);
        for (int k = 0; k < texts.Count; k++)
            for (int a = 0; a < texts.Dimension; a++) scaledTexts.Row(k)[a] = texts.Row(k)[a] * 37.5f;
        var s = ModelSelector.Score("m", scaledImages, scaledTexts, o);
        foreach (var (name, value) in baseline.Metrics)
            Assert.True(Math.Abs(value - s.Metrics[name]) <= 1e-5, $"{name}: {value} vs {s.Metrics[name]}");
    }
}
