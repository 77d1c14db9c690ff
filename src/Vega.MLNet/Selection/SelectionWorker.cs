using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Selection;

/// <summary>
/// Where a model selection has its embedding work done: the statistics of one candidate model on some images. Null (the
/// default) embeds in this process through the embedding engine and its cache; Vega.MLNet.Orleans's
/// <c>OrleansSelectionWorker</c> runs the same work on a cluster and returns statistics that merge exactly, so the ranking
/// does not depend on where the work ran. Set it on <see cref="VisionLanguageModelSelectingEstimator.Options.Worker"/>.
/// </summary>
/// <remarks>The work itself is internal to Vega.MLNet and its companion packages: a worker is obtained from them, not
/// written by hand.</remarks>
public abstract class SelectionWorker
{
    private protected SelectionWorker() { }

    /// <summary>
    /// Embeds <see cref="SelectionWork.Images"/> with the candidate's image tower and adds them to the candidate's
    /// statistics (<see cref="SelectionWork.Statistics"/>, or new ones). An image that cannot be read is skipped and
    /// reported; a candidate that cannot be loaded is an error (the exception's message says why).
    /// </summary>
    internal abstract Task<SelectionWorkResult> ComputeAsync(SelectionWork work, CancellationToken cancellationToken = default);
}

/// <summary>
/// The embedding work of one candidate model on some images of a task, for an <see cref="SelectionWorker"/>. The class
/// text embeddings are computed once, by the caller, with the candidate's text tower: every piece of work of a candidate
/// then shares the same class texts (statistics merge only over identical texts), and a worker needs only the image tower.
/// </summary>
internal sealed record SelectionWork
{
    /// <summary>The candidate: its name, and for workers in other processes its <see cref="ModelCandidate.Path"/>.</summary>
    public required ModelCandidate Candidate { get; init; }

    /// <summary>The class text embeddings (C×D, C ≥ 2) of the candidate, in class order.</summary>
    public required EmbeddingMatrix ClassTexts { get; init; }

    /// <summary>The images to embed, in order (with their decode options).</summary>
    public required ImageSource Images { get; init; }

    /// <summary>
    /// The index of each image of <see cref="Images"/> (same order) in the task's image list: it puts the image into the
    /// same bootstrap group for every model and every shard, and numbers skipped images.
    /// </summary>
    public required IReadOnlyList<int> ImageIndices { get; init; }

    /// <summary>
    /// The class index of each image of <see cref="Images"/> (same order; −1 for an image without a label), or null when
    /// the task has no labels. With labels the result counts the correct zero-shot predictions.
    /// </summary>
    public IReadOnlyList<int>? Labels { get; init; }

    /// <summary>Scoring options (they decide the statistics kept; see <see cref="SelectionStatistics"/>).</summary>
    public SelectionOptions Selection { get; init; } = new();

    /// <summary>
    /// Image embedding options (batch size, decode threads, cache folder, identity). Workers in other processes use
    /// their own cache folder.
    /// </summary>
    public ImageEmbeddingOptions Embedding { get; init; } = ImageEmbeddingOptions.Default;

    /// <summary>
    /// Statistics to add the images to (e.g. the candidate's statistics from the earlier rounds of a budgeted search),
    /// updated in place and returned as <see cref="SelectionWorkResult.Statistics"/>; null starts new ones.
    /// </summary>
    public SelectionStatistics? Statistics { get; init; }

    /// <summary>
    /// The candidate's model when the caller has it loaded (it embedded the class texts with it): the local worker embeds
    /// with it instead of loading the candidate again; a worker in another process can check that it loads the same model
    /// (<see cref="ClipModel.ContentHash"/>). Null: the worker loads <see cref="Candidate"/> itself.
    /// </summary>
    public ClipModel? Model { get; init; }

    /// <summary>Checks the sizes and ranges; the message names the property that is wrong.</summary>
    /// <exception cref="ArgumentException">A missing part, counts that differ, a label out of range, statistics of another model or task.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Candidate, nameof(Candidate));
        ArgumentNullException.ThrowIfNull(ClassTexts, nameof(ClassTexts));
        ArgumentNullException.ThrowIfNull(Images, nameof(Images));
        ArgumentNullException.ThrowIfNull(ImageIndices, nameof(ImageIndices));
        ArgumentNullException.ThrowIfNull(Selection, nameof(Selection));
        ArgumentNullException.ThrowIfNull(Embedding, nameof(Embedding));
        if (ClassTexts.Count < 2)
            throw new ArgumentException($"Selection work for '{Candidate.Name}': {ClassTexts.Count} class text embedding(s); at least 2 classes are needed.", nameof(ClassTexts));
        if (ImageIndices.Count != Images.Count)
            throw new ArgumentException($"Selection work for '{Candidate.Name}': {ImageIndices.Count} image indices for {Images.Count} images; give one index per image.", nameof(ImageIndices));
        for (int i = 0; i < ImageIndices.Count; i++)
            if (ImageIndices[i] < 0) throw new ArgumentException($"Selection work for '{Candidate.Name}': image index {ImageIndices[i]} at position {i} is negative.", nameof(ImageIndices));
        if (Labels is not null)
        {
            if (Labels.Count != Images.Count)
                throw new ArgumentException($"Selection work for '{Candidate.Name}': {Labels.Count} labels for {Images.Count} images; give one label per image (−1 for none) or no labels.", nameof(Labels));
            for (int i = 0; i < Labels.Count; i++)
                if (Labels[i] < -1 || Labels[i] >= ClassTexts.Count)
                    throw new ArgumentException($"Selection work for '{Candidate.Name}': label {Labels[i]} of image {i} is outside the {ClassTexts.Count} classes (−1 for none).", nameof(Labels));
        }
        if (Statistics is { } s)
        {
            if (s.ModelName != Candidate.Name)
                throw new ArgumentException($"Selection work for '{Candidate.Name}' carries the statistics of '{s.ModelName}'.", nameof(Statistics));
            if (s.ClassCount != ClassTexts.Count || s.Dimension != ClassTexts.Dimension)
                throw new ArgumentException($"Selection work for '{Candidate.Name}': the statistics have {s.ClassCount} classes × dimension {s.Dimension}, the class texts {ClassTexts.Count} × {ClassTexts.Dimension}.", nameof(Statistics));
        }
    }
}

/// <summary>What an <see cref="SelectionWorker"/> computed for one <see cref="SelectionWork"/>.</summary>
internal sealed record SelectionWorkResult
{
    /// <summary>The candidate's statistics with the work's readable images added (the work's own object when it gave one).</summary>
    public required SelectionStatistics Statistics { get; init; }

    /// <summary>Images embedded and added (readable ones).</summary>
    public required int ImagesEmbedded { get; init; }

    /// <summary>Of those, served by an embedding cache.</summary>
    public required int FromCache { get; init; }

    /// <summary>
    /// Correct zero-shot predictions (argmax cosine = label) among the embedded images, when the work has labels and every
    /// embedded image has one; otherwise null.
    /// </summary>
    public long? CorrectPredictions { get; init; }

    /// <summary>Images that could not be read, numbered by their index in the task (<see cref="SelectionWork.ImageIndices"/>).</summary>
    public IReadOnlyList<SkippedItem> Skipped { get; init; } = [];

    /// <summary>Wall time of the work.</summary>
    public TimeSpan Elapsed { get; init; }
}

/// <summary>
/// The default <see cref="SelectionWorker"/>: embeds in this process through <see cref="ImageEmbedder"/> (and the
/// embedding cache of <see cref="SelectionWork.Embedding"/>) and adds the rows to the statistics in one pass.
/// </summary>
internal sealed class LocalSelectionWorker : SelectionWorker
{
    private readonly Func<ClipModel, ImageSource, ImageEmbeddingOptions, CancellationToken, ImageEmbeddings>? _embed;

    /// <summary>A worker that embeds with <see cref="ImageEmbedder.Embed"/>.</summary>
    public LocalSelectionWorker() { }

    /// <summary>A worker that embeds through <paramref name="embedImages"/> (e.g. to show progress); null uses <see cref="ImageEmbedder.Embed"/>.</summary>
    public LocalSelectionWorker(Func<ClipModel, ImageSource, ImageEmbeddingOptions, CancellationToken, ImageEmbeddings>? embedImages) => _embed = embedImages;

    /// <inheritdoc />
    /// <remarks>Runs synchronously on the calling thread (the embedding engine uses its own threads).</remarks>
    internal override Task<SelectionWorkResult> ComputeAsync(SelectionWork work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        work.Validate();
        var model = work.Model;
        bool dispose = false;
        if (model is null)
        {
            model = work.Candidate.Load();
            dispose = work.Candidate.Owned;
        }
        try
        {
            return Task.FromResult(Compute(model, work, cancellationToken));
        }
        finally
        {
            if (dispose) model.Dispose();
        }
    }

    private SelectionWorkResult Compute(ClipModel model, SelectionWork work, CancellationToken ct)
    {
        long t0 = Stopwatch.GetTimestamp();
        if (model.EmbeddingDimension != work.ClassTexts.Dimension)
            throw new ArgumentException($"Model '{work.Candidate.Name}' embeds images in dimension {model.EmbeddingDimension} but the class texts have dimension {work.ClassTexts.Dimension}; they must come from the same model.");
        var embedded = _embed is { } embed ? embed(model, work.Images, work.Embedding, ct) : ImageEmbedder.Embed(model, work.Images, work.Embedding, ct);
        var statistics = work.Statistics ?? SelectionStatistics.Create(work.Candidate.Name, work.ClassTexts, work.Selection);
        int rows = embedded.Embeddings.Count;
        long? correct = null;
        if (rows > 0)
        {
            // Each row carries its image's index in the task, so the bootstrap pairs the same images across models and shards.
            var ids = new long[rows];
            for (int r = 0; r < rows; r++) ids[r] = work.ImageIndices[embedded.Items[r].Index];
            statistics.Add(embedded.Embeddings, ids);
            if (work.Labels is { } all)
            {
                var labels = new int[rows];
                bool complete = true;
                for (int r = 0; r < rows && complete; r++) complete = (labels[r] = all[embedded.Items[r].Index]) >= 0;
                if (complete) correct = SelectionEvaluation.CountCorrect(embedded.Embeddings, work.ClassTexts, labels);
            }
        }
        var skipped = new List<SkippedItem>(embedded.Skipped.Count);
        foreach (var s in embedded.Skipped)
            skipped.Add(s.Index is int i && i < work.ImageIndices.Count ? s with { Index = work.ImageIndices[i] } : s);
        return new SelectionWorkResult
        {
            Statistics = statistics,
            ImagesEmbedded = rows,
            FromCache = embedded.FromCache,
            CorrectPredictions = correct,
            Skipped = skipped,
            Elapsed = Stopwatch.GetElapsedTime(t0),
        };
    }
}
