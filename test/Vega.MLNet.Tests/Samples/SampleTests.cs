using Vega.MLNet.Samples.Samples;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Samples;

/// <summary>The ML.NET samples run end to end on the fixture models and real images; their printed results are checked
/// against the library's own results.</summary>
public sealed class SampleTests
{
    private static readonly string[] Classes = ["a person", "a landscape", "a logo"];

    [Fact]
    public void ZeroShotSampleClassifiesEveryGoodImageAndReportsTheBrokenOnes()
    {
        var output = new StringWriter();
        ZeroShotClassification.Run(Path.Combine(Fixtures.Onnx, "hf"), Path.Combine(Fixtures.Images), Classes, output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var skipped = lines.Where(l => l.StartsWith("skipped ")).ToArray();
        var classified = lines.Where(l => !l.StartsWith("skipped ")).ToArray();
        Assert.Equal(12, classified.Length);                 // the 12 good images of ../shared/images
        Assert.Equal(5, skipped.Length);                     // the 5 files of ../shared/images/bad, each with its reason
        Assert.Contains(skipped, l => l.Contains("truncated_60pct.jpg: truncated JPEG"));
        Assert.All(classified, l => Assert.Contains(l.Split(": ")[1].Split(" (")[0], Classes));
    }

    [Fact]
    public void SelectModelSampleRanksTheCandidatesAndNamesTheChosenOne()
    {
        var output = new StringWriter();
        string chosen = ModelSelection.Run([Path.Combine(Fixtures.Onnx, "hf"), ClipModelTests.OpenAiFolder()], Fixtures.Images, Classes, null, output);
        string text = output.ToString();
        Assert.Contains("1. ", text);
        Assert.Contains("2. ", text);
        Assert.Contains($"chosen: {chosen}", text);
    }

    [Fact]
    public void EvaluationSamplesAccuracyEqualsTheFractionOfCorrectPredictions()
    {
        string dir = Fixtures.TempDir();
        var good = Directory.GetFiles(Fixtures.Images, "*.*").Where(f => f.EndsWith(".jpg") || f.EndsWith(".png")).Order(StringComparer.Ordinal).ToArray();
        File.WriteAllLines(Path.Combine(dir, "labels.csv"), ["path,label", .. good.Select((f, i) => $"{f},{Classes[i % 3]}")]);
        var output = new StringWriter();
        var metrics = Evaluation.Run(Path.Combine(Fixtures.Onnx, "hf"), Path.Combine(dir, "labels.csv"), Classes, output);
        Assert.Equal(good.Length, metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()));
        double correct = Enumerable.Range(0, 3).Sum(c => metrics.ConfusionMatrix.Counts[c][c]);
        Assert.Equal(correct / good.Length, metrics.MicroAccuracy, 10);
        Assert.Contains("micro-accuracy", output.ToString());
        Assert.Contains("Confusion table", output.ToString());
    }
}
