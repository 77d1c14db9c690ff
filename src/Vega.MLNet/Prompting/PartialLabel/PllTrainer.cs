using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>Progress of one training epoch.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Loss">Mean training loss of the epoch (the partial-label term, plus the rescaled alignment term when on).</param>
/// <param name="TrainAccuracy">Accuracy on the training samples' true labels when known (for monitoring only).</param>
/// <param name="LearningRate">The epoch's learning rate.</param>
public sealed record EpochReport(int Epoch, int Epochs, double Loss, double? TrainAccuracy, double LearningRate);

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

    /// <summary>CoOp's schedule: a constant warm-up rate for the first epochs, then cosine annealing per epoch.</summary>
    public double LearningRateAt(int epoch) =>
        epoch < WarmupEpochs ? WarmupLearningRate : 0.5 * LearningRate * (1 + Math.Cos(Math.PI * epoch / Epochs));
}

/// <summary>
/// The mini-batch loop of partial-label training: shuffled batches (the order of epoch e depends only on the seed and
/// e, so a resumed run sees the same batches), loss = PLL objective (+ prompt alignment), backward, optimiser step,
/// confidence update.
/// </summary>
internal sealed class PllTrainer
{
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly Func<int[], int, Tensor> _logits;
    private readonly PartialLabelLoss _loss;
    private readonly Func<int, float[]>? _teacherLogits;
    private readonly CandidateLabels _candidates;
    private readonly int[]? _trueLabels;

    /// <param name="parameters">What the optimiser updates.</param>
    /// <param name="logits">Logits [B, C] of the samples of a batch in a given epoch (the epoch selects augmented views).</param>
    /// <param name="loss">The partial-label objective.</param>
    /// <param name="candidates">Candidate sets of all samples.</param>
    /// <param name="settings">Optimisation settings.</param>
    /// <param name="teacherLogits">The handcrafted prompt's logits [N, C] in a given epoch (for alignment).</param>
    /// <param name="trueLabels">True labels, for the reported training accuracy only.</param>
    public PllTrainer(IReadOnlyList<Tensor> parameters, Func<int[], int, Tensor> logits, PartialLabelLoss loss, CandidateLabels candidates,
        PllTrainingSettings settings, Func<int, float[]>? teacherLogits = null, int[]? trueLabels = null)
    {
        if (settings.Align && teacherLogits is null) throw new ArgumentException("Prompt alignment needs the handcrafted prompt's logits.", nameof(teacherLogits));
        if (settings.Epochs < 1 || settings.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(settings), "Epochs and batch size must be at least 1.");
        _parameters = parameters;
        _logits = logits;
        _loss = loss;
        _candidates = candidates;
        Settings = settings;
        _teacherLogits = teacherLogits;
        _trueLabels = trueLabels;
        Optimizer = settings.AdamW
            ? new AdamW(parameters, new AdamWOptions(settings.LearningRate, WeightDecay: settings.WeightDecay))
            : new Sgd(parameters, new SgdOptions(settings.LearningRate, settings.Momentum, settings.WeightDecay));
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
            using (var tape = new Tape())
            {
                var logits = _logits(batch, epoch);
                var loss = _loss.Loss(logits, batch);
                if (Settings.Align)
                {
                    var rows = new float[batch.Length * c];
                    for (int k = 0; k < batch.Length; k++) teacher.AsSpan(batch[k] * c, c).CopyTo(rows.AsSpan(k * c, c));
                    var pi = PromptAlignment.RestrictedTeacher(rows, _candidates, batch);
                    loss = PromptAlignment.Combine(loss, PromptAlignment.AlignmentLoss(logits, pi));
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
                _loss.Update(detached, batch);
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
