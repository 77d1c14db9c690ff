using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.Selection;

public sealed class RankingAndEvaluationTests(ITestOutputHelper output)
{
    [Fact]
    public void KendallTauBMatchesPublishedValuesAndTheDefinition()
    {
        // scipy.stats.kendalltau documentation example (τ-b with ties): −0.47140452079103173.
        Assert.Equal(-0.47140452079103173, SelectionEvaluation.KendallTauB([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]), 1e-12);
        Assert.Equal(1, SelectionEvaluation.KendallTauB([1, 2, 3, 4], [10, 20, 30, 40]), 1e-15);
        Assert.Equal(-1, SelectionEvaluation.KendallTauB([1, 2, 3, 4], [4, 3, 2, 1]), 1e-15);
        Assert.True(double.IsNaN(SelectionEvaluation.KendallTauB([1, 1, 1], [1, 2, 3])));
        // Against τ-b = (P − Q)/√((P + Q + X₀)(P + Q + Y₀)) counted from pair classes, on random data with ties.
        var rng = new Random(4);
        for (int trial = 0; trial < 20; trial++)
        {
            int n = rng.Next(3, 15);
            var x = Enumerable.Range(0, n).Select(_ => (double)rng.Next(5)).ToArray();
            var y = Enumerable.Range(0, n).Select(_ => (double)rng.Next(5)).ToArray();
            long p = 0, q = 0, x0 = 0, y0 = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++)
                {
                    bool tx = x[i] == x[j], ty = y[i] == y[j];
                    if (tx && ty) continue;
                    if (tx) x0++;
                    else if (ty) y0++;
                    else if ((x[i] > x[j]) == (y[i] > y[j])) p++;
                    else q++;
                }
            double denominator = Math.Sqrt((double)(p + q + y0) * (p + q + x0));
            double expected = denominator == 0 ? double.NaN : (p - q) / denominator;
            double got = SelectionEvaluation.KendallTauB(x, y);
            if (double.IsNaN(expected)) Assert.True(double.IsNaN(got));
            else Assert.Equal(expected, got, 1e-12);
        }
    }

    [Fact]
    public void SpearmanRhoMatchesPublishedValuesAndAverageRanks()
    {
        // scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]) = 0.8207826816681233.
        Assert.Equal(0.8207826816681233, SelectionEvaluation.SpearmanRho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 1e-12);
        Assert.Equal([1.5, 1.5, 3, 5, 5, 5], SelectionEvaluation.AverageRanks([2, 2, 3, 7, 7, 7]));
        // Without ties ρ = 1 − 6Σd²/(n(n²−1)).
        double[] a = [3, 1, 4, 1.5, 5, 9, 2.6], b = [2, 7, 1, 8, 2.8, 1.8, 2.85];
        var ra = SelectionEvaluation.AverageRanks(a);
        var rb = SelectionEvaluation.AverageRanks(b);
        double d2 = ra.Zip(rb, (u, v) => (u - v) * (u - v)).Sum();
        Assert.Equal(1 - 6 * d2 / (7 * (49 - 1)), SelectionEvaluation.SpearmanRho(a, b), 1e-12);
    }

    private static ModelScores Fake(string name, double vega, double msp)
    {
        var metrics = SelectionMetrics.All.ToDictionary(SelectionMetrics.Name, _ => 0.0);
        metrics["vega"] = vega;
        metrics["msp"] = msp;
        return new ModelScores
        {
            ModelName = name, ImageCount = 1, ClassCount = 2, Dimension = 2, Metrics = metrics, StatisticsTime = TimeSpan.Zero, GraphTime = TimeSpan.Zero,
            Vega = new VegaResult { Score = vega, NodeScore = 0, EdgeScore = 0, EdgeDegenerate = false, EdgeClassCount = 0, EdgeKind = default, Covariance = default, Classes = [], Warnings = [] },
        };
    }

    [Fact]
    public void TiesAreOrderedByNameThenInputOrderAndRanksAreSet()
    {
        var ordered = ModelSelector.Order([Fake("b", 1, 0), Fake("c", 2, 0), Fake("a", 1, 0), Fake("d", double.NaN, 0)], SelectionMetric.Vega);
        Assert.Equal(["c", "a", "b", "d"], ordered.Select(m => m.ModelName));
        Assert.Equal([1, 2, 3, 4], ordered.Select(m => m.Rank));
    }

    [Fact]
    public void RecallsAndRegretFollowTheirDefinitions()
    {
        // True accuracies: a 0.9, b 0.8, c 0.8, d 0.5, e 0.1. VEGA ranks d first (regret 0.4), then a, c.
        // Top-3 truth (accuracy ≥ 0.8, the third best): {a, b, c}; VEGA's top 3 = {d, a, c} → recall 2/3.
        var models = new[] { Fake("a", 0.8, 5), Fake("b", 0.2, 4), Fake("c", 0.7, 3), Fake("d", 0.9, 2), Fake("e", 0.1, 1) };
        var ranking = new RankingResult { Metric = SelectionMetric.Vega, Models = ModelSelector.Order(models, SelectionMetric.Vega), Warnings = [], Options = new(), TotalTime = TimeSpan.Zero };
        var acc = new Dictionary<string, double> { ["a"] = 0.9, ["b"] = 0.8, ["c"] = 0.8, ["d"] = 0.5, ["e"] = 0.1 };
        var ev = SelectionEvaluation.Evaluate(ranking, acc, topK: 3);
        Assert.Equal("a", ev.BestModel);
        var vega = ev.For(SelectionMetric.Vega);
        Assert.Equal("d", vega.ChosenModel);
        Assert.Equal(0, vega.Top1Recall);
        Assert.Equal(0.4, vega.Regret, 1e-12);
        Assert.Equal(2.0 / 3, vega.TopKRecall, 1e-12);
        var msp = ev.For(SelectionMetric.MaxSoftmax); // orders a, b, c, d, e: perfect
        Assert.Equal(1, msp.Top1Recall);
        Assert.Equal(0, msp.Regret);
        Assert.Equal(1, msp.TopKRecall);
        Assert.Equal(SelectionEvaluation.KendallTauB([5, 4, 3, 2, 1], [0.9, 0.8, 0.8, 0.5, 0.1]), msp.KendallTau, 1e-12);

        var avg = SelectionEvaluation.Average([ev, ev with { Metrics = ev.Metrics.Select(m => m with { Regret = 0, KendallTau = double.NaN }).ToArray() }]);
        var v = avg.Single(m => m.Metric == SelectionMetric.Vega);
        Assert.Equal(0.2, v.Regret, 1e-12);
        Assert.Equal(1, v.CorrelationTaskCount);
        Assert.Equal(vega.KendallTau, v.KendallTau, 1e-12);
        Assert.Throws<ArgumentException>(() => SelectionEvaluation.Evaluate(ranking, new Dictionary<string, double> { ["a"] = 1 }));
    }

    [Fact]
    public void TheRandomBaselineIsTheExpectationOverEveryOrderOfTheModels()
    {
        // Oracle: enumerate all 5! orders of five models (accuracies with ties), evaluate each order as a metric, average.
        string[] names = ["a", "b", "c", "d", "e"];
        var acc = new Dictionary<string, double> { ["a"] = 0.9, ["b"] = 0.8, ["c"] = 0.9, ["d"] = 0.5, ["e"] = 0.8 };
        var ev = SelectionEvaluation.Evaluate(Ranking(names.Select(n => Fake(n, 0, 0)).ToArray()), acc, topK: 2);
        var random = ev.For(SelectionMetric.Random);
        Assert.True(random.Expected);
        Assert.Null(random.ChosenModel);
        Assert.Same(random, ev.Metrics[^1]);
        Assert.DoesNotContain(SelectionMetric.Random, SelectionMetrics.All);

        double tau = 0, rho = 0, top1 = 0, topK = 0, regret = 0;
        int orders = 0;
        foreach (var perm in Permutations([0, 1, 2, 3, 4]))
        {
            // perm[r] = the model at position r; its score is 5 − r, so the order is the permutation.
            var models = perm.Select((m, r) => Fake(names[m], 5 - r, 0)).ToArray();
            var e = SelectionEvaluation.Evaluate(Ranking(models), acc, topK: 2).For(SelectionMetric.Vega);
            tau += e.KendallTau; rho += e.SpearmanRho; top1 += e.Top1Recall; topK += e.TopKRecall; regret += e.Regret;
            orders++;
        }
        Assert.Equal(120, orders);
        Assert.Equal(tau / orders, random.KendallTau, 12);
        Assert.Equal(rho / orders, random.SpearmanRho, 12);
        Assert.Equal(top1 / orders, random.Top1Recall, 12);   // 2 of 5 models are best: 0.4
        Assert.Equal(topK / orders, random.TopKRecall, 12);   // true top 2 = accuracy ≥ 0.9: {a, c}
        Assert.Equal(regret / orders, random.Regret, 12);     // best − mean accuracy = 0.9 − 0.78
        Assert.Equal(0.4, random.Top1Recall, 12);
        Assert.Equal(0.9 - 0.78, random.Regret, 12);

        var avg = SelectionEvaluation.Average([ev, ev]);
        Assert.Equal(random.Regret, avg.Single(m => m.Metric == SelectionMetric.Random).Regret, 12);
        Assert.Contains("cannot order models", Assert.Throws<ArgumentException>(() => new SelectionOptions { Metric = SelectionMetric.Random }.Validate()).Message);
    }

    private static RankingResult Ranking(ModelScores[] models) =>
        new() { Metric = SelectionMetric.Vega, Models = ModelSelector.Order(models, SelectionMetric.Vega), Warnings = [], Options = new(), TotalTime = TimeSpan.Zero };

    private static IEnumerable<int[]> Permutations(int[] items)
    {
        if (items.Length <= 1) { yield return items; yield break; }
        for (int i = 0; i < items.Length; i++)
            foreach (var rest in Permutations([.. items[..i], .. items[(i + 1)..]]))
                yield return [items[i], .. rest];
    }

    [Fact]
    public void ZeroShotAccuracyCountsArgmaxCosineHits()
    {
        var texts = new EmbeddingMatrix([1, 0, 0, 2], 2, 2);      // norms differ: cosine must normalise texts
        var images = new EmbeddingMatrix([1, 0.1f, 0.3f, 0.2f, 0.1f, 5], 3, 2);
        Assert.Equal(2.0 / 3, SelectionEvaluation.ZeroShotAccuracy(images, texts, [0, 1, 1]), 1e-12);
        Assert.Throws<ArgumentException>(() => SelectionEvaluation.ZeroShotAccuracy(images, texts, [0, 1]));
        Assert.Throws<ArgumentException>(() => SelectionEvaluation.ZeroShotAccuracy(images, texts, [0, 2, 1]));
    }

    /// <summary>
    /// The synthetic zoo: one task (class prototypes, texts near them), eight models whose images carry noise at known
    /// increasing levels, so their true accuracy decreases. VEGA must order them with Kendall τ ≥ 0.8 against accuracy.
    /// </summary>
    [Theory]
    [InlineData(CovarianceMode.Diagonal)]
    [InlineData(CovarianceMode.FullLedoitWolf)]
    [InlineData(CovarianceMode.Isotropic)]
    public void VegaRanksTheSyntheticZooWithKendallTauAtLeast08(CovarianceMode mode)
    {
        const int n = 3000, c = 20, d = 64;
        var rng = new Random(2024);
        var protos = Synthetic.Prototypes(rng, c, d);
        var labels = Synthetic.Labels(rng, n, c);
        double[] noise = [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5];
        var candidates = noise.Select((level, i) =>
        {
            var r = new Random(100 + i);
            var texts = Synthetic.Around(r, protos, d, Enumerable.Range(0, c).ToArray(), 0.25);
            var images = Synthetic.Around(r, protos, d, labels, level);
            return ($"model-{(char)('A' + (i * 5) % 8)}-{level}", images, texts);
        }).ToArray();
        var options = new SelectionOptions { Metric = SelectionMetric.Vega, Vega = new VegaOptions { Covariance = mode } };
        var (ranking, eval) = SelectionEvaluation.RankAndEvaluate(candidates, labels, options, topK: 3);
        var accuracies = candidates.Select(m => eval.Accuracies[m.Item1]).ToArray();
        for (int i = 1; i < accuracies.Length; i++) Assert.True(accuracies[i] < accuracies[i - 1], "the zoo's accuracy decreases with noise: " + string.Join(", ", accuracies));
        var vega = eval.For(SelectionMetric.Vega);
        string table = string.Join("\n", eval.Metrics.Select(m => $"{SelectionMetrics.Name(m.Metric)}: τ={m.KendallTau:F3} ρ={m.SpearmanRho:F3} regret={m.Regret:F3}"));
        output.WriteLine($"{mode}: accuracies {string.Join(", ", accuracies.Select(a => a.ToString("F3")))}\n{table}");
        Assert.True(vega.KendallTau >= 0.8, $"VEGA τ = {vega.KendallTau}\n{table}");
        Assert.Equal(8, ranking.Models.Count);
        Assert.Equal(ranking.Chosen.ModelName, vega.ChosenModel);
        Assert.All(ranking.Models, m => Assert.True(m.ScoringTime > TimeSpan.Zero));
    }
}
