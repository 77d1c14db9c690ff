using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Samples.Experiments;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Prompting.Aape;

/// <summary>The experiment protocol's plumbing on a small synthetic task: sampling, base/new splits, zero-shot against
/// the selection module's accuracy (a second implementation), the harmonic mean, and the report.</summary>
public sealed class AapeExperimentTests
{
    private static ExperimentData Data(SyntheticTask t) => new()
    {
        ModelName = "synthetic", ClassNames = t.ClassNames, ClassWeights = t.ClassWeights, Descriptions = t.Descriptions,
        Pool = t.TrainImages, PoolLabels = t.TrainLabels, Test = t.TestImages, TestLabels = t.TestLabels,
    };

    private static ExperimentSettings Small => new()
    {
        Shots = [1, 2], Seeds = [1, 2], BaseToNew = true, BaseToNewShots = 2, EpochsForShots = _ => 4,
        Options = new AapeOptions { AggregatorEpochs = 3, Heads = 4, Temperature = 0.01 },
    };

    [Fact]
    public void TheProtocolRunsEveryMethodAndItsNumbersAreConsistent()
    {
        var task = SyntheticTask.Create(classes: 6, dimension: 32, trainPerClass: 5, testPerClass: 20, descriptionsPerClass: 4, seed: 3);
        var result = AapeExperiment.Run(Data(task), Small);
        Assert.Equal(5, result.Methods.Count);
        Assert.Equal(5 * 2 * 2, result.KShot.Count);
        Assert.Equal(5 * 2, result.BaseToNew.Count);
        Assert.Equal([0, 1, 2], result.BaseClasses);
        Assert.Equal([3, 4, 5], result.NewClasses);

        // Zero-shot through the experiment = SelectionEvaluation.ZeroShotAccuracy.
        double zs = SelectionEvaluation.ZeroShotAccuracy(task.TestImages, task.ClassWeights, task.TestLabels);
        Assert.All(result.KShot.Where(r => r.Method.StartsWith("zero-shot", StringComparison.Ordinal)), r => Assert.Equal(zs, r.Accuracy, 12));
        var newOnly = Enumerable.Range(0, task.TestLabels.Length).Where(i => task.TestLabels[i] >= 3).ToArray();
        var newImages = new EmbeddingMatrix(newOnly.SelectMany(i => task.TestImages.Row(i).ToArray()).ToArray(), newOnly.Length, 32);
        var newWeights = new EmbeddingMatrix(task.ClassWeights.Data[(3 * 32)..], 3, 32);
        double zsNew = SelectionEvaluation.ZeroShotAccuracy(newImages, newWeights, newOnly.Select(i => task.TestLabels[i] - 3).ToArray());
        Assert.All(result.BaseToNew.Where(r => r.Method.StartsWith("zero-shot", StringComparison.Ordinal)), r => Assert.Equal(zsNew, r.New, 12));

        // The linear probe cannot score unseen classes; everything else can.
        Assert.All(result.BaseToNew.Where(r => r.Method == "linear probe"), r => Assert.True(double.IsNaN(r.New)));
        Assert.All(result.BaseToNew.Where(r => r.Method != "linear probe"), r => Assert.InRange(r.New, 0, 1));
        foreach (var r in result.BaseToNew.Where(r => !double.IsNaN(r.New)))
            Assert.Equal(2 * r.Base * r.New / (r.Base + r.New), r.Harmonic, 12);

        var md = AapeExperimentReport.ToMarkdown(result, "vega aape eval ...");
        Assert.Contains("| 1-shot | 2-shot |", md);
        Assert.Contains("| CoOp | n/a | n/a | n/a |", md); // the documented placeholder until CoOp lands
        Assert.Contains("| AAPE λ=0 (plain adapter) |", md);
        Assert.Contains("Reproduce: `vega aape eval ...`", md);
    }

    [Fact]
    public void KShotSetsAreNestedAndReproducible()
    {
        var task = SyntheticTask.Create(classes: 3, dimension: 16, trainPerClass: 6, testPerClass: 1, descriptionsPerClass: 2, seed: 5);
        var data = Data(task);
        float[] pool = task.TrainImages.Data;
        var two = AapeExperiment.MakeTask(data, pool, [0, 1, 2], 2, seed: 4, Small);
        var four = AapeExperiment.MakeTask(data, pool, [0, 1, 2], 4, seed: 4, Small);
        Assert.Equal(two.Images, AapeExperiment.MakeTask(data, pool, [0, 1, 2], 2, seed: 4, Small).Images);
        Assert.NotEqual(two.Images, AapeExperiment.MakeTask(data, pool, [0, 1, 2], 2, seed: 5, Small).Images);
        for (int c = 0; c < 3; c++) // the 2-shot images of a class are the first two of its 4-shot images
            Assert.Equal(four.Images.AsSpan(c * 4 * 16, 2 * 16).ToArray(), two.Images.AsSpan(c * 2 * 16, 2 * 16).ToArray());
        var e = Assert.Throws<ArgumentException>(() => AapeExperiment.MakeTask(data, pool, [0], 7, 1, Small));
        Assert.Contains("\"class 0\" has 6 images in the training pool", e.Message);
    }

    [Fact]
    public void ARegisteredMethodReplacesTheCoOpPlaceholder()
    {
        var task = SyntheticTask.Create(classes: 4, dimension: 16, trainPerClass: 2, testPerClass: 5, descriptionsPerClass: 2, seed: 6);
        var settings = Small with { Shots = [1], Seeds = [1], BaseToNew = false };
        var stand = new ConstantStandIn();
        var result = AapeExperiment.Run(Data(task), settings, [.. AapeExperiment.DefaultMethods(settings), stand]);
        var md = AapeExperimentReport.ToMarkdown(result);
        Assert.DoesNotContain("| CoOp | n/a", md);
        Assert.Contains("| CoOp stand-in |", md);
    }

    [Fact]
    public void CoOpRunsThroughThePromptTunerAndScoresNewClassesWithItsLearntContext()
    {
        using var model = Vega.MLNet.Models.ClipModel.Load(Path.Combine(Infrastructure.Fixtures.Onnx, "hf"));
        var task = SyntheticTask.Create(classes: 4, dimension: model.EmbeddingDimension, trainPerClass: 2, testPerClass: 5, descriptionsPerClass: 2, seed: 6);
        var settings = Small with { Shots = [1], Seeds = [1] };
        var coop = new AapeExperiment.CoOpMethod(model);
        var result = AapeExperiment.Run(Data(task), settings, [.. AapeExperiment.DefaultMethods(settings), coop]);
        Assert.Null(coop.Note);
        Assert.InRange(result.KShot.Single(r => r.Method == "CoOp").Accuracy, 0, 1);
        var b2n = Assert.Single(result.BaseToNew, r => r.Method == "CoOp");
        Assert.InRange(b2n.New, 0, 1); // the unified context re-encoded with the new class names
        Assert.DoesNotContain("| CoOp | n/a", AapeExperimentReport.ToMarkdown(result));
    }

    /// <summary>A plug-in that shows the hook: it always answers the first class.</summary>
    private sealed class ConstantStandIn : IFewShotMethod
    {
        public string Name => "CoOp stand-in";
        public Func<float[], int[], int[]?> Train(FewShotTask task) => (images, classes) => new int[images.Length / task.ClassWeights.Dimension];
    }
}
