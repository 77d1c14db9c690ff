namespace Vega.MLNet.Selection;

/// <summary>Per-class diagnostics of one model's VEGA score.</summary>
public sealed record ClassDiagnostics
{
    /// <summary>Index of the class in the class list.</summary>
    public required int ClassIndex { get; init; }

    /// <summary>Number of images pseudo-labelled with this class (argmax cosine).</summary>
    public required long ImageCount { get; init; }

    /// <summary>
    /// Node similarity: mean, over the images pseudo-labelled with this class, of the softmax probability of the class;
    /// null when no image has this pseudo-label.
    /// </summary>
    public double? NodeSimilarity { get; init; }

    /// <summary>Whether the class takes part in the edge term (it has at least MinImagesPerClass images).</summary>
    public required bool InEdgeTerm { get; init; }

    /// <summary>The covariance shrinkage intensity used for the class (Ledoit–Wolf or fixed); null if not in the edge term or not applicable.</summary>
    public double? Shrinkage { get; init; }
}

/// <summary>The textual and visual edge matrices of one model (C×C, row-major; NaN for classes outside the edge term).</summary>
public sealed record EdgeMatrices
{
    /// <summary>Number of classes C.</summary>
    public required int ClassCount { get; init; }

    /// <summary>E_T: cosine similarities of the class text embeddings, C×C row-major.</summary>
    public required float[] Textual { get; init; }

    /// <summary>
    /// E_V: visual similarities of the kind in <see cref="VegaResult.EdgeKind"/>, C×C row-major (exp(−D_B) is stored
    /// multiplied by exp(min D_B)); NaN on the diagonal (unused) and in the rows and columns of classes left out of the
    /// edge term, or everywhere when the visual graph could not be formed.
    /// </summary>
    public required float[] Visual { get; init; }
}

/// <summary>One model's VEGA score with its parts and diagnostics.</summary>
public sealed record VegaResult
{
    /// <summary>VEGA = s_n + s_e, in [0, 2].</summary>
    public required double Score { get; init; }

    /// <summary>Node score s_n: mean over all images of the softmax probability of the pseudo-labelled class.</summary>
    public required double NodeScore { get; init; }

    /// <summary>Edge score s_e = (r + 1)/2, r = Pearson correlation of the upper triangles of E_T and E_V; 0.5 (r = 0) when degenerate.</summary>
    public required double EdgeScore { get; init; }

    /// <summary>The Pearson correlation r; null when the edge term is degenerate.</summary>
    public double? EdgeCorrelation { get; init; }

    /// <summary>True when the edge term could not be computed (too few classes, constant or non-finite edges); s_e is then 0.5.</summary>
    public required bool EdgeDegenerate { get; init; }

    /// <summary>Why the edge term is degenerate; null when it is not.</summary>
    public string? EdgeDegenerateReason { get; init; }

    /// <summary>Number of classes in the edge term.</summary>
    public required int EdgeClassCount { get; init; }

    /// <summary>
    /// For <see cref="VisualEdgeKind.ExpNegativeBhattacharyya"/>: the fraction of off-diagonal visual edges that are below
    /// 1e-16 of the largest one after the log-domain shift (i.e. lost to the largest in any sum); null for other kinds.
    /// </summary>
    public double? ExpNegligibleFraction { get; init; }

    /// <summary>The visual edge kind used.</summary>
    public required VisualEdgeKind EdgeKind { get; init; }

    /// <summary>The covariance mode used.</summary>
    public required CovarianceMode Covariance { get; init; }

    /// <summary>Per-class diagnostics, one per class in class order.</summary>
    public required IReadOnlyList<ClassDiagnostics> Classes { get; init; }

    /// <summary>The edge matrices, when <see cref="VegaOptions.KeepEdgeMatrices"/> is set.</summary>
    public EdgeMatrices? Edges { get; init; }

    /// <summary>Human-readable warnings (classes left out, degenerate edges, underflow).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
}

/// <summary>Every label-free score of one model on one task.</summary>
public sealed record ModelScores
{
    /// <summary>The model's name (unique within a ranking).</summary>
    public required string ModelName { get; init; }

    /// <summary>1-based position in the ranking (1 = chosen); 0 before ranking.</summary>
    public int Rank { get; init; }

    /// <summary>Number of images scored.</summary>
    public required long ImageCount { get; init; }

    /// <summary>Number of classes.</summary>
    public required int ClassCount { get; init; }

    /// <summary>Embedding dimension.</summary>
    public required int Dimension { get; init; }

    /// <summary>Every metric by canonical name (see <see cref="SelectionMetrics.Name"/>).</summary>
    public required IReadOnlyDictionary<string, double> Metrics { get; init; }

    /// <summary>VEGA's parts and diagnostics.</summary>
    public required VegaResult Vega { get; init; }

    /// <summary>Time spent accumulating the streaming statistics (similarities, softmax, class moments).</summary>
    public required TimeSpan StatisticsTime { get; init; }

    /// <summary>Time spent turning the statistics into scores (covariances, graphs, correlation).</summary>
    public required TimeSpan GraphTime { get; init; }

    /// <summary>Total scoring time of this model.</summary>
    public TimeSpan ScoringTime => StatisticsTime + GraphTime;

    /// <summary>The value of <paramref name="metric"/>.</summary>
    public double Metric(SelectionMetric metric) => Metrics[SelectionMetrics.Name(metric)];

    /// <summary>
    /// The bootstrap interval of every metric (by canonical name) at <see cref="BootstrapOptions.Level"/>; null when the
    /// bootstrap is off. A metric without enough defined replicates (e.g. dispersity with very many classes) is absent.
    /// </summary>
    public IReadOnlyDictionary<string, ScoreInterval>? Intervals { get; init; }

    /// <summary>Fraction of bootstrap replicates in which this model ranks first under the ranking metric; null without bootstrap.</summary>
    public double? TopProbability { get; init; }

    /// <summary>The interval of <paramref name="metric"/>, or null.</summary>
    public ScoreInterval? Interval(SelectionMetric metric) => Intervals?.GetValueOrDefault(SelectionMetrics.Name(metric));

    /// <summary>Per-group sums, Gram matrices and edges for the paired bootstrap; null for hand-built scores.</summary>
    internal BootstrapMaterial? Material { get; init; }
}

/// <summary>A bootstrap percentile interval of one score.</summary>
/// <param name="Lower">Lower end.</param>
/// <param name="Upper">Upper end.</param>
public sealed record ScoreInterval(double Lower, double Upper)
{
    /// <summary>Whether the two intervals share a point.</summary>
    public bool Overlaps(ScoreInterval other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Lower <= other.Upper && other.Lower <= Upper;
    }
}

/// <summary>Candidate models ordered by one label-free metric.</summary>
public sealed record RankingResult
{
    /// <summary>The metric that orders <see cref="Models"/>.</summary>
    public required SelectionMetric Metric { get; init; }

    /// <summary>The models, best first (ties broken by ordinal model name, then input order).</summary>
    public required IReadOnlyList<ModelScores> Models { get; init; }

    /// <summary>The chosen (first) model.</summary>
    public ModelScores Chosen => Models[0];

    /// <summary>Warnings about the whole ranking (each model's own warnings are in its <see cref="VegaResult.Warnings"/>).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>The options used.</summary>
    internal SelectionOptions Options { get; init; } = new();

    /// <summary>Wall time of scoring and ordering all models.</summary>
    public required TimeSpan TotalTime { get; init; }

    /// <summary>
    /// The bootstrap probability that the chosen model is really the best under <see cref="Metric"/> (the share of
    /// paired replicates in which it ranks first); null without bootstrap.
    /// </summary>
    public double? ChosenProbability => Models.Count > 0 ? Models[0].TopProbability : null;

    /// <summary>
    /// True when the bootstrap intervals of the first two models under <see cref="Metric"/> overlap: the data do not
    /// separate them, and the choice is "too close to call".
    /// </summary>
    public bool TooCloseToCall =>
        Models.Count >= 2 && Models[0].Interval(Metric) is { } a && Models[1].Interval(Metric) is { } b && a.Overlaps(b);

    /// <summary>
    /// The trials of a budgeted search (successive halving), in the order they ran; null for a ranking in which every
    /// candidate scored every image.
    /// </summary>
    public IReadOnlyList<SelectionTrial>? Trials { get; init; }
}
