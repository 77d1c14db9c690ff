using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Selection;

/// <summary>
/// Options of the budgeted search (successive halving, in the manner of AutoML): every candidate is scored on a small
/// random sample of the images, the weakest are dropped, and the sample grows for the rest. Each model's statistics
/// are merged from round to round, so no image is embedded twice by the same model. See docs/vega.md, "Budgeted search".
/// </summary>
public sealed record BudgetedSearchOptions
{
    /// <summary>
    /// Most image embeddings the whole search may compute, summed over candidates (a full ranking needs models × images);
    /// null: the sample grows from <see cref="MinimumSample"/> to every image for the last round.
    /// </summary>
    public long? ImageBudget { get; init; }

    /// <summary>
    /// Wall-time budget (like AutoML's <c>SetTrainingTimeInSeconds</c>): no trial starts after it has passed, and the
    /// choice is made from the last complete round. Null: no time limit.
    /// </summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>Images in the first round's sample (capped at the number of images). Default 256.</summary>
    public int MinimumSample { get; init; } = 256;

    /// <summary>Fraction of the remaining candidates dropped after each round, in (0, 1). Default 0.5 (successive halving).</summary>
    public double EliminationRate { get; init; } = 0.5;

    /// <summary>Seed of the random image order the samples are drawn from. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Receives every trial as it starts, completes or fails, and each new best trial (may be null).</summary>
    public ISelectionMonitor? Monitor { get; init; }

    internal void Validate()
    {
        if (ImageBudget is < 1)
            throw new ArgumentOutOfRangeException(nameof(ImageBudget), ImageBudget, "The image budget must be at least 1 image embedding (or null for no limit).");
        if (TimeBudget is { } t && t <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(TimeBudget), TimeBudget, "The time budget must be positive (or null for no limit).");
        if (MinimumSample < 1)
            throw new ArgumentOutOfRangeException(nameof(MinimumSample), MinimumSample, "The minimum sample must be at least 1 image (default 256).");
        if (!(EliminationRate > 0 && EliminationRate < 1))
            throw new ArgumentOutOfRangeException(nameof(EliminationRate), EliminationRate, "The elimination rate must lie strictly between 0 and 1 (default 0.5).");
    }
}

/// <summary>What a trial of the budgeted search is about to do (AutoML's <c>TrialSettings</c>).</summary>
/// <param name="TrialId">0-based, in the order trials start.</param>
/// <param name="ModelName">The candidate.</param>
/// <param name="Round">0-based round of successive halving.</param>
/// <param name="SampleSize">Images the candidate is scored on after this trial (its sample so far).</param>
public sealed record SelectionTrialSettings(int TrialId, string ModelName, int Round, int SampleSize);

/// <summary>How a trial ended.</summary>
public enum SelectionTrialStatus
{
    /// <summary>The candidate was scored.</summary>
    Completed,

    /// <summary>The candidate could not be loaded, embedded or scored; it leaves the search.</summary>
    Failed,
}

/// <summary>One trial of the budgeted search: a candidate scored on a sample (AutoML's <c>TrialResult</c>).</summary>
public sealed record SelectionTrial
{
    /// <summary>What the trial did.</summary>
    public required SelectionTrialSettings Settings { get; init; }

    /// <summary>Completed or failed.</summary>
    public required SelectionTrialStatus Status { get; init; }

    /// <summary>The ranking metric's value on the sample; NaN for a failed trial.</summary>
    public required double Metric { get; init; }

    /// <summary>The metric's bootstrap interval on the sample; null when failed or without bootstrap.</summary>
    public ScoreInterval? Interval { get; init; }

    /// <summary>Wall time of the trial (embedding the new images and scoring), in milliseconds.</summary>
    public required double DurationInMilliseconds { get; init; }

    /// <summary>Images embedded by this trial (new to this candidate; cached ones included).</summary>
    public required int ImagesEmbedded { get; init; }

    /// <summary>Whether the candidate was dropped after this trial's round.</summary>
    public bool Eliminated { get; init; }

    /// <summary>The error of a failed trial.</summary>
    public string? Error { get; init; }
}

/// <summary>
/// Receives the trials of a budgeted search, with the callbacks of AutoML's <c>IMonitor</c>. Called on the thread that
/// runs the search; an exception thrown by a callback ends the search.
/// </summary>
public interface ISelectionMonitor
{
    /// <summary>A trial starts.</summary>
    void ReportRunningTrial(SelectionTrialSettings settings);

    /// <summary>A trial completed.</summary>
    void ReportCompletedTrial(SelectionTrial result);

    /// <summary>A completed trial leads its round (called when the leader changes).</summary>
    void ReportBestTrial(SelectionTrial result);

    /// <summary>A trial failed; the candidate leaves the search, which goes on.</summary>
    void ReportFailTrial(SelectionTrialSettings settings, Exception exception);
}

/// <summary>A candidate model of a selection: its name and how to load it (loaded on first use, so a load failure is a failed trial).</summary>
internal sealed class ModelCandidate
{
    private readonly Func<ClipModel> _load;

    private ModelCandidate(string name, Func<ClipModel> load, bool owned, string? path)
    {
        Name = name;
        _load = load;
        Owned = owned;
        Path = path;
    }

    /// <summary>The candidate's name in trials and rankings.</summary>
    public string Name { get; }

    /// <summary>
    /// The full path of the model package (folder or clip.json) for a candidate made by <see cref="FromPath(string, ClipModelOptions, string?)"/>; null for
    /// an already loaded model. Workers in other processes (<see cref="SelectionWorker"/>) load the model from it.
    /// </summary>
    public string? Path { get; }

    /// <summary>Whether the selection disposes the model it loads.</summary>
    internal bool Owned { get; }

    internal ClipModel Load() => _load();

    /// <summary>A model package folder (or clip.json file), loaded on first use and disposed at the end; named <paramref name="name"/> or after the folder.</summary>
    public static ModelCandidate FromPath(string path, string? name = null) => FromPath(path, new ClipModelOptions(), name);

    /// <summary>A model package folder (or clip.json file) loaded with <paramref name="options"/> (GPU, threads, …) on first
    /// use and disposed at the end; named <paramref name="name"/> or after the folder.</summary>
    public static ModelCandidate FromPath(string path, ClipModelOptions options, string? name = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(options);
        string full = System.IO.Path.GetFullPath(path);
        string dir = File.Exists(full) ? System.IO.Path.GetDirectoryName(full)! : full;
        string n = name ?? new DirectoryInfo(dir).Name;
        return new ModelCandidate(n, () => ClipModel.Load(path, options with { Name = n }), owned: true, full);
    }

    /// <summary>An already loaded model (not disposed by the selection).</summary>
    public static ModelCandidate FromModel(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ModelCandidate(model.Name, () => model, owned: false, path: null);
    }
}

/// <summary>Successive halving over candidate models with merged per-model statistics.</summary>
internal static class SuccessiveHalving
{
    /// <summary>The sample size of every round, for <paramref name="models"/> candidates and <paramref name="images"/> images.</summary>
    internal static int[] Schedule(int models, int images, BudgetedSearchOptions o)
    {
        var alive = new List<int> { models };
        while (alive[^1] > 1) alive.Add(Keep(alive[^1], o.EliminationRate));
        int rounds = Math.Max(1, alive.Count - 1);
        double growth = 1 / (1 - o.EliminationRate);
        int n0 = Math.Min(images, o.MinimumSample);
        int[] Sizes(double first, double g)
        {
            var s = new int[rounds];
            for (int r = 0; r < rounds; r++) s[r] = (int)Math.Clamp(Math.Round(first * Math.Pow(g, r)), 1, images);
            for (int r = 1; r < rounds; r++) s[r] = Math.Max(s[r], s[r - 1]);
            return s;
        }
        if (o.ImageBudget is not long budget)
        {
            // The last round sees every image; the sizes grow geometrically from the minimum sample.
            double g = rounds > 1 ? Math.Pow((double)images / n0, 1.0 / (rounds - 1)) : 1;
            var s = Sizes(n0, Math.Max(1, g));
            s[^1] = images;
            return s;
        }
        // With a budget: the largest first sample whose schedule (growth 1/(1 − rate)) fits it.
        long Work(int[] s)
        {
            long w = 0;
            for (int r = 0; r < s.Length; r++) w += (long)alive[r] * (s[r] - (r > 0 ? s[r - 1] : 0));
            return w;
        }
        int lo = n0, hi = images;
        if (Work(Sizes(lo, growth)) > budget) return Sizes(lo, growth);
        while (lo < hi)
        {
            int mid = lo + (hi - lo + 1) / 2;
            if (Work(Sizes(mid, growth)) <= budget) lo = mid; else hi = mid - 1;
        }
        return Sizes(lo, growth);
    }

    /// <summary>Candidates kept after a round of <paramref name="alive"/>: at least one dropped, at least one kept.</summary>
    internal static int Keep(int alive, double rate) => alive <= 1 ? alive : Math.Max(1, alive - Math.Max(1, (int)Math.Floor(alive * rate)));

    private sealed class State(ModelCandidate candidate, int index)
    {
        public ModelCandidate Candidate = candidate;
        public int Index = index;
        public ClipModel? Model;
        public EmbeddingMatrix? Texts;
        public SelectionStatistics? Stats;
        public ModelScores? Last;
        public readonly Dictionary<int, ModelScores> ByRound = [];
        public int Embedded, FromCache, Sample, Round = -1;
        public long Correct;
        public TimeSpan EmbeddingTime;
        public bool Failed;
    }

    public static VlmSelectionResult Run(IReadOnlyList<ModelCandidate> candidates, ImageSource images, IReadOnlyList<string> classNames,
        VlmSelectionOptions options, BudgetedSearchOptions search, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var selection = options.Selection;
        var metric = selection.Metric;
        var monitor = search.Monitor;
        int n = images.Count;
        var classIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < classNames.Count; c++) classIndex[classNames[c]] = c;
        var worker = options.ResolveWorker();
        var order = Enumerable.Range(0, n).ToArray();
        new Random(search.Seed).Shuffle(order);
        var schedule = Schedule(candidates.Count, n, search);
        var states = candidates.Select((c, i) => new State(c, i)).ToList();
        var trials = new List<SelectionTrial>();
        var warnings = new List<string>();
        var skipped = new Dictionary<int, SkippedItem>();
        var alive = states.ToList();
        int lastComplete = -1, finalRound = -1;
        List<State>? finalists = null;
        try
        {
            for (int round = 0; round < schedule.Length && alive.Count > 0; round++)
            {
                int target = schedule[round];
                var roundScores = new List<(State State, SelectionTrial Trial)>();
                SelectionTrial? leader = null;
                bool timedOut = false;
                foreach (var st in alive)
                {
                    ct.ThrowIfCancellationRequested();
                    if (search.TimeBudget is { } budget && clock.Elapsed >= budget)
                    {
                        timedOut = true;
                        break;
                    }
                    var settings = new SelectionTrialSettings(trials.Count, st.Candidate.Name, round, target);
                    monitor?.ReportRunningTrial(settings);
                    long t0 = Stopwatch.GetTimestamp();
                    int newImages = 0;
                    try
                    {
                        newImages = Advance(st, images, order, target, classNames, classIndex, options, worker, skipped, ct);
                        var scores = ModelSelector.Finish(st.Stats!.Accumulator, TimeSpan.Zero);
                        var single = Bootstrap.Apply([scores], metric, selection.Bootstrap)[0];
                        st.Last = single;
                        st.ByRound[round] = single;
                        st.Round = round;
                        var trial = new SelectionTrial
                        {
                            Settings = settings,
                            Status = SelectionTrialStatus.Completed,
                            Metric = single.Metric(metric),
                            Interval = single.Interval(metric),
                            DurationInMilliseconds = Stopwatch.GetElapsedTime(t0).TotalMilliseconds,
                            ImagesEmbedded = newImages,
                        };
                        trials.Add(trial);
                        roundScores.Add((st, trial));
                        monitor?.ReportCompletedTrial(trial);
                        if (leader is null || Better(trial, st, leader, roundScores))
                        {
                            leader = trial;
                            monitor?.ReportBestTrial(trial);
                        }
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        st.Failed = true;
                        var trial = new SelectionTrial
                        {
                            Settings = settings,
                            Status = SelectionTrialStatus.Failed,
                            Metric = double.NaN,
                            DurationInMilliseconds = Stopwatch.GetElapsedTime(t0).TotalMilliseconds,
                            ImagesEmbedded = newImages,
                            Error = e.Message,
                        };
                        trials.Add(trial);
                        monitor?.ReportFailTrial(settings, e);
                    }
                }
                if (timedOut)
                {
                    warnings.Add($"The time budget of {search.TimeBudget!.Value.TotalSeconds:F0} s ran out in round {round}; the choice is made from {(roundScores.Count == alive.Count(s => !s.Failed) && roundScores.Count > 0 ? $"round {round}" : lastComplete >= 0 ? $"round {lastComplete}, the last complete one" : $"the {roundScores.Count} candidate(s) scored in round 0")}.");
                    if (lastComplete < 0 && roundScores.Count > 0)
                    {
                        finalists = roundScores.Select(x => x.State).ToList();
                        finalRound = round;
                    }
                    break;
                }
                var scored = roundScores.Select(x => x.State).ToList();
                if (scored.Count == 0) { alive = []; break; }
                lastComplete = finalRound = round;
                finalists = scored;
                if (round == schedule.Length - 1) break;
                // Drop the weakest: keep the best under the metric (ties by name, then input order).
                var ranked = ModelSelector.Order(scored.Select(s => s.Last!).ToList(), metric);
                int keep = Keep(scored.Count, search.EliminationRate);
                var kept = new HashSet<string>(ranked.Take(keep).Select(m => m.ModelName), StringComparer.Ordinal);
                for (int i = 0; i < trials.Count; i++)
                    if (trials[i].Settings.Round == round && trials[i].Status == SelectionTrialStatus.Completed && !kept.Contains(trials[i].Settings.ModelName))
                        trials[i] = trials[i] with { Eliminated = true };
                alive = scored.Where(s => kept.Contains(s.Candidate.Name)).ToList();
            }

            var errors = trials.Where(t => t.Status == SelectionTrialStatus.Failed).Select(t => $"{t.Settings.ModelName}: {t.Error}").ToList();
            if (finalists is null || finalists.Count == 0)
                throw new ArgumentException(errors.Count > 0
                    ? $"No candidate could be scored: {string.Join("; ", errors)}"
                    : "The budgeted search ran out of time before any candidate was scored; raise the time budget.");
            foreach (var e in errors) warnings.Add($"Failed trial, candidate left out: {e}.");

            // The finalists are ranked on their common sample (paired bootstrap); the others follow by the round they left in.
            var head = ModelSelector.Rank(finalists.Select(s => s.ByRound[finalRound]).ToList(), selection, [], TimeSpan.Zero).Models;
            var finalNames = new HashSet<string>(finalists.Select(s => s.Candidate.Name), StringComparer.Ordinal);
            var tail = states.Where(s => s.Last is not null && !finalNames.Contains(s.Candidate.Name))
                .OrderByDescending(s => s.Round)
                .ThenBy(s => s, Comparer<State>.Create((a, b) => ModelSelector.Compare(a.Last!, a.Index, b.Last!, b.Index, metric)))
                .Select(s => s.Last!).ToList();
            var models = head.Concat(tail).Select((m, i) => m with { Rank = i + 1 }).ToList();
            long work = states.Sum(s => (long)s.Embedded), full = (long)n * candidates.Count;
            warnings.Insert(0, $"Budgeted search: {schedule.Length} round(s) with samples of {string.Join(", ", schedule)} images; {work} image embeddings = {100.0 * work / full:F1} % of a full ranking ({full}). Eliminated models are ranked by the round they left in, on their last sample.");
            var ranking = new RankingResult
            {
                Metric = metric,
                Models = models,
                Warnings = warnings,
                Options = selection,
                TotalTime = TimeSpan.FromTicks(models.Sum(m => m.ScoringTime.Ticks)),
                Trials = trials,
            };
            bool labelled = Labelled(images);
            var runs = states.Select(s => new CandidateRun(s.Candidate.Name, s.Embedded, s.FromCache, s.EmbeddingTime,
                labelled && s.Stats is { ImageCount: > 0 } st ? (double)s.Correct / st.ImageCount : null)).ToList();
            return new VlmSelectionResult(ranking, null, runs, [.. skipped.Values.OrderBy(x => x.Index)], classNames, clock.Elapsed);
        }
        finally
        {
            foreach (var s in states)
                if (s.Candidate.Owned) s.Model?.Dispose();
        }
    }

    private static bool Labelled(ImageSource images) => images.Items.All(i => i.Label is not null);

    // Whether `trial` (of `st`) leads the round's trials so far, with the ranking's order (ties by name, then input order).
    private static bool Better(SelectionTrial trial, State st, SelectionTrial leader, List<(State State, SelectionTrial Trial)> round)
    {
        var other = round.First(x => ReferenceEquals(x.Trial, leader)).State;
        return ModelSelector.Compare(st.Last!, st.Index, other.Last!, other.Index, st.Stats!.Options.Metric) < 0;
    }

    // Loads the candidate on first use, has the worker embed the images order[st.Sample..target) and add them to its statistics.
    private static int Advance(State st, ImageSource images, int[] order, int target, IReadOnlyList<string> classNames, Dictionary<string, int> classIndex,
        VlmSelectionOptions options, SelectionWorker worker, Dictionary<int, SkippedItem> skipped, CancellationToken ct)
    {
        long t0 = Stopwatch.GetTimestamp();
        st.Model ??= st.Candidate.Load();
        if (st.Texts is null)
        {
            options.OnModelStarting?.Invoke(st.Index, st.Model);
            st.Texts = st.Model.EmbedClassNames(classNames, options.Templates, options.Text, ct);
            st.Stats = SelectionStatistics.Create(st.Candidate.Name, st.Texts, options.Selection);
        }
        int from = st.Sample;
        if (target <= from) return 0;
        var indices = order[from..target];
        var subset = images.Subset(indices);
        var work = new SelectionWork
        {
            Candidate = st.Candidate,
            ClassTexts = st.Texts,
            Images = subset,
            ImageIndices = indices,
            Labels = Labels(subset.Items, classIndex),
            Selection = options.Selection,
            Embedding = options.Images,
            Statistics = st.Stats,
            Model = st.Model,
        };
        var done = worker.ComputeAsync(work, ct).GetAwaiter().GetResult();
        st.Stats = done.Statistics;
        st.EmbeddingTime += Stopwatch.GetElapsedTime(t0);
        foreach (var s in done.Skipped)
            if (s.Index is int i) skipped.TryAdd(i, s);
        if (done.ImagesEmbedded > 0)
        {
            if (done.CorrectPredictions is long correct) st.Correct += correct;
        }
        else if (st.Stats.ImageCount == 0)
            throw new ArgumentException($"No image of the sample could be read ({done.Skipped.Count} skipped; first: {done.Skipped.FirstOrDefault()?.Reason}).");
        st.Embedded += done.ImagesEmbedded;
        st.FromCache += done.FromCache;
        st.Sample = target;
        return done.ImagesEmbedded;
    }

    private static int[]? Labels(IReadOnlyList<ImageItem> items, Dictionary<string, int> classIndex)
    {
        var labels = new int[items.Count];
        for (int i = 0; i < items.Count; i++)
            if (items[i].Label is not { } label || !classIndex.TryGetValue(label, out labels[i])) return null;
        return labels;
    }
}
