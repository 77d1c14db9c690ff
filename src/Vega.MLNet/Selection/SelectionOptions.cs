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

    /// <summary>A seeded uniform random score per model name, for reference (name <c>random</c>).</summary>
    Random,
}

/// <summary>Canonical names of the <see cref="SelectionMetric"/> values (the keys of <see cref="ModelScores.Metrics"/>).</summary>
public static class SelectionMetrics
{
    private static readonly string[] Names = ["vega", "vega-node", "vega-edge", "msp", "neg-entropy", "margin", "max-cosine", "random"];

    /// <summary>All metrics, in the order they are listed in results and reports.</summary>
    public static IReadOnlyList<SelectionMetric> All { get; } = Enum.GetValues<SelectionMetric>();

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
public sealed record SelectionOptions
{
    /// <summary>The metric that orders the models. Default <see cref="SelectionMetric.Vega"/>.</summary>
    public SelectionMetric Metric { get; init; } = SelectionMetric.Vega;

    /// <summary>VEGA's hyper-parameters.</summary>
    public VegaOptions Vega { get; init; } = new();

    /// <summary>
    /// Softmax temperature of the baselines (max softmax probability, entropy, margin). Default 0.01, i.e. CLIP's
    /// logit scale of 100. At VEGA's temperature the mean max softmax probability equals s_n.
    /// </summary>
    public double BaselineTemperature { get; init; } = 0.01;

    /// <summary>Seed of the random reference ranking. Default 0.</summary>
    public int RandomSeed { get; init; }

    /// <summary>Maximum number of threads used for scoring; 0 = all processors. Results do not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Vega, nameof(Vega));
        Vega.Validate();
        if (!Enum.IsDefined(Metric)) throw new ArgumentOutOfRangeException(nameof(Metric), Metric, "Unknown selection metric.");
        if (!(BaselineTemperature > 0) || double.IsInfinity(BaselineTemperature))
            throw new ArgumentOutOfRangeException(nameof(BaselineTemperature), BaselineTemperature, "The baseline softmax temperature must be a positive finite number (default 0.01).");
        if (MaxDegreeOfParallelism < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "Use 0 for all processors or a positive thread count.");
    }

    internal int Threads => MaxDegreeOfParallelism > 0 ? MaxDegreeOfParallelism : Environment.ProcessorCount;
}
