using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// VegaAlignment and SelectVisionLanguageModel against the core paths they wrap (SelectionStatistics over ImageEmbedder's
/// embeddings; VisionLanguageModelSelection over the same files), and the per-row outputs against direct computations.
/// </summary>
public sealed class SelectionAndVegaTests
{
    private static readonly string[] Classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];
    private static string Hf => Path.Combine(Fixtures.Onnx, "hf");
    private static string OpenAI => Path.Combine(Fixtures.Onnx, "openai");

    internal sealed class VegaRow
    {
        public string ImagePath = "";
        public uint PseudoLabel { get; set; }
        public float NodeScore { get; set; }
    }

    [Fact]
    public void VegaAlignmentEqualsTheCoreStatisticsAndItsRowsAreTheArgmaxAndNodeProbability()
    {
        var ml = new MLContext(seed: 1);
        var rows = ImageEmbeddingTests.GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var embed = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(data);
        var embedded = embed.Transform(data);
        var options = new VegaAlignmentEstimator.Options { ModelPath = Hf, ClassNames = Classes, Vega = VegaOptions.Paper, BatchSize = 5 };
        var vega = ml.Transforms.VegaAlignment(options).Fit(embedded);

        // The core path: the same statistics from the core engine's embeddings in one batch.
        using var model = ClipModel.Load(Hf);
        var texts = model.EmbedClassNames(Classes);
        var images = ImageEmbedder.Embed(model, ImageSource.FromPaths(rows.Select(r => r.ImagePath).ToArray())).Embeddings;
        var stats = SelectionStatistics.Create(model.Name, texts, options.Selection);
        stats.Add(images, Enumerable.Range(0, images.Count).Select(i => (long)i).ToArray());
        var core = stats.Score();
        Assert.Equal(core.Vega.Score, vega.Result.Score, 12);
        Assert.Equal(core.Vega.NodeScore, vega.Result.NodeScore, 12);
        Assert.Equal(core.Vega.EdgeScore, vega.Result.EdgeScore, 12);
        foreach (var (name, value) in core.Metrics) Assert.Equal(value, vega.Scores.Metrics[name], 12);
        Assert.Equal(rows.Length, vega.Scores.ImageCount);
        Assert.Equal(0, vega.SkippedRows);

        var perRow = ml.Data.CreateEnumerable<VegaRow>(vega.Transform(embedded), reuseRowObject: false).ToArray();
        Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(vega.GetOutputSchema(embedded.Schema)["PseudoLabel"]));
        for (int i = 0; i < rows.Length; i++)
        {
            var cos = Enumerable.Range(0, Classes.Length).Select(c => Cosine(images.Row(i), texts.Row(c))).ToArray();
            int best = Array.IndexOf(cos, cos.Max());
            double node = 1 / cos.Sum(x => Math.Exp((x - cos[best]) / VegaOptions.Paper.Temperature));
            Assert.Equal((uint)best + 1, perRow[i].PseudoLabel);
            Assert.Equal(node, perRow[i].NodeScore, 5);
        }
    }

    [Fact]
    public void SelectVisionLanguageModelRanksLikeTheCorePathAndReturnsTheChosenZeroShotTransformer()
    {
        var ml = new MLContext(seed: 1);
        var rows = ImageEmbeddingTests.GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        string[] dirs = [OpenAI, Hf];
        using var selection = ml.Transforms.SelectVisionLanguageModel(candidateModelPaths: dirs, classNames: Classes, imageColumnName: "ImagePath").Fit(data);

        var core = VisionLanguageModelSelection.SelectVisionLanguageModel(dirs.Select(d => ModelCandidate.FromPath(d)).ToArray(),
            ImageSource.FromPaths(rows.Select(r => r.ImagePath).ToArray()), Classes);
        Assert.Equal(core.Ranking.Models.Select(m => m.ModelName), selection.Ranking.Select(r => r.Name));
        var chosenDir = dirs.Single(d => new DirectoryInfo(d).Name == core.ChosenModel);
        Assert.Equal(chosenDir, selection.ChosenModel);
        Assert.Equal(selection.ChosenModel, selection.Ranking[0].Model);
        var metric = core.Ranking.Metric;
        for (int i = 0; i < dirs.Length; i++)
            Assert.Equal(core.Ranking.Models[i].Metric(metric), selection.Ranking[i].Score, 12);
        Assert.True(selection.Ranking[0].Score >= selection.Ranking[1].Score);

        // The transformer is the chosen model's EmbedImages + ZeroShot.
        var scored = selection.Transform(data);
        using var embed = ml.Transforms.EmbedImages("ImageEmbedding", chosenDir, "ImagePath").Fit(data);
        var direct = ml.MulticlassClassification.Trainers.ZeroShot(chosenDir, Classes).Fit(embed.Transform(data)).Transform(embed.Transform(data));
        Assert.Equal(direct.GetColumn<float[]>("Score").ToArray(), scored.GetColumn<float[]>("Score").ToArray());
        Assert.Equal(direct.GetColumn<uint>("PredictedLabel").ToArray(), scored.GetColumn<uint>("PredictedLabel").ToArray());
    }

    [Fact]
    public void TheRankingIsWrittenAsAnHtmlReportAndAsJson()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        using var selection = ml.Transforms.SelectVisionLanguageModel([OpenAI, Hf], Classes, "ImagePath").Fit(data);
        string dir = Fixtures.TempDir();

        // JSON: the ranking of the transformer, best first, with each score and the chosen model.
        string json = Path.Combine(dir, "ranking.json");
        selection.SaveJson(json);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.Equal(2, root.GetProperty("schemaVersion").GetInt32());
        Assert.Equal(selection.Ranking[0].Name, root.GetProperty("chosen").GetString());
        Assert.Equal(selection.TooCloseToCall, root.GetProperty("tooCloseToCall").GetBoolean());
        var models = root.GetProperty("models").EnumerateArray().ToArray();
        Assert.Equal(selection.Ranking.Select(r => r.Name), models.Select(m => m.GetProperty("name").GetString()));
        string metric = root.GetProperty("metric").GetString()!;
        for (int i = 0; i < models.Length; i++)
            Assert.Equal(selection.Ranking[i].Score, models[i].GetProperty("metrics").GetProperty(metric).GetDouble(), 12);
        Assert.False(models[0].GetProperty("vega").TryGetProperty("edges", out var edges) && edges.ValueKind != System.Text.Json.JsonValueKind.Null);

        // HTML: self-contained (no scripts, no network), naming the task, every candidate and every class.
        string html = Path.Combine(dir, "ranking.html");
        selection.SaveReport(html, taskName: "golden images");
        string text = File.ReadAllText(html);
        Assert.StartsWith("<!DOCTYPE html>", text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("golden images", text);
        foreach (var r in selection.Ranking) Assert.Contains(r.Name, text);
        foreach (var c in Classes) Assert.Contains(System.Net.WebUtility.HtmlEncode(c), text);
        Assert.DoesNotContain("<script", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("http://", text.Replace("http://www.w3.org/2000/svg", ""));

        // A missing folder is an error naming it, before anything is written.
        var e = Assert.Throws<DirectoryNotFoundException>(() => selection.SaveReport(Path.Combine(dir, "nope", "r.html")));
        Assert.Contains(Path.Combine(dir, "nope"), e.Message);
    }

    [Fact]
    public void EncodedBytesGiveTheSameRankingAsPaths()
    {
        var ml = new MLContext(seed: 1);
        var rows = ImageEmbeddingTests.GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        string[] dirs = [OpenAI, Hf];
        using var byPath = ml.Transforms.SelectVisionLanguageModel(dirs, Classes, "ImagePath").Fit(data);
        var bytes = ml.Transforms.LoadRawImageBytes("Bytes", null, "ImagePath").Fit(data).Transform(data);
        using var byBytes = ml.Transforms.SelectVisionLanguageModel(dirs, Classes, "Bytes").Fit(bytes);
        Assert.Equal(byPath.Ranking.Select(r => r.Model), byBytes.Ranking.Select(r => r.Model));
        for (int i = 0; i < dirs.Length; i++)
            foreach (var (name, value) in byPath.Ranking[i].Scores!.Metrics)
                Assert.Equal(value, byBytes.Ranking[i].Scores!.Metrics[name], 9);
    }

    [Fact]
    public void FittingTwiceOverTheSameImagesEmbedsNothingTheSecondTime()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        var options = new VisionLanguageModelSelectingEstimator.Options
        {
            CandidateModelPaths = [OpenAI, Hf], ClassNames = Classes, CacheDirectory = Fixtures.TempDir(),
        };
        using var first = ml.Transforms.SelectVisionLanguageModel(options).Fit(data);
        Assert.All(first.Result.Runs, r => Assert.Equal(0, r.FromCache));
        using var second = ml.Transforms.SelectVisionLanguageModel(options).Fit(data);
        Assert.All(second.Result.Runs, r => Assert.Equal(12, r.FromCache));
        Assert.Equal(first.Ranking.Select(r => r.Score), second.Ranking.Select(r => r.Score));
    }

    [Fact]
    public void ABudgetedSearchNeedsAPathColumnAndBadCandidatesAreClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        var bytes = ml.Transforms.LoadRawImageBytes("Bytes", null, "ImagePath").Fit(data).Transform(data);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.SelectVisionLanguageModel(new VisionLanguageModelSelectingEstimator.Options
        {
            CandidateModelPaths = [Hf, OpenAI], ClassNames = Classes, ImageColumnName = "Bytes", BudgetedSearch = new BudgetedSearchOptions(),
        }).Fit(bytes));
        Assert.Contains("path column", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.SelectVisionLanguageModel([], Classes));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.SelectVisionLanguageModel([Hf], ["only one"]));
        var missing = Path.Combine(Fixtures.TempDir(), "no-model");
        var e2 = Assert.ThrowsAny<Exception>(() => ml.Transforms.SelectVisionLanguageModel([Hf, missing], Classes).Fit(data));
        Assert.Contains("no-model", e2.Message);
    }

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
