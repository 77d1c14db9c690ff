using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Text;

namespace Vega.MLNet.Selection;

/// <summary>Options of <see cref="VisionLanguageModelSelection"/>.SelectVisionLanguageModel.</summary>
internal sealed record VlmSelectionOptions
{
    /// <summary>Prompt templates for the class names (default <c>"a photo of a {}."</c>).</summary>
    public PromptTemplates Templates { get; init; } = PromptTemplates.Default;

    /// <summary>Text embedding options.</summary>
    public TextEmbeddingOptions Text { get; init; } = TextEmbeddingOptions.Default;

    /// <summary>Image embedding options (batch size, threads, cache folder, identity mode).</summary>
    public ImageEmbeddingOptions Images { get; init; } = ImageEmbeddingOptions.Default;

    /// <summary>Scoring options (ranking metric, VEGA hyper-parameters).</summary>
    public SelectionOptions Selection { get; init; } = new();

    /// <summary>k of the top-k recall when labels are present.</summary>
    public int TopK { get; init; } = 3;

    /// <summary>Called before each model is embedded, with its index and name (for progress displays).</summary>
    public Action<int, ClipModel>? OnModelStarting { get; init; }

    /// <summary>
    /// Replaces the plain engine call of the default local worker (e.g. to show a progress bar); null uses
    /// <see cref="ImageEmbedder.Embed"/>. Not used when <see cref="Worker"/> is set.
    /// </summary>
    public Func<ClipModel, ImageSource, ImageEmbeddingOptions, CancellationToken, ImageEmbeddings>? EmbedImages { get; init; }

    /// <summary>
    /// Where the image embedding work runs, for the full ranking and the budgeted search alike: null (default) embeds in
    /// this process (<see cref="LocalSelectionWorker"/> with <see cref="EmbedImages"/>); another
    /// <see cref="SelectionWorker"/> runs it elsewhere, e.g. on a cluster (Vega.MLNet.Orleans). The class texts are
    /// always embedded here, once per candidate; the statistics a worker returns merge exactly, so the ranking does not
    /// depend on the worker.
    /// </summary>
    public SelectionWorker? Worker { get; init; }

    internal SelectionWorker ResolveWorker() => Worker ?? new LocalSelectionWorker(EmbedImages);

    /// <summary>
    /// Run a budgeted search (successive halving) instead of scoring every candidate on every image; null (default)
    /// scores every image with every model. See <see cref="BudgetedSearchOptions"/>.
    /// </summary>
    public BudgetedSearchOptions? BudgetedSearch { get; init; }
}

/// <summary>What happened to one candidate model during a selection run.</summary>
/// <param name="ModelName">The model's name.</param>
/// <param name="ImagesEmbedded">Images with an embedding (scored); in a budgeted search, the candidate's sample.</param>
/// <param name="FromCache">Of those, served by the cache.</param>
/// <param name="EmbeddingTime">Wall time of image and class-text embedding.</param>
/// <param name="Accuracy">Zero-shot accuracy when the images carry labels (in a budgeted search, on the candidate's sample).</param>
public sealed record CandidateRun(string ModelName, int ImagesEmbedded, int FromCache, TimeSpan EmbeddingTime, double? Accuracy);

/// <summary>The outcome of a model selection run.</summary>
public sealed class VlmSelectionResult
{
    internal VlmSelectionResult(RankingResult ranking, EvaluationResult? evaluation, IReadOnlyList<CandidateRun> runs, IReadOnlyList<SkippedItem> skipped, IReadOnlyList<string> classNames, TimeSpan elapsed)
    {
        Ranking = ranking;
        Evaluation = evaluation;
        Runs = runs;
        Skipped = skipped;
        ClassNames = classNames;
        Elapsed = elapsed;
    }

    /// <summary>Models ordered by the chosen metric, with every metric, VEGA's parts and diagnostics.</summary>
    public RankingResult Ranking { get; }

    /// <summary>The chosen model (first in <see cref="Ranking"/>).</summary>
    public string ChosenModel => Ranking.Chosen.ModelName;

    /// <summary>
    /// Kendall τ-b, Spearman ρ, top-1/top-k recall and regret of every metric, when every image has a label and every
    /// candidate scored every image (null after a budgeted search).
    /// </summary>
    public EvaluationResult? Evaluation { get; }

    /// <summary>Per-model embedding figures and accuracies.</summary>
    public IReadOnlyList<CandidateRun> Runs { get; }

    /// <summary>Images that could not be read (path and reason).</summary>
    public IReadOnlyList<SkippedItem> Skipped { get; }

    /// <summary>The classes, in order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Wall time of the whole run (embedding + scoring).</summary>
    public TimeSpan Elapsed { get; }
}

/// <summary>
/// Unsupervised selection among candidate CLIP models for one task: each model embeds the class names (through the
/// prompt templates) and the images (through the embedding engine and its cache), the label-free metrics are computed
/// from the embeddings alone (<see cref="ModelSelector"/>), and the models are ranked. When every image carries a label
/// (CSV label column, IDX labels, class sub-folders) the true zero-shot accuracies are computed too and every metric is
/// evaluated against them.
/// </summary>
internal static class VisionLanguageModelSelection
{
    /// <summary>Ranks <paramref name="models"/> by expected zero-shot accuracy on <paramref name="images"/> for <paramref name="classNames"/>.</summary>
    /// <exception cref="ArgumentException">No models, duplicate model names, fewer than two classes, no readable image,
    /// towers of different widths, or a label that is not one of the classes.</exception>
    public static VlmSelectionResult SelectVisionLanguageModel(IReadOnlyList<ClipModel> models, ImageSource images, IReadOnlyList<string> classNames,
        VlmSelectionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(models);
        return SelectVisionLanguageModel([.. models.Select(m => ModelCandidate.FromModel(m ?? throw new ArgumentNullException(nameof(models))))], images, classNames, options, cancellationToken);
    }

    /// <summary>
    /// Ranks candidate models, loaded on first use (a budgeted search records a candidate that fails to load as a failed
    /// trial and goes on; a full ranking stops with the error).
    /// </summary>
    /// <exception cref="ArgumentException">No candidates, duplicate names, fewer than two classes, no readable image,
    /// towers of different widths, a label that is not one of the classes, or (budgeted search) no candidate could be scored.</exception>
    public static VlmSelectionResult SelectVisionLanguageModel(IReadOnlyList<ModelCandidate> candidates, ImageSource images, IReadOnlyList<string> classNames,
        VlmSelectionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(classNames);
        options ??= new VlmSelectionOptions();
        options.Selection.Validate();
        options.BudgetedSearch?.Validate();
        if (candidates.Count == 0) throw new ArgumentException("No candidate models; give at least one model.", nameof(candidates));
        PromptTemplates.ValidateClassNames(classNames);
        if (classNames.Count < 2) throw new ArgumentException("Model selection needs at least two classes (with one class every model is trivially right).", nameof(classNames));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in candidates)
            if (!seen.Add(m.Name)) throw new ArgumentException($"Two candidate models are named '{m.Name}'; give them distinct names (clip.json \"name\" or distinct folders).", nameof(candidates));
        if (images.Count == 0) throw new ArgumentException($"No images in {images.Description}.", nameof(images));
        if (options.BudgetedSearch is { } search)
            return SuccessiveHalving.Run(candidates, images, classNames, options, search, cancellationToken);

        var clock = Stopwatch.StartNew();
        var worker = options.ResolveWorker();
        var labels = TaskLabels(images.Items, classNames);
        var indices = new int[images.Count];
        for (int i = 0; i < indices.Length; i++) indices[i] = i;

        var scores = new List<ModelScores>(candidates.Count);
        var runs = new List<CandidateRun>(candidates.Count);
        var accuracies = new Dictionary<string, double>(StringComparer.Ordinal);
        IReadOnlyList<SkippedItem> skipped = [];
        bool labelled = labels is not null;
        for (int k = 0; k < candidates.Count; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var candidate = candidates[k];
            var model = candidate.Load();
            try
            {
                options.OnModelStarting?.Invoke(k, model);
                long t0 = Stopwatch.GetTimestamp();
                var texts = model.EmbedClassNames(classNames, options.Templates, options.Text, cancellationToken);
                var work = new SelectionWork
                {
                    Candidate = candidate,
                    ClassTexts = texts,
                    Images = images,
                    ImageIndices = indices,
                    Labels = labels,
                    Selection = options.Selection,
                    Embedding = options.Images,
                    Model = model,
                };
                var done = worker.ComputeAsync(work, cancellationToken).GetAwaiter().GetResult();
                var embeddingTime = Stopwatch.GetElapsedTime(t0);
                if (done.ImagesEmbedded == 0)
                    throw new ArgumentException($"No image of {images.Description} could be read ({done.Skipped.Count} skipped; first: {done.Skipped.FirstOrDefault()?.Reason}).", nameof(images));
                if (done.Skipped.Count > skipped.Count) skipped = done.Skipped;
                scores.Add(done.Statistics.Score());
                double? accuracy = null;
                if (labelled && done.CorrectPredictions is long correct)
                {
                    accuracy = (double)correct / done.ImagesEmbedded;
                    accuracies[candidate.Name] = accuracy.Value;
                }
                else labelled = false;
                runs.Add(new CandidateRun(candidate.Name, done.ImagesEmbedded, done.FromCache, embeddingTime, accuracy));
            }
            finally
            {
                if (candidate.Owned) model.Dispose();
            }
        }

        var ranking = ModelSelector.Rank(scores, options.Selection, [], TimeSpan.FromTicks(scores.Sum(s => s.ScoringTime.Ticks)));
        var evaluation = labelled ? SelectionEvaluation.Evaluate(ranking, accuracies, Math.Min(options.TopK, candidates.Count)) : null;
        return new VlmSelectionResult(ranking, evaluation, runs, skipped, classNames, clock.Elapsed);
    }

    // The class index of every item, or null when some item has no label; a label that is not a class is an error.
    private static int[]? TaskLabels(IReadOnlyList<ImageItem> items, IReadOnlyList<string> classNames)
    {
        var classIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < classNames.Count; c++) classIndex[classNames[c]] = c;
        var labels = new int[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i].Label is not { } label) return null;
            if (!classIndex.TryGetValue(label, out labels[i]))
                throw new ArgumentException(
                    $"Image '{items[i].Path ?? items[i].Id}' is labelled \"{label}\", which is not one of the {classIndex.Count} class names ({string.Join(", ", classIndex.Keys.Take(10))}{(classIndex.Count > 10 ? ", …" : "")}). " +
                    "Labels must be spelt exactly like the class names.");
        }
        return labels;
    }
}
