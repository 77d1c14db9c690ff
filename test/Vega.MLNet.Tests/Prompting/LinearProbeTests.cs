using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Prompting;

public sealed class LinearProbeTests
{
    /// <summary>Class prototypes + Gaussian noise, L2-normalised: a task where a linear probe must do well.</summary>
    internal static (EmbeddingMatrix X, int[] Y, EmbeddingMatrix Prototypes) Synthetic(int n, int classes, int dim, double noise, ulong seed)
    {
        var rng = new Rng(seed);
        var protos = new EmbeddingMatrix(classes, dim);
        rng.FillNormal(protos.Data);
        protos.NormalizeRows();
        var x = new EmbeddingMatrix(n, dim);
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % classes;
            var row = x.Row(i);
            for (int d = 0; d < dim; d++) row[d] = protos.Row(y[i])[d] + (float)(noise * rng.NextNormal() / Math.Sqrt(dim));
        }
        x.NormalizeRows();
        return (x, y, protos);
    }

    [Theory]
    [InlineData(nameof(PartialLabelLossKind.CC))]
    [InlineData(nameof(PartialLabelLossKind.RC))]
    [InlineData(nameof(PartialLabelLossKind.LWS))]
    [InlineData(nameof(PartialLabelLossKind.CAVL))]
    [InlineData(nameof(PartialLabelLossKind.Naive))]
    public void TrainingLowersTheLossAndBeatsChanceOnHeldOutData(string kindName)
    {
        var kind = Enum.Parse<PartialLabelLossKind>(kindName);
        var (x, y, _) = Synthetic(400, 5, 32, 1.2, 3);
        var train = new EmbeddingMatrix(x.Data[..(200 * 32)], 200, 32);
        var test = new EmbeddingMatrix(x.Data[(200 * 32)..], 200, 32);
        var candidates = CandidateLabels.Generate(y.AsSpan(0, 200), 5, 0.3, 5);
        var settings = new PllTrainingSettings { Epochs = 30, LearningRate = 1e-3, WeightDecay = 1e-4, WarmupEpochs = 0 };
        var (classifier, epochs) = TrainProbe(train, candidates, kind, settings, y[..200]);
        Assert.True(epochs[^1].Loss < epochs[0].Loss, $"loss {epochs[0].Loss} → {epochs[^1].Loss}");
        double acc = classifier.Accuracy(test, y.AsSpan(200));
        Assert.True(acc > 0.8, $"held-out accuracy {acc} (chance 0.2)");
    }

    internal static TuningResult Probe(EmbeddingMatrix train, CandidateLabels candidates, PartialLabelLossKind kind, PllTrainingSettings settings, int[] labels,
        string? checkpoint = null, bool align = false, float[]? teacher = null)
    {
        var options = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = kind, Epochs = settings.Epochs, CheckpointDirectory = checkpoint, Align = align };
        var classes = Enumerable.Range(0, candidates.ClassCount).Select(i => "class" + i).ToArray();
        var views = new TrainingViews(train, null, 1);
        return PromptTuner.LinearProbe(views, candidates, classes, new PartialLabelLoss(kind, candidates), settings with { Align = align }, 20f, "synthetic", options,
            PromptTuner.Fingerprint("synthetic", views, candidates, options), Teacher(teacher), labels, CancellationToken.None);
    }

    private static Func<int, float[]>? Teacher(float[]? logits) => logits is null ? null : _ => logits;

    private static (TunedClassifier, IReadOnlyList<EpochReport>) TrainProbe(EmbeddingMatrix train, CandidateLabels candidates, PartialLabelLossKind kind, PllTrainingSettings settings, int[] labels)
    {
        var r = Probe(train, candidates, kind, settings, labels);
        return (r.Classifier, r.Epochs);
    }

    [Theory]
    [InlineData(nameof(PartialLabelLossKind.RC), false)]
    [InlineData(nameof(PartialLabelLossKind.CC), true)]
    public void AResumedRunEqualsAnUninterruptedOneBitForBit(string kindName, bool align)
    {
        var kind = Enum.Parse<PartialLabelLossKind>(kindName);
        var (x, y, protos) = Synthetic(96, 4, 16, 1.5, 21);
        var candidates = CandidateLabels.Generate(y, 4, 0.4, 2);
        var teacher = new TunedClassifier(TuningMethod.ZeroShot, ["a", "b", "c", "d"], protos, new float[4], 20f, "t").Logits(x);
        var settings = new PllTrainingSettings { Epochs = 6, LearningRate = 1e-3, WeightDecay = 1e-4 };
        var straight = Probe(x, candidates, kind, settings, y, align: align, teacher: teacher);

        // Interrupt after the third epoch (its checkpoint is on disk), then resume.
        string dir2 = Fixtures.TempDir();
        var interrupted = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = kind, Epochs = 6, CheckpointDirectory = dir2, Align = align };
        using var cts = new CancellationTokenSource();
        var progressOptions = interrupted with { Progress = r => { if (r.Epoch == 2) cts.Cancel(); } };
        var classes = new[] { "class0", "class1", "class2", "class3" };
        var data = new TrainingViews(x, null, 1);
        string fp = PromptTuner.Fingerprint("synthetic", data, candidates, interrupted);
        Assert.ThrowsAny<OperationCanceledException>(() => PromptTuner.LinearProbe(data, candidates, classes, new PartialLabelLoss(kind, candidates), settings with { Align = align },
            20f, "synthetic", progressOptions, fp, Teacher(teacher), y, cts.Token));
        var resumed = PromptTuner.LinearProbe(data, candidates, classes, new PartialLabelLoss(kind, candidates), settings with { Align = align },
            20f, "synthetic", interrupted, fp, Teacher(teacher), y, CancellationToken.None);
        Assert.Equal(3, resumed.ResumedFromEpoch);
        Assert.Equal(straight.Classifier.Weights.Data, resumed.Classifier.Weights.Data);
        Assert.Equal(straight.Classifier.Bias, resumed.Classifier.Bias);

        // A checkpoint from another run is refused.
        var other = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = kind, Epochs = 7, CheckpointDirectory = dir2, Align = align };
        Assert.Contains("different training run", Assert.Throws<InvalidDataException>(() => PromptTuner.LinearProbe(data, candidates, classes,
            new PartialLabelLoss(kind, candidates), settings with { Align = align, Epochs = 7 }, 20f, "synthetic", other,
            PromptTuner.Fingerprint("synthetic", data, candidates, other), Teacher(teacher), y, CancellationToken.None)).Message);
    }

    [Fact]
    public void AugmentedViewsAreDrawnPerEpochFromTheSeedAndResumeExactly()
    {
        var (x, y, protos) = Synthetic(64, 4, 16, 1.5, 31);
        var views = Enumerable.Range(0, 2).Select(v => Synthetic(64, 4, 16, 1.5, 40 + (ulong)v).X).ToArray(); // stand-ins for cached crops
        var data = new TrainingViews(x, views, 5);
        // Every epoch mixes the original and both views, the same way every time.
        var choices = Enumerable.Range(0, 64).Select(i => data.Choice(3, i)).ToArray();
        Assert.Equal(choices, Enumerable.Range(0, 64).Select(i => data.Choice(3, i)));
        Assert.Equal([0, 1, 2], choices.Distinct().Order());
        var epochRows = data.ForEpoch(3).ToArray();
        for (int i = 0; i < 64; i++)
            Assert.Equal((choices[i] == 0 ? x : views[choices[i] - 1]).Row(i).ToArray(), epochRows.AsSpan(i * 16, 16).ToArray());

        var candidates = CandidateLabels.Generate(y, 4, 0.3, 2);
        var settings = new PllTrainingSettings { Epochs = 4, LearningRate = 1e-3, WeightDecay = 1e-4 };
        var classes = new[] { "class0", "class1", "class2", "class3" };
        var options = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = PartialLabelLossKind.CC, Epochs = 4 };
        TuningResult Run(TrainingViews d, PromptTuningOptions o, CancellationToken ct = default) =>
            PromptTuner.LinearProbe(d, candidates, classes, new PartialLabelLoss(PartialLabelLossKind.CC, candidates), settings, 20f, "synthetic", o,
                PromptTuner.Fingerprint("synthetic", d, candidates, o with { Progress = null }), null, y, ct);
        var withViews = Run(new TrainingViews(x, views, 5), options);
        var without = Run(new TrainingViews(x, null, 5), options);
        Assert.NotEqual(withViews.Classifier.Weights.Data, without.Classifier.Weights.Data);

        string dir = Fixtures.TempDir();
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => Run(new TrainingViews(x, views, 5),
            options with { CheckpointDirectory = dir, Progress = r => { if (r.Epoch == 1) cts.Cancel(); } }, cts.Token));
        var resumed = Run(new TrainingViews(x, views, 5), options with { CheckpointDirectory = dir });
        Assert.Equal(2, resumed.ResumedFromEpoch);
        Assert.Equal(withViews.Classifier.Weights.Data, resumed.Classifier.Weights.Data);
    }

    [Fact]
    public void AClassifierSurvivesSaveAndLoadBitForBit()
    {
        var (x, y, protos) = Synthetic(50, 4, 16, 1.0, 8);
        var classifier = new TunedClassifier(TuningMethod.ZeroShot, ["w", "x", "y", "z"], protos, [0.5f, 0f, -1f, 2f], 100f, "m");
        string dir = Fixtures.TempDir();
        classifier.Save(dir);
        var loaded = TunedClassifier.Load(dir);
        Assert.Equal(classifier.Logits(x), loaded.Logits(x));
        Assert.Equal(classifier.ClassNames, loaded.ClassNames);
        Assert.Equal(TuningMethod.ZeroShot, loaded.Method);
        // Probabilities are a softmax of the logits.
        var p = classifier.Probabilities(x);
        for (int i = 0; i < 50; i++) Assert.Equal(1.0, p.AsSpan(i * 4, 4).ToArray().Sum(v => (double)v), 5);
        File.WriteAllText(Path.Combine(dir, "classifier.json"), "{ \"format\": \"vega-classifier-1\" }");
        Assert.Contains("damaged", Assert.Throws<InvalidDataException>(() => TunedClassifier.Load(dir)).Message);
    }
}
