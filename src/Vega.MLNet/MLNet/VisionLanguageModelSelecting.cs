using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Reporting;
using Vega.MLNet.Selection;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>One candidate of a model selection, best first in <see cref="VisionLanguageModelSelectingTransformer.Ranking"/>.</summary>
/// <param name="Model">The candidate's path, as given in the candidate list.</param>
/// <param name="Name">The candidate's name (its folder name, or the manifest's name).</param>
/// <param name="Rank">1 for the chosen model.</param>
/// <param name="Score">The ranking metric's value (higher is better); NaN for a candidate that failed.</param>
/// <param name="Interval">The bootstrap interval of <paramref name="Score"/>, when computed.</param>
/// <param name="ProbabilityBest">The bootstrap probability that this candidate is really the best, when computed.</param>
/// <param name="Scores">Every label-free score of the candidate (vega, vega-node, vega-edge, dispersity, msp, …), or null
/// when it failed or was eliminated early by the budgeted search.</param>
public sealed record RankedModel(string Model, string Name, int Rank, double Score, ScoreInterval? Interval, double? ProbabilityBest, ModelScores? Scores);

/// <summary>
/// AutoML-style model selection without labels: <c>Fit</c> ranks candidate CLIP models on the (unlabeled) images of the
/// data by a label-free predictor of their zero-shot accuracy and returns the chosen model's zero-shot transformer
/// (image embedding, Score, PredictedLabel). Created by
/// <see cref="VegaCatalog.SelectVisionLanguageModel(TransformsCatalog, IReadOnlyList{string}, IReadOnlyList{string}, string, int?, bool)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | Yes (it embeds the images with every candidate, or a budgeted sample of them) |
/// | Input column data type | String (an image file path), Vector of Byte (encoded image) or Image (MLImage) |
/// | Output column data type | the chosen model's image embedding (known-sized vector of Single), `Score` (vector of Single) and `PredictedLabel` (key over the class names) |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save, see docs/mlnet.md) |
/// ]]></format>
/// <para>The default metric is the one measured best on the project's model zoos (docs/vega.md); VEGA and the other
/// label-free baselines are computed too and reported per candidate. A path column supports every option, including the
/// budgeted search (successive halving) and the crash-safe embedding cache, so fitting again over the same images embeds
/// nothing; an encoded-bytes or MLImage column streams the data once per candidate.</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class VisionLanguageModelSelectingEstimator : IEstimator<VisionLanguageModelSelectingTransformer>
{
    /// <summary>Options of <see cref="VisionLanguageModelSelectingEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The candidate models: folders or clip.json files.</summary>
        public IReadOnlyList<string> CandidateModelPaths = [];

        /// <summary>The class names (at least 2, distinct), in key order.</summary>
        public IReadOnlyList<string> ClassNames = [];

        /// <summary>The image column: a file path (String), encoded bytes (Vector of Byte) or an MLImage.</summary>
        public string ImageColumnName = VegaColumnNames.ImagePath;

        /// <summary>Folder that relative paths are resolved against (null: the current directory).</summary>
        public string? ImageFolder;

        /// <summary>The image embedding column the chosen model's transformer adds.</summary>
        public string ImageEmbeddingColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The class probability column the chosen model's transformer adds.</summary>
        public string ScoreColumnName = VegaColumnNames.Score;

        /// <summary>The predicted class column the chosen model's transformer adds.</summary>
        public string PredictedLabelColumnName = VegaColumnNames.PredictedLabel;

        /// <summary>Prompt templates with "{}" for the class name (default "a photo of a {}.").</summary>
        public IReadOnlyList<string>? Templates;

        /// <summary>The metric that ranks the candidates (default: the evidence-based default of docs/vega.md).</summary>
        public SelectionMetric Metric = new SelectionOptions().Metric;

        /// <summary>VEGA's settings (<see cref="VegaOptions.Paper"/> is the published definition).</summary>
        public VegaOptions Vega = new();

        /// <summary>The bootstrap of the scores' intervals and of P(best).</summary>
        public BootstrapOptions Bootstrap = new();

        /// <summary>Temperature of the softmax of the label-free baselines.</summary>
        public double BaselineTemperature = new SelectionOptions().BaselineTemperature;

        /// <summary>Successive halving over the candidates with an image or time budget (null: every candidate embeds
        /// every image). Needs a path column.</summary>
        public BudgetedSearchOptions? BudgetedSearch;

        /// <summary>A folder for the crash-safe embedding cache (null: no cache); fitting again embeds nothing.</summary>
        public string? CacheDirectory;

        /// <summary>
        /// Where the candidates embed the images: null runs the work in this process; an
        /// <see cref="SelectionWorker"/> runs it elsewhere — e.g. Vega.MLNet.Orleans's <c>OrleansSelectionWorker</c> over a
        /// cluster of silos (docs/scale-out.md), with the same ranking as this process to 1e-9. Needs a path column whose
        /// paths (and the candidate model paths) every worker can read. The class texts are embedded here.
        /// </summary>
        public SelectionWorker? Worker;

        /// <summary>Images per ONNX Runtime run.</summary>
        public int BatchSize = ImageEmbeddingEstimator.Defaults.BatchSize;

        /// <summary>Threads that decode and preprocess images (0: one per core).</summary>
        public int DecodeThreads;

        /// <summary>ONNX Runtime threads inside one operator (0: one per core).</summary>
        public int IntraOpThreads;

        /// <summary>Rotate images by their EXIF orientation (the reference CLIP preprocessing does not).</summary>
        public bool ApplyExifOrientation;

        /// <summary>The CUDA device to run on, or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>Progress of each candidate's embedding (path columns).</summary>
        public IProgress<EmbeddingProgress>? Progress;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;

        internal SelectionOptions Selection => new() { Metric = Metric, Vega = Vega, Bootstrap = Bootstrap, BaselineTemperature = BaselineTemperature };

        internal ClipModelOptions ModelOptions => MLNetModels.ModelOptions(GpuDeviceId, FallbackToCpu, IntraOpThreads, CacheDirectory, Warning);
    }

    private readonly Options _options;

    internal VisionLanguageModelSelectingEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.CandidateModelPaths, nameof(options.CandidateModelPaths));
        ArgumentNullException.ThrowIfNull(options.ClassNames, nameof(options.ClassNames));
        if (options.CandidateModelPaths.Count == 0) throw new ArgumentOutOfRangeException(nameof(options), "CandidateModelPaths is empty; give at least one model.");
        foreach (var p in options.CandidateModelPaths)
            if (string.IsNullOrWhiteSpace(p)) throw new ArgumentOutOfRangeException(nameof(options), "CandidateModelPaths contains an empty path.");
        try { PromptTemplates.ValidateClassNames(options.ClassNames); }
        catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        if (options.ClassNames.Count < 2) throw new ArgumentOutOfRangeException(nameof(options), "Model selection needs at least two classes.");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        _options = options;
    }

    /// <summary>Ranks the candidates on the rows' images and returns the chosen model's zero-shot transformer.</summary>
    public VisionLanguageModelSelectingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = SchemaChecks.Find(input.Schema, _options.ImageColumnName);
        var kind = SchemaChecks.ImageInput(column, "input");
        var names = UniqueNames(_options.CandidateModelPaths);
        VlmSelectionResult result;
        if (kind == ImageInputKind.Path) result = RankPaths(input, column, names);
        else
        {
            string holds = kind == ImageInputKind.Bytes ? "encoded bytes" : "MLImages";
            if (_options.BudgetedSearch is not null)
                throw new ArgumentOutOfRangeException(nameof(input),
                    $"The budgeted search samples images by path; column '{column.Name}' holds {holds}. Give a path column, or set BudgetedSearch to null.");
            if (_options.Worker is not null)
                throw new ArgumentOutOfRangeException(nameof(input),
                    $"A selection worker reads the images by path; column '{column.Name}' holds {holds}. Give a path column, or set Worker to null.");
            result = RankStreamed(input, column, names);
        }
        int chosen = Array.IndexOf(names, result.ChosenModel);
        return VisionLanguageModelSelectingTransformer.Create(_options, _options.CandidateModelPaths[chosen], result, names, input.Schema);
    }

    /// <summary>The input shape plus the image embedding, Score and PredictedLabel columns; checks the image column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaChecks.ImageInput(SchemaChecks.Find(inputSchema, _options.ImageColumnName), "input");
        // The embedding width is known only once a model is chosen: the column is declared as a vector of Single.
        return SchemaShapes.With(inputSchema,
        [
            new AddedColumn(_options.ImageEmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, 1)),
            .. ZeroShotTransformer.Columns(_options.ClassNames, _options.ScoreColumnName, _options.PredictedLabelColumnName),
        ]);
    }

    /// <summary>Display names for the candidates: folder names, or the paths themselves where folder names repeat.</summary>
    internal static string[] UniqueNames(IReadOnlyList<string> paths)
    {
        string Folder(string p)
        {
            string full = Path.GetFullPath(p);
            return new DirectoryInfo(File.Exists(full) ? Path.GetDirectoryName(full)! : full).Name;
        }
        var folders = paths.Select(Folder).ToArray();
        return [.. folders.Select((f, i) => folders.Count(x => x == f) > 1 ? paths[i] : f)];
    }

    private VlmSelectionResult RankPaths(IDataView input, DataViewSchema.Column column, string[] names)
    {
        var paths = new List<string>();
        using (var cursor = input.GetRowCursor([column]))
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            while (cursor.MoveNext())
            {
                getter(ref value);
                string p = value.ToString();
                paths.Add(_options.ImageFolder is { } folder && !Path.IsPathRooted(p) ? Path.Combine(folder, p) : p);
            }
        }
        var source = ImageSource.FromPaths(paths);
        source.DecodeOptions = new DecodeOptions { ApplyExifOrientation = _options.ApplyExifOrientation };
        var candidates = _options.CandidateModelPaths.Select((p, i) => ModelCandidate.FromPath(p, _options.ModelOptions, names[i])).ToArray();
        var options = new VlmSelectionOptions
        {
            Templates = _options.Templates is null ? PromptTemplates.Default : PromptTemplates.Create(_options.Templates),
            Selection = _options.Selection,
            Images = new ImageEmbeddingOptions
            {
                BatchSize = _options.BatchSize,
                DecodeThreads = _options.DecodeThreads,
                CacheDirectory = _options.CacheDirectory,
                Progress = _options.Progress,
            },
            BudgetedSearch = _options.BudgetedSearch,
            Worker = _options.Worker,
        };
        return VisionLanguageModelSelection.SelectVisionLanguageModel(candidates, source, _options.ClassNames, options);
    }

    private VlmSelectionResult RankStreamed(IDataView input, DataViewSchema.Column column, string[] names)
    {
        var scores = new List<ModelScores>();
        var runs = new List<CandidateRun>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < names.Length; i++)
        {
            var started = clock.Elapsed;
            using var embed = new ImageEmbeddingTransformer(new ImageEmbeddingEstimator.Options
            {
                ModelPath = _options.CandidateModelPaths[i], InputColumnName = column.Name, OutputColumnName = "__VegaSelectionEmbedding",
                GpuDeviceId = _options.GpuDeviceId, FallbackToCpu = _options.FallbackToCpu, BatchSize = _options.BatchSize,
                DecodeThreads = _options.DecodeThreads, IntraOpThreads = _options.IntraOpThreads, CacheDirectory = _options.CacheDirectory,
                ApplyExifOrientation = _options.ApplyExifOrientation, OnError = EmbeddingErrorHandling.MissingValue, Warning = _options.Warning,
            });
            var texts = embed.Model.EmbedClassNames(_options.ClassNames, _options.Templates is null ? null : PromptTemplates.Create(_options.Templates));
            var stats = SelectionStatistics.Create(names[i], texts, _options.Selection);
            var embedded = embed.Transform(input);
            long skipped = VegaAlignmentEstimator.Stream(embedded, embedded.Schema["__VegaSelectionEmbedding"], texts.Dimension, 4096, stats);
            if (stats.ImageCount == 0) throw new InvalidOperationException($"No image of column '{column.Name}' could be embedded by '{names[i]}' ({skipped} rows were unreadable).");
            scores.Add(stats.Score() with { ModelName = names[i] });
            runs.Add(new CandidateRun(names[i], (int)stats.ImageCount, 0, clock.Elapsed - started, null));
        }
        var ranking = ModelSelector.RankScores(scores, _options.Selection);
        return new VlmSelectionResult(ranking, null, runs, [], [.. _options.ClassNames], clock.Elapsed);
    }
}

/// <summary>
/// The result of a model selection (see <see cref="VisionLanguageModelSelectingEstimator"/>): the ranking, and the chosen
/// model's zero-shot transform (image embedding, Score, PredictedLabel). Owns the chosen model's ONNX Runtime sessions:
/// dispose it when done.
/// </summary>
public sealed class VisionLanguageModelSelectingTransformer : ITransformer, IDisposable
{
    private readonly ImageEmbeddingTransformer _embed;
    private readonly ZeroShotTransformer _zeroShot;
    private readonly TransformerChain<ITransformer> _chain;

    private VisionLanguageModelSelectingTransformer(string chosen, VlmSelectionResult result, IReadOnlyList<RankedModel> ranking,
        ImageEmbeddingTransformer embed, ZeroShotTransformer zeroShot)
    {
        ChosenModel = chosen;
        Result = result;
        Ranking = ranking;
        _embed = embed;
        _zeroShot = zeroShot;
        _chain = new TransformerChain<ITransformer>(embed, zeroShot);
    }

    internal static VisionLanguageModelSelectingTransformer Create(VisionLanguageModelSelectingEstimator.Options o, string chosenPath, VlmSelectionResult result,
        string[] names, DataViewSchema inputSchema)
    {
        var metric = result.Ranking.Metric;
        var ranking = result.Ranking.Models.Select(m =>
        {
            int i = Array.IndexOf(names, m.ModelName);
            return new RankedModel(o.CandidateModelPaths[i], m.ModelName, m.Rank, m.Metric(metric), m.Interval(metric), m.TopProbability, m);
        }).ToArray();
        var embed = new ImageEmbeddingTransformer(new ImageEmbeddingEstimator.Options
        {
            ModelPath = chosenPath, InputColumnName = o.ImageColumnName, OutputColumnName = o.ImageEmbeddingColumnName, ImageFolder = o.ImageFolder,
            GpuDeviceId = o.GpuDeviceId, FallbackToCpu = o.FallbackToCpu, BatchSize = o.BatchSize, DecodeThreads = o.DecodeThreads,
            IntraOpThreads = o.IntraOpThreads, CacheDirectory = o.CacheDirectory, ApplyExifOrientation = o.ApplyExifOrientation, Warning = o.Warning,
        });
        try
        {
            var zeroShot = ZeroShotTransformer.Create(embed.Model, o.ClassNames, o.Templates, null, o.ImageEmbeddingColumnName, o.ScoreColumnName, o.PredictedLabelColumnName);
            var t = new VisionLanguageModelSelectingTransformer(chosenPath, result, ranking, embed, zeroShot);
            t.GetOutputSchema(inputSchema);
            return t;
        }
        catch
        {
            embed.Dispose();
            throw;
        }
    }

    /// <summary>The chosen model: its path as given in the candidate list.</summary>
    public string ChosenModel { get; }

    /// <summary>The candidates, best first (<c>Ranking[0].Model == ChosenModel</c>).</summary>
    public IReadOnlyList<RankedModel> Ranking { get; }

    /// <summary>Whether the bootstrap intervals of the two best candidates overlap (the choice is uncertain).</summary>
    public bool TooCloseToCall => Result.Ranking.TooCloseToCall;

    /// <summary>The full result: ranking with every metric, per-candidate runs, trials of the budgeted search, skipped images.</summary>
    public VlmSelectionResult Result { get; }

    /// <summary>The chosen model's image embedding transform.</summary>
    public ImageEmbeddingTransformer ImageEmbedding => _embed;

    /// <summary>The chosen model's zero-shot classifier.</summary>
    public ZeroShotTransformer ZeroShot => _zeroShot;

    /// <summary>Always true.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The input schema plus the chosen model's image embedding, Score and PredictedLabel.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _chain.GetOutputSchema(inputSchema);

    /// <summary>A row-to-row mapper (PredictionEngine uses it).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => ((ITransformer)_chain).GetRowToRowMapper(inputSchema);

    /// <summary>A lazy view classified by the chosen model.</summary>
    public IDataView Transform(IDataView input) => _chain.Transform(input);

    /// <summary>Saves the chosen model's zero-shot transform (the ranking is not part of the saved model; keep
    /// <see cref="Ranking"/> yourself, e.g. with <see cref="SaveReport"/> and <see cref="SaveJson"/>).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => SavedChains.ZeroShotPipeline(_embed, _zeroShot).Save(ctx);

    /// <summary>
    /// Writes the ranking as a self-contained HTML report (no scripts, no network; docs/report.md): the candidates with
    /// their scores, intervals and P(best), every label-free metric, VEGA's per-class diagnostics, warnings and the
    /// budgeted search's trials.
    /// </summary>
    /// <param name="htmlPath">The file to write (its folder must exist).</param>
    /// <param name="taskName">A name for the images, shown in the report's title (null: none).</param>
    /// <example><code>selection.SaveReport("ranking.html", taskName: "holiday photos");</code></example>
    public void SaveReport(string htmlPath, string? taskName = null) =>
        HtmlReport.Write(htmlPath, Result.Ranking, Result.Evaluation, new ReportOptions { TaskName = taskName, ClassNames = Result.ClassNames });

    /// <summary>Writes the ranking as JSON (the versioned schema of docs/report.md), for other tools.</summary>
    /// <param name="jsonPath">The file to write (its folder must exist).</param>
    /// <param name="includeEdgeMatrices">Include VEGA's C×C textual and visual edge matrices per candidate.</param>
    public void SaveJson(string jsonPath, bool includeEdgeMatrices = false) =>
        JsonReport.Write(jsonPath, Result.Ranking, Result.Evaluation, includeEdgeMatrices);

    /// <summary>Releases the chosen model (idempotent).</summary>
    public void Dispose() => _embed.Dispose();
}
