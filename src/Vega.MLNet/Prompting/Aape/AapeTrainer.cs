using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>The labelled data of one AAPE training run, all in one CLIP model's embedding space.</summary>
internal sealed record AapeTrainingSet
{
    /// <summary>Training image embeddings (N × D; rows are normalised before use).</summary>
    public required EmbeddingMatrix Images { get; init; }

    /// <summary>The class index of every image, in [0, C).</summary>
    public required IReadOnlyList<int> Labels { get; init; }

    /// <summary>The C class names.</summary>
    public required IReadOnlyList<string> ClassNames { get; init; }

    /// <summary>The classes' handcrafted-prompt text embeddings w_c (C × D), e.g. <c>ClipModel.EmbedClassNames</c> with
    /// "a photo of a {}.".</summary>
    public required EmbeddingMatrix ClassWeights { get; init; }

    /// <summary>The classes' description embeddings (same classes, same order). Needed when λ &gt; 0; ignored when λ = 0.</summary>
    public DescriptionEmbeddings? Descriptions { get; init; }

    /// <summary>The CLIP model's logit scale; τ defaults to its inverse (default 100 ⇒ τ = 0.01).</summary>
    public float LogitScale { get; init; } = 100f;

    /// <summary>Name of the CLIP model (recorded in the head).</summary>
    public string? ModelName { get; init; }

    /// <summary>Content hash of the CLIP model (recorded in the head; <c>vega aape predict</c> checks it).</summary>
    public string? ModelHash { get; init; }
}

/// <summary>One epoch of the generator stage.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="LearningRate">The rate used in this epoch.</param>
/// <param name="CrossEntropy">Mean cross-entropy over the epoch's steps.</param>
/// <param name="Distillation">Mean ‖h(x) − pᵃ_y‖² over the epoch's steps (0 when λ = 0).</param>
/// <param name="Loss">Mean total loss CE + λ·distillation.</param>
/// <param name="Accuracy">Training accuracy of the epoch's batches (before each step's update).</param>
/// <param name="Seconds">Wall time of the epoch.</param>
public sealed record AapeEpoch(int Epoch, double LearningRate, double CrossEntropy, double Distillation, double Loss, double Accuracy, double Seconds);

/// <summary>What happened during training.</summary>
internal sealed record AapeTrainingReport
{
    /// <summary>Mean CLIP-S of the mean-description summaries (the aggregator's starting point) on the training images.</summary>
    public required double InitialClipScore { get; init; }

    /// <summary>Mean CLIP-S of the final summaries pᵃ on the training images.</summary>
    public required double FinalClipScore { get; init; }

    /// <summary>The aggregator's loss (−CLIP-S) per step; empty when it was not trained.</summary>
    public required IReadOnlyList<double> AggregatorLosses { get; init; }

    /// <summary>Mean cosine between each final pᵃ and its class's normalised mean description embedding (1 = unchanged).</summary>
    public required double SummaryToMeanCosine { get; init; }

    /// <summary>The generator stage, epoch by epoch.</summary>
    public required IReadOnlyList<AapeEpoch> Epochs { get; init; }

    /// <summary>Time of the aggregator stage.</summary>
    public required TimeSpan AggregatorTime { get; init; }

    /// <summary>Time of the generator stage.</summary>
    public required TimeSpan GeneratorTime { get; init; }

    /// <summary>The temperature τ used.</summary>
    public required double Temperature { get; init; }
}

/// <summary>
/// Trains an AAPE head (docs/aape.md) in two sequential stages: (1) the prompt aggregator learns a summary pᵃ per
/// class from the class's description embeddings by maximising CLIP-S on the class's training images, then is frozen;
/// (2) the prompt generator h and the class projection g learn from CE + λ·‖h(x) − pᵃ_y‖² with SGD and CoOp's
/// schedule. λ = 0 skips stage 1 and never touches the descriptions: the result is the plain adapter, weight for
/// weight. Deterministic given <see cref="AapeOptions.Seed"/> (stage 1 and stage 2 draw from separate generators).
/// </summary>
internal static class AapeTrainer
{
    /// <summary>Trains a head on <paramref name="data"/>. Errors name the inconsistent input.</summary>
    public static AapeHead Train(AapeTrainingSet data, AapeOptions? options = null, IProgress<AapeEpoch>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        options ??= AapeOptions.Default;
        options.Validate();
        var (images, labels, classWeights) = Validate(data, options);
        int n = labels.Length, c = data.ClassNames.Count, d = data.Images.Dimension;
        float temperature = (float)(options.Temperature ?? 1.0 / data.LogitScale);
        if (!(temperature > 0) || float.IsInfinity(temperature))
            throw new ArgumentException($"The logit scale {data.LogitScale} gives no usable temperature; set AapeOptions.Temperature.", nameof(data));

        // Stage 1: the class summaries pᵃ (skipped for λ = 0: the plain adapter never looks at the descriptions).
        AggregatorResult? summaries = null;
        double summaryToMean = double.NaN;
        if (options.Lambda > 0)
        {
            summaries = PromptAggregator.Train(data.Descriptions!, images, labels, options, new Rng(StreamSeed(options.Seed, 1)), cancellationToken);
            var means = data.Descriptions!.NormalizedMeans();
            double acc = 0;
            for (int k = 0; k < c; k++)
                acc += System.Numerics.Tensors.TensorPrimitives.Dot<float>(summaries.Summaries.AsSpan(k * d, d), means.AsSpan(k * d, d));
            summaryToMean = acc / c;
        }

        // Stage 2: h and g.
        var clock = Stopwatch.StartNew();
        var rng = new Rng(StreamSeed(options.Seed, 2));
        int bottleneck = Math.Max(1, d / options.BottleneckRatio);
        var w = GeneratorWeights.Create(d, bottleneck, classWeights, c, rng);
        var classTensor = Tensor.Wrap(classWeights, c, d);
        var optimizer = new Sgd(w.All, new SgdOptions(options.LearningRate, options.Momentum, options.WeightDecay));
        var schedule = new CoOpSchedule(options.LearningRate, options.Epochs, options.WarmupEpochs, options.WarmupLearningRate);
        int batch = Math.Min(options.BatchSize, n);
        int steps = n >= options.BatchSize ? n / options.BatchSize : 1; // Dassl drops the last partial batch when N ≥ batch
        var x = new float[batch * d];
        var target = new float[batch * d];
        var y = new int[batch];
        var epochs = new List<AapeEpoch>(options.Epochs);
        float lambda = (float)options.Lambda;
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long t0 = Stopwatch.GetTimestamp();
            optimizer.LearningRate = schedule.At(epoch);
            var order = rng.Permutation(n);
            double ce = 0, distill = 0, total = 0;
            int correct = 0, seen = 0;
            for (int s = 0; s < steps; s++)
            {
                for (int i = 0; i < batch; i++)
                {
                    int idx = order[s * batch + i];
                    y[i] = labels[idx];
                    images.AsSpan(idx * d, d).CopyTo(x.AsSpan(i * d, d));
                    if (summaries is not null) summaries.Summaries.AsSpan(y[i] * d, d).CopyTo(target.AsSpan(i * d, d));
                }
                using var tape = new Tape();
                var logits = PromptGenerator.Logits(w, Tensor.FromArray(x, batch, d), classTensor, temperature, out var prompt);
                var ceLoss = Ops.CrossEntropy(logits, y);
                var loss = ceLoss;
                Tensor? distillLoss = null;
                if (lambda > 0)
                {
                    var diff = Ops.Sub(prompt, Tensor.FromArray(target, batch, d));
                    distillLoss = Ops.DivScalar(Ops.Sum(Ops.Mul(diff, diff)), batch);
                    loss = Ops.Add(ceLoss, Ops.MulScalar(distillLoss, lambda));
                }
                optimizer.ZeroGrad();
                tape.Backward(loss);
                optimizer.Step();
                ce += ceLoss.Item();
                distill += distillLoss?.Item() ?? 0;
                total += loss.Item();
                var predicted = Ops.ArgMax(logits, 1);
                for (int i = 0; i < batch; i++) if (predicted[i] == y[i]) correct++;
                seen += batch;
            }
            var record = new AapeEpoch(epoch, optimizer.LearningRate, ce / steps, distill / steps, total / steps, (double)correct / seen,
                Stopwatch.GetElapsedTime(t0).TotalSeconds);
            epochs.Add(record);
            progress?.Report(record);
        }
        var report = new AapeTrainingReport
        {
            InitialClipScore = summaries?.InitialClipScore ?? double.NaN,
            FinalClipScore = summaries?.FinalClipScore ?? double.NaN,
            AggregatorLosses = summaries?.Losses ?? [],
            SummaryToMeanCosine = summaryToMean,
            Epochs = epochs,
            AggregatorTime = summaries?.Elapsed ?? TimeSpan.Zero,
            GeneratorTime = clock.Elapsed,
            Temperature = temperature,
        };
        return new AapeHead(data.ClassNames, classWeights, w.W1.ToArray(), w.B1.ToArray(), w.W2.ToArray(), w.B2.ToArray(), w.G.ToArray(), w.Gb.ToArray(),
            temperature, options, summaries?.Summaries, report, data.ModelName, data.ModelHash);
    }

    /// <summary>Independent generator streams derived from one seed (stage 1 = 1, stage 2 = 2).</summary>
    internal static ulong StreamSeed(int seed, int stream) => unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)stream * 0xD1B54A32D192ED03UL);

    private static (float[] Images, int[] Labels, float[] ClassWeights) Validate(AapeTrainingSet data, AapeOptions options)
    {
        ArgumentNullException.ThrowIfNull(data.Images, nameof(data.Images));
        ArgumentNullException.ThrowIfNull(data.Labels, nameof(data.Labels));
        ArgumentNullException.ThrowIfNull(data.ClassNames, nameof(data.ClassNames));
        ArgumentNullException.ThrowIfNull(data.ClassWeights, nameof(data.ClassWeights));
        Text.PromptTemplates.ValidateClassNames(data.ClassNames);
        int n = data.Images.Count, d = data.Images.Dimension, c = data.ClassNames.Count;
        if (n == 0) throw new ArgumentException("AAPE training needs at least one labelled image embedding.", nameof(data));
        if (data.Labels.Count != n) throw new ArgumentException($"{data.Labels.Count} labels for {n} image embeddings; give one label per image.", nameof(data));
        if (data.ClassWeights.Count != c || data.ClassWeights.Dimension != d)
            throw new ArgumentException($"The class weights are {data.ClassWeights.Count} × {data.ClassWeights.Dimension}; {c} classes of width {d} (the image embeddings' width) are needed.", nameof(data));
        if (d % options.Heads != 0 && options.Lambda > 0 && options.Aggregator == AapeAggregator.Attention)
            throw new ArgumentException($"AapeOptions.Heads = {options.Heads} does not divide the embedding width {d}; pick a divisor of {d}.", nameof(options));
        var labels = data.Labels.ToArray();
        var counts = new int[c];
        for (int i = 0; i < n; i++)
        {
            if ((uint)labels[i] >= (uint)c) throw new ArgumentException($"Label {labels[i]} of image {i} is not a class index in [0, {c}).", nameof(data));
            counts[labels[i]]++;
        }
        for (int k = 0; k < c; k++)
            if (counts[k] == 0)
                throw new ArgumentException($"Class \"{data.ClassNames[k]}\" has no training image; every class needs at least one (or drop it from the class list).", nameof(data));
        if (options.Lambda > 0)
        {
            if (data.Descriptions is null)
                throw new ArgumentException($"λ = {options.Lambda} distils the class descriptions, but none were given; load them (ClassDescriptions.Load(...).Embed(model)) or set Lambda = 0 for the plain adapter.", nameof(data));
            if (!data.Descriptions.ClassNames.SequenceEqual(data.ClassNames, StringComparer.Ordinal))
                throw new ArgumentException("The description embeddings are for other classes (or another order) than the training set; load them with the same class list.", nameof(data));
            if (data.Descriptions.Dimension != d)
                throw new ArgumentException($"The description embeddings have width {data.Descriptions.Dimension}, the images {d}: they come from different models.", nameof(data));
        }
        var images = (float[])data.Images.Data.Clone();
        for (int i = 0; i < n; i++) EmbeddingMatrix.NormalizeInPlace(images.AsSpan(i * d, d));
        var weights = (float[])data.ClassWeights.Data.Clone();
        for (int k = 0; k < c; k++) EmbeddingMatrix.NormalizeInPlace(weights.AsSpan(k * d, d));
        return (images, labels, weights);
    }
}
