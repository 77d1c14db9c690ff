namespace Vega.MLNet.Prompting.Aape;

/// <summary>How the class summary pᵃ is made from a class's description embeddings.</summary>
public enum AapeAggregator
{
    /// <summary>One pre-LN attention layer over [p̄, P₁..Pₙ], trained with the CLIP-S reward (the method).</summary>
    Attention,

    /// <summary>pᵃ = the normalised mean description embedding, nothing trained (the ablation).</summary>
    Mean,
}

/// <summary>
/// Hyper-parameters of AAPE training (docs/aape.md explains each one and where the paper is silent). The defaults are
/// the ones every figure in docs/experiments/aape.md uses unless stated otherwise.
/// </summary>
internal sealed record AapeOptions
{
    /// <summary>Weight λ of the distillation term λ·‖h(x) − pᵃ_y‖² (default 5). 0 gives the plain adapter: the
    /// descriptions are then not used at all.</summary>
    public double Lambda { get; init; } = 5;

    /// <summary>Logit temperature τ in logits = cos(x, w_c(x))/τ. Null (default) = 1/logit scale of the CLIP model
    /// (<see cref="AapeTrainingSet.LogitScale"/>; 0.01 for a trained CLIP with scale 100).</summary>
    public double? Temperature { get; init; }

    /// <summary>Epochs of the generator stage (default 50).</summary>
    public int Epochs { get; init; } = 50;

    /// <summary>Peak SGD learning rate of the generator stage (default 0.002, CoOp's).</summary>
    public double LearningRate { get; init; } = 0.002;

    /// <summary>SGD momentum (default 0.9, CoOp's).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>SGD weight decay (L2 added to the gradient; default 5e-4, CoOp's).</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>Epochs at the constant warm-up rate before the cosine schedule starts (default 1, CoOp's).</summary>
    public int WarmupEpochs { get; init; } = 1;

    /// <summary>The constant warm-up learning rate (default 1e-5, CoOp's).</summary>
    public double WarmupLearningRate { get; init; } = 1e-5;

    /// <summary>Images per SGD step (default 32, CoOp's).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Seed of every random choice: initialisation and batch order (default 1). Same seed, same data, same
    /// thread count ⇒ identical weights.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Attention heads of the aggregator (default 8; must divide the embedding width).</summary>
    public int Heads { get; init; } = 8;

    /// <summary>Which aggregator makes pᵃ (default <see cref="AapeAggregator.Attention"/>).</summary>
    public AapeAggregator Aggregator { get; init; } = AapeAggregator.Attention;

    /// <summary>Full-batch AdamW steps of the aggregator stage (default 50; 0 leaves the aggregator at its
    /// initialisation, whose output is exactly the normalised mean description embedding).</summary>
    public int AggregatorEpochs { get; init; } = 50;

    /// <summary>AdamW learning rate of the aggregator stage (default 3e-4).</summary>
    public double AggregatorLearningRate { get; init; } = 3e-4;

    /// <summary>The weight s of the CLIP-S reward s·max(cos(x, pᵃ), 0) (default 2.5, as in CLIPScore).</summary>
    public double ClipScoreWeight { get; init; } = 2.5;

    /// <summary>Bottleneck ratio r of the prompt generator h: Linear(D, D/r) → ReLU → Linear(D/r, D) (default 16).</summary>
    public int BottleneckRatio { get; init; } = 16;

    /// <summary>The defaults.</summary>
    public static AapeOptions Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"AapeOptions.{name} = {value}: {rule}.");
        }
        Require(double.IsFinite(Lambda) && Lambda >= 0, nameof(Lambda), Lambda, "must be finite and ≥ 0");
        Require(Temperature is null || (double.IsFinite(Temperature.Value) && Temperature > 0), nameof(Temperature), Temperature!, "must be > 0 (or null for 1/logit scale)");
        Require(Epochs >= 1, nameof(Epochs), Epochs, "must be ≥ 1");
        Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "must be > 0");
        Require(Momentum is >= 0 and < 1, nameof(Momentum), Momentum, "must be in [0, 1)");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "must be ≥ 0");
        Require(WarmupEpochs >= 0 && WarmupEpochs < Epochs, nameof(WarmupEpochs), WarmupEpochs, $"must be in [0, Epochs = {Epochs})");
        Require(double.IsFinite(WarmupLearningRate) && WarmupLearningRate >= 0, nameof(WarmupLearningRate), WarmupLearningRate, "must be ≥ 0");
        Require(BatchSize >= 1, nameof(BatchSize), BatchSize, "must be ≥ 1");
        Require(Heads >= 1, nameof(Heads), Heads, "must be ≥ 1");
        Require(AggregatorEpochs >= 0, nameof(AggregatorEpochs), AggregatorEpochs, "must be ≥ 0");
        Require(double.IsFinite(AggregatorLearningRate) && AggregatorLearningRate > 0, nameof(AggregatorLearningRate), AggregatorLearningRate, "must be > 0");
        Require(double.IsFinite(ClipScoreWeight) && ClipScoreWeight > 0, nameof(ClipScoreWeight), ClipScoreWeight, "must be > 0");
        Require(BottleneckRatio >= 1, nameof(BottleneckRatio), BottleneckRatio, "must be ≥ 1");
    }
}
