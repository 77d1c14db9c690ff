using System.Numerics.Tensors;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Selection;

/// <summary>How well one label-free metric ranked the models of one task, against their true zero-shot accuracy.</summary>
public sealed record MetricEvaluation
{
    /// <summary>The metric evaluated.</summary>
    public required SelectionMetric Metric { get; init; }

    /// <summary>Kendall τ-b between the metric and the accuracy over all models (ties handled); NaN if either is constant.</summary>
    public required double KendallTau { get; init; }

    /// <summary>Spearman ρ (Pearson correlation of average ranks) between metric and accuracy; NaN if either is constant.</summary>
    public required double SpearmanRho { get; init; }

    /// <summary>1 if the model the metric ranks first has the best accuracy (ties count as best), else 0.</summary>
    public required double Top1Recall { get; init; }

    /// <summary>
    /// Fraction of the metric's top k that are among the true top k (every model whose accuracy is at least the k-th
    /// best accuracy, so ties never penalise); k = <see cref="EvaluationResult.TopK"/>.
    /// </summary>
    public required double TopKRecall { get; init; }

    /// <summary>Best accuracy minus the accuracy of the model the metric ranks first (≥ 0).</summary>
    public required double Regret { get; init; }

    /// <summary>The model the metric ranks first; null for the random baseline, which chooses none.</summary>
    public required string? ChosenModel { get; init; }

    /// <summary>
    /// True for <see cref="SelectionMetric.Random"/>: the values are expectations over a uniformly random choice
    /// (τ = ρ = 0, top-1 recall = share of best models, top-k recall = share of the true top k, regret = best − mean
    /// accuracy), not the outcome of one draw.
    /// </summary>
    public bool Expected { get; init; }
}

/// <summary>Evaluation of every metric of one ranking against the true accuracies.</summary>
public sealed record EvaluationResult
{
    /// <summary>True zero-shot accuracy (in [0, 1]) per model name.</summary>
    public required IReadOnlyDictionary<string, double> Accuracies { get; init; }

    /// <summary>The model with the best accuracy (ties by ordinal name).</summary>
    public required string BestModel { get; init; }

    /// <summary>k of the top-k recall (at most the number of models).</summary>
    public required int TopK { get; init; }

    /// <summary>One evaluation per metric, in <see cref="SelectionMetrics.All"/> order, then the random baseline's expectations.</summary>
    public required IReadOnlyList<MetricEvaluation> Metrics { get; init; }

    /// <summary>The evaluation of <paramref name="metric"/>.</summary>
    public MetricEvaluation For(SelectionMetric metric) => Metrics.First(m => m.Metric == metric);
}

/// <summary>One metric's evaluation averaged over tasks.</summary>
public sealed record MetricSummary
{
    /// <summary>The metric.</summary>
    public required SelectionMetric Metric { get; init; }

    /// <summary>Mean Kendall τ-b over the tasks where it is defined.</summary>
    public required double KendallTau { get; init; }

    /// <summary>Mean Spearman ρ over the tasks where it is defined.</summary>
    public required double SpearmanRho { get; init; }

    /// <summary>Mean top-1 recall.</summary>
    public required double Top1Recall { get; init; }

    /// <summary>Mean top-k recall.</summary>
    public required double TopKRecall { get; init; }

    /// <summary>Mean regret.</summary>
    public required double Regret { get; init; }

    /// <summary>Number of tasks averaged.</summary>
    public required int TaskCount { get; init; }

    /// <summary>Number of tasks where τ and ρ were defined (not NaN).</summary>
    public required int CorrelationTaskCount { get; init; }
}

/// <summary>Evaluation of label-free selection when labels exist: accuracies, rank correlations, recalls, regret.</summary>
internal static class SelectionEvaluation
{
    /// <summary>Zero-shot accuracy: the fraction of images whose most cosine-similar class text is their label.</summary>
    /// <param name="images">Image embeddings, N×D.</param>
    /// <param name="classTexts">Class text embeddings, C×D.</param>
    /// <param name="labels">N labels in [0, C).</param>
    /// <exception cref="ArgumentException">Dimension or count mismatch, labels out of range, no images.</exception>
    public static double ZeroShotAccuracy(EmbeddingMatrix images, EmbeddingMatrix classTexts, ReadOnlySpan<int> labels) =>
        (double)CountCorrect(images, classTexts, labels) / images.Count;

    /// <summary>The number of images whose most cosine-similar class text is their label (see <see cref="ZeroShotAccuracy"/>).</summary>
    internal static long CountCorrect(EmbeddingMatrix images, EmbeddingMatrix classTexts, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(classTexts);
        if (images.Dimension != classTexts.Dimension)
            throw new ArgumentException($"Image embeddings have dimension {images.Dimension} but class text embeddings have {classTexts.Dimension}.", nameof(images));
        if (images.Count == 0) throw new ArgumentException("No image embeddings; accuracy needs at least one labelled image.", nameof(images));
        if (labels.Length != images.Count)
            throw new ArgumentException($"{labels.Length} labels for {images.Count} images; give exactly one label per image.", nameof(labels));
        int c = classTexts.Count, d = classTexts.Dimension;
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)c)
                throw new ArgumentException($"Label {labels[i]} of image {i} is outside the {c} classes [0, {c - 1}].", nameof(labels));
        var texts = (float[])classTexts.Data.Clone();
        for (int k = 0; k < c; k++) EmbeddingMatrix.NormalizeInPlace(texts.AsSpan(k * d, d));
        const int chunk = 256;
        var cos = new float[chunk * c];
        long correct = 0;
        for (int start = 0; start < images.Count; start += chunk)
        {
            int rows = Math.Min(chunk, images.Count - start);
            SimilarityKernel.MultiplyTransposed(images.Rows(start, rows), rows, texts, c, d, cos);
            for (int r = 0; r < rows; r++)
                if (TensorPrimitives.IndexOfMax<float>(cos.AsSpan(r * c, c)) == labels[start + r]) correct++;
        }
        return correct;
    }

    /// <summary>Ranks the candidates without labels, then evaluates every metric against their zero-shot accuracy on <paramref name="labels"/>.</summary>
    /// <param name="candidates">The models (see <see cref="ModelSelector.RankModels"/>); all scored on the same labelled images.</param>
    /// <param name="labels">The true class of each image, in [0, C).</param>
    /// <param name="options">Selection options; null for the defaults.</param>
    /// <param name="topK">k of the top-k recall (default 3).</param>
    public static (RankingResult Ranking, EvaluationResult Evaluation) RankAndEvaluate(
        IReadOnlyList<(string ModelName, EmbeddingMatrix Images, EmbeddingMatrix ClassTexts)> candidates, IReadOnlyList<int> labels,
        SelectionOptions? options = null, int topK = 3)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(labels);
        var ranking = ModelSelector.RankModels(candidates, options);
        int[] l = [.. labels];
        var acc = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, images, texts) in candidates)
        {
            if (images.Count != l.Length)
                throw new ArgumentException($"Model '{name}' has {images.Count} image embeddings but there are {l.Length} labels; every model must embed the labelled images.", nameof(labels));
            acc[name] = ZeroShotAccuracy(images, texts, l);
        }
        return (ranking, Evaluate(ranking, acc, topK));
    }

    /// <summary>Evaluates every metric of <paramref name="ranking"/> against the true accuracies.</summary>
    /// <param name="ranking">A ranking of the models.</param>
    /// <param name="accuracies">True accuracy of every model in the ranking, by model name.</param>
    /// <param name="topK">k of the top-k recall (≥ 1, capped at the number of models; default 3).</param>
    /// <exception cref="ArgumentException">A model has no accuracy, or k &lt; 1.</exception>
    public static EvaluationResult Evaluate(RankingResult ranking, IReadOnlyDictionary<string, double> accuracies, int topK = 3)
    {
        ArgumentNullException.ThrowIfNull(ranking);
        ArgumentNullException.ThrowIfNull(accuracies);
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), topK, "k of the top-k recall must be at least 1.");
        var models = ranking.Models;
        int n = models.Count;
        var acc = new double[n];
        for (int i = 0; i < n; i++)
        {
            if (!accuracies.TryGetValue(models[i].ModelName, out acc[i]) || !double.IsFinite(acc[i]))
                throw new ArgumentException($"No finite accuracy for model '{models[i].ModelName}'; give one for every ranked model.", nameof(accuracies));
        }
        int k = Math.Min(topK, n);
        double best = acc.Max();
        string bestModel = models.Select((m, i) => (m.ModelName, acc[i])).Where(t => t.Item2 == best).Select(t => t.ModelName).Min(StringComparer.Ordinal)!;
        double kth = acc.OrderByDescending(a => a).ElementAt(k - 1);
        var byName = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++) byName[models[i].ModelName] = acc[i];

        var evaluations = new List<MetricEvaluation>();
        foreach (var metric in SelectionMetrics.All)
        {
            var scores = models.Select(m => m.Metric(metric)).ToArray();
            var ordered = ModelSelector.Order(models, metric);
            double chosenAcc = byName[ordered[0].ModelName];
            int hits = 0;
            for (int r = 0; r < k; r++) if (byName[ordered[r].ModelName] >= kth) hits++;
            evaluations.Add(new MetricEvaluation
            {
                Metric = metric,
                KendallTau = KendallTauB(scores, acc),
                SpearmanRho = SpearmanRho(scores, acc),
                Top1Recall = chosenAcc == best ? 1 : 0,
                TopKRecall = (double)hits / k,
                Regret = best - chosenAcc,
                ChosenModel = ordered[0].ModelName,
            });
        }
        // The random baseline in expectation: a uniformly random order of the n models.
        int bestCount = acc.Count(a => a == best), topCount = acc.Count(a => a >= kth);
        evaluations.Add(new MetricEvaluation
        {
            Metric = SelectionMetric.Random,
            KendallTau = 0,
            SpearmanRho = 0,
            Top1Recall = (double)bestCount / n,
            TopKRecall = (double)topCount / n,
            Regret = best - acc.Average(),
            ChosenModel = null,
            Expected = true,
        });
        return new EvaluationResult { Accuracies = byName, BestModel = bestModel, TopK = k, Metrics = evaluations };
    }

    /// <summary>Averages the evaluations of several tasks per metric (τ and ρ over the tasks where they are defined).</summary>
    /// <exception cref="ArgumentException">No tasks.</exception>
    public static IReadOnlyList<MetricSummary> Average(IReadOnlyList<EvaluationResult> tasks)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        if (tasks.Count == 0) throw new ArgumentException("No task evaluations to average.", nameof(tasks));
        var result = new List<MetricSummary>();
        foreach (var metric in tasks[0].Metrics.Select(m => m.Metric))
        {
            var e = tasks.Select(t => t.For(metric)).ToArray();
            var defined = e.Where(x => !double.IsNaN(x.KendallTau) && !double.IsNaN(x.SpearmanRho)).ToArray();
            result.Add(new MetricSummary
            {
                Metric = metric,
                KendallTau = defined.Length > 0 ? defined.Average(x => x.KendallTau) : double.NaN,
                SpearmanRho = defined.Length > 0 ? defined.Average(x => x.SpearmanRho) : double.NaN,
                Top1Recall = e.Average(x => x.Top1Recall),
                TopKRecall = e.Average(x => x.TopKRecall),
                Regret = e.Average(x => x.Regret),
                TaskCount = e.Length,
                CorrelationTaskCount = defined.Length,
            });
        }
        return result;
    }

    /// <summary>
    /// Kendall τ-b = (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂)): concordant minus discordant pairs over the geometric mean of
    /// the pairs untied in x and in y. NaN when x or y is constant.
    /// </summary>
    public static double KendallTauB(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Kendall τ needs equal lengths, got {x.Length} and {y.Length}.", nameof(y));
        long s = 0, untiedX = 0, untiedY = 0;
        for (int i = 0; i < x.Length; i++)
            for (int j = i + 1; j < x.Length; j++)
            {
                int sx = Math.Sign(x[i] - x[j]), sy = Math.Sign(y[i] - y[j]);
                s += sx * sy;
                if (sx != 0) untiedX++;
                if (sy != 0) untiedY++;
            }
        return untiedX == 0 || untiedY == 0 ? double.NaN : s / Math.Sqrt((double)untiedX * untiedY);
    }

    /// <summary>Spearman ρ: the Pearson correlation of the ranks (ties get their average rank). NaN when x or y is constant.</summary>
    public static double SpearmanRho(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Spearman ρ needs equal lengths, got {x.Length} and {y.Length}.", nameof(y));
        var rx = AverageRanks(x);
        var ry = AverageRanks(y);
        var (r, _) = VisualGraph.Pearson(rx, ry);
        return r ?? double.NaN;
    }

    internal static double[] AverageRanks(ReadOnlySpan<double> v)
    {
        var values = v.ToArray();
        var index = Enumerable.Range(0, values.Length).ToArray();
        Array.Sort(index, (a, b) => values[a].CompareTo(values[b]));
        var ranks = new double[values.Length];
        for (int i = 0; i < index.Length;)
        {
            int j = i;
            while (j + 1 < index.Length && values[index[j + 1]] == values[index[i]]) j++;
            double rank = 0.5 * (i + j) + 1;
            for (int t = i; t <= j; t++) ranks[index[t]] = rank;
            i = j + 1;
        }
        return ranks;
    }
}
