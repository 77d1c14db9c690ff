using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>Progress of one training epoch.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Loss">Mean training loss of the epoch (the partial-label term, plus the rescaled alignment term when on).</param>
/// <param name="TrainAccuracy">Accuracy on the training samples' true labels when known (for monitoring only).</param>
/// <param name="LearningRate">The epoch's learning rate.</param>
internal sealed record EpochReport(int Epoch, int Epochs, double Loss, double? TrainAccuracy, double LearningRate);

/// <summary>How the alignment term is weighted against the partial-label term.</summary>
public enum AlignmentWeighting
{
    /// <summary>L_PLL + λ·(sg(L_PLL)/sg(L_align))·L_align: the alignment term always has λ times the value of the
    /// partial-label term (the candidate-label paper's reference code; sg = stop-gradient, no gradient through the ratio).</summary>
    Dynamic,
    /// <summary>L_PLL + λ·L_align with a constant λ.</summary>
    Fixed,
}

/// <summary>Optimisation settings shared by CoOp and the linear probe.</summary>
internal sealed record PllTrainingSettings
{
    public int Epochs { get; init; } = 50;
    public int BatchSize { get; init; } = 32;
    public bool AdamW { get; init; }
    public double LearningRate { get; init; } = 0.002;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    public int WarmupEpochs { get; init; } = 1;
    public double WarmupLearningRate { get; init; } = 1e-5;
    public ulong Seed { get; init; } = 1;
    public bool Align { get; init; }
    public AlignmentWeighting AlignmentWeighting { get; init; } = AlignmentWeighting.Dynamic;
    public double AlignmentWeight { get; init; } = 1.0;

    /// <summary>CoOp's schedule: a constant warm-up rate for the first epochs, then cosine annealing per epoch.</summary>
    public double LearningRateAt(int epoch) =>
        epoch < WarmupEpochs ? WarmupLearningRate : 0.5 * LearningRate * (1 + Math.Cos(Math.PI * epoch / Epochs));
}

/// <summary>
/// The trainable classifier of a partial-label run: per step it produces class weights H [C, D] on the tape (CoOp: the
/// normalised text features of the prompts, one text-tower pass; the linear probe: its weight matrix) and maps image
/// embeddings [B, D] to logits with them, so that several views of a batch cost one text-tower pass.
/// </summary>
internal sealed class PllHead(IReadOnlyList<Tensor> parameters, Func<Tensor> classWeights, Func<Tensor, Tensor, Tensor> logits)
{
    /// <summary>What the optimiser updates.</summary>
    public IReadOnlyList<Tensor> Parameters { get; } = parameters;

    /// <summary>H [C, D] for this step (on the tape when recording).</summary>
    public Tensor ClassWeights() => classWeights();

    /// <summary>Logits [B, C] of image embeddings [B, D] with class weights H.</summary>
    public Tensor Logits(Tensor images, Tensor h) => logits(images, h);
}

/// <summary>Which view of a training image an objective asks for.</summary>
internal enum ViewRole
{
    /// <summary>The view every objective trains on (the epoch's choice of the original or an augmented view; the
    /// original for objectives that need it weak, <see cref="PartialLabelLoss.MainViewIsOriginal"/>).</summary>
    Main,
    /// <summary>PiCO's key: another view than the main one (the original when there are no augmented views).</summary>
    Key,
    /// <summary>PLCR's strong views, one per slot (the original when there are no augmented views).</summary>
    Strong,
}

/// <summary>What an objective sees of one training step.</summary>
internal sealed class PllStep
{
    /// <summary>Positions of the batch's samples in the training set.</summary>
    public required int[] Samples { get; init; }

    public required int Epoch { get; init; }

    public required int Epochs { get; init; }

    /// <summary>Logits [B, C] of the main view (on the tape).</summary>
    public required Tensor Logits { get; init; }

    /// <summary>Image embeddings [B, D] of the main view (constant).</summary>
    public required Tensor Images { get; init; }

    /// <summary>The class weights H [C, D] of this step (on the tape).</summary>
    public required Tensor ClassWeights { get; init; }

    /// <summary>Logits of other image embeddings with the same head and class weights.</summary>
    public required Func<Tensor, Tensor> LogitsOf { get; init; }

    /// <summary>Image embeddings [B, D] of a view role and slot (constant).</summary>
    public required Func<ViewRole, int, Tensor> ViewImages { get; init; }
}

/// <summary>
/// The mini-batch loop of partial-label training: shuffled batches (the order of epoch e depends only on the seed and
/// e, so a resumed run sees the same batches), loss = PLL objective (+ prompt alignment), backward, optimiser step,
/// state update of the objective (confidences, PiCO's prototypes and queue).
/// </summary>
internal sealed class PllTrainer
{
    private readonly PllHead _head;
    private readonly TrainingViews _views;
    private readonly PartialLabelLoss _loss;
    private readonly Func<int, float[]>? _teacherLogits;
    private readonly CandidateLabels _candidates;
    private readonly int[]? _trueLabels;

    /// <param name="head">The trainable classifier.</param>
    /// <param name="views">The training embeddings and their augmented views.</param>
    /// <param name="loss">The partial-label objective.</param>
    /// <param name="candidates">Candidate sets of all samples.</param>
    /// <param name="settings">Optimisation settings.</param>
    /// <param name="teacherLogits">The handcrafted prompt's logits [N, C] for the main view of a given epoch (for alignment).</param>
    /// <param name="trueLabels">True labels, for the reported training accuracy only.</param>
    public PllTrainer(PllHead head, TrainingViews views, PartialLabelLoss loss, CandidateLabels candidates,
        PllTrainingSettings settings, Func<int, float[]>? teacherLogits = null, int[]? trueLabels = null)
    {
        if (settings.Align && teacherLogits is null) throw new ArgumentException("Prompt alignment needs the handcrafted prompt's logits.", nameof(teacherLogits));
        if (settings.Epochs < 1 || settings.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(settings), "Epochs and batch size must be at least 1.");
        if (!(settings.AlignmentWeight >= 0) || double.IsInfinity(settings.AlignmentWeight))
            throw new ArgumentOutOfRangeException(nameof(settings), settings.AlignmentWeight, "The alignment weight must be a finite number ≥ 0.");
        if (views.Count != candidates.Count) throw new ArgumentException($"{views.Count} training images but {candidates.Count} candidate sets.", nameof(views));
        if (views.MainIsOriginal != loss.MainViewIsOriginal)
            throw new ArgumentException($"The {loss.Kind} objective trains on the {(loss.MainViewIsOriginal ? "original" : "epoch's")} view; build the training views accordingly.", nameof(views));
        _head = head;
        _views = views;
        _loss = loss;
        _candidates = candidates;
        Settings = settings;
        _teacherLogits = teacherLogits;
        _trueLabels = trueLabels;
        Optimizer = settings.AdamW
            ? new AdamW(head.Parameters, new AdamWOptions(settings.LearningRate, WeightDecay: settings.WeightDecay))
            : new Sgd(head.Parameters, new SgdOptions(settings.LearningRate, settings.Momentum, settings.WeightDecay));
    }

    public PllTrainingSettings Settings { get; }

    public Optimizer Optimizer { get; }

    public PartialLabelLoss Loss => _loss;

    /// <summary>Runs epoch <paramref name="epoch"/>.</summary>
    public EpochReport RunEpoch(int epoch, CancellationToken ct = default)
    {
        int n = _candidates.Count, c = _candidates.ClassCount;
        var order = new Rng(Settings.Seed * 0x9E3779B97F4A7C15UL + (ulong)epoch).Permutation(n);
        double lr = Settings.LearningRateAt(epoch);
        Optimizer.LearningRate = lr;
        double lossSum = 0;
        int correct = 0, batches = 0;
        float[]? teacher = Settings.Align ? _teacherLogits!(epoch) : null;
        for (int start = 0; start < n; start += Settings.BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            var batch = order.AsSpan(start, Math.Min(Settings.BatchSize, n - start)).ToArray();
            float[] logitValues;
            PllStep step;
            using (var tape = new Tape())
            {
                var h = _head.ClassWeights();
                var images = _views.Batch(batch, epoch, ViewRole.Main, 0);
                var logits = _head.Logits(images, h);
                step = new PllStep
                {
                    Samples = batch,
                    Epoch = epoch,
                    Epochs = Settings.Epochs,
                    Logits = logits,
                    Images = images,
                    ClassWeights = h,
                    LogitsOf = x => _head.Logits(x, h),
                    ViewImages = (role, slot) => _views.Batch(batch, epoch, role, slot),
                };
                var loss = _loss.Loss(step);
                if (Settings.Align)
                {
                    var rows = new float[batch.Length * c];
                    for (int k = 0; k < batch.Length; k++) teacher.AsSpan(batch[k] * c, c).CopyTo(rows.AsSpan(k * c, c));
                    var pi = PromptAlignment.RestrictedTeacher(rows, _candidates, batch);
                    loss = PromptAlignment.Combine(loss, PromptAlignment.AlignmentLoss(logits, pi), Settings.AlignmentWeighting, Settings.AlignmentWeight);
                }
                lossSum += loss.Item();
                logitValues = logits.ToArray();
                tape.Backward(loss);
            }
            Optimizer.Step();
            Optimizer.ZeroGrad();
            using (Tape.NoGrad())
            {
                var detached = Tensor.FromArray(logitValues, batch.Length, c);
                _loss.Update(detached, batch, epoch);
            }
            if (_trueLabels is not null)
                for (int k = 0; k < batch.Length; k++)
                {
                    int best = 0;
                    for (int j = 1; j < c; j++) if (logitValues[k * c + j] > logitValues[k * c + best]) best = j;
                    if (best == _trueLabels[batch[k]]) correct++;
                }
            batches++;
        }
        return new EpochReport(epoch, Settings.Epochs, lossSum / batches, _trueLabels is null ? null : (double)correct / n, lr);
    }
}
