using System.Globalization;
using System.Numerics.Tensors;
using Google.Protobuf;
using Microsoft.ML;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>
/// AAPE over IDataView columns (docs/aape.md): <c>Fit</c> distils each class's natural-language descriptions into a
/// per-class summary, then trains an image-conditioned prompt generator and class projection on labelled image
/// embeddings. The transformer scores softmax(cos(x, w_c(x))/τ) with w_c(x) = ReLU(G·[w_c; h(x)] + g) and adds Score and
/// PredictedLabel like <see cref="ZeroShotTransformer"/>; it needs no descriptions.
/// Created by <see cref="VegaCatalog.Aape(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, IReadOnlyList{string}, IReadOnlyDictionary{string, IReadOnlyList{string}}, string, string, AapeEstimator.Options)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | Yes |
/// | Input column data type | Features: known-sized vector of Single (the image embeddings of the same model). Label: `Key<UInt32>` over the class names, or String (the class name) |
/// | Output column data type | `Score`: known-sized vector of Single (class probabilities, class names as SlotNames); `PredictedLabel`: key over the class names (KeyValues) |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | The head is (<see cref="AapeTransformer.ExportOnnx(Stream)"/>: image embedding in, logits and probabilities out) |
/// ]]></format>
/// <para>Every class needs at least one labelled image and (unless <see cref="Options.Lambda"/> is 0) at least one
/// description. Training is deterministic given <see cref="Options.Seed"/> (default 1).</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class AapeEstimator : IEstimator<AapeTransformer>
{
    /// <summary>Default values shared by the catalog methods and <see cref="Options"/> (those of <see cref="AapeOptions"/>).</summary>
    public static class Defaults
    {
        /// <summary>λ, the weight of the distillation term.</summary>
        public const double Lambda = 5;

        /// <summary>Epochs of the generator stage.</summary>
        public const int Epochs = 50;

        /// <summary>Peak SGD learning rate of the generator stage.</summary>
        public const double LearningRate = 0.002;

        /// <summary>SGD momentum.</summary>
        public const double Momentum = 0.9;

        /// <summary>SGD weight decay.</summary>
        public const double WeightDecay = 5e-4;

        /// <summary>Epochs at the warm-up rate.</summary>
        public const int WarmupEpochs = 1;

        /// <summary>The warm-up learning rate.</summary>
        public const double WarmupLearningRate = 1e-5;

        /// <summary>Images per step.</summary>
        public const int BatchSize = 32;

        /// <summary>The seed of every random choice.</summary>
        public const int Seed = 1;

        /// <summary>Attention heads of the aggregator.</summary>
        public const int Heads = 8;

        /// <summary>Full-batch steps of the aggregator stage.</summary>
        public const int AggregatorEpochs = 50;

        /// <summary>AdamW learning rate of the aggregator stage.</summary>
        public const double AggregatorLearningRate = 3e-4;

        /// <summary>The weight s of the CLIP-S reward.</summary>
        public const double ClipScoreWeight = 2.5;

        /// <summary>Bottleneck ratio r of the prompt generator.</summary>
        public const int BottleneckRatio = 16;
    }

    /// <summary>Options of <see cref="AapeEstimator"/> (docs/aape.md explains each hyper-parameter).</summary>
    public sealed class Options
    {
        /// <summary>The model folder or clip.json file (the same model that produced the image embeddings).</summary>
        public string ModelPath = "";

        /// <summary>The class names, in key and score-slot order (at least 2, distinct).</summary>
        public IReadOnlyList<string> ClassNames = [];

        /// <summary>The class descriptions: class name → sentences. Give this or <see cref="DescriptionsPath"/> (not needed
        /// when <see cref="Lambda"/> is 0).</summary>
        public IReadOnlyDictionary<string, IReadOnlyList<string>>? Descriptions;

        /// <summary>A CuPL-style JSON file <c>{"class name": ["sentence", ...]}</c> or a folder of <c>&lt;class&gt;.txt</c>
        /// files (one sentence per line), instead of <see cref="Descriptions"/>.</summary>
        public string? DescriptionsPath;

        /// <summary>The image embedding column (known-size vector of Single).</summary>
        public string FeatureColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The true-label column: a UInt32 key over the class names, or the class name as text.</summary>
        public string LabelColumnName = VegaColumnNames.Label;

        /// <summary>The class probability column to add.</summary>
        public string ScoreColumnName = VegaColumnNames.Score;

        /// <summary>The predicted class column to add (a key over the class names).</summary>
        public string PredictedLabelColumnName = VegaColumnNames.PredictedLabel;

        /// <summary>The handcrafted prompt templates that give the class embeddings w_c (default "a photo of a {}.").</summary>
        public IReadOnlyList<string>? Templates;

        /// <summary>λ, the weight of the distillation term (0: the plain adapter, which never reads the descriptions).</summary>
        public double Lambda = Defaults.Lambda;

        /// <summary>The logit temperature τ (null: 1/the model's logit scale).</summary>
        public double? Temperature;

        /// <summary>Epochs of the generator stage.</summary>
        public int Epochs = Defaults.Epochs;

        /// <summary>Peak SGD learning rate of the generator stage.</summary>
        public double LearningRate = Defaults.LearningRate;

        /// <summary>SGD momentum.</summary>
        public double Momentum = Defaults.Momentum;

        /// <summary>SGD weight decay.</summary>
        public double WeightDecay = Defaults.WeightDecay;

        /// <summary>Epochs at the constant warm-up rate before the cosine schedule.</summary>
        public int WarmupEpochs = Defaults.WarmupEpochs;

        /// <summary>The warm-up learning rate.</summary>
        public double WarmupLearningRate = Defaults.WarmupLearningRate;

        /// <summary>Images per SGD step.</summary>
        public int BatchSize = Defaults.BatchSize;

        /// <summary>The seed of initialisation and batch order (fixed by default, so two fits agree).</summary>
        public int Seed = Defaults.Seed;

        /// <summary>Attention heads of the aggregator (must divide the embedding width).</summary>
        public int Heads = Defaults.Heads;

        /// <summary>How the class summary is made from the descriptions.</summary>
        public AapeAggregator Aggregator = AapeAggregator.Attention;

        /// <summary>Full-batch AdamW steps of the aggregator stage.</summary>
        public int AggregatorEpochs = Defaults.AggregatorEpochs;

        /// <summary>AdamW learning rate of the aggregator stage.</summary>
        public double AggregatorLearningRate = Defaults.AggregatorLearningRate;

        /// <summary>The weight s of the CLIP-S reward s·max(cos, 0).</summary>
        public double ClipScoreWeight = Defaults.ClipScoreWeight;

        /// <summary>Bottleneck ratio r of the prompt generator (D → D/r → D).</summary>
        public int BottleneckRatio = Defaults.BottleneckRatio;

        /// <summary>Receives every epoch of the generator stage (on the training thread).</summary>
        public IProgress<AapeEpoch>? Progress;

        /// <summary>Cancels training between steps.</summary>
        public CancellationToken CancellationToken;

        /// <summary>The CUDA device for the text tower (class prompts and descriptions), or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>A folder for the description embedding cache and ONNX Runtime's optimised model (null: none).</summary>
        public string? CacheDirectory;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;

        /// <summary>A shallow copy (the catalog methods set the model, classes and columns on it).</summary>
        internal Options Clone() => (Options)MemberwiseClone();

        /// <summary>The core trainer's options.</summary>
        internal AapeOptions ToCore() => new()
        {
            Lambda = Lambda,
            Temperature = Temperature,
            Epochs = Epochs,
            LearningRate = LearningRate,
            Momentum = Momentum,
            WeightDecay = WeightDecay,
            WarmupEpochs = WarmupEpochs,
            WarmupLearningRate = WarmupLearningRate,
            BatchSize = BatchSize,
            Seed = Seed,
            Heads = Heads,
            Aggregator = Aggregator,
            AggregatorEpochs = AggregatorEpochs,
            AggregatorLearningRate = AggregatorLearningRate,
            ClipScoreWeight = ClipScoreWeight,
            BottleneckRatio = BottleneckRatio,
        };
    }

    private readonly Options _options;
    private readonly AapeOptions _core;
    private readonly ClassDescriptions? _descriptions;

    internal AapeEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ModelPath)) throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        ArgumentNullException.ThrowIfNull(options.ClassNames, nameof(options.ClassNames));
        try { PromptTemplates.ValidateClassNames(options.ClassNames); }
        catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        _core = options.ToCore();
        _core.Validate();
        if (options.Templates is not null)
        {
            try { PromptTemplates.Create(options.Templates); }
            catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        }
        foreach (var (name, value) in new[] { (nameof(options.FeatureColumnName), options.FeatureColumnName), (nameof(options.LabelColumnName), options.LabelColumnName),
                     (nameof(options.ScoreColumnName), options.ScoreColumnName), (nameof(options.PredictedLabelColumnName), options.PredictedLabelColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentOutOfRangeException(nameof(options), value, $"{name} must name a column.");
        if (options.Descriptions is not null && options.DescriptionsPath is not null)
            throw new ArgumentOutOfRangeException(nameof(options), "Give the descriptions either in code (Descriptions) or as a file or folder (DescriptionsPath), not both.");
        if (options.Descriptions is { } given)
        {
            foreach (var (name, sentences) in given)
                if (sentences is null) throw new ArgumentNullException(nameof(options), $"The descriptions of class \"{name}\" are null; give a list of sentences.");
            try { _descriptions = ClassDescriptions.Create(given, options.ClassNames); }
            catch (InvalidDataException e) { throw new ArgumentOutOfRangeException(nameof(options.Descriptions), e.Message); }
        }
        else if (options.DescriptionsPath is { } path)
        {
            _descriptions = ClassDescriptions.Load(path, options.ClassNames); // errors name the file, the line and the class
        }
        else if (options.Lambda > 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options),
                $"AAPE with λ = {options.Lambda.ToString(CultureInfo.InvariantCulture)} distils class descriptions: give Descriptions or DescriptionsPath (or set Lambda = 0 for the plain adapter).");
        }
        _options = options;
    }

    /// <summary>Trains the AAPE head on the labelled rows of <paramref name="input"/> and returns the fitted classifier.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type (ML.NET's messages).</exception>
    /// <exception cref="InvalidOperationException">A row has a missing embedding or label (the message names the row), a
    /// class has no training image, or there are no rows.</exception>
    public AapeTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(input.Schema, o.FeatureColumnName, "feature"), "feature");
        TrainingColumns.Label(SchemaChecks.Find(input.Schema, o.LabelColumnName, "label"), o.ClassNames);
        using var model = ClipModel.Load(o.ModelPath, MLNetModels.ModelOptions(o.GpuDeviceId, o.FallbackToCpu, 0, o.CacheDirectory, o.Warning));
        var rows = TrainingColumns.Read(input, new TrainingColumns.Request
        {
            FeatureColumn = o.FeatureColumnName,
            Dimension = model.EmbeddingDimension,
            ClassNames = o.ClassNames,
            LabelColumn = o.LabelColumnName,
        }, o.CancellationToken);
        if (rows.Features.Count == 0) throw new InvalidOperationException("The training data has no rows; AAPE needs labelled image embeddings of every class.");
        var templates = o.Templates is null ? PromptTemplates.Default : PromptTemplates.Create(o.Templates);
        var classWeights = model.EmbedClassNames(o.ClassNames, templates, cancellationToken: o.CancellationToken);
        var descriptions = _core.Lambda > 0 ? _descriptions!.Embed(model, o.CacheDirectory, o.CancellationToken) : null;
        AapeHead head;
        try
        {
            head = AapeTrainer.Train(new AapeTrainingSet
            {
                Images = rows.Features,
                Labels = rows.Labels!,
                ClassNames = o.ClassNames,
                ClassWeights = classWeights,
                Descriptions = descriptions,
                LogitScale = model.LogitScale,
                ModelName = model.Name,
                ModelHash = model.ContentHash,
            }, _core, o.Progress, o.CancellationToken);
        }
        catch (ArgumentException e) when (e is not ArgumentOutOfRangeException)
        {
            throw new InvalidOperationException(e.Message, e); // the data does not fit (a class without images, heads vs width)
        }
        return new AapeTransformer(head, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName);
    }

    /// <summary>The input shape plus the Score and PredictedLabel columns; checks the feature and label columns.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var o = _options;
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(inputSchema, o.FeatureColumnName, "feature"), "feature");
        TrainingColumns.LabelShape(SchemaChecks.Find(inputSchema, o.LabelColumnName, "label"), o.ClassNames.Count);
        return SchemaShapes.With(inputSchema, ClassifierMapping.Columns(o.ClassNames, o.ScoreColumnName, o.PredictedLabelColumnName));
    }
}

/// <summary>
/// The fitted AAPE classifier (see <see cref="AapeEstimator"/>): the trained <see cref="AapeHead"/> over the feature
/// column. Holds no native resources; thread-safe.
/// </summary>
public sealed class AapeTransformer : VegaTransformerBase
{
    private readonly Scorer _scorer;

    internal AapeTransformer(AapeHead head, string featureColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        Head = head;
        _scorer = new Scorer(head);
        FeatureColumnName = featureColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
    }

    /// <summary>The trained head: its weights, τ, the training report (<see cref="AapeHead.Training"/>),
    /// <see cref="AapeHead.Save"/> and <see cref="AapeHead.WithClasses"/>.</summary>
    internal AapeHead Head { get; }

    /// <summary>The class names, in key and slot order.</summary>
    public IReadOnlyList<string> ClassNames => Head.ClassNames;

    /// <summary>The width D of the embeddings.</summary>
    public int EmbeddingDimension => Head.Dimension;

    /// <summary>The image embedding column read.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The class probability column added.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The predicted class column added.</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>
    /// Writes the head as an ONNX model (opset 17, standard operators; docs/aape.md): input <c>image_embeds</c> float
    /// [batch, D] (normalised inside), outputs <c>logits</c> and <c>probabilities</c> float [batch, C]. ApplyOnnxModel runs
    /// it; its probabilities equal this transformer's Score.
    /// </summary>
    public void ExportOnnx(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        AapeOnnxExport.Build(Head).WriteTo(stream);
    }

    /// <summary>The bytes <see cref="ExportOnnx"/> writes (for a saved chain's ApplyOnnxModel).</summary>
    internal byte[] OnnxModelBytes() => AapeOnnxExport.Build(Head).ToByteArray();

    private protected override ICanSaveModel SavedChain() => SavedChains.Aape(this);

    private protected override RowMapping Bind(DataViewSchema inputSchema) =>
        ClassifierMapping.Bind(_scorer, inputSchema, FeatureColumnName, ScoreColumnName, PredictedLabelColumnName);

    /// <summary>The head's logits for one embedding, softmaxed.</summary>
    private sealed class Scorer(AapeHead head) : IEmbeddingClassifier
    {
        public IReadOnlyList<string> ClassNames => head.ClassNames;

        public int EmbeddingDimension => head.Dimension;

        public int Score(ReadOnlySpan<float> embedding, Span<float> probabilities)
        {
            if (!float.IsFinite(TensorPrimitives.SumOfSquares(embedding)))
            {
                probabilities.Fill(float.NaN);
                return -1;
            }
            head.Predict(embedding, 1, probabilities);
            TensorPrimitives.SoftMax(probabilities, probabilities);
            return LinearClassHead.ArgMax(probabilities);
        }
    }
}
