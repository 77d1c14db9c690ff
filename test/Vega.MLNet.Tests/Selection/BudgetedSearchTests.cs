using System.Text.Json;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Selection;

/// <summary>Successive halving: the schedule, merged statistics, failed candidates, the monitor and the CLI.</summary>
public sealed class BudgetedSearchTests
{
    private static readonly string[] Classes = [.. ImageSource.FashionMnistClassNames];

    private static long Work(int models, int[] sizes, double rate)
    {
        long w = 0;
        int alive = models;
        for (int r = 0; r < sizes.Length; r++)
        {
            w += (long)alive * (sizes[r] - (r > 0 ? sizes[r - 1] : 0));
            alive = SuccessiveHalving.Keep(alive, rate);
        }
        return w;
    }

    [Fact]
    public void TheScheduleHalvesTheCandidatesAndFitsTheBudget()
    {
        Assert.Equal([4, 2, 1], new[] { 8, 4, 2 }.Select(a => SuccessiveHalving.Keep(a, 0.5)));
        Assert.Equal(6, SuccessiveHalving.Keep(8, 0.3));
        Assert.Equal(1, SuccessiveHalving.Keep(2, 0.1)); // at least one is dropped

        // No budget: from the minimum sample to every image, geometrically (8 → 4 → 2 candidates: three rounds).
        var open = SuccessiveHalving.Schedule(8, 10000, new BudgetedSearchOptions { MinimumSample = 256 });
        Assert.Equal([256, 1600, 10000], open);
        Assert.Equal(4 * 256 + 2 * 1600 + 2 * 10000, Work(8, open, 0.5));

        // A budget of 40 % of a full ranking: the largest first sample whose doubling schedule fits (16·n0 ≤ 32000).
        var o = new BudgetedSearchOptions { ImageBudget = 32000 };
        var sized = SuccessiveHalving.Schedule(8, 10000, o);
        Assert.Equal([2000, 4000, 8000], sized);
        Assert.True(Work(8, sized, 0.5) <= 32000);
        Assert.Equal([1], SuccessiveHalving.Schedule(1, 1, new BudgetedSearchOptions()));
        Assert.Equal([37], SuccessiveHalving.Schedule(2, 37, new BudgetedSearchOptions()));
        // Too small a budget still runs the minimum sample.
        Assert.Equal(256, SuccessiveHalving.Schedule(8, 10000, new BudgetedSearchOptions { ImageBudget = 100 })[0]);
    }

    private sealed class Recorder : ISelectionMonitor
    {
        public readonly List<string> Events = [];
        public void ReportRunningTrial(SelectionTrialSettings settings) => Events.Add($"running {settings.TrialId} {settings.ModelName}");
        public void ReportCompletedTrial(SelectionTrial result) => Events.Add($"completed {result.Settings.TrialId} {result.Settings.ModelName}");
        public void ReportBestTrial(SelectionTrial result) => Events.Add($"best {result.Settings.TrialId} {result.Settings.ModelName}");
        public void ReportFailTrial(SelectionTrialSettings settings, Exception exception) => Events.Add($"failed {settings.TrialId} {settings.ModelName}");
    }

    [Fact]
    public void TheSearchMergesSamplesWithoutReembeddingAndSurvivesAFailedCandidate()
    {
        var (images, labels) = VisionLanguageModelSelectionTests.LabelledSubsetFiles(120);
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using var openai = ClipModel.Load(ClipModelTests.OpenAiFolder(), new ClipModelOptions { Name = "openai" });
        var source = ImageSource.FromIdx(images, labels, ImageSource.FashionMnistClassNames);
        string missing = Path.Combine(Fixtures.TempDir(), "no-such-model");
        var embedded = new HashSet<(string, string)>();
        var recorder = new Recorder();
        var options = new VlmSelectionOptions
        {
            Images = new ImageEmbeddingOptions { CacheDirectory = Fixtures.TempDir() },
            EmbedImages = (model, subset, o, ct) =>
            {
                foreach (var item in subset.Items) Assert.True(embedded.Add((model.Name, item.Id)), $"{model.Name} embedded {item.Id} twice");
                return ImageEmbedder.Embed(model, subset, o, ct);
            },
            BudgetedSearch = new BudgetedSearchOptions { MinimumSample = 20, Seed = 3, Monitor = recorder },
        };
        var result = VisionLanguageModelSelection.SelectVisionLanguageModel(
            [ModelCandidate.FromModel(hf), ModelCandidate.FromPath(missing, "broken"), ModelCandidate.FromModel(openai)], source, Classes, options);

        var trials = result.Ranking.Trials!;
        // Round 0: three trials on 20 images, the broken one failed; round 1: the survivor on all 120.
        Assert.Equal(4, trials.Count);
        var failed = Assert.Single(trials, t => t.Status == SelectionTrialStatus.Failed);
        Assert.Equal("broken", failed.Settings.ModelName);
        Assert.Contains("no-such-model", failed.Error);
        Assert.All(trials.Take(3), t => Assert.Equal(20, t.Settings.SampleSize));
        Assert.Equal(120, trials[3].Settings.SampleSize);
        Assert.Equal(100, trials[3].ImagesEmbedded);
        Assert.Single(trials, t => t.Eliminated);
        Assert.Equal(trials[3].Settings.ModelName, result.ChosenModel);
        Assert.Contains(result.Ranking.Warnings, w => w.Contains("Failed trial") && w.Contains("broken"));
        Assert.Null(result.Evaluation);
        Assert.Equal(2, result.Ranking.Models.Count);
        Assert.Equal(140, embedded.Count); // 120 + 20: no image twice by one model

        // The winner's statistics, merged over two samples of a shuffled order, equal one pass over every image.
        // (Dispersity to 1e-7 only: these tiny test towers give P near-zero singular values, which the Gram matrix
        // PᵀP resolves to about √ε — docs/vega.md.)
        var winner = result.ChosenModel == "hf" ? hf : openai;
        var direct = ModelSelector.Score(winner.Name, ImageEmbedder.Embed(winner, source).Embeddings, winner.EmbedClassNames(Classes));
        foreach (var (name, value) in direct.Metrics)
            Assert.True(Math.Abs(value - result.Ranking.Chosen.Metrics[name]) <= (name == "dispersity" ? 1e-7 : 1e-9), $"{name}: {value} vs {result.Ranking.Chosen.Metrics[name]}");
        Assert.NotNull(result.Ranking.Chosen.Interval(SelectionMetric.Vega));
        Assert.Equal(120, result.Runs.Single(r => r.ModelName == result.ChosenModel).ImagesEmbedded);

        // The monitor saw every trial start, then complete or fail, and a leader.
        Assert.Equal(4, recorder.Events.Count(e => e.StartsWith("running")));
        Assert.Equal(3, recorder.Events.Count(e => e.StartsWith("completed")));
        Assert.Equal("failed 1 broken", recorder.Events.Single(e => e.StartsWith("failed")));
        Assert.Contains(recorder.Events, e => e.StartsWith("best"));
        Assert.True(recorder.Events.IndexOf("running 1 broken") < recorder.Events.IndexOf("failed 1 broken"));
    }

    [Fact]
    public void NoTimeAndNoWorkingCandidateAreClearErrors()
    {
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromPaths([Path.Combine(Fixtures.Images, "dots.png")]);
        var options = new VlmSelectionOptions { BudgetedSearch = new BudgetedSearchOptions { TimeBudget = TimeSpan.FromTicks(1) } };
        Assert.Contains("ran out of time", Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel([hf], source, ["cat", "dog"], options)).Message);
        var broken = new VlmSelectionOptions { BudgetedSearch = new BudgetedSearchOptions() };
        var e = Assert.Throws<ArgumentException>(() => VisionLanguageModelSelection.SelectVisionLanguageModel(
            [ModelCandidate.FromPath(Path.Combine(Fixtures.TempDir(), "a")), ModelCandidate.FromPath(Path.Combine(Fixtures.TempDir(), "b"))], source, ["cat", "dog"], broken));
        Assert.Contains("No candidate could be scored", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => VisionLanguageModelSelection.SelectVisionLanguageModel([hf], source, ["cat", "dog"],
            new VlmSelectionOptions { BudgetedSearch = new BudgetedSearchOptions { EliminationRate = 1 } }));
    }

    [Fact]
    public void TheCliRunsThePaperPresetAndABudgetedSearchWithTrialsInTheJson()
    {
        var (images, labels) = VisionLanguageModelSelectionTests.LabelledSubsetFiles(40);
        string dir = Fixtures.TempDir();
        string classes = Path.Combine(dir, "classes.txt");
        File.WriteAllLines(classes, Classes);
        string json = Path.Combine(dir, "r.json");
        var (code, output, error) = VisionLanguageModelSelectionTests.Vega("rank", "--models", Path.Combine(Fixtures.Onnx, "hf"), ClipModelTests.OpenAiFolder(),
            "--images", images, "--labels", labels, "--classes", classes, "--json", json, "--cache", Path.Combine(dir, "cache"),
            "--vega-preset", "paper", "--min-class-images", "3", "--bootstrap", "50");
        Assert.True(code == 0, error + output);
        Assert.Contains("P(best)", output);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            var root = doc.RootElement;
            Assert.Equal(2, root.GetProperty("schemaVersion").GetInt32());
            var vega = root.GetProperty("options").GetProperty("vega");
            Assert.Equal("fullLedoitWolf", vega.GetProperty("covariance").GetString());
            Assert.Equal("expNegativeBhattacharyya", vega.GetProperty("edgeKind").GetString());
            Assert.Equal(3, vega.GetProperty("minImagesPerClass").GetInt32());
            Assert.Equal(50, root.GetProperty("options").GetProperty("bootstrap").GetProperty("replicates").GetInt32());
            Assert.True(root.GetProperty("models")[0].TryGetProperty("intervals", out _));
        }

        (code, output, error) = VisionLanguageModelSelectionTests.Vega("rank", "--models", Path.Combine(Fixtures.Onnx, "hf"), Path.Combine(dir, "missing-model"), ClipModelTests.OpenAiFolder(),
            "--images", images, "--labels", labels, "--classes", classes, "--json", json, "--cache", Path.Combine(dir, "cache"),
            "--budget", "halving", "--min-sample", "10");
        Assert.True(code == 0, error + output);
        Assert.Contains("missing-model", output + error);
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            var trials = doc.RootElement.GetProperty("trials").EnumerateArray().ToArray();
            Assert.Contains(trials, t => t.GetProperty("status").GetString() == "failed" && t.GetProperty("model").GetString() == "missing-model");
            Assert.Contains(trials, t => t.GetProperty("sampleSize").GetInt32() == 40);
        }

        (code, _, error) = VisionLanguageModelSelectionTests.Vega("rank", "--models", Path.Combine(Fixtures.Onnx, "hf"), "--images", images, "--classes", classes, "--budget", "lots");
        Assert.Equal(2, code);
        Assert.Contains("--budget 'lots'", error);
        (code, _, error) = VisionLanguageModelSelectionTests.Vega("rank", "--models", Path.Combine(Fixtures.Onnx, "hf"), "--images", images, "--classes", classes, "--vega-preset", "iclr");
        Assert.Equal(2, code);
        Assert.Contains("default or paper", error);
    }
}
