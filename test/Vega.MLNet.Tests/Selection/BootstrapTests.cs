using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>The paired bootstrap: interval widths against the standard error, pairing, ties, seeds, batching.</summary>
public sealed class BootstrapTests
{
    [Fact]
    public void IntervalOfAMeanMatchesItsStandardError()
    {
        // Oracle: for a mean over N independent images the 95 % interval is about ±1.96·σ/√N (central limit theorem).
        var (images, texts, _) = Synthetic.Task(seed: 31, n: 20000, c: 12, d: 16, imageNoise: 1.6);
        var o = new SelectionOptions { Bootstrap = new BootstrapOptions { Replicates = 1000 } };
        var ranking = ModelSelector.RankModels([("m", images, texts)], o);
        var m = ranking.Chosen;
        // σ of the per-image max softmax probability, computed directly.
        var probs = new double[texts.Count];
        var scratch = new double[texts.Count];
        var cos = new double[texts.Count];
        var tn = Enumerable.Range(0, texts.Count).Select(k => Normalize(texts.Row(k).ToArray())).ToArray();
        var values = new double[images.Count];
        for (int i = 0; i < images.Count; i++)
        {
            var x = Normalize(images.Row(i).ToArray());
            for (int k = 0; k < texts.Count; k++) cos[k] = x.Zip(tn[k], (a, b) => a * b).Sum();
            values[i] = SimilarityKernel.Row(cos, 0.05, 0.01, probs, scratch).MaxProbability;
        }
        double mean = values.Average(), sd = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
        Assert.Equal(mean, m.Metric(SelectionMetric.MaxSoftmax), 1e-9);
        var iv = m.Interval(SelectionMetric.MaxSoftmax)!;
        double expectedWidth = 2 * 1.96 * sd / Math.Sqrt(images.Count), width = iv.Upper - iv.Lower;
        Assert.InRange(width / expectedWidth, 0.65, 1.45); // 64 groups: the width itself is estimated with ~10 % error
        Assert.InRange(mean, iv.Lower, iv.Upper);
        Assert.Equal(1.0, m.TopProbability); // alone: always best
        Assert.False(ranking.TooCloseToCall);
    }

    private static double[] Normalize(float[] v)
    {
        double n = Math.Sqrt(v.Sum(x => (double)x * x));
        return v.Select(x => x / n).ToArray();
    }

    [Fact]
    public void PairingSeparatesAConsistentlyBetterModelWhoseIntervalsOverlap()
    {
        // B is A with 40 of 6000 images replaced by exact copies of their class text: B's per-image scores are never
        // lower and a little higher on those images. Unpaired intervals overlap, yet B wins in every replicate that
        // includes one of its changed images.
        var (images, texts, labels) = Synthetic.Task(seed: 8, n: 6000, c: 10, d: 24, imageNoise: 2.0);
        var better = new EmbeddingMatrix((float[])images.Data.Clone(), images.Count, images.Dimension);
        for (int i = 0; i < 40; i++) texts.Row(labels[i * 150]).CopyTo(better.Row(i * 150));
        var o = new SelectionOptions { Metric = SelectionMetric.MaxSoftmax };
        var r = ModelSelector.RankModels([("A", images, texts), ("B", better, texts)], o);
        Assert.Equal("B", r.Chosen.ModelName);
        Assert.True(r.TooCloseToCall, "the two intervals overlap");
        Assert.True(r.ChosenProbability >= 0.99, $"P(B best) = {r.ChosenProbability}");
        Assert.Equal(1.0, r.Models.Sum(m => m.TopProbability!.Value), 12);
    }

    [Fact]
    public void IdenticalModelsShareTheWinsAndAreTooCloseToCall()
    {
        var (images, texts, _) = Synthetic.Task(seed: 9, n: 800, c: 6, d: 12, imageNoise: 1.0);
        var r = ModelSelector.RankModels([("x", images, texts), ("y", images, texts)]);
        Assert.True(r.TooCloseToCall);
        Assert.Equal(0.5, r.Models[0].TopProbability!.Value, 12);
        Assert.Equal(0.5, r.Models[1].TopProbability!.Value, 12);
    }

    [Fact]
    public void IntervalsFollowTheSeedAndNotTheBatching()
    {
        var (images, texts, _) = Synthetic.Task(seed: 10, n: 3000, c: 8, d: 16, imageNoise: 1.2);
        var o = new SelectionOptions { Vega = VegaOptions.Paper };
        var once = ModelSelector.RankModels([("m", images, texts)], o).Chosen;
        var acc = new ScoringAccumulator("m", texts, o);
        for (int start = 0; start < images.Count; start += 777)
        {
            int n = Math.Min(777, images.Count - start);
            acc.Add(new EmbeddingMatrix(images.Data.AsSpan(start * 16, n * 16).ToArray(), n, 16));
        }
        var streamed = ModelSelector.RankScores([ModelSelector.Finish(acc, TimeSpan.Zero)], o).Chosen;
        // Groups follow the image index and sums the row order; only the Gram's chunking rounds differently.
        foreach (var (name, iv) in once.Intervals!)
        {
            Assert.Equal(iv.Lower, streamed.Intervals![name].Lower, 1e-12);
            Assert.Equal(iv.Upper, streamed.Intervals[name].Upper, 1e-12);
        }
        var other = ModelSelector.RankModels([("m", images, texts)], o with { Bootstrap = new BootstrapOptions { Seed = 3 } }).Chosen;
        Assert.Equal(once.Metrics, other.Metrics);
        Assert.NotEqual(once.Interval(SelectionMetric.VegaNode), other.Interval(SelectionMetric.VegaNode));
        var off = ModelSelector.RankModels([("m", images, texts)], o with { Bootstrap = new BootstrapOptions { Replicates = 0 } });
        Assert.Null(off.Chosen.Intervals);
        Assert.Null(off.ChosenProbability);
        Assert.False(off.TooCloseToCall);
    }

    [Fact]
    public void EveryMetricGetsAnIntervalAroundItsValue()
    {
        var (images, texts, _) = Synthetic.Task(seed: 11, n: 4000, c: 10, d: 16, imageNoise: 1.0);
        foreach (var vega in new[] { new VegaOptions(), VegaOptions.Paper })
        {
            var m = ModelSelector.RankModels([("m", images, texts)], new SelectionOptions { Vega = vega }).Chosen;
            foreach (var metric in SelectionMetrics.All)
            {
                var iv = m.Interval(metric);
                Assert.True(iv is not null, $"{metric} has an interval");
                Assert.True(iv!.Lower <= iv.Upper);
                double v = m.Metric(metric), slack = 0.5 * (iv.Upper - iv.Lower) + 1e-12;
                Assert.InRange(v, iv.Lower - slack, iv.Upper + slack);
            }
        }
    }

    [Fact]
    public void PoissonDrawsHaveMeanAndVarianceOne()
    {
        var draws = Enumerable.Range(0, 200000).Select(i => (double)Bootstrap.Poisson1(Bootstrap.Mix(7, (ulong)i, 3))).ToArray();
        double mean = draws.Average(), variance = draws.Sum(x => (x - mean) * (x - mean)) / draws.Length;
        Assert.InRange(mean, 0.99, 1.01);
        Assert.InRange(variance, 0.98, 1.02);
        Assert.InRange(draws.Count(x => x == 0) / (double)draws.Length, Math.Exp(-1) - 0.005, Math.Exp(-1) + 0.005);
    }
}
