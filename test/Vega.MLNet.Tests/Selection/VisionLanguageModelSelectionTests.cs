using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Embedding;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Selection;

public sealed class VisionLanguageModelSelectionTests
{
    private static readonly string[] Classes = [.. ImageSource.FashionMnistClassNames];

    internal static (string Images, string Labels) LabelledSubsetFiles(int n) => LabelledSubset(n);

    private static (string Images, string Labels) LabelledSubset(int n)
    {
        string images = ImageEmbedderTests.FashionSubset(n);
        string labels = Path.Combine(Path.GetDirectoryName(images)!, "labels-idx1-ubyte");
        using var gz = new System.IO.Compression.GZipStream(File.OpenRead("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"), System.IO.Compression.CompressionMode.Decompress);
        var all = new MemoryStream();
        gz.CopyTo(all);
        var bytes = all.ToArray()[..(8 + n)];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), n);
        File.WriteAllBytes(labels, bytes);
        return (images, labels);
    }

    [Fact]
    public void RanksRealModelsThroughTheEngineAndEvaluatesWithLabels()
    {
        var (images, labels) = LabelledSubset(120);
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using var openai = ClipModel.Load(ClipModelTests.OpenAiFolder(), new ClipModelOptions { Name = "openai" });
        var source = ImageSource.FromIdx(images, labels, ImageSource.FashionMnistClassNames);
        var result = VisionLanguageModelSelection.SelectVisionLanguageModel([hf, openai], source, Classes,
            new VlmSelectionOptions { Images = new ImageEmbeddingOptions { CacheDirectory = Fixtures.TempDir() } });

        Assert.Equal(2, result.Ranking.Models.Count);
        Assert.NotNull(result.Evaluation);
        // Second implementation of each model's score and accuracy: embed directly and score with ModelSelector.
        foreach (var model in new[] { hf, openai })
        {
            var texts = model.EmbedClassNames(Classes);
            var embedded = ImageEmbedder.Embed(model, source);
            var direct = ModelSelector.Score(model.Name, embedded.Embeddings, texts);
            var ranked = result.Ranking.Models.Single(m => m.ModelName == model.Name);
            Assert.Equal(direct.Metrics["vega"], ranked.Metrics["vega"], 9);
            var labelIndex = embedded.Items.Select(i => Array.IndexOf(Classes, i.Label)).ToArray();
            Assert.Equal(SelectionEvaluation.ZeroShotAccuracy(embedded.Embeddings, texts, labelIndex), result.Evaluation!.Accuracies[model.Name], 12);
        }
        // The ranking is ordered by the default selector (dispersity), best first.
        Assert.Equal(SelectionMetric.Dispersity, result.Ranking.Metric);
        Assert.True(result.Ranking.Models[0].Metrics["dispersity"] >= result.Ranking.Models[1].Metrics["dispersity"]);
        Assert.Equal(result.Ranking.Models[0].ModelName, result.ChosenModel);
    }

    [Fact]
    public void BadRequestsAreClearErrors()
    {
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromPaths([Path.Combine(Fixtures.Images, "dots.png")]);
        Assert.Contains("at least two classes", Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel([hf], source, ["cat"])).Message);
        Assert.Contains("named 'hf'", Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel([hf, hf], source, ["cat", "dog"])).Message);
        Assert.Contains("No candidate models", Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel(Array.Empty<ClipModel>(), source, ["cat", "dog"])).Message);
        var bad = ImageSource.FromPaths([Path.Combine(Fixtures.Images, "bad", "empty.jpg")]);
        Assert.Contains("could be read", Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel([hf], bad, ["cat", "dog"])).Message);

        string dir = Fixtures.TempDir();
        string csv = Path.Combine(dir, "m.csv");
        File.Copy(Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(dir, "dots.png"));
        File.WriteAllText(csv, "path,label\ndots.png,zebra\n");
        var e = Assert.Throws<ArgumentException>(() =>
            VisionLanguageModelSelection.SelectVisionLanguageModel([hf], ImageSource.FromCsv(csv), ["cat", "dog"]));
        Assert.Contains("\"zebra\"", e.Message);
        Assert.Contains("dots.png", e.Message);
    }

    [Fact]
    public void TheCliRanksWritesAReportAndFailsCleanlyOnBadInput()
    {
        var (images, labels) = LabelledSubset(40);
        string dir = Fixtures.TempDir();
        string classes = Path.Combine(dir, "classes.txt");
        File.WriteAllLines(classes, Classes);
        string report = Path.Combine(dir, "r.html"), json = Path.Combine(dir, "r.json");
        var (code, output, error) = Vega("evaluate", "--models", Path.Combine(Fixtures.Onnx, "hf"), ClipModelTests.OpenAiFolder(),
            "--images", images, "--labels", labels, "--classes", classes, "--report", report, "--json", json, "--cache", Path.Combine(dir, "cache"));
        Assert.True(code == 0, error + output);
        Assert.Contains("Kendall", output);
        Assert.Contains("<table", File.ReadAllText(report));
        Assert.Contains("\"accuracies\"", File.ReadAllText(json), StringComparison.OrdinalIgnoreCase);

        File.WriteAllText(classes, "only-one\n");
        (code, _, error) = Vega("rank", "--models", Path.Combine(Fixtures.Onnx, "hf"), "--images", images, "--classes", classes);
        Assert.Equal(2, code);
        Assert.Contains("at least two classes", error);

        (code, _, error) = Vega("rank", "--models", Path.Combine(dir, "nope"), "--images", images, "--classes", classes);
        Assert.Equal(2, code);
        Assert.Contains("nope", error);
    }

    internal static (int Code, string Output, string Error) Vega(params string[] args)
    {
        var run = TinyClip.Vega(args, TimeSpan.FromMinutes(5));
        Assert.False(run.TimedOut, $"vega {string.Join(' ', args)} did not end in time:\n{run}");
        return (run.ExitCode, run.StdOut, run.StdErr);
    }
}
