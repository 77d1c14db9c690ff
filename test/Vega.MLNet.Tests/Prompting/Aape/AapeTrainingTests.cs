using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Selection;
using Vega.MLNet.Tensors;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.Prompting.Aape;

/// <summary>Training behaviour on synthetic tasks: the loss falls, AAPE beats a biased zero-shot prompt, λ = 0 is the
/// plain adapter weight for weight (against an independent re-implementation of its training loop), and bad inputs
/// are clear errors.</summary>
public sealed class AapeTrainingTests(ITestOutputHelper output)
{
    private static readonly Lazy<SyntheticTask> Task8 = new(() =>
        SyntheticTask.Create(classes: 8, dimension: 64, trainPerClass: 8, testPerClass: 50, descriptionsPerClass: 12, seed: 5));

    private static AapeOptions Fast => new() { Epochs = 30, AggregatorEpochs = 20, Temperature = 0.01 };

    [Fact]
    public void TrainingLowersTheLossAndBeatsABiasedZeroShotPrompt()
    {
        var task = Task8.Value;
        var head = AapeTrainer.Train(task.TrainingSet, Fast);
        var r = head.Training!;
        var first = r.Epochs[0];
        var last = r.Epochs[^1];
        output.WriteLine($"loss {first.Loss:F4} → {last.Loss:F4} (CE {first.CrossEntropy:F4} → {last.CrossEntropy:F4}, distillation {first.Distillation:F4} → {last.Distillation:F4}); CLIP-S {r.InitialClipScore:F3} → {r.FinalClipScore:F3}");
        Assert.True(last.Loss < 0.8 * first.Loss, "the total loss falls by a fifth or more");
        Assert.True(last.CrossEntropy < 0.1 * first.CrossEntropy, "the cross-entropy falls tenfold");
        Assert.True(last.Distillation < 0.95 * first.Distillation, "the distillation term falls too (slowly at CoOp's learning rate, see docs/aape.md)");
        Assert.True(r.FinalClipScore > r.InitialClipScore, "the aggregator raises the CLIP-S reward on the training images");
        Assert.True(r.AggregatorLosses[^1] < r.AggregatorLosses[0]);

        double zeroShot = SelectionEvaluation.ZeroShotAccuracy(task.TestImages, task.ClassWeights, task.TestLabels);
        double aape = SyntheticTask.Accuracy(head.Predict(task.TestImages), task.TestLabels, 8);
        output.WriteLine($"zero-shot {zeroShot:P1}, AAPE {aape:P1}");
        Assert.True(aape > zeroShot + 0.1, $"AAPE ({aape:P1}) beats the biased handcrafted prompt ({zeroShot:P1}) by 10 points");
    }

    [Fact]
    public void DistillationPullsThePromptTowardsTheClassSummary()
    {
        var task = Task8.Value;
        var options = Fast with { Epochs = 100, LearningRate = 0.01 };
        var withDistillation = AapeTrainer.Train(task.TrainingSet, options);
        var plain = AapeTrainer.Train(task.TrainingSet, options with { Lambda = 0 });
        double Distance(AapeHead head)
        {
            // ‖h(x) − pᵃ_y‖² on the training images, pᵃ from the distilled head's aggregator (same seed ⇒ same pᵃ).
            var summaries = withDistillation.Summaries!;
            var x = (float[])task.TrainImages.Data.Clone();
            for (int i = 0; i < task.TrainImages.Count; i++) EmbeddingMatrix.NormalizeInPlace(x.AsSpan(i * 64, 64));
            using var scope = new TensorScope();
            var h = PromptGenerator.Prompt(head.ToWeights(), Tensor.FromArray(x, task.TrainImages.Count, 64)).ToArray();
            double total = 0;
            for (int i = 0; i < task.TrainLabels.Length; i++)
                for (int j = 0; j < 64; j++)
                {
                    double diff = h[i * 64 + j] - summaries[task.TrainLabels[i] * 64 + j];
                    total += diff * diff;
                }
            return total / task.TrainLabels.Length;
        }
        double dDistilled = Distance(withDistillation), dPlain = Distance(plain);
        output.WriteLine($"‖h(x) − pᵃ‖²: λ = 5 → {dDistilled:F4}, λ = 0 → {dPlain:F4}");
        Assert.True(dDistilled < 0.6 * dPlain);
    }

    [Fact]
    public void LambdaZeroIsThePlainAdapterWeightForWeight()
    {
        var task = Task8.Value;
        var options = Fast with { Lambda = 0, Epochs = 6, BatchSize = 16, Seed = 3 };
        var withDescriptions = AapeTrainer.Train(task.TrainingSet, options);
        var without = AapeTrainer.Train(task.TrainingSet with { Descriptions = null }, options);
        var other = SyntheticTask.Create(classes: 8, dimension: 64, trainPerClass: 1, testPerClass: 1, descriptionsPerClass: 3, seed: 99).Descriptions;
        var otherDescriptions = AapeTrainer.Train(task.TrainingSet with { Descriptions = other }, options with { Aggregator = AapeAggregator.Mean, AggregatorEpochs = 7, Heads = 3 });
        AssertSameWeights(withDescriptions, without, exact: true);
        AssertSameWeights(withDescriptions, otherDescriptions, exact: true);
        Assert.Null(withDescriptions.Summaries);

        // An independent re-implementation of "CE only, SGD with momentum and weight decay, CoOp schedule, Dassl batching".
        var reference = PlainAdapterReference(task, options);
        AssertSameWeights(withDescriptions, reference, exact: false);

        // And the distillation term does change the result.
        var distilled = AapeTrainer.Train(task.TrainingSet, options with { Lambda = 5 });
        Assert.NotEqual(withDescriptions.RawWeights.W2, distilled.RawWeights.W2);
    }

    private static void AssertSameWeights(AapeHead a, AapeHead b, bool exact)
    {
        var wa = a.RawWeights;
        var wb = b.RawWeights;
        foreach (var (x, y) in new[] { (wa.W1, wb.W1), (wa.B1, wb.B1), (wa.W2, wb.W2), (wa.B2, wb.B2), (wa.G, wb.G), (wa.Gb, wb.Gb) })
        {
            if (exact) Assert.Equal(x, y);
            else Assert.True(Infrastructure.Fixtures.MaxAbsDiff(x, y) < 1e-6, "weights agree with the reference loop");
        }
    }

    private static AapeHead PlainAdapterReference(SyntheticTask task, AapeOptions o)
    {
        int n = task.TrainLabels.Length, d = task.Dimension, c = task.ClassNames.Length;
        var x = (float[])task.TrainImages.Data.Clone();
        for (int i = 0; i < n; i++) EmbeddingMatrix.NormalizeInPlace(x.AsSpan(i * d, d));
        var cw = (float[])task.ClassWeights.Data.Clone();
        for (int k = 0; k < c; k++) EmbeddingMatrix.NormalizeInPlace(cw.AsSpan(k * d, d));
        var rng = new Rng(AapeTrainer.StreamSeed(o.Seed, 2));
        var w = GeneratorWeights.Create(d, d / o.BottleneckRatio, cw, c, rng);
        var momentum = w.All.Select(p => (float[]?)null).ToArray();
        var classTensor = Tensor.Wrap(cw, c, d);
        int batch = o.BatchSize, steps = n / batch;
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            double lr = epoch < o.WarmupEpochs ? o.WarmupLearningRate : 0.5 * o.LearningRate * (1 + Math.Cos(Math.PI * (epoch - o.WarmupEpochs) / o.Epochs));
            var order = rng.Permutation(n);
            for (int s = 0; s < steps; s++)
            {
                var xb = new float[batch * d];
                var yb = new int[batch];
                for (int i = 0; i < batch; i++)
                {
                    yb[i] = task.TrainLabels[order[s * batch + i]];
                    x.AsSpan(order[s * batch + i] * d, d).CopyTo(xb.AsSpan(i * d));
                }
                foreach (var p in w.All) p.Grad?.Span.Clear();
                using (var tape = new Tape())
                    tape.Backward(Ops.CrossEntropy(PromptGenerator.Logits(w, Tensor.FromArray(xb, batch, d), classTensor, (float)o.Temperature!.Value, out _), yb));
                for (int k = 0; k < w.All.Length; k++)
                {
                    var p = w.All[k].Span;
                    var g = w.All[k].Grad!.Span;
                    bool first = momentum[k] is null;
                    var buf = momentum[k] ??= new float[p.Length];
                    for (int j = 0; j < p.Length; j++)
                    {
                        float dj = g[j] + (float)o.WeightDecay * p[j];
                        buf[j] = first ? dj : (float)o.Momentum * buf[j] + dj;
                        p[j] -= (float)lr * buf[j];
                    }
                }
            }
        }
        return new AapeHead(task.ClassNames, cw, w.W1.ToArray(), w.B1.ToArray(), w.W2.ToArray(), w.B2.ToArray(), w.G.ToArray(), w.Gb.ToArray(),
            (float)o.Temperature!.Value, o, null, null, null, null);
    }

    [Fact]
    public void SameSeedSameHeadOtherSeedOtherHead()
    {
        var task = SyntheticTask.Create(classes: 4, dimension: 32, trainPerClass: 4, testPerClass: 1, descriptionsPerClass: 4, seed: 8);
        var options = new AapeOptions { Epochs = 4, AggregatorEpochs = 4, Heads = 4, Seed = 11 };
        var a = AapeTrainer.Train(task.TrainingSet, options);
        var b = AapeTrainer.Train(task.TrainingSet, options);
        AssertSameWeights(a, b, exact: true);
        Assert.Equal(a.Summaries, b.Summaries);
        var other = AapeTrainer.Train(task.TrainingSet, options with { Seed = 12 });
        Assert.NotEqual(a.RawWeights.W1, other.RawWeights.W1);
    }

    [Fact]
    public void TheTemperatureDefaultsToTheInverseLogitScale()
    {
        var task = SyntheticTask.Create(classes: 3, dimension: 16, trainPerClass: 2, testPerClass: 1, descriptionsPerClass: 2, seed: 4);
        var head = AapeTrainer.Train(task.TrainingSet with { LogitScale = 14.285714f }, new AapeOptions { Epochs = 2, Lambda = 0 });
        Assert.Equal(1 / 14.285714f, head.Temperature, 6);
        Assert.Equal(0.01f, AapeTrainer.Train(task.TrainingSet, new AapeOptions { Epochs = 2, Lambda = 0 }).Temperature, 6);
    }

    [Fact]
    public void InconsistentTrainingInputsAreClearErrors()
    {
        var task = SyntheticTask.Create(classes: 3, dimension: 16, trainPerClass: 2, testPerClass: 1, descriptionsPerClass: 2, seed: 4);
        var set = task.TrainingSet;
        var options = new AapeOptions { Epochs = 2, Heads = 4 };
        var e = Assert.Throws<ArgumentException>(() => AapeTrainer.Train(set with { Descriptions = null }, options));
        Assert.Contains("Lambda = 0", e.Message);
        e = Assert.Throws<ArgumentException>(() => AapeTrainer.Train(set with { Labels = [0, 0, 0, 0, 0, 1] }, options));
        Assert.Contains("\"class 2\" has no training image", e.Message);
        e = Assert.Throws<ArgumentException>(() => AapeTrainer.Train(set, options with { Heads = 5 }));
        Assert.Contains("Heads = 5", e.Message);
        e = Assert.Throws<ArgumentException>(() => AapeTrainer.Train(set with { Labels = [0, 1, 2] }, options));
        Assert.Contains("3 labels for 6 image embeddings", e.Message);
        e = Assert.Throws<ArgumentException>(() => AapeTrainer.Train(set with { ClassNames = ["a", "b", "c"] }, options));
        Assert.Contains("other classes", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => AapeTrainer.Train(set, options with { Lambda = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => AapeTrainer.Train(set, options with { WarmupEpochs = 2 }));
    }
}
