using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Experiments;

/// <summary>The embeddings an experiment runs on (one CLIP model's space).</summary>
internal sealed record ExperimentData
{
    public required string ModelName { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }
    /// <summary>Handcrafted-prompt embeddings of every class (C × D).</summary>
    public required EmbeddingMatrix ClassWeights { get; init; }
    /// <summary>Description embeddings of every class.</summary>
    public required DescriptionEmbeddings Descriptions { get; init; }
    /// <summary>The pool the k-shot training sets are drawn from.</summary>
    public required EmbeddingMatrix Pool { get; init; }
    public required int[] PoolLabels { get; init; }
    public required EmbeddingMatrix Test { get; init; }
    public required int[] TestLabels { get; init; }
    public float LogitScale { get; init; } = 100f;
    /// <summary>Free text describing where the data came from (printed in the report).</summary>
    public string Provenance { get; init; } = "";
}

/// <summary>What to run.</summary>
internal sealed record ExperimentSettings
{
    public int[] Shots { get; init; } = [1, 2, 4, 8, 16];
    public int[] Seeds { get; init; } = [1, 2, 3];
    public bool KShot { get; init; } = true;
    public bool BaseToNew { get; init; } = true;
    public int BaseToNewShots { get; init; } = 16;
    public AapeOptions Options { get; init; } = AapeOptions.Default;
    /// <summary>Generator epochs for k shots; default CoOp's rule (50 for 1–2 shots, 100 for 4–8, 200 for 16+).</summary>
    public Func<int, int> EpochsForShots { get; init; } = CoOpEpochs;
    public IProgress<string>? Log { get; init; }

    public static int CoOpEpochs(int shots) => shots <= 2 ? 50 : shots <= 8 ? 100 : 200;
}

/// <summary>A training task handed to a method: unit-norm images of the training classes, labels local to them.</summary>
internal sealed record FewShotTask(float[] Images, int[] Labels, int[] Classes, IReadOnlyList<string> ClassNames, EmbeddingMatrix ClassWeights,
    DescriptionEmbeddings Descriptions, float LogitScale, int Shots, int Seed, int Epochs, IReadOnlyList<string> AllClassNames, EmbeddingMatrix AllClassWeights)
{
    /// <summary>Names and handcrafted-prompt embeddings of classes of the experiment's list (by index).</summary>
    public (string[] Names, EmbeddingMatrix Weights) ClassesOf(int[] classes)
    {
        int d = AllClassWeights.Dimension;
        var w = new EmbeddingMatrix(classes.Length, d);
        for (int i = 0; i < classes.Length; i++) AllClassWeights.Row(classes[i]).CopyTo(w.Row(i));
        w.NormalizeRows();
        return (classes.Select(c => AllClassNames[c]).ToArray(), w);
    }
}

/// <summary>
/// A few-shot method compared in the experiments. <see cref="Train"/> returns a classifier that maps unit-norm test
/// images and a list of class indices (into the experiment's class list) to predicted positions in that list, or null
/// when the method cannot score those classes (a linear probe on unseen classes).
/// </summary>
internal interface IFewShotMethod
{
    string Name { get; }
    Func<float[], int[], int[]?> Train(FewShotTask task);

    /// <summary>A remark printed under the tables (e.g. why the method gave no numbers), or null.</summary>
    string? Note => null;
}

/// <summary>Per-method result of one training run.</summary>
internal sealed record RunResult(string Method, int Shots, int Seed, double Accuracy, double Seconds);

internal sealed record BaseToNewResult(string Method, int Seed, double Base, double New)
{
    public double Harmonic => double.IsNaN(New) || Base + New == 0 ? double.NaN : 2 * Base * New / (Base + New);
}

internal sealed record SummaryDiagnostic(int Shots, int Seed, double TrainClipScore, double HeldOutClipScore, double HeldOutMeanClipScore, double SummaryToMeanCosine);

internal sealed record ExperimentResult(ExperimentData Data, ExperimentSettings Settings, IReadOnlyList<string> Methods, IReadOnlyList<RunResult> KShot,
    IReadOnlyList<BaseToNewResult> BaseToNew, IReadOnlyList<SummaryDiagnostic> Summaries, int[] BaseClasses, int[] NewClasses, TimeSpan Elapsed)
{
    /// <summary>Remarks of the methods (method name → note).</summary>
    public IReadOnlyDictionary<string, string> Notes { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// The AAPE experiment protocol (docs/experiments/aape.md): k-shot classification over all classes and base-to-new
/// generalisation (train on the first half of the classes, test base on base and new on new, each among its own half),
/// for zero-shot, a linear probe, AAPE and its two ablations (λ = 0; mean p̄). k-shot sets are drawn per seed from the
/// pool, nested across k (the k-shot set is the first k of a seeded per-class permutation).
/// CoOp hook: when CoOp lands, add an <see cref="IFewShotMethod"/> for it to <see cref="ExtraMethods"/> (or pass it in
/// <c>methods</c>); until then the report prints "n/a" for it.
/// </summary>
internal static class AapeExperiment
{
    /// <summary>Methods added to every run (the place to register CoOp once it exists).</summary>
    public static List<IFewShotMethod> ExtraMethods { get; } = [];

    public static IReadOnlyList<IFewShotMethod> DefaultMethods(ExperimentSettings settings) =>
    [
        new ZeroShotMethod(),
        new LinearProbeMethod(),
        new AapeMethod("AAPE", settings.Options),
        new AapeMethod("AAPE λ=0 (plain adapter)", settings.Options with { Lambda = 0 }),
        new AapeMethod("AAPE mean-p̄", settings.Options with { Aggregator = AapeAggregator.Mean }),
        .. ExtraMethods,
    ];

    public static ExperimentResult Run(ExperimentData data, ExperimentSettings settings, IReadOnlyList<IFewShotMethod>? methods = null, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        methods ??= DefaultMethods(settings);
        int c = data.ClassNames.Count;
        var pool = Normalized(data.Pool);
        var test = Normalized(data.Test);
        var kshot = new List<RunResult>();
        var b2n = new List<BaseToNewResult>();
        var diagnostics = new List<SummaryDiagnostic>();
        var all = Enumerable.Range(0, c).ToArray();
        if (settings.KShot)
        {
            foreach (int k in settings.Shots)
                foreach (int seed in settings.Seeds)
                {
                    ct.ThrowIfCancellationRequested();
                    var task = MakeTask(data, pool, all, k, seed, settings);
                    foreach (var m in methods)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        var classify = m.Train(task);
                        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                        var predicted = classify(test, all);
                        double acc = predicted is null ? double.NaN : Accuracy(predicted, data.TestLabels);
                        kshot.Add(new RunResult(m.Name, k, seed, acc, seconds));
                        settings.Log?.Report($"{k}-shot seed {seed}: {m.Name} {Pct(acc)} ({seconds:F1} s)");
                    }
                    diagnostics.Add(Diagnose(task, test, data.TestLabels, settings.Options));
                }
        }
        int half = c / 2;
        var baseClasses = Enumerable.Range(0, half).ToArray();
        var newClasses = Enumerable.Range(half, c - half).ToArray();
        if (settings.BaseToNew && half >= 1 && c - half >= 1)
        {
            var (baseTest, baseLabels) = Select(test, data.TestLabels, baseClasses, data.Test.Dimension);
            var (newTest, newLabels) = Select(test, data.TestLabels, newClasses, data.Test.Dimension);
            foreach (int seed in settings.Seeds)
            {
                ct.ThrowIfCancellationRequested();
                var task = MakeTask(data, pool, baseClasses, settings.BaseToNewShots, seed, settings);
                foreach (var m in methods)
                {
                    var classify = m.Train(task);
                    var pb = classify(baseTest, baseClasses);
                    var pn = classify(newTest, newClasses);
                    var r = new BaseToNewResult(m.Name, seed, pb is null ? double.NaN : Accuracy(pb, baseLabels), pn is null ? double.NaN : Accuracy(pn, newLabels));
                    b2n.Add(r);
                    settings.Log?.Report($"base-to-new seed {seed}: {m.Name} base {Pct(r.Base)} new {Pct(r.New)} H {Pct(r.Harmonic)}");
                }
            }
        }
        var notes = methods.Where(m => m.Note is not null).ToDictionary(m => m.Name, m => m.Note!);
        return new ExperimentResult(data, settings, methods.Select(m => m.Name).ToArray(), kshot, b2n, diagnostics, baseClasses, newClasses, clock.Elapsed) { Notes = notes };
    }

    /// <summary>The k-shot training set of <paramref name="classes"/> for one seed: per class, the first k of a seeded
    /// permutation of its pool images (nested across k). Errors when a class has fewer than k pool images.</summary>
    internal static FewShotTask MakeTask(ExperimentData data, float[] pool, int[] classes, int k, int seed, ExperimentSettings settings)
    {
        int d = data.Pool.Dimension;
        var images = new List<float>();
        var labels = new List<int>();
        for (int local = 0; local < classes.Length; local++)
        {
            int cls = classes[local];
            var members = Enumerable.Range(0, data.PoolLabels.Length).Where(i => data.PoolLabels[i] == cls).ToArray();
            if (members.Length < k)
                throw new ArgumentException($"Class \"{data.ClassNames[cls]}\" has {members.Length} images in the training pool; {k} shots need at least {k} (raise the pool size).");
            var rng = new Rng(AapeTrainer.StreamSeed(seed, 1000 + cls));
            rng.Shuffle<int>(members);
            foreach (int i in members.AsSpan(0, k))
            {
                images.AddRange(pool.AsSpan(i * d, d).ToArray());
                labels.Add(local);
            }
        }
        var weights = new EmbeddingMatrix(classes.Length, d);
        for (int local = 0; local < classes.Length; local++) data.ClassWeights.Row(classes[local]).CopyTo(weights.Row(local));
        return new FewShotTask(images.ToArray(), labels.ToArray(), classes, classes.Select(i => data.ClassNames[i]).ToArray(), weights,
            data.Descriptions.Subset(classes), data.LogitScale, k, seed, settings.EpochsForShots(k), data.ClassNames, data.ClassWeights);
    }

    /// <summary>Held-out CLIP-S of the trained summaries vs the mean-description summaries, on the test images of the task's classes.</summary>
    private static SummaryDiagnostic Diagnose(FewShotTask task, float[] test, int[] testLabels, AapeOptions options)
    {
        int d = task.ClassWeights.Dimension;
        var result = PromptAggregator.Train(task.Descriptions, task.Images, task.Labels, options, new Rng(AapeTrainer.StreamSeed(task.Seed, 1)), CancellationToken.None);
        var means = task.Descriptions.NormalizedMeans();
        var local = new Dictionary<int, int>();
        for (int i = 0; i < task.Classes.Length; i++) local[task.Classes[i]] = i;
        var idx = Enumerable.Range(0, testLabels.Length).Where(i => local.ContainsKey(testLabels[i])).ToArray();
        var x = new float[idx.Length * d];
        var y = new int[idx.Length];
        for (int j = 0; j < idx.Length; j++)
        {
            test.AsSpan(idx[j] * d, d).CopyTo(x.AsSpan(j * d, d));
            y[j] = local[testLabels[idx[j]]];
        }
        var w = PromptAggregator.ImageWeights(y, task.Classes.Length);
        double cosToMean = 0;
        for (int k = 0; k < task.Classes.Length; k++) cosToMean += TensorPrimitives.Dot<float>(result.Summaries.AsSpan(k * d, d), means.AsSpan(k * d, d));
        return new SummaryDiagnostic(task.Shots, task.Seed, result.FinalClipScore,
            PromptAggregator.ClipScore(result.Summaries, x, y, w, d, options.ClipScoreWeight),
            PromptAggregator.ClipScore(means, x, y, w, d, options.ClipScoreWeight), cosToMean / task.Classes.Length);
    }

    private static float[] Normalized(EmbeddingMatrix m)
    {
        var r = (float[])m.Data.Clone();
        for (int i = 0; i < m.Count; i++) EmbeddingMatrix.NormalizeInPlace(r.AsSpan(i * m.Dimension, m.Dimension));
        return r;
    }

    private static (float[] Images, int[] Labels) Select(float[] images, int[] labels, int[] classes, int d)
    {
        var pos = new Dictionary<int, int>();
        for (int i = 0; i < classes.Length; i++) pos[classes[i]] = i;
        var x = new List<float>();
        var y = new List<int>();
        for (int i = 0; i < labels.Length; i++)
        {
            if (!pos.TryGetValue(labels[i], out int p)) continue;
            x.AddRange(images.AsSpan(i * d, d).ToArray());
            y.Add(p);
        }
        return (x.ToArray(), y.ToArray());
    }

    private static double Accuracy(int[] predicted, int[] labels)
    {
        int correct = 0;
        for (int i = 0; i < labels.Length; i++) if (predicted[i] == labels[i]) correct++;
        return labels.Length == 0 ? double.NaN : (double)correct / labels.Length;
    }

    private static string Pct(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("F1", CultureInfo.InvariantCulture) + " %";

    // ---------------------------------------------------------------- methods

    private sealed class ZeroShotMethod : IFewShotMethod
    {
        public string Name => "zero-shot (handcrafted prompt)";
        public Func<float[], int[], int[]?> Train(FewShotTask task) => (images, classes) =>
        {
            var (_, w) = task.ClassesOf(classes);
            int d = w.Dimension, n = images.Length / d;
            var result = new int[n];
            var scores = new float[classes.Length];
            for (int i = 0; i < n; i++)
            {
                for (int c = 0; c < classes.Length; c++) scores[c] = TensorPrimitives.Dot<float>(images.AsSpan(i * d, d), w.Row(c));
                result[i] = TensorPrimitives.IndexOfMax<float>(scores);
            }
            return result;
        };
    }

    /// <summary>
    /// The linear probe of the candidate-labels work (<see cref="Vega.MLNet.Prompting.PartialLabel.PromptTuner"/>): logits = s·x·Wᵀ + b from
    /// zero weights, cross-entropy on the true labels, AdamW, the same epochs as the other methods.
    /// </summary>
    private sealed class LinearProbeMethod : IFewShotMethod
    {
        public string Name => "linear probe";
        public Func<float[], int[], int[]?> Train(FewShotTask task)
        {
            int d = task.ClassWeights.Dimension;
            var images = new EmbeddingMatrix(task.Images, task.Labels.Length, d);
            var candidates = Vega.MLNet.Prompting.PartialLabel.CandidateLabels.FromLabels(task.Labels, task.Classes.Length);
            var options = new Vega.MLNet.Prompting.PartialLabel.PromptTuningOptions { Method = Vega.MLNet.Prompting.PartialLabel.TuningMethod.LinearProbe, Loss = Vega.MLNet.Prompting.PartialLabel.PartialLabelLossKind.CrossEntropy, Align = false, Epochs = task.Epochs, Seed = (ulong)task.Seed };
            var settings = new Vega.MLNet.Prompting.PartialLabel.PllTrainingSettings { Epochs = task.Epochs, LearningRate = 1e-3, WeightDecay = 1e-4, Seed = (ulong)task.Seed, AdamW = true };
            var probe = Vega.MLNet.Prompting.PartialLabel.PromptTuner.LinearProbe(new Vega.MLNet.Prompting.PartialLabel.TrainingViews(images, null, (ulong)task.Seed), candidates, task.ClassNames, new Vega.MLNet.Prompting.PartialLabel.PartialLabelLoss(Vega.MLNet.Prompting.PartialLabel.PartialLabelLossKind.CrossEntropy, candidates),
                settings, task.LogitScale, "probe", options, "", null, null, CancellationToken.None).Classifier;
            return (x, classes) => classes.SequenceEqual(task.Classes) ? probe.Predict(new EmbeddingMatrix(x, x.Length / d, d)) : null;
        }
    }

    /// <summary>
    /// CoOp through <see cref="Vega.MLNet.Prompting.PartialLabel.PromptTuner"/> (true labels as one-candidate sets, cross-entropy, no alignment,
    /// CoOp's optimiser and schedule with the same epochs as AAPE, unified context). New classes: the learnt context is
    /// re-encoded with their names (<see cref="Vega.MLNet.Prompting.PartialLabel.TuningResult.ClassifierFor"/>). A model whose text tower
    /// the interpreter cannot run reports n/a with the reason.
    /// </summary>
    internal sealed class CoOpMethod(Models.ClipModel model) : IFewShotMethod
    {
        public string Name => "CoOp";
        public string? Note { get; private set; }

        public Func<float[], int[], int[]?> Train(FewShotTask task)
        {
            int d = task.ClassWeights.Dimension;
            try
            {
                var result = Vega.MLNet.Prompting.PartialLabel.PromptTuner.Tune(model, new EmbeddingMatrix(task.Images, task.Labels.Length, d),
                    Vega.MLNet.Prompting.PartialLabel.CandidateLabels.FromLabels(task.Labels, task.Classes.Length), task.ClassNames,
                    new Vega.MLNet.Prompting.PartialLabel.PromptTuningOptions
                    {
                        Method = Vega.MLNet.Prompting.PartialLabel.TuningMethod.CoOp, Loss = Vega.MLNet.Prompting.PartialLabel.PartialLabelLossKind.CrossEntropy, Align = false,
                        Epochs = task.Epochs, Seed = (ulong)task.Seed,
                    });
                return (images, classes) =>
                {
                    var classifier = classes.SequenceEqual(task.Classes) ? result.Classifier : result.ClassifierFor(task.ClassesOf(classes).Names);
                    return classifier.Predict(new EmbeddingMatrix(images, images.Length / d, d));
                };
            }
            catch (NotSupportedException e)
            {
                Note = $"CoOp gave no numbers: {e.Message}";
                return (_, _) => null;
            }
        }
    }

    private sealed class AapeMethod(string name, AapeOptions options) : IFewShotMethod
    {
        public string Name => name;
        public Func<float[], int[], int[]?> Train(FewShotTask task)
        {
            int d = task.ClassWeights.Dimension;
            var head = AapeTrainer.Train(new AapeTrainingSet
            {
                Images = new EmbeddingMatrix(task.Images, task.Labels.Length, d),
                Labels = task.Labels,
                ClassNames = task.ClassNames,
                ClassWeights = task.ClassWeights,
                Descriptions = task.Descriptions,
                LogitScale = task.LogitScale,
            }, options with { Epochs = task.Epochs, Seed = task.Seed });
            return (images, classes) =>
            {
                var (names, w) = task.ClassesOf(classes);
                var h = classes.SequenceEqual(task.Classes) ? head : head.WithClasses(names, w);
                var logits = h.Predict(new EmbeddingMatrix(images, images.Length / d, d));
                var result = new int[images.Length / d];
                for (int i = 0; i < result.Length; i++) result[i] = TensorPrimitives.IndexOfMax<float>(logits.AsSpan(i * classes.Length, classes.Length));
                return result;
            };
        }
    }
}
