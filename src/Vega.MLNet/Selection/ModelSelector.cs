using System.Diagnostics;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Selection;

/// <summary>
/// Unsupervised model selection: scores candidate CLIP models on one task from their embeddings alone (VEGA and the
/// label-free baselines) and ranks them. The embeddings of each model are its image embeddings (N×D) and its class text
/// embeddings (C×D); rows need not be normalised.
/// </summary>
internal static class ModelSelector
{
    /// <summary>Every label-free metric of one model on one task.</summary>
    /// <param name="modelName">Name used in messages and results.</param>
    /// <param name="images">Image embeddings, N×D (N ≥ 1).</param>
    /// <param name="classTexts">Class text embeddings, C×D (C ≥ 2), one per class in class order.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <exception cref="ArgumentException">Dimension mismatch, no images, fewer than 2 classes, NaN/infinite or all-zero rows.</exception>
    public static ModelScores Score(string modelName, EmbeddingMatrix images, EmbeddingMatrix classTexts, SelectionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(classTexts);
        options ??= new SelectionOptions();
        if (images.Dimension != classTexts.Dimension)
            throw new ArgumentException($"Model '{modelName}': image embeddings have dimension {images.Dimension} but the class text embeddings have {classTexts.Dimension}; the image and text towers of one model must share one embedding space.", nameof(images));
        if (images.Count == 0)
            throw new ArgumentException($"Model '{modelName}': no image embeddings (0 rows); scoring needs at least one image (check the --images folder or CSV).", nameof(images));
        long t0 = Stopwatch.GetTimestamp();
        var acc = new ScoringAccumulator(modelName, classTexts, options);
        acc.Add(images);
        return Finish(acc, Stopwatch.GetElapsedTime(t0));
    }

    /// <summary>Scores every candidate and orders them by <see cref="SelectionOptions.Metric"/>, best first.</summary>
    /// <param name="candidates">The models: a unique name, image embeddings and class text embeddings (same classes for all).</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <returns>The ranking; ties are broken by ordinal model name, then input order.</returns>
    /// <exception cref="ArgumentException">No candidates, duplicate names, different class counts, or bad embeddings (see <see cref="Score"/>).</exception>
    public static RankingResult RankModels(IReadOnlyList<(string ModelName, EmbeddingMatrix Images, EmbeddingMatrix ClassTexts)> candidates, SelectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        options ??= new SelectionOptions();
        options.Validate();
        if (candidates.Count == 0) throw new ArgumentException("No candidate models to rank; give at least one model.", nameof(candidates));
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, images, texts) in candidates)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("Every candidate model needs a non-empty name.", nameof(candidates));
            if (!names.Add(name)) throw new ArgumentException($"Two candidate models are named '{name}'; model names must be unique.", nameof(candidates));
            ArgumentNullException.ThrowIfNull(images, $"{nameof(candidates)}['{name}'].Images");
            ArgumentNullException.ThrowIfNull(texts, $"{nameof(candidates)}['{name}'].ClassTexts");
            if (texts.Count != candidates[0].ClassTexts?.Count)
                throw new ArgumentException($"Model '{name}' has {texts.Count} class text embeddings but '{candidates[0].ModelName}' has {candidates[0].ClassTexts?.Count}; all candidates must be scored on the same classes.", nameof(candidates));
        }
        var warnings = new List<string>();
        long firstCount = candidates[0].Images.Count;
        foreach (var (name, images, _) in candidates)
            if (images.Count != firstCount)
                warnings.Add($"Model '{name}' was scored on {images.Count} images but '{candidates[0].ModelName}' on {firstCount}; scores compare best on the same images.");

        long t0 = Stopwatch.GetTimestamp();
        var scores = new ModelScores[candidates.Count];
        for (int i = 0; i < candidates.Count; i++)
            scores[i] = Score(candidates[i].ModelName, candidates[i].Images, candidates[i].ClassTexts, options);
        return Rank(scores, options, warnings, Stopwatch.GetElapsedTime(t0));
    }

    /// <summary>
    /// Ranks scores computed elsewhere (e.g. by <see cref="SelectionStatistics.Score"/> on merged shards): the paired
    /// bootstrap across them (when their statistics carry it), then the order by <see cref="SelectionOptions.Metric"/>.
    /// </summary>
    /// <param name="scores">One score per model, all on the same images and classes.</param>
    /// <param name="options">Options; null for the defaults. Its metric and bootstrap options apply.</param>
    /// <exception cref="ArgumentException">No scores or duplicate model names.</exception>
    public static RankingResult RankScores(IReadOnlyList<ModelScores> scores, SelectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(scores);
        options ??= new SelectionOptions();
        options.Validate();
        if (scores.Count == 0) throw new ArgumentException("No model scores to rank; give at least one.", nameof(scores));
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in scores)
            if (!names.Add(m.ModelName)) throw new ArgumentException($"Two scores are named '{m.ModelName}'; model names must be unique.", nameof(scores));
        return Rank(scores, options, [], TimeSpan.FromTicks(scores.Sum(m => m.ScoringTime.Ticks)));
    }

    /// <summary>Bootstrap (paired across the models) and order: the ranking of already scored models.</summary>
    internal static RankingResult Rank(IReadOnlyList<ModelScores> scores, SelectionOptions options, IReadOnlyList<string> warnings, TimeSpan totalTime,
        IReadOnlyList<SelectionTrial>? trials = null)
    {
        var withIntervals = Bootstrap.Apply(scores, options.Metric, options.Bootstrap);
        return new RankingResult
        {
            Metric = options.Metric,
            Models = Order(withIntervals, options.Metric),
            Warnings = warnings,
            Options = options,
            TotalTime = totalTime,
            Trials = trials,
        };
    }

    /// <summary>Finishes a streaming accumulator into the model's scores (for callers that stream embeddings).</summary>
    internal static ModelScores Finish(ScoringAccumulator acc, TimeSpan statisticsTime)
    {
        long t0 = Stopwatch.GetTimestamp();
        var f = acc.Finish();
        var graphTime = Stopwatch.GetElapsedTime(t0);
        var metrics = new Dictionary<string, double>
        {
            [SelectionMetrics.Name(SelectionMetric.Vega)] = f.Vega.Score,
            [SelectionMetrics.Name(SelectionMetric.VegaNode)] = f.Vega.NodeScore,
            [SelectionMetrics.Name(SelectionMetric.VegaEdge)] = f.Vega.EdgeScore,
            [SelectionMetrics.Name(SelectionMetric.MaxSoftmax)] = f.MaxSoftmax,
            [SelectionMetrics.Name(SelectionMetric.NegativeEntropy)] = f.NegativeEntropy,
            [SelectionMetrics.Name(SelectionMetric.Margin)] = f.Margin,
            [SelectionMetrics.Name(SelectionMetric.MaxCosine)] = f.MaxCosine,
            [SelectionMetrics.Name(SelectionMetric.Dispersity)] = f.Dispersity,
        };
        return new ModelScores
        {
            ModelName = acc.ModelName,
            ImageCount = acc.ImageCount,
            ClassCount = acc.ClassCount,
            Dimension = acc.Dimension,
            Metrics = metrics,
            Vega = f.Vega,
            StatisticsTime = statisticsTime,
            GraphTime = graphTime,
            Material = f.Material,
        };
    }

    /// <summary>
    /// Orders models by <paramref name="metric"/> descending (NaN last), ties by ordinal name then input order, and sets
    /// <see cref="ModelScores.Rank"/>.
    /// </summary>
    internal static IReadOnlyList<ModelScores> Order(IReadOnlyList<ModelScores> models, SelectionMetric metric)
    {
        var index = Enumerable.Range(0, models.Count).ToArray();
        Array.Sort(index, (x, y) => Compare(models[x], x, models[y], y, metric));
        var result = new ModelScores[models.Count];
        for (int r = 0; r < index.Length; r++) result[r] = models[index[r]] with { Rank = r + 1 };
        return result;
    }

    /// <summary>Order of two models under <paramref name="metric"/>: negative when <paramref name="a"/> ranks first.</summary>
    internal static int Compare(ModelScores a, int indexA, ModelScores b, int indexB, SelectionMetric metric)
    {
        double va = a.Metric(metric), vb = b.Metric(metric);
        bool na = double.IsNaN(va), nb = double.IsNaN(vb);
        if (na != nb) return na ? 1 : -1;
        if (!na && va != vb) return vb.CompareTo(va);
        int byName = string.CompareOrdinal(a.ModelName, b.ModelName);
        return byName != 0 ? byName : indexA.CompareTo(indexB);
    }
}
