using System.Text.Json;
using Vega.MLNet.Models;
using Vega.MLNet.Samples;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Demo;

/// <summary>
/// The reduced demo (<c>vega demo --quick</c>) end to end, in-process, in a temporary folder: a zoo of two models is
/// trained, exported, loaded by <see cref="ClipModel"/> and ranked on both downstream sets; a second run loads the zoo
/// from its cache.
/// </summary>
[Collection(nameof(DemoSerial))]
public sealed class DemoEndToEndTests
{
    [Fact]
    public void QuickDemoTrainsExportsRanksAndReports()
    {
        string dir = Fixtures.TempDir("vega-demo-quick");
        int exit = Program.Main(["demo", "--quick", "--out", dir]);
        Assert.Equal(0, exit);

        // The same function again: the zoo now comes from the cache and gives the same numbers.
        var result = DemoRunner.Run(new DemoOptions { OutputDirectory = dir, Quick = true });
        Assert.Equal(0, result.Zoo.ModelsTrained);
        Assert.Equal(2, result.Zoo.Models.Count);
        Assert.StartsWith(Path.Combine(dir, "zoo"), result.Zoo.Directory);
        foreach (var m in result.Zoo.Models)
        {
            foreach (var f in new[] { "vision_model.onnx", "text_model.onnx", "vocab.json", "merges.txt", "preprocessor_config.json", "config.json", "training.json" })
                Assert.True(File.Exists(Path.Combine(m.Directory, f)), $"{m.Spec.Name} lacks {f}");
            using var model = ClipModel.Load(m.Directory);
            Assert.Equal(ClipModelLayout.HuggingFaceSplit, model.Layout);
        }

        Assert.Equal(["clean", "lowcontrast"], result.Sets.Select(s => s.Name));
        foreach (var set in result.Sets)
        {
            Assert.Equal(500, set.Count);
            Assert.Equal(500, Directory.GetFiles(set.ImagesDirectory, "*.png").Length);
            var selection = set.Selection;
            Assert.Equal(2, selection.Ranking.Models.Count);
            var evaluation = Assert.IsType<EvaluationResult>(selection.Evaluation);
            Assert.Equal(SelectionMetrics.All.Count + 1, evaluation.Metrics.Count); // every score, then the random expectation
            Assert.All(evaluation.Metrics, e => Assert.InRange(e.KendallTau, -1, 1));
            // With two models τ is ±1: +1 exactly when the metric puts the more accurate model first.
            var best = evaluation.Accuracies.MaxBy(a => a.Value).Key;
            foreach (var e in evaluation.Metrics.Where(e => !e.Expected))
                if (evaluation.Accuracies.Values.Distinct().Count() == 2)
                    Assert.Equal(e.ChosenModel == best ? 1.0 : -1.0, e.KendallTau);
            Assert.True(File.Exists(set.ReportHtml));
            string html = File.ReadAllText(set.ReportHtml);
            foreach (var m in result.Zoo.Models) Assert.Contains(m.Spec.Name, html);
            using var json = JsonDocument.Parse(File.ReadAllText(set.ReportJson));
            Assert.Equal(selection.ChosenModel, json.RootElement.GetProperty("chosen").GetString());
        }

        // ONNX Runtime's accuracy on the clean PNG files is the trainer's accuracy on the same 500 IDX images.
        var clean = result.Sets[0].Selection.Evaluation!;
        foreach (var m in result.Zoo.Models)
            Assert.InRange(clean.Accuracies[m.Spec.Name], m.TrainerAccuracy - 0.0021, m.TrainerAccuracy + 0.0021);

        // The cached trainer weights reproduce the cached ONNX package (the check the build ran before caching it).
        var first = result.Zoo.Models[0];
        Assert.InRange(first.OrtMaxDifference, 0, ZooBuilder.ParityTolerance);
        var net = ZooBuilder.LoadNetwork(result.Zoo, first);
        var idx = Enumerable.Range(0, 64).ToArray();
        double parity = ZooBuilder.CheckParity(net, ClipTokenizer.Load(result.Zoo.TokenizerDirectory), first.Directory,
            DemoPreprocessing.Pixels(DemoTestData.Data.Test, idx), DemoPreprocessing.GrayInputs(DemoTestData.Data.Test, idx));
        Assert.InRange(parity, 0, ZooBuilder.ParityTolerance);

        using var summary = JsonDocument.Parse(File.ReadAllText(result.SummaryJson));
        Assert.Equal(2, summary.RootElement.GetProperty("sets").GetArrayLength());
    }

    [Fact]
    public void MissingFashionMnistNamesThePathAndTheSetUpCommand()
    {
        string empty = Fixtures.TempDir("vega-demo-noidx");
        var e = Assert.Throws<FileNotFoundException>(() => DemoRunner.Run(new DemoOptions { OutputDirectory = Fixtures.TempDir(), Quick = true, IdxDirectory = empty }));
        Assert.Contains(Path.Combine(empty, "train-images-idx3-ubyte.gz"), e.Message);
        Assert.Contains("bash scripts/setup.sh", e.Message);
        Assert.Equal(2, Program.Main(["demo", "--quick", "--out", Fixtures.TempDir(), "--idx-dir", empty]));
    }

    [Fact]
    public void BadOptionsAreRejectedBeforeAnyWork()
    {
        string outDir = Fixtures.TempDir("vega-demo-bad");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => DemoRunner.Run(new DemoOptions { OutputDirectory = outDir, Quick = true, TestCount = 20000 }));
        Assert.Contains("--test-count", e.Message);
        Assert.False(Directory.Exists(Path.Combine(outDir, "zoo")));
        Assert.Contains("rotate", Assert.Throws<ArgumentException>(() => ImageShift.Parse("sepia")).Message);
    }

    [Fact]
    public void TheZooCacheKeyFollowsTheDefinitionAndTheData()
    {
        var zoo = ZooDefinition.Quick();
        string key = ZooBuilder.CacheKey(zoo, "data-a");
        Assert.Equal(key, ZooBuilder.CacheKey(ZooDefinition.Quick(), "data-a"));
        Assert.NotEqual(key, ZooBuilder.CacheKey(zoo, "data-b"));
        Assert.NotEqual(key, ZooBuilder.CacheKey(ZooDefinition.Quick(seed: 7), "data-a"));
        Assert.NotEqual(key, ZooBuilder.CacheKey(zoo with { Models = [zoo.Models[0] with { Training = zoo.Models[0].Training with { Epochs = 4 } }, zoo.Models[1]] }, "data-a"));
        Assert.NotEqual(ZooBuilder.CacheKey(ZooDefinition.Default(), "d"), ZooBuilder.CacheKey(ZooDefinition.Quick(), "d"));
    }
}
