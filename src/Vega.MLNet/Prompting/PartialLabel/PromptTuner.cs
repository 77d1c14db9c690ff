using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>Options of <see cref="PromptTuner.Tune"/>. Defaults follow CoOp (SGD lr 0.002, momentum 0.9, weight decay
/// 5e-4, batch 32, 16 context tokens at the end, one warm-up epoch, cosine schedule).</summary>
internal sealed record PromptTuningOptions
{
    /// <summary>Zero-shot, linear probe or CoOp.</summary>
    public TuningMethod Method { get; init; } = TuningMethod.CoOp;

    /// <summary>The partial-label objective.</summary>
    public PartialLabelLossKind Loss { get; init; } = PartialLabelLossKind.CC;

    /// <summary>Align the prediction to the handcrafted prompt's candidate-restricted posterior.</summary>
    public bool Align { get; init; } = true;

    /// <summary>How the alignment term is weighted: dynamic (the reference code's: λ times the partial-label term's value,
    /// through a detached ratio) or fixed (λ·L_align).</summary>
    public AlignmentWeighting AlignmentWeighting { get; init; } = AlignmentWeighting.Dynamic;

    /// <summary>λ, the alignment weight (a multiple of the partial-label term with dynamic weighting).</summary>
    public double AlignmentWeight { get; init; } = 1.0;

    /// <summary>Hyper-parameters of the PiCO objective.</summary>
    public PicoSettings Pico { get; init; } = new();

    /// <summary>Hyper-parameters of the PLCR objective.</summary>
    public PlcrSettings Plcr { get; init; } = new();

    /// <summary>β of the LWS objective.</summary>
    public float LwsBeta { get; init; } = 1f;

    /// <summary>CoOp: number of learnable context tokens M.</summary>
    public int ContextTokens { get; init; } = 16;

    /// <summary>CoOp: one context per class instead of one shared by all classes.</summary>
    public bool ClassSpecificContext { get; init; }

    /// <summary>CoOp: where the class name goes.</summary>
    public ClassTokenPosition ClassPosition { get; init; } = ClassTokenPosition.End;

    /// <summary>CoOp: initialise the context from this phrase's token embeddings (its token count sets M), or from
    /// N(0, 0.02²) when null.</summary>
    public string? ContextInit { get; init; }

    /// <summary>Training epochs.</summary>
    public int Epochs { get; init; } = 50;

    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Base learning rate (CoOp: 0.002 with SGD; the linear probe uses AdamW with 1e-3 when left at 0.002).</summary>
    public double LearningRate { get; init; } = 0.002;

    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>Epochs at the constant warm-up rate 1e-5 before the cosine schedule.</summary>
    public int WarmupEpochs { get; init; } = 1;

    /// <summary>Seed of initialisation and batch order.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>The handcrafted prompts (zero-shot classifier and alignment teacher).</summary>
    public PromptTemplates Templates { get; init; } = PromptTemplates.Default;

    /// <summary>Write a checkpoint after every epoch here and resume from it when present.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Called after every epoch.</summary>
    public Action<EpochReport>? Progress { get; init; }

    /// <summary>Called after every epoch (after <see cref="Progress"/>) with a function that builds the classifier of
    /// the current parameters (CoOp: one text-tower pass), e.g. to measure held-out accuracy while training. Not part of
    /// the checkpoint fingerprint: it only observes.</summary>
    internal Action<EpochReport, Func<TunedClassifier>>? EpochClassifier { get; init; }
}

/// <summary>The outcome of <see cref="PromptTuner.Tune"/>.</summary>
internal sealed class TuningResult
{
    internal TuningResult(TunedClassifier classifier, IReadOnlyList<EpochReport> epochs, int resumedFromEpoch, float[]? context, int[]? contextShape)
    {
        Classifier = classifier;
        Epochs = epochs;
        ResumedFromEpoch = resumedFromEpoch;
        Context = context;
        ContextShape = contextShape;
    }

    /// <summary>The deployable classifier.</summary>
    public TunedClassifier Classifier { get; }

    /// <summary>Per-epoch losses (epochs run by this call).</summary>
    public IReadOnlyList<EpochReport> Epochs { get; }

    /// <summary>The epoch training resumed from (0 for a fresh run).</summary>
    public int ResumedFromEpoch { get; }

    /// <summary>CoOp's learnt context vectors, or null.</summary>
    public float[]? Context { get; }

    /// <summary>Shape of <see cref="Context"/> ([M, width] or [C, M, width]).</summary>
    public int[]? ContextShape { get; }

    internal LearnedPrompt? Prompt { get; init; }

    /// <summary>
    /// The classifier for other class names: CoOp's learnt (unified) context re-encoded with <paramref name="classNames"/>
    /// (e.g. the new classes of a base-to-new split). Other methods cannot generalise to unseen classes.
    /// </summary>
    /// <exception cref="NotSupportedException">Not a CoOp result, or the context is class-specific.</exception>
    public TunedClassifier ClassifierFor(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        if (Prompt is null) throw new NotSupportedException($"A {Classifier.Method} classifier has no prompt to apply to other classes.");
        return Prompt.ClassifierFor(classNames);
    }

    /// <summary>
    /// Writes the classifier (<see cref="TunedClassifier.Save"/>) and, for CoOp, the learnt prompt: <c>context.npy</c>,
    /// <c>prompt.json</c> (layout, token ids per class, positions of the context vectors) and
    /// <c>text_model_inputs_embeds.onnx</c>, the text tower with an <c>inputs_embeds</c> input so that ONNX Runtime
    /// re-embeds the prompts (feed <c>input_ids</c>, the assembled embeddings, and <c>attention_mask</c> when present).
    /// </summary>
    public void Save(string directory)
    {
        Classifier.Save(directory);
        Prompt?.Save(directory);
    }
}

/// <summary>CoOp's learnt prompt and what is needed to run it again outside the trainer.</summary>
internal sealed class LearnedPrompt(PromptLayout layout, float[] context, int[] shape, PromptTextEncoder encoder, Text.ClipTokenizer tokenizer, float scale, string modelName)
{
    public PromptLayout Layout { get; } = layout;
    public float[] Context { get; } = context;
    public int[] Shape { get; } = shape;

    /// <summary>The unified context with other class names, as a zero-bias classifier of normalised text features.</summary>
    public TunedClassifier ClassifierFor(IReadOnlyList<string> classNames)
    {
        if (Shape.Length != 2) throw new NotSupportedException("A class-specific context has no vectors for other classes; train with a unified context.");
        using var scope = new TensorScope();
        using var _ = Tape.NoGrad();
        var layout = encoder.Layout(tokenizer, classNames, Layout.ContextTokens, Layout.Position);
        var f = encoder.Forward(encoder.Prepare(layout), Tensor.FromArray(Context, Shape));
        return new TunedClassifier(TuningMethod.CoOp, classNames, new EmbeddingMatrix(f.ToArray(), classNames.Count, f.Shape[1]), new float[classNames.Count], scale, modelName);
    }

    /// <summary>inputs_embeds [C, L, width] for the ONNX export: token_embedding[ids] with the context in place.</summary>
    public float[] InputEmbeddings()
    {
        using var scope = new TensorScope();
        using var _ = Tape.NoGrad();
        var prompts = encoder.Prepare(Layout);
        return encoder.InputEmbeddings(prompts, Tensor.FromArray(Context, Shape)).ToArray();
    }

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        int rows = Shape.Length == 3 ? Shape[0] * Shape[1] : Shape[0];
        Npy.WriteFloat32(Path.Combine(directory, "context.npy"), Context, rows, Shape[^1]);
        var json = new Dictionary<string, object>
        {
            ["format"] = "vega-prompt-1",
            ["context_shape"] = Shape,
            ["class_position"] = Layout.Position.ToString(),
            ["context_tokens"] = Layout.ContextTokens,
            ["classes"] = Layout.ClassNames,
            ["sequence_length"] = Layout.SequenceLength,
            ["input_ids"] = Layout.Ids,
            ["attention_mask"] = Layout.AttentionMask(),
            ["context_positions"] = Layout.ContextPositions,
            ["text_model"] = "text_model_inputs_embeds.onnx",
        };
        File.WriteAllText(Path.Combine(directory, "prompt.json"), System.Text.Json.JsonSerializer.Serialize(json));
        encoder.ExportOnnx(Path.Combine(directory, "text_model_inputs_embeds.onnx"));
    }
}

/// <summary>
/// Adapts a frozen CLIP model to a task whose training images carry candidate-label sets: zero-shot (the handcrafted
/// prompt), a linear probe on the image embeddings, or CoOp prompt learning, each with a partial-label objective and
/// optional prompt alignment (docs/partial-labels.md).
/// </summary>
internal static class PromptTuner
{
    /// <summary>Trains (or, for zero-shot, builds) a classifier.</summary>
    /// <param name="model">The frozen CLIP model.</param>
    /// <param name="trainImages">L2-normalised image embeddings of the training images (the engine's output).</param>
    /// <param name="candidates">Candidate sets of the training images, in the same order.</param>
    /// <param name="classNames">The classes.</param>
    /// <param name="options">Options.</param>
    /// <param name="trueLabels">True labels, only to report training accuracy.</param>
    /// <param name="cancellationToken">Cancels between steps; a checkpoint keeps finished epochs.</param>
    /// <param name="augmentedViews">Optional cached augmented views of the training images (each N × D, rows aligned
    /// with <paramref name="trainImages"/>): every epoch each sample uses the original or one of its views, drawn from
    /// the seed and the epoch.</param>
    public static TuningResult Tune(ClipModel model, EmbeddingMatrix trainImages, CandidateLabels candidates, IReadOnlyList<string> classNames,
        PromptTuningOptions? options = null, int[]? trueLabels = null, CancellationToken cancellationToken = default,
        IReadOnlyList<EmbeddingMatrix>? augmentedViews = null)
    {
        var result = TuneCore(model, trainImages, candidates, classNames, options, trueLabels, cancellationToken, augmentedViews);
        result.Classifier.ModelHash = model.ContentHash; // predict refuses another model with the same width
        return result;
    }

    private static TuningResult TuneCore(ClipModel model, EmbeddingMatrix trainImages, CandidateLabels candidates, IReadOnlyList<string> classNames,
        PromptTuningOptions? options = null, int[]? trueLabels = null, CancellationToken cancellationToken = default,
        IReadOnlyList<EmbeddingMatrix>? augmentedViews = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trainImages);
        ArgumentNullException.ThrowIfNull(candidates);
        options ??= new PromptTuningOptions();
        PromptTemplates.ValidateClassNames(classNames);
        if (candidates.ClassCount != classNames.Count)
            throw new ArgumentException($"The candidate sets have {candidates.ClassCount} classes, the class list {classNames.Count}.", nameof(candidates));
        if (trainImages.Count != candidates.Count)
            throw new ArgumentException($"{trainImages.Count} training images but {candidates.Count} candidate sets.", nameof(trainImages));

        var zeroShotWeights = model.EmbedClassNames(classNames, options.Templates, cancellationToken: cancellationToken);
        var zeroShot = new TunedClassifier(TuningMethod.ZeroShot, classNames, zeroShotWeights, new float[classNames.Count], model.LogitScale, model.Name);
        if (options.Method == TuningMethod.ZeroShot) return new TuningResult(zeroShot, [], 0, null, null);
        if (trainImages.Count == 0) throw new ArgumentException("There are no training images.", nameof(trainImages));

        var loss = new PartialLabelLoss(options.Loss, candidates, options.LwsBeta, options.Pico, options.Plcr);
        var data = new TrainingViews(trainImages, augmentedViews, options.Seed, loss.MainViewIsOriginal);
        Func<int, float[]>? teacher = options.Align ? data.TeacherLogits(zeroShot) : null;
        var settings = new PllTrainingSettings
        {
            Epochs = options.Epochs,
            BatchSize = options.BatchSize,
            LearningRate = options.Method == TuningMethod.LinearProbe && options.LearningRate == 0.002 ? 1e-3 : options.LearningRate,
            Momentum = options.Momentum,
            WeightDecay = options.Method == TuningMethod.LinearProbe && options.WeightDecay == 5e-4 ? 1e-4 : options.WeightDecay,
            WarmupEpochs = options.WarmupEpochs,
            Seed = options.Seed,
            Align = options.Align,
            AlignmentWeighting = options.AlignmentWeighting,
            AlignmentWeight = options.AlignmentWeight,
            AdamW = options.Method == TuningMethod.LinearProbe,
        };

        if (options.Method == TuningMethod.LinearProbe)
            return LinearProbe(data, candidates, classNames, loss, settings, model.LogitScale, model.Name, options,
                Fingerprint(model.ContentHash, data, candidates, options), teacher, trueLabels, cancellationToken);

        return CoOp(model, data, candidates, classNames, loss, settings, options, teacher, trueLabels, cancellationToken);
    }

    /// <summary>
    /// CoOp: M context vectors in the text tower's token-embedding space (unified or class-specific), the frozen text
    /// tower run by the ONNX interpreter with autodiff, logits = s·cos(x, text(prompt_c)); the classifier is the text
    /// features of the learnt prompts.
    /// </summary>
    internal static TuningResult CoOp(ClipModel model, TrainingViews images, CandidateLabels candidates, IReadOnlyList<string> classNames,
        PartialLabelLoss loss, PllTrainingSettings settings, PromptTuningOptions options, Func<int, float[]>? teacher, int[]? trueLabels, CancellationToken ct)
    {
        var encoder = OpenPromptEncoder(model);
        int m = options.ContextTokens;
        long[]? initIds = null;
        if (options.ContextInit is { } phrase)
        {
            initIds = model.Tokenizer.Encode(phrase).Select(i => (long)i).ToArray();
            if (initIds.Length == 0) throw new ArgumentException($"The context initialisation \"{phrase}\" has no tokens.", nameof(options));
            m = initIds.Length;
        }
        if (m < 1) throw new ArgumentOutOfRangeException(nameof(options), m, "CoOp needs at least one context token.");
        var layout = encoder.Layout(model.Tokenizer, classNames, m, options.ClassPosition);
        var prompts = encoder.Prepare(layout);
        var context = encoder.InitialContext(layout, options.ClassSpecificContext, options.Seed);
        if (initIds is not null)
        {
            // CoOp's "a photo of a" initialisation: the phrase's token embeddings, for every class when class-specific.
            var table = encoder.TokenEmbedding;
            var span = context.Span;
            int w = encoder.Width, copies = options.ClassSpecificContext ? classNames.Count : 1;
            for (int k = 0; k < copies; k++)
                for (int j = 0; j < m; j++)
                    table.Span.Slice((int)initIds[j] * w, w).CopyTo(span.Slice((k * m + j) * w, w));
        }
        int d = images.Dimension;
        if (d != model.EmbeddingDimension) throw new ArgumentException($"The image embeddings have width {d}, the model {model.EmbeddingDimension}.");
        float scale = model.LogitScale;
        // One text-tower pass per step gives the class weights (normalised text features [C, D]); every view of the batch
        // is then one small matmul.
        var head = new PllHead([context], () => encoder.Forward(prompts, context),
            (x, features) => Ops.MulScalar(Ops.MatMul(x, Ops.Transpose(features, 1, 0)), scale));
        var trainer = new PllTrainer(head, images, loss, candidates, settings, teacher, trueLabels);
        TunedClassifier Current()
        {
            using var scope = new TensorScope();
            using var _ = Tape.NoGrad();
            var f = encoder.Forward(prompts, context);
            return new TunedClassifier(TuningMethod.CoOp, classNames, new EmbeddingMatrix(f.ToArray(), classNames.Count, f.Shape[1]), new float[classNames.Count], scale, model.Name);
        }
        var (epochs, resumed) = RunEpochs(trainer, [context], options, Fingerprint(model.ContentHash, images, candidates, options), ct, Current);
        return new TuningResult(Current(), epochs, resumed, context.ToArray(), context.Shape.ToArray())
        {
            Prompt = new LearnedPrompt(layout, context.ToArray(), context.Shape.ToArray(), encoder, model.Tokenizer, scale, model.Name),
        };
    }

    /// <summary>The model's text tower on the ONNX interpreter, bound as <see cref="ClipModel"/> binds it for ONNX Runtime.</summary>
    internal static PromptTextEncoder OpenPromptEncoder(ClipModel model)
    {
        string file = model.TextTower.Session.Source;
        if (model.Layout == ClipModelLayout.HuggingFaceCombined || ReferenceEquals(model.TextTower.Session, model.ImageTower.Session))
            throw new NotSupportedException(
                $"CoOp needs the text tower as its own ONNX file, but '{model.Directory}' is a combined export ({file}). Export the text tower separately (text_model.onnx).");
        return PromptTextEncoder.Load(file, new PromptTextEncoderOptions
        {
            IdsInput = model.TextTower.IdsName,
            MaskInput = model.TextTower.MaskName,
            Output = model.TextTower.OutputName,
            MaxLength = model.ContextLength,
        });
    }

    /// <summary>
    /// The linear probe: logits = s·(x·Wᵀ) + b on the frozen embeddings, W and b from zero, AdamW, the same objective
    /// (and alignment) as CoOp.
    /// </summary>
    internal static TuningResult LinearProbe(TrainingViews images, CandidateLabels candidates, IReadOnlyList<string> classNames, PartialLabelLoss loss,
        PllTrainingSettings settings, float scale, string modelName, PromptTuningOptions options, string fingerprint, Func<int, float[]>? teacher, int[]? trueLabels, CancellationToken ct)
    {
        int c = classNames.Count, d = images.Dimension;
        var w = Tensor.Parameter([c, d], "probe.weight");
        var b = Tensor.Parameter([c], "probe.bias");
        var head = new PllHead([w, b], () => w, (x, weights) => Ops.Add(Ops.MulScalar(Ops.MatMul(x, Ops.Transpose(weights, 1, 0)), scale), b));
        var trainer = new PllTrainer(head, images, loss, candidates, settings with { AdamW = true }, teacher, trueLabels);
        TunedClassifier Current() => new(TuningMethod.LinearProbe, classNames, new EmbeddingMatrix(w.ToArray(), c, d), b.ToArray(), scale, modelName);
        var (epochs, resumed) = RunEpochs(trainer, [w, b], options, fingerprint, ct, Current);
        return new TuningResult(Current(), epochs, resumed, null, null);
    }

    /// <summary>Runs the remaining epochs, checkpointing after each one and resuming from a checkpoint when present.</summary>
    internal static (IReadOnlyList<EpochReport> Epochs, int ResumedFrom) RunEpochs(PllTrainer trainer, IReadOnlyList<Tensor> parameters, PromptTuningOptions options,
        string fingerprint, CancellationToken ct, Func<TunedClassifier>? current = null)
    {
        int start = 0;
        if (options.CheckpointDirectory is { } dir && Checkpoint.TryLoad(dir, fingerprint, parameters, trainer, out int done)) start = done;
        var reports = new List<EpochReport>();
        for (int e = start; e < trainer.Settings.Epochs; e++)
        {
            var r = trainer.RunEpoch(e, ct);
            reports.Add(r);
            if (options.CheckpointDirectory is { } d) Checkpoint.Save(d, fingerprint, parameters, trainer, e + 1);
            options.Progress?.Invoke(r);
            if (current is not null) options.EpochClassifier?.Invoke(r, current);
        }
        return (reports, start);
    }

    /// <summary>A hash of everything that determines the training run, so that a checkpoint is only resumed by the same run.</summary>
    internal static string Fingerprint(string modelHash, TrainingViews images, CandidateLabels candidates, PromptTuningOptions o)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{modelHash}|{o.Method}|{o.Loss}|{o.Align}|{o.LwsBeta}|{o.ContextTokens}|{o.ClassSpecificContext}|{o.ClassPosition}|{o.ContextInit}|");
        sb.Append(CultureInfo.InvariantCulture, $"{o.Epochs}|{o.BatchSize}|{o.LearningRate}|{o.Momentum}|{o.WeightDecay}|{o.WarmupEpochs}|{o.Seed}|{string.Join('\n', o.Templates.Templates)}|");
        var pi = o.Pico;
        var pl = o.Plcr;
        sb.Append(CultureInfo.InvariantCulture, $"{o.AlignmentWeighting}|{o.AlignmentWeight:R}|");
        sb.Append(CultureInfo.InvariantCulture, $"{pi.ContrastiveWeight:R}|{pi.Temperature:R}|{pi.QueueSize}|{pi.KeyMomentum:R}|{pi.PrototypeMomentum:R}|{pi.TargetMomentumStart:R}|{pi.TargetMomentumEnd:R}|{pi.NormFloor:R}|{pi.StartEpoch}|");
        sb.Append(CultureInfo.InvariantCulture, $"{pl.ConsistencyWeight:R}|{pl.RampEpochs}|{pl.StrongViews}|");
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes(sb.ToString()));
        foreach (var m in images.All) sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(m.Data.AsSpan()));
        for (int i = 0; i < candidates.Count; i++) sha.AppendData(candidates.Row(i));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

/// <summary>
/// The training embeddings and their cached augmented views. In every epoch each sample's main view is the original
/// (choice 0) or view v (choice v), drawn from the seed and the epoch only, so resumed runs see the same data — or always
/// the original when the objective needs it as its weak view (PLCR). PiCO's key view is another choice than the main
/// one, PLCR's strong views are distinct augmented views, all drawn from (seed, epoch, image) too.
/// </summary>
internal sealed class TrainingViews
{
    private readonly EmbeddingMatrix _original;
    private readonly IReadOnlyList<EmbeddingMatrix> _views;
    private readonly ulong _seed;
    private int _epoch = -1;
    private Tensor? _current;

    public TrainingViews(EmbeddingMatrix original, IReadOnlyList<EmbeddingMatrix>? views, ulong seed, bool mainIsOriginal = false)
    {
        _original = original;
        _views = views ?? [];
        _seed = seed;
        MainIsOriginal = mainIsOriginal;
        foreach (var v in _views)
            if (v.Count != original.Count || v.Dimension != original.Dimension)
                throw new ArgumentException($"An augmented view has {v.Count} × {v.Dimension} embeddings; the training set has {original.Count} × {original.Dimension}.", nameof(views));
    }

    public int Dimension => _original.Dimension;

    public int Count => _original.Count;

    /// <summary>Number of augmented views per image (0 = only the originals).</summary>
    public int ViewCount => _views.Count;

    /// <summary>The main view is always the original (PLCR's weak view).</summary>
    public bool MainIsOriginal { get; }

    public IEnumerable<EmbeddingMatrix> All => [_original, .. _views];

    /// <summary>Which matrix sample <paramref name="i"/> uses as its main view in <paramref name="epoch"/> (0 = original).</summary>
    public int Choice(int epoch, int i) => _views.Count == 0 || MainIsOriginal ? 0 : new Rng(_seed * 0xD1B54A32D192ED03UL + (ulong)epoch * 0x9E3779B97F4A7C15UL + (ulong)i).NextInt(_views.Count + 1);

    /// <summary>The matrix of view <paramref name="role"/> (slot <paramref name="slot"/>) of sample <paramref name="i"/> in <paramref name="epoch"/>.</summary>
    public int Choice(int epoch, int i, ViewRole role, int slot)
    {
        int k = _views.Count;
        switch (role)
        {
            case ViewRole.Main:
                return Choice(epoch, i);
            case ViewRole.Key:
                {
                    if (k == 0) return 0;
                    // Uniform over the K other matrices than the main view's.
                    int main = Choice(epoch, i);
                    int other = ViewRng(epoch, i, 0x4B45595649455753UL).NextInt(k);
                    return other >= main ? other + 1 : other;
                }
            default:
                {
                    if (k == 0) return 0;
                    // Distinct augmented views per slot (cycling when more slots than views).
                    var order = ViewRng(epoch, i, 0x5354524F4E475657UL).Permutation(k);
                    return 1 + order[slot % k];
                }
        }
    }

    private Rng ViewRng(int epoch, int i, ulong salt) =>
        new(salt ^ (_seed * 0xD1B54A32D192ED03UL + (ulong)epoch * 0x9E3779B97F4A7C15UL + (ulong)i * 0xBF58476D1CE4E5B9UL));

    /// <summary>Embeddings [B, D] of the batch's samples for a view role and slot (a constant tensor).</summary>
    public Tensor Batch(int[] samples, int epoch, ViewRole role, int slot)
    {
        int d = Dimension;
        var rows = new float[samples.Length * d];
        for (int k = 0; k < samples.Length; k++)
        {
            int choice = Choice(epoch, samples[k], role, slot);
            (choice == 0 ? _original : _views[choice - 1]).Row(samples[k]).CopyTo(rows.AsSpan(k * d, d));
        }
        return Tensor.FromArray(rows, samples.Length, d);
    }

    /// <summary>The epoch's main-view [N, D] embeddings as a tensor (built once per epoch).</summary>
    public Tensor ForEpoch(int epoch)
    {
        if (epoch == _epoch && _current is not null) return _current;
        var m = EpochMatrix(epoch);
        _current = Tensor.FromArray(m.Data, m.Count, m.Dimension).Keep();
        _epoch = epoch;
        return _current;
    }

    private EmbeddingMatrix EpochMatrix(int epoch)
    {
        if (_views.Count == 0 || MainIsOriginal) return _original;
        var m = new EmbeddingMatrix(_original.Count, _original.Dimension);
        for (int i = 0; i < m.Count; i++)
        {
            int choice = Choice(epoch, i);
            (choice == 0 ? _original : _views[choice - 1]).Row(i).CopyTo(m.Row(i));
        }
        return m;
    }

    /// <summary>The handcrafted classifier's logits for the epoch's main views (the alignment teacher).</summary>
    public Func<int, float[]> TeacherLogits(TunedClassifier zeroShot)
    {
        var perMatrix = All.Select(zeroShot.Logits).ToArray();
        int c = zeroShot.ClassNames.Count;
        return epoch =>
        {
            if (_views.Count == 0 || MainIsOriginal) return perMatrix[0];
            var t = new float[Count * c];
            for (int i = 0; i < Count; i++) perMatrix[Choice(epoch, i)].AsSpan(i * c, c).CopyTo(t.AsSpan(i * c, c));
            return t;
        };
    }
}

/// <summary>A training checkpoint: parameters, optimiser state, the objective's state (confidences, PiCO's prototypes and queue) and the number of finished
/// epochs, in one safetensors file written atomically.</summary>
internal static class Checkpoint
{
    public const string FileName = "checkpoint.safetensors";

    public static void Save(string directory, string fingerprint, IReadOnlyList<Tensor> parameters, PllTrainer trainer, int epochsDone)
    {
        Directory.CreateDirectory(directory);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        for (int i = 0; i < parameters.Count; i++) tensors.Add(new($"param.{i}", parameters[i]));
        var (state, steps) = trainer.Optimizer.ExportState();
        foreach (var (k, v) in state) tensors.Add(new($"optimizer.{k}", Tensor.Wrap(v, v.Length)));
        foreach (var (k, v) in trainer.Loss.ExportState()) tensors.Add(new($"state.{k}", Tensor.Wrap(v, v.Length)));
        string path = Path.Combine(directory, FileName), tmp = path + ".tmp";
        var metadata = new Dictionary<string, string>
        {
            ["fingerprint"] = fingerprint,
            ["epochs_done"] = epochsDone.ToString(CultureInfo.InvariantCulture),
            ["optimizer_steps"] = steps.ToString(CultureInfo.InvariantCulture),
        };
        metadata[ChecksumKey] = Checksum(tensors, metadata);
        SafeTensors.Save(tmp, tensors, metadata);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The metadata entry holding <see cref="Checksum"/>.</summary>
    public const string ChecksumKey = "sha256";

    /// <summary>
    /// SHA-256 over everything the checkpoint holds, in a canonical order: the metadata entries (except the checksum
    /// itself) sorted by key, then every tensor sorted by name with its shape and its float32 values (little-endian).
    /// A damaged byte anywhere — data, shapes, names, offsets (which move the data) or metadata — changes it or makes the
    /// file unreadable.
    /// </summary>
    public static string Checksum(IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var word = new byte[4];
        void Text(string s)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(s));
            sha.AppendData([0]);
        }
        void Int(int v)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(word, v);
            sha.AppendData(word);
        }
        foreach (var (k, v) in metadata.Where(kv => kv.Key != ChecksumKey).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            Text(k);
            Text(v);
        }
        foreach (var (name, t) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            Text(name);
            Int(t.Rank);
            foreach (int d in t.Shape) Int(d);
            var values = t.ToArray();
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < values.Length; i++)
                    values[i] = BitConverter.Int32BitsToSingle(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(values[i])));
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>
    /// Reads and verifies a checkpoint file: unreadable, without a checksum or with a checksum that does not match its
    /// contents, it is reported as damaged, naming the file.
    /// </summary>
    public static SafeTensors.Contents ReadVerified(string path)
    {
        const string Fix = "Delete it (the run then starts over) or restore an intact copy.";
        SafeTensors.Contents contents;
        try
        {
            contents = SafeTensors.Load(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The checkpoint '{path}' is damaged: {e.Message} {Fix}", e);
        }
        if (!contents.Metadata.TryGetValue(ChecksumKey, out var stored))
            throw new InvalidDataException($"The checkpoint '{path}' has no checksum: it is damaged or was written by an older version. {Fix}");
        string actual = Checksum(contents.Tensors, contents.Metadata);
        if (!string.Equals(stored, actual, StringComparison.Ordinal))
            throw new InvalidDataException($"The checkpoint '{path}' is damaged: its contents do not match its checksum. {Fix}");
        return contents;
    }

    public static bool TryLoad(string directory, string fingerprint, IReadOnlyList<Tensor> parameters, PllTrainer trainer, out int epochsDone)
    {
        epochsDone = 0;
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return false;
        var contents = ReadVerified(path);
        if (!contents.Metadata.TryGetValue("fingerprint", out var fp) || fp != fingerprint)
            throw new InvalidDataException(
                $"The checkpoint '{path}' belongs to a different training run (model, data or options differ). Delete it or choose another checkpoint folder.");
        for (int i = 0; i < parameters.Count; i++)
        {
            var t = contents.Tensors[$"param.{i}"];
            if (t.Length != parameters[i].Length) throw new InvalidDataException($"The checkpoint '{path}' has parameter {i} of {t.Length} values, expected {parameters[i].Length}.");
            t.Span.CopyTo(parameters[i].Span);
        }
        var state = new Dictionary<string, float[]>();
        foreach (var (name, t) in contents.Tensors)
            if (name.StartsWith("optimizer.", StringComparison.Ordinal)) state[name["optimizer.".Length..]] = t.ToArray();
        trainer.Optimizer.ImportState(state, int.Parse(contents.Metadata["optimizer_steps"], CultureInfo.InvariantCulture));
        var objective = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, t) in contents.Tensors)
            if (name.StartsWith("state.", StringComparison.Ordinal)) objective[name["state.".Length..]] = t.ToArray();
        trainer.Loss.ImportState(objective);
        epochsDone = int.Parse(contents.Metadata["epochs_done"], CultureInfo.InvariantCulture);
        return true;
    }
}
