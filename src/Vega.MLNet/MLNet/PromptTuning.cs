using System.Globalization;
using Microsoft.ML;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>Progress of one epoch of <see cref="PromptTuningEstimator"/>.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Loss">Mean training loss of the epoch (the partial-label objective, plus the alignment term when on).</param>
/// <param name="LearningRate">The epoch's learning rate.</param>
/// <param name="ValidationAccuracy">Accuracy on <see cref="PromptTuningEstimator.Options.ValidationData"/> after the
/// epoch, or null when no validation data was given.</param>
public sealed record PromptTuningProgress(int Epoch, int Epochs, double Loss, double LearningRate, double? ValidationAccuracy);

/// <summary>
/// Prompt learning with candidate labels over IDataView columns: each training row has an image embedding and a set of
/// candidate classes that contains its (unknown) true class. <c>Fit</c> adapts the frozen CLIP model with CoOp (learnt
/// context vectors in the text tower's token-embedding space) or a linear probe on the embeddings, trained with a
/// partial-label objective and, optionally, aligned to the handcrafted prompt's candidate-restricted posterior
/// (docs/partial-labels.md). The transformer scores like <see cref="ZeroShotTransformer"/>: Score and PredictedLabel.
/// Created by <see cref="VegaCatalog.PromptTuning(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, IReadOnlyList{string}, string, string, PromptTuningEstimator.Options)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | Yes |
/// | Input column data type | Features: known-sized vector of Single (the image embeddings of the same model). Candidate labels: `Vector<Boolean, C>` (a mask), a vector of `Key<UInt32>` over the class names (usually variable-length: `TokenizeIntoWords` + `MapValueToKey`), or a scalar `Key<UInt32>` (ordinary labels, q = 0) |
/// | Output column data type | `Score`: known-sized vector of Single (class probabilities, class names as SlotNames); `PredictedLabel`: key over the class names (KeyValues) |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save, see docs/mlnet.md) |
/// ]]></format>
/// <para>ML.NET's trainer base classes expect a scalar key label, so this is an estimator of its own in the multiclass
/// trainers' catalog. The fitted model only reads the feature column: a prediction pipeline needs no candidate column.
/// The candidate keys must be keys over the class names in class order (<c>MapValueToKey</c> with the class names as
/// <c>keyData</c>); a key column without KeyValues is read as class index + 1.</para>
/// <para>Training is deterministic given <see cref="Options.Seed"/> (default 1, so two fits agree); a third-party
/// catalog extension cannot reach the MLContext's seed, so the seed is an option. Strong views for PiCO and PLCR come
/// from <see cref="Options.ViewColumnNames"/> (embedding columns of augmented images) or
/// <see cref="Options.AugmentedViews"/> (random crops of the files of a path column, embedded once through the engine
/// and its cache).</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class PromptTuningEstimator : IEstimator<PromptTuningTransformer>
{
    /// <summary>Default values shared by the catalog methods and <see cref="Options"/> (CoOp's recipe).</summary>
    public static class Defaults
    {
        /// <summary>Training epochs.</summary>
        public const int Epochs = 50;

        /// <summary>Images per step.</summary>
        public const int BatchSize = 32;

        /// <summary>Base learning rate (SGD for CoOp; the linear probe uses AdamW with 1e-3 when left at this value).</summary>
        public const double LearningRate = 0.002;

        /// <summary>SGD momentum.</summary>
        public const double Momentum = 0.9;

        /// <summary>Weight decay (the linear probe uses 1e-4 when left at this value).</summary>
        public const double WeightDecay = 5e-4;

        /// <summary>Epochs at the constant warm-up rate 1e-5 before the cosine schedule.</summary>
        public const int WarmupEpochs = 1;

        /// <summary>CoOp's number of learnable context tokens M.</summary>
        public const int ContextTokens = 16;

        /// <summary>λ, the weight of the alignment term.</summary>
        public const double AlignmentWeight = 1.0;

        /// <summary>β of the LWS objective.</summary>
        public const float LwsBeta = 1f;

        /// <summary>The seed of initialisation, batch order and augmented views.</summary>
        public const ulong Seed = 1;

        /// <summary>The smallest crop of an augmented view, as a fraction of the image area.</summary>
        public const double AugmentedViewMinScale = 0.5;
    }

    /// <summary>Options of <see cref="PromptTuningEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The model folder or clip.json file (the same model that produced the image embeddings).</summary>
        public string ModelPath = "";

        /// <summary>The class names, in key and score-slot order (at least 2, distinct).</summary>
        public IReadOnlyList<string> ClassNames = [];

        /// <summary>The image embedding column (known-size vector of Single).</summary>
        public string FeatureColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The candidate-label column: <c>Vector&lt;Boolean, C&gt;</c>, a vector of UInt32 keys over the class
        /// names, or a scalar UInt32 key (ordinary labels).</summary>
        public string CandidateLabelsColumnName = VegaColumnNames.CandidateLabels;

        /// <summary>The class probability column to add.</summary>
        public string ScoreColumnName = VegaColumnNames.Score;

        /// <summary>The predicted class column to add (a key over the class names).</summary>
        public string PredictedLabelColumnName = VegaColumnNames.PredictedLabel;

        /// <summary>CoOp (learnt prompt context) or a linear probe on the embeddings.</summary>
        public TuningMethod Method = TuningMethod.CoOp;

        /// <summary>The partial-label objective (CC, RC, LWS, CAVL, NAIVE, PiCO, PLCR; CrossEntropy needs single candidates).</summary>
        public PartialLabelLossKind Loss = PartialLabelLossKind.CC;

        /// <summary>Hyper-parameters of the PiCO objective.</summary>
        public PicoSettings Pico = new();

        /// <summary>Hyper-parameters of the PLCR objective.</summary>
        public PlcrSettings Plcr = new();

        /// <summary>β of the LWS objective.</summary>
        public float LwsBeta = Defaults.LwsBeta;

        /// <summary>Align the prediction to the handcrafted prompt's candidate-restricted posterior.</summary>
        public bool Align = true;

        /// <summary>How the alignment term is weighted: dynamic (λ times the partial-label term's value, through a detached
        /// ratio, as the candidate-label paper's reference code does) or fixed (λ·L_align).</summary>
        public AlignmentWeighting AlignmentWeighting = AlignmentWeighting.Dynamic;

        /// <summary>λ, the alignment weight.</summary>
        public double AlignmentWeight = Defaults.AlignmentWeight;

        /// <summary>CoOp: number of learnable context tokens M.</summary>
        public int ContextTokens = Defaults.ContextTokens;

        /// <summary>CoOp: where the class name goes in the prompt.</summary>
        public ClassTokenPosition ClassTokenPosition = ClassTokenPosition.End;

        /// <summary>CoOp: one context per class instead of one shared by all classes.</summary>
        public bool ClassSpecificContext;

        /// <summary>CoOp: initialise the context from this phrase's token embeddings (e.g. "a photo of a"; its token count
        /// sets M), or from N(0, 0.02²) when null.</summary>
        public string? ContextInit;

        /// <summary>The handcrafted prompt templates with "{}" for the class name (zero-shot classifier and alignment
        /// teacher; default "a photo of a {}.").</summary>
        public IReadOnlyList<string>? Templates;

        /// <summary>Training epochs.</summary>
        public int Epochs = Defaults.Epochs;

        /// <summary>Images per step.</summary>
        public int BatchSize = Defaults.BatchSize;

        /// <summary>Base learning rate of the schedule: a constant warm-up rate of 1e-5 for <see cref="WarmupEpochs"/>, then
        /// cosine annealing per epoch (CoOp's).</summary>
        public double LearningRate = Defaults.LearningRate;

        /// <summary>SGD momentum (CoOp).</summary>
        public double Momentum = Defaults.Momentum;

        /// <summary>Weight decay.</summary>
        public double WeightDecay = Defaults.WeightDecay;

        /// <summary>Epochs at the warm-up rate before the cosine schedule.</summary>
        public int WarmupEpochs = Defaults.WarmupEpochs;

        /// <summary>The seed of initialisation, batch order and augmented views (fixed by default, so two fits agree).</summary>
        public ulong Seed = Defaults.Seed;

        /// <summary>Embedding columns (same model, same width) holding augmented views of each row's image, e.g. from
        /// EmbedImages over augmented copies of the files. Every epoch each sample trains on the original or one of its views;
        /// PiCO's key view and PLCR's strong views are drawn from them.</summary>
        public IReadOnlyList<string>? ViewColumnNames;

        /// <summary>Augmented views per image to make while fitting (0: none): random resized crops of
        /// <see cref="AugmentedViewMinScale"/>–100 % of the area plus flips, cut from the files of
        /// <see cref="ImageColumnName"/> and embedded once by the model (cached in <see cref="CacheDirectory"/>).</summary>
        public int AugmentedViews;

        /// <summary>The smallest crop of an augmented view, as a fraction of the image area.</summary>
        public double AugmentedViewMinScale = Defaults.AugmentedViewMinScale;

        /// <summary>The image path column the augmented views are cut from (needed only when <see cref="AugmentedViews"/> &gt; 0).</summary>
        public string ImageColumnName = VegaColumnNames.ImagePath;

        /// <summary>Folder that relative paths of <see cref="ImageColumnName"/> are resolved against (null: the current directory).</summary>
        public string? ImageFolder;

        /// <summary>Held-out data with the feature column and <see cref="ValidationLabelColumnName"/>: its accuracy after every
        /// epoch is reported to <see cref="Progress"/>.</summary>
        public IDataView? ValidationData;

        /// <summary>The true-label column of <see cref="ValidationData"/>: a UInt32 key over the class names or the class name.</summary>
        public string ValidationLabelColumnName = VegaColumnNames.Label;

        /// <summary>Receives every epoch's loss, learning rate and held-out accuracy (on the training thread).</summary>
        public IProgress<PromptTuningProgress>? Progress;

        /// <summary>Write a checkpoint after every epoch into this folder and resume from it when present (same model, data
        /// and options).</summary>
        public string? CheckpointDirectory;

        /// <summary>Cancels training between steps (a checkpoint keeps the finished epochs).</summary>
        public CancellationToken CancellationToken;

        /// <summary>The CUDA device for the model's towers (the text prompts and augmented views), or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>A folder for the embedding cache of the augmented views and ONNX Runtime's optimised model (null: none).</summary>
        public string? CacheDirectory;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;

        /// <summary>A shallow copy (the catalog methods set the model, classes and columns on it).</summary>
        internal Options Clone() => (Options)MemberwiseClone();

        /// <summary>The core trainer's options (without the progress hook).</summary>
        internal PromptTuningOptions ToCore() => new()
        {
            Method = Method,
            Loss = Loss,
            Align = Align,
            AlignmentWeighting = AlignmentWeighting,
            AlignmentWeight = AlignmentWeight,
            Pico = Pico,
            Plcr = Plcr,
            LwsBeta = LwsBeta,
            ContextTokens = ContextTokens,
            ClassSpecificContext = ClassSpecificContext,
            ClassPosition = ClassTokenPosition,
            ContextInit = ContextInit,
            Epochs = Epochs,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            Momentum = Momentum,
            WeightDecay = WeightDecay,
            WarmupEpochs = WarmupEpochs,
            Seed = Seed,
            Templates = Templates is null ? PromptTemplates.Default : PromptTemplates.Create(Templates),
            CheckpointDirectory = CheckpointDirectory,
        };

        /// <summary>Options carrying the core trainer's settings (the experiment runs the same grid both ways).</summary>
        internal static Options FromCore(PromptTuningOptions o, string modelPath, IReadOnlyList<string> classNames) => new()
        {
            ModelPath = modelPath,
            ClassNames = classNames,
            Method = o.Method,
            Loss = o.Loss,
            Align = o.Align,
            AlignmentWeighting = o.AlignmentWeighting,
            AlignmentWeight = o.AlignmentWeight,
            Pico = o.Pico,
            Plcr = o.Plcr,
            LwsBeta = o.LwsBeta,
            ContextTokens = o.ContextTokens,
            ClassSpecificContext = o.ClassSpecificContext,
            ClassTokenPosition = o.ClassPosition,
            ContextInit = o.ContextInit,
            Epochs = o.Epochs,
            BatchSize = o.BatchSize,
            LearningRate = o.LearningRate,
            Momentum = o.Momentum,
            WeightDecay = o.WeightDecay,
            WarmupEpochs = o.WarmupEpochs,
            Seed = o.Seed,
            Templates = ReferenceEquals(o.Templates, PromptTemplates.Default) ? null : o.Templates.Templates,
            CheckpointDirectory = o.CheckpointDirectory,
        };
    }

    private readonly Options _options;

    internal PromptTuningEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        static void Require(bool ok, string name, object? value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(nameof(options), value, $"{name} = {Convert.ToString(value, CultureInfo.InvariantCulture)}: {rule}.");
        }
        if (string.IsNullOrWhiteSpace(options.ModelPath)) throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        ArgumentNullException.ThrowIfNull(options.ClassNames, nameof(options.ClassNames));
        try { PromptTemplates.ValidateClassNames(options.ClassNames); }
        catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        Require(options.Method is TuningMethod.CoOp or TuningMethod.LinearProbe, nameof(options.Method), options.Method,
            "use CoOp or LinearProbe (for the handcrafted prompt alone use ml.MulticlassClassification.Trainers.ZeroShot)");
        Require(Enum.IsDefined(options.Loss), nameof(options.Loss), options.Loss, "not a PartialLabelLossKind");
        ArgumentNullException.ThrowIfNull(options.Pico, nameof(options.Pico));
        ArgumentNullException.ThrowIfNull(options.Plcr, nameof(options.Plcr));
        Require(float.IsFinite(options.LwsBeta) && options.LwsBeta >= 0, nameof(options.LwsBeta), options.LwsBeta, "must be finite and ≥ 0");
        Require(double.IsFinite(options.AlignmentWeight) && options.AlignmentWeight >= 0, nameof(options.AlignmentWeight), options.AlignmentWeight, "must be finite and ≥ 0");
        Require(options.ContextTokens >= 1 || options.ContextInit is not null, nameof(options.ContextTokens), options.ContextTokens, "must be ≥ 1");
        Require(options.ContextInit is null || !string.IsNullOrWhiteSpace(options.ContextInit), nameof(options.ContextInit), options.ContextInit, "must be a phrase or null");
        Require(options.Epochs >= 1, nameof(options.Epochs), options.Epochs, "must be ≥ 1");
        Require(options.BatchSize >= 1, nameof(options.BatchSize), options.BatchSize, "must be ≥ 1");
        Require(double.IsFinite(options.LearningRate) && options.LearningRate > 0, nameof(options.LearningRate), options.LearningRate, "must be > 0");
        Require(options.Momentum is >= 0 and < 1, nameof(options.Momentum), options.Momentum, "must be in [0, 1)");
        Require(double.IsFinite(options.WeightDecay) && options.WeightDecay >= 0, nameof(options.WeightDecay), options.WeightDecay, "must be finite and ≥ 0");
        Require(options.WarmupEpochs >= 0, nameof(options.WarmupEpochs), options.WarmupEpochs, "must be ≥ 0");
        Require(options.AugmentedViews >= 0, nameof(options.AugmentedViews), options.AugmentedViews, "must be ≥ 0 (0: none)");
        Require(options.AugmentedViewMinScale is > 0 and <= 1, nameof(options.AugmentedViewMinScale), options.AugmentedViewMinScale, "must be a fraction of the image area in (0, 1]");
        Require(options.AugmentedViews == 0 || !string.IsNullOrWhiteSpace(options.ImageColumnName), nameof(options.ImageColumnName), options.ImageColumnName,
            "must name the image path column the augmented views are cut from");
        if (options.ViewColumnNames is { } views)
            foreach (var v in views) Require(!string.IsNullOrWhiteSpace(v), nameof(options.ViewColumnNames), v, "every entry must name an embedding column");
        Require(options.ValidationData is null || !string.IsNullOrWhiteSpace(options.ValidationLabelColumnName), nameof(options.ValidationLabelColumnName),
            options.ValidationLabelColumnName, "must name the true-label column of ValidationData");
        if (options.Templates is not null)
        {
            try { PromptTemplates.Create(options.Templates); }
            catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        }
        foreach (var (name, value) in new[] { (nameof(options.FeatureColumnName), options.FeatureColumnName), (nameof(options.CandidateLabelsColumnName), options.CandidateLabelsColumnName),
                     (nameof(options.ScoreColumnName), options.ScoreColumnName), (nameof(options.PredictedLabelColumnName), options.PredictedLabelColumnName) })
            Require(!string.IsNullOrWhiteSpace(value), name, value, "must name a column");
        _options = options;
    }

    /// <summary>Trains the prompt (or probe) on the rows of <paramref name="input"/> and returns the fitted classifier.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type (ML.NET's messages).</exception>
    /// <exception cref="InvalidOperationException">A row has a missing embedding, a missing key or an empty candidate set
    /// (the message names the row), or there are no rows.</exception>
    public PromptTuningTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        CheckSchema(input.Schema);
        using var model = ClipModel.Load(o.ModelPath, MLNetModels.ModelOptions(o.GpuDeviceId, o.FallbackToCpu, 0, o.CacheDirectory, o.Warning));
        int d = model.EmbeddingDimension;
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(input.Schema, o.FeatureColumnName, "feature"), "feature", d);
        var rows = TrainingColumns.Read(input, new TrainingColumns.Request
        {
            FeatureColumn = o.FeatureColumnName,
            Dimension = d,
            ClassNames = o.ClassNames,
            CandidateColumn = o.CandidateLabelsColumnName,
            ViewColumns = o.ViewColumnNames ?? [],
            PathColumn = o.AugmentedViews > 0 ? o.ImageColumnName : null,
        }, o.CancellationToken);
        int n = rows.Features.Count;
        if (n == 0) throw new InvalidOperationException("The training data has no rows; prompt tuning needs at least one image with its candidate labels.");
        var candidates = CandidateLabels.FromMask(rows.CandidateMask, n, o.ClassNames.Count);

        var views = new List<EmbeddingMatrix>(rows.Views);
        if (o.AugmentedViews > 0)
        {
            var paths = rows.Paths!.Select(p => o.ImageFolder is not null && !Path.IsPathRooted(p) ? Path.Combine(o.ImageFolder, p) : p);
            views.AddRange(AugmentedViews.Embed(model, ImageSource.FromPaths(paths), o.AugmentedViews, o.Seed, o.AugmentedViewMinScale,
                new ImageEmbeddingOptions { CacheDirectory = o.CacheDirectory }, o.CancellationToken));
        }

        TrainingColumns.Rows? validation = null;
        if (o.ValidationData is { } held)
        {
            validation = TrainingColumns.Read(held, new TrainingColumns.Request
            {
                FeatureColumn = o.FeatureColumnName,
                Dimension = d,
                ClassNames = o.ClassNames,
                LabelColumn = o.ValidationLabelColumnName,
            }, o.CancellationToken);
        }

        // Every epoch is recorded (History) and reported (Progress); the held-out accuracy needs the epoch's classifier,
        // so it is computed only when validation data is given.
        var history = new List<PromptTuningProgress>();
        var core = o.ToCore() with
        {
            EpochClassifier = (epoch, current) =>
            {
                var figures = new PromptTuningProgress(epoch.Epoch, epoch.Epochs, epoch.Loss, epoch.LearningRate,
                    validation is null ? null : current().Accuracy(validation.Features, validation.Labels!));
                history.Add(figures);
                o.Progress?.Report(figures);
            },
        };
        var result = PromptTuner.Tune(model, rows.Features, candidates, o.ClassNames, core, trueLabels: null, o.CancellationToken, views.Count > 0 ? views : null);
        return new PromptTuningTransformer(result, history, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName);
    }

    /// <summary>The input shape plus the Score and PredictedLabel columns; checks the feature, candidate-label and view columns.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var o = _options;
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(inputSchema, o.FeatureColumnName, "feature"), "feature");
        TrainingColumns.CandidatesShape(SchemaChecks.Find(inputSchema, o.CandidateLabelsColumnName, "label"), o.ClassNames.Count);
        foreach (var v in o.ViewColumnNames ?? []) SchemaChecks.RequireFloatVector(SchemaChecks.Find(inputSchema, v, "feature"), "feature");
        if (o.AugmentedViews > 0) SchemaChecks.RequireText(SchemaChecks.Find(inputSchema, o.ImageColumnName, "image"), "image");
        return SchemaShapes.With(inputSchema, ClassifierMapping.Columns(o.ClassNames, o.ScoreColumnName, o.PredictedLabelColumnName));
    }

    private void CheckSchema(DataViewSchema schema)
    {
        var o = _options;
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(schema, o.FeatureColumnName, "feature"), "feature");
        TrainingColumns.Candidates(SchemaChecks.Find(schema, o.CandidateLabelsColumnName, "label"), o.ClassNames);
        foreach (var v in o.ViewColumnNames ?? []) SchemaChecks.RequireFloatVector(SchemaChecks.Find(schema, v, "feature"), "feature");
        if (o.AugmentedViews > 0) SchemaChecks.RequireText(SchemaChecks.Find(schema, o.ImageColumnName, "image"), "image");
    }
}

/// <summary>
/// The fitted prompt-tuning classifier (see <see cref="PromptTuningEstimator"/>): constant class weights W, a scale s and
/// a bias b, scoring softmax(s·(x̂·W_cᵀ) + b_c) for the L2-normalised embedding x̂. CoOp: W the text embeddings of the
/// learnt prompts, s the model's logit scale, b = 0; the linear probe: its learnt W and b. Holds no native resources.
/// Thread-safe.
/// </summary>
public sealed class PromptTuningTransformer : VegaTransformerBase
{
    private readonly LinearClassHead _head;

    internal PromptTuningTransformer(TuningResult result, IReadOnlyList<PromptTuningProgress> history, string featureColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        Result = result;
        History = history;
        var classifier = result.Classifier;
        ClassNames = [.. classifier.ClassNames];
        bool hasBias = classifier.Bias.Any(b => b != 0);
        _head = new LinearClassHead(ClassNames, classifier.Weights.Data, classifier.Weights.Dimension, classifier.Scale, hasBias ? classifier.Bias : null);
        FeatureColumnName = featureColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
    }

    /// <summary>The training outcome: the classifier (<see cref="TuningResult.Classifier"/>), per-epoch losses, CoOp's
    /// learnt context (<see cref="TuningResult.ClassifierFor"/> applies it to other class names) and
    /// <see cref="TuningResult.Save"/>.</summary>
    internal TuningResult Result { get; }

    /// <summary>CoOp or the linear probe.</summary>
    public TuningMethod Method => Result.Classifier.Method;

    /// <summary>The figures of every epoch this fit ran (loss, learning rate, held-out accuracy when
    /// <see cref="PromptTuningEstimator.Options.ValidationData"/> was given), as <see cref="PromptTuningEstimator.Options.Progress"/>
    /// received them; a fit resumed from a checkpoint lists the epochs after it.</summary>
    public IReadOnlyList<PromptTuningProgress> History { get; }

    /// <summary>The name of the model whose embedding space the classifier lives in.</summary>
    public string ModelName => Result.Classifier.ModelName;

    /// <summary>The class names, in key and slot order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The width D of the embeddings.</summary>
    public int EmbeddingDimension => _head.EmbeddingDimension;

    /// <summary>s, the multiplier of x̂·W_cᵀ (the model's logit scale).</summary>
    public float Scale => _head.Scale;

    /// <summary>Row <paramref name="classIndex"/> of W: CoOp's learnt class text embedding (L2-normalised) or the probe's weights.</summary>
    public ReadOnlySpan<float> ClassWeights(int classIndex) => _head.Row(classIndex);

    /// <summary>b, one value per class (all zero for CoOp).</summary>
    public IReadOnlyList<float> Bias => Result.Classifier.Bias;

    /// <summary>The image embedding column read.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The class probability column added.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The predicted class column added.</summary>
    public string PredictedLabelColumnName { get; }

    internal LinearClassHead Head => _head;

    private protected override ICanSaveModel SavedChain() => SavedChains.PromptTuning(this);

    private protected override RowMapping Bind(DataViewSchema inputSchema) =>
        ClassifierMapping.Bind(_head, inputSchema, FeatureColumnName, ScoreColumnName, PredictedLabelColumnName);
}
