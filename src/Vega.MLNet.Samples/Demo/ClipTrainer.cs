using System.Diagnostics;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Demo;

/// <summary>How one model of the zoo is trained.</summary>
internal sealed record TrainingSpec
{
    /// <summary>How many images of the training pool the model sees (the first ones of the pool's seeded order).</summary>
    public int TrainImages { get; init; } = 10000;

    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 128;
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Decoupled weight decay of matrices and embeddings (biases, LayerNorm gains and the logit scale get none, as in CLIP).</summary>
    public double WeightDecay { get; init; } = 0.05;

    /// <summary>Fraction of the steps spent in the linear warm-up before the cosine decay.</summary>
    public double WarmupFraction { get; init; } = 0.05;

    /// <summary>Probability that a caption names another class (<see cref="DemoCaptions.Sample"/>).</summary>
    public double CaptionNoise { get; init; }

    /// <summary>The classes the model is trained on (null = all ten).</summary>
    public int[]? Classes { get; init; }

    /// <summary>What happens to images of the other classes.</summary>
    public CoverageMode Coverage { get; init; } = CoverageMode.Drop;

    /// <summary>Gradient clipping (global L2 norm).</summary>
    public double MaxGradNorm { get; init; } = 5.0;
}

/// <summary>The training pool shared by the zoo: gray model inputs (count × 784, see <see cref="DemoPreprocessing.GrayInputs"/>) and labels.</summary>
internal sealed record TrainingPool(float[] Gray, byte[] Labels)
{
    public int Count => Labels.Length;
}

/// <summary>What a training run did.</summary>
internal sealed record TrainingReport(int Steps, int ImagesUsed, double[] EpochLoss, float LogitScale, TimeSpan Elapsed);

/// <summary>
/// CLIP training on the tensor core: each step takes a batch of images with one sampled caption each, embeds both
/// (L2-normalised), and minimises the symmetric InfoNCE loss ½(CE(s·I·Tᵀ, diag) + CE(s·T·Iᵀ, diag)) with the learnable
/// logit scale s = exp(t) (t starts at ln(1/0.07), clamped to ≤ ln 100 after each step). AdamW with a linear warm-up and
/// a cosine decay to zero. Deterministic: the same network seed, training seed and thread count give the same weights
/// bit for bit.
/// </summary>
internal static class ClipTrainer
{
    /// <summary>Changes whenever training or export semantics change (part of the zoo cache key).</summary>
    public const int Version = 1;

    public static TrainingReport Train(ClipNetwork net, ClipTokenizer tokenizer, TrainingPool pool, TrainingSpec spec, ulong seed,
        Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        if (spec.TrainImages < spec.BatchSize || spec.TrainImages > pool.Count)
            throw new ArgumentException($"TrainImages must be between the batch size ({spec.BatchSize}) and the pool size ({pool.Count}); got {spec.TrainImages}.", nameof(spec));
        if (spec.Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1; got {spec.Epochs}.", nameof(spec));
        var clock = Stopwatch.StartNew();
        var covered = spec.Classes is null ? null : new HashSet<int>(spec.Classes);
        var use = new List<int>(spec.TrainImages);
        for (int i = 0; i < spec.TrainImages; i++)
            if (covered is null || spec.Coverage == CoverageMode.Generic || covered.Contains(pool.Labels[i])) use.Add(i);
        int b = spec.BatchSize, stepsPerEpoch = use.Count / b, total = stepsPerEpoch * spec.Epochs;
        if (stepsPerEpoch == 0) throw new ArgumentException($"Only {use.Count} training images remain after the class coverage; need at least one batch of {b}.", nameof(spec));

        var decay = net.Parameters.All.Where(p => p.Rank >= 2).ToArray();
        var noDecay = net.Parameters.All.Where(p => p.Rank < 2).ToArray();
        var opt1 = new AdamW(decay, new AdamWOptions(spec.LearningRate, WeightDecay: spec.WeightDecay));
        var opt2 = new AdamW(noDecay, new AdamWOptions(spec.LearningRate, WeightDecay: 0));
        var schedule = new CosineWithWarmupSchedule(spec.LearningRate, (int)Math.Round(total * spec.WarmupFraction), total);
        var rng = new Rng(seed);
        var order = use.ToArray();
        var targets = new int[b];
        for (int i = 0; i < b; i++) targets[i] = i;
        var captions = new string[b];
        var batchLabels = new int[b];
        var x = new float[b * 784];
        var epochLoss = new double[spec.Epochs];
        int step = 0;
        for (int epoch = 0; epoch < spec.Epochs; epoch++)
        {
            rng.Shuffle<int>(order);
            double lossSum = 0;
            for (int s = 0; s < stepsPerEpoch; s++, step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int i = 0; i < b; i++)
                {
                    int idx = order[s * b + i];
                    batchLabels[i] = pool.Labels[idx];
                    pool.Gray.AsSpan(idx * 784, 784).CopyTo(x.AsSpan(i * 784, 784));
                }
                for (int i = 0; i < b; i++) captions[i] = DemoCaptions.Sample(batchLabels[i], spec.CaptionNoise, covered, rng);
                var (ids, lengths, width) = Tokenize(tokenizer, captions, net.ContextLength);

                using var tape = new Tape();
                var img = Ops.L2Normalize(net.EncodeImageGray(Tensor.FromArray(x, b, 1, 28, 28)));
                var txt = Ops.L2Normalize(net.EncodeText(ids, lengths, b, width));
                var logits = Ops.Mul(Ops.MatMul(img, Ops.SwapAxes(txt, 0, 1)), Ops.Exp(net.LogitScale));
                var loss = Ops.MulScalar(Ops.Add(Ops.CrossEntropy(logits, targets), Ops.CrossEntropy(Ops.SwapAxes(logits, 0, 1), targets)), 0.5f);
                opt1.ZeroGrad();
                opt2.ZeroGrad();
                tape.Backward(loss);
                GradClip.ClipNorm(net.Parameters.All, spec.MaxGradNorm);
                schedule.Apply(opt1);
                opt2.LearningRate = opt1.LearningRate;
                opt1.Step();
                opt2.Step();
                net.ClampLogitScale();
                lossSum += loss.Item();
            }
            epochLoss[epoch] = lossSum / stepsPerEpoch;
            log?.Invoke($"epoch {epoch + 1}/{spec.Epochs}: loss {epochLoss[epoch]:F4}, logit scale {MathF.Exp(net.LogitScale.Span[0]):F1}");
        }
        return new TrainingReport(total, use.Count, epochLoss, net.LogitScale.Span[0], clock.Elapsed);
    }

    /// <summary>Token rows cut to the longest text of the batch (int ids, lengths, width), as a dynamic-length model receives them.</summary>
    internal static (int[] Ids, int[] Lengths, int Width) Tokenize(ClipTokenizer tokenizer, IReadOnlyList<string> texts, int contextLength)
    {
        var batch = tokenizer.EncodeBatch(texts, contextLength);
        int width = Math.Max(1, batch.MaxLength);
        var ids = new int[texts.Count * width];
        for (int r = 0; r < texts.Count; r++)
            for (int j = 0; j < width; j++) ids[r * width + j] = (int)batch.Ids[r * contextLength + j];
        return (ids, batch.Lengths, width);
    }

    /// <summary>L2-normalised text embeddings [n, E] from the trainer's forward pass (no gradient).</summary>
    public static float[] EmbedTexts(ClipNetwork net, ClipTokenizer tokenizer, IReadOnlyList<string> texts, int batchSize = 256)
    {
        int e = net.Architecture.EmbedDim;
        var result = new float[texts.Count * e];
        using var noGrad = Tape.NoGrad();
        for (int start = 0; start < texts.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, texts.Count - start);
            using var scope = new TensorScope();
            var (ids, lengths, width) = Tokenize(tokenizer, texts.Skip(start).Take(n).ToList(), net.ContextLength);
            Ops.L2Normalize(net.EncodeText(ids, lengths, n, width)).Span.CopyTo(result.AsSpan(start * e, n * e));
        }
        return result;
    }

    /// <summary>L2-normalised image embeddings [n, E] of gray inputs (n × 784) from the trainer's forward pass.</summary>
    public static float[] EmbedGray(ClipNetwork net, ReadOnlySpan<float> gray, int count, int batchSize = 500)
    {
        int e = net.Architecture.EmbedDim;
        var result = new float[count * e];
        using var noGrad = Tape.NoGrad();
        for (int start = 0; start < count; start += batchSize)
        {
            int n = Math.Min(batchSize, count - start);
            using var scope = new TensorScope();
            var x = Tensor.FromArray(gray.Slice(start * 784, n * 784), n, 1, 28, 28);
            Ops.L2Normalize(net.EncodeImageGray(x)).Span.CopyTo(result.AsSpan(start * e, n * e));
        }
        return result;
    }

    /// <summary>Zero-shot accuracy with the plain class names and <see cref="DemoCaptions.EvaluationTemplate"/>, from the trainer's forward pass.</summary>
    public static double ZeroShotAccuracy(ClipNetwork net, ClipTokenizer tokenizer, ReadOnlySpan<float> gray, ReadOnlySpan<byte> labels)
    {
        int e = net.Architecture.EmbedDim, c = DemoCaptions.ClassNames.Count;
        var classes = EmbedTexts(net, tokenizer, DemoCaptions.ClassNames.Select(n => DemoCaptions.Fill(DemoCaptions.EvaluationTemplate, n)).ToList());
        var images = EmbedGray(net, gray, labels.Length);
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            var row = images.AsSpan(i * e, e);
            int best = 0;
            double bestScore = double.NegativeInfinity;
            for (int k = 0; k < c; k++)
            {
                double dot = Kernels.DotDouble(row, classes.AsSpan(k * e, e));
                if (dot > bestScore) { bestScore = dot; best = k; }
            }
            if (best == labels[i]) correct++;
        }
        return (double)correct / labels.Length;
    }
}
