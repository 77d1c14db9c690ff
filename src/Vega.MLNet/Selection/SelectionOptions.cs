namespace Vega.MLNet.Selection;

/// <summary>A label-free score of a model on a task; larger means "expected to be more accurate".</summary>
public enum SelectionMetric
{
    /// <summary>VEGA = s_n + s_e (name <c>vega</c>).</summary>
    Vega,

    /// <summary>VEGA's node score s_n alone (name <c>vega-node</c>).</summary>
    VegaNode,

    /// <summary>VEGA's edge score s_e alone (name <c>vega-edge</c>).</summary>
    VegaEdge,

    /// <summary>Mean maximum softmax probability at the baseline temperature (name <c>msp</c>).</summary>
    MaxSoftmax,

    /// <summary>Negative mean entropy of the softmax at the baseline temperature, in nats (name <c>neg-entropy</c>).</summary>
    NegativeEntropy,

    /// <summary>Mean difference between the top-1 and top-2 softmax probabilities (name <c>margin</c>).</summary>
    Margin,

    /// <summary>Mean maximum cosine similarity between an image and the class texts (name <c>max-cosine</c>).</summary>
    MaxCosine,

    /// <summary>
    /// Dispersity: the nuclear norm of the N×C softmax prediction matrix (baseline temperature) divided by its upper
    /// bound √(N·min(N, C)); high when predictions are both confident and spread over the classes (name
    /// <c>dispersity</c>; Deng et al., arXiv 2302.01094 and 2510.02956).
    /// </summary>
    Dispersity,

    /// <summary>
    /// The random baseline (name <c>random</c>). It is not a score and cannot order models: evaluations report what a
    /// uniformly random choice achieves in expectation (τ = ρ = 0, top-1 recall = share of best models, regret = best
    /// minus mean accuracy).
    /// </summary>
    Random,
}

/// <summary>Canonical names of the <see cref="SelectionMetric"/> values (the keys of <see cref="ModelScores.Metrics"/>).</summary>
internal static class SelectionMetrics
{
    private static readonly string[] Names = ["vega", "vega-node", "vega-edge", "msp", "neg-entropy", "margin", "max-cosine", "dispersity", "random"];

    /// <summary>
    /// Every score, in the order they are listed in results and reports (the keys of <see cref="ModelScores.Metrics"/>);
    /// <see cref="SelectionMetric.Random"/> is not a score and is not listed.
    /// </summary>
    public static IReadOnlyList<SelectionMetric> All { get; } = [.. Enum.GetValues<SelectionMetric>().Where(m => m != SelectionMetric.Random)];

    /// <summary>The canonical name of <paramref name="metric"/>, e.g. <c>vega</c> or <c>neg-entropy</c>.</summary>
    public static string Name(SelectionMetric metric) => Names[(int)metric];

    /// <summary>Parses a canonical name (case-insensitive; '_' is accepted for '-').</summary>
    /// <exception cref="ArgumentException">The name is not one of the metrics; the message lists them.</exception>
    public static SelectionMetric Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string n = name.Trim().Replace('_', '-').ToLowerInvariant();
        int i = Array.IndexOf(Names, n);
        if (i < 0) throw new ArgumentException($"Unknown metric '{name}'; use one of: {string.Join(", ", Names)}.", nameof(name));
        return (SelectionMetric)i;
    }
}

/// <summary>Options of <see cref="ModelSelector"/>: the ranking metric, VEGA's and the baselines' hyper-parameters.</summary>
internal sealed record SelectionOptions
{
    /// <summary>
    /// The metric that orders the models. Default <see cref="SelectionMetric.Dispersity"/>, chosen by measurement on the
    /// demo zoo's development tasks and checked on held-out ones (docs/vega.md, "Default selector"); VEGA and every other
    /// score are computed and reported either way.
    /// </summary>
    public SelectionMetric Metric { get; init; } = SelectionMetric.Dispersity;

    /// <summary>VEGA's hyper-parameters.</summary>
    public VegaOptions Vega { get; init; } = new();

    /// <summary>
    /// Softmax temperature of the baselines (max softmax probability, entropy, margin). Default 0.01, i.e. CLIP's
    /// logit scale of 100. At VEGA's temperature the mean max softmax probability equals s_n.
    /// </summary>
    public double BaselineTemperature { get; init; } = 0.01;

    /// <summary>The bootstrap that gives every score an interval and the chosen model its probability of being the best.</summary>
    public BootstrapOptions Bootstrap { get; init; } = new();

    /// <summary>Maximum number of threads used for scoring; 0 = all processors. Results do not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Vega, nameof(Vega));
        Vega.Validate();
        ArgumentNullException.ThrowIfNull(Bootstrap, nameof(Bootstrap));
        Bootstrap.Validate();
        if (!Enum.IsDefined(Metric)) throw new ArgumentOutOfRangeException(nameof(Metric), Metric, "Unknown selection metric.");
        if (Metric == SelectionMetric.Random)
            throw new ArgumentException("The random baseline is not a score and cannot order models; evaluations report its expected τ, recall and regret. Choose a score such as vega, msp or dispersity.", nameof(Metric));
        if (!(BaselineTemperature > 0) || double.IsInfinity(BaselineTemperature))
            throw new ArgumentOutOfRangeException(nameof(BaselineTemperature), BaselineTemperature, "The baseline softmax temperature must be a positive finite number (default 0.01).");
        if (MaxDegreeOfParallelism < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "Use 0 for all processors or a positive thread count.");
    }

    internal int Threads => MaxDegreeOfParallelism > 0 ? MaxDegreeOfParallelism : Environment.ProcessorCount;
}

/// <summary>
/// Options of the bootstrap behind every score's interval. Images are split into 64 groups by a hash of their index and
/// the seed; each replicate gives every group a Poisson(1) weight (the same weights for every candidate, so the
/// comparison is paired). VEGA's edge term is resampled over classes instead (its units are class pairs). See
/// docs/vega.md, "Uncertainty".
/// </summary>
public sealed record BootstrapOptions
{
    /// <summary>Number of bootstrap replicates; 0 turns intervals off. Default 200.</summary>
    public int Replicates { get; init; } = 200;

    /// <summary>Coverage of the percentile intervals, in (0, 1). Default 0.95.</summary>
    public double Level { get; init; } = 0.95;

    /// <summary>Seed of the image groups and the replicate weights; results are a function of it. Default 0.</summary>
    public int Seed { get; init; }

    internal void Validate()
    {
        if (Replicates < 0 || Replicates > 100_000)
            throw new ArgumentOutOfRangeException(nameof(Replicates), Replicates, "Bootstrap replicates must lie in [0, 100000] (default 200; 0 turns intervals off).");
        if (!(Level > 0 && Level < 1))
            throw new ArgumentOutOfRangeException(nameof(Level), Level, "The bootstrap interval level must lie strictly between 0 and 1 (default 0.95).");
    }
}
