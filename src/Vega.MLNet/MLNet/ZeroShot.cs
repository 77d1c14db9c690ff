using Microsoft.ML;
using Vega.MLNet.Models;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>
/// Zero-shot classification over an image embedding column: <c>Fit</c> embeds a prompt for every class name with the
/// model's text tower; the transformer scores each row with CLIP's softmax over the scaled cosine similarities.
/// Created by <see cref="VegaCatalog.ZeroShot(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, IReadOnlyList{string}, string, int?, bool)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | No (it embeds the class prompts) |
/// | Input column data type | Known-sized vector of Single (the image embeddings of the same model) |
/// | Output column data type | `Score`: known-sized vector of Single (class probabilities, class names as SlotNames); `PredictedLabel`: key over the class names (KeyValues) |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save, see docs/mlnet.md) |
/// ]]></format>
/// <para>The output columns are shaped like those of ML.NET's multiclass trainers, so
/// <c>ml.Transforms.Conversion.MapKeyToValue</c>, <c>ml.MulticlassClassification.Evaluate</c> and PredictionEngine work
/// as with any ML.NET classifier. For Evaluate, map the true label with <c>MapValueToKey</c> over the same class names in
/// the same order (docs/mlnet.md).</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class ZeroShotEstimator : IEstimator<ZeroShotTransformer>
{
    /// <summary>Options of <see cref="ZeroShotEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The model folder or clip.json file (the same model that produced the image embeddings).</summary>
        public string ModelPath = "";

        /// <summary>The class names, in the order of the key values and score slots (at least 2, distinct).</summary>
        public IReadOnlyList<string> ClassNames = [];

        /// <summary>The image embedding column.</summary>
        public string FeatureColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The class probability column to add.</summary>
        public string ScoreColumnName = VegaColumnNames.Score;

        /// <summary>The predicted class column to add (a key over the class names).</summary>
        public string PredictedLabelColumnName = VegaColumnNames.PredictedLabel;

        /// <summary>Prompt templates with "{}" for the class name; the class embedding is the normalised mean over the
        /// templates (CLIP's prompt ensembling). Default: "a photo of a {}.".</summary>
        public IReadOnlyList<string>? Templates;

        /// <summary>The multiplier of the cosine similarities (null: the model's own logit scale).</summary>
        public float? LogitScale;

        /// <summary>The CUDA device for embedding the prompts, or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>A folder where ONNX Runtime's optimised model is kept (null: none).</summary>
        public string? CacheDirectory;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;
    }

    private readonly Options _options;

    internal ZeroShotEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ModelPath)) throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        ArgumentNullException.ThrowIfNull(options.ClassNames, nameof(options.ClassNames));
        try { PromptTemplates.ValidateClassNames(options.ClassNames); }
        catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        if (options.LogitScale is float s && !(s > 0 && float.IsFinite(s))) throw new ArgumentOutOfRangeException(nameof(options), s, "LogitScale must be a positive finite number.");
        _options = options;
    }

    /// <summary>Embeds the class prompts with the model's text tower and returns the transformer.</summary>
    public ZeroShotTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var feature = SchemaChecks.Find(input.Schema, _options.FeatureColumnName, "feature");
        SchemaChecks.RequireFloatVector(feature, "feature");
        using var model = ClipModel.Load(_options.ModelPath, MLNetModels.ModelOptions(_options.GpuDeviceId, _options.FallbackToCpu, 0, _options.CacheDirectory, _options.Warning));
        var transformer = ZeroShotTransformer.Create(model, _options.ClassNames, _options.Templates, _options.LogitScale,
            _options.FeatureColumnName, _options.ScoreColumnName, _options.PredictedLabelColumnName);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <summary>The input shape plus the Score and PredictedLabel columns; checks the feature column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(inputSchema, _options.FeatureColumnName, "feature"), "feature");
        return SchemaShapes.With(inputSchema, ZeroShotTransformer.Columns(_options.ClassNames, _options.ScoreColumnName, _options.PredictedLabelColumnName));
    }
}

/// <summary>
/// The fitted zero-shot classifier (see <see cref="ZeroShotEstimator"/>): the class text embeddings and the logit scale.
/// Holds no native resources. Thread-safe.
/// </summary>
public sealed class ZeroShotTransformer : VegaTransformerBase
{
    private readonly LinearClassHead _head; // C × D class embeddings, rows L2-normalised; no bias

    private ZeroShotTransformer(string modelName, IReadOnlyList<string> classNames, float[] classes, int dimension, float logitScale,
        string featureColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        ModelName = modelName;
        ClassNames = [.. classNames];
        _head = new LinearClassHead(ClassNames, classes, dimension, logitScale, bias: null);
        EmbeddingDimension = dimension;
        LogitScale = logitScale;
        FeatureColumnName = featureColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
    }

    internal static ZeroShotTransformer Create(ClipModel model, IReadOnlyList<string> classNames, IReadOnlyList<string>? templates, float? logitScale,
        string featureColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        var texts = model.EmbedClassNames(classNames, templates is null ? null : PromptTemplates.Create(templates));
        return new ZeroShotTransformer(model.Name, classNames, texts.Data.ToArray(), model.EmbeddingDimension, logitScale ?? model.LogitScale,
            featureColumnName, scoreColumnName, predictedLabelColumnName);
    }

    /// <summary>A classifier from class embeddings computed elsewhere (rows are normalised here).</summary>
    internal static ZeroShotTransformer FromEmbeddings(string modelName, IReadOnlyList<string> classNames, float[] classes, int dimension, float logitScale,
        string featureColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        var copy = (float[])classes.Clone();
        for (int c = 0; c < classNames.Count; c++) Embedding.EmbeddingMatrix.NormalizeInPlace(copy.AsSpan(c * dimension, dimension));
        return new ZeroShotTransformer(modelName, classNames, copy, dimension, logitScale, featureColumnName, scoreColumnName, predictedLabelColumnName);
    }

    internal static IReadOnlyList<AddedColumn> Columns(IReadOnlyList<string> classNames, string score, string predictedLabel) =>
        ClassifierMapping.Columns(classNames, score, predictedLabel);

    /// <summary>The name of the model whose text tower embedded the prompts.</summary>
    public string ModelName { get; }

    /// <summary>The class names, in key and slot order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The width of the embeddings.</summary>
    public int EmbeddingDimension { get; }

    /// <summary>The multiplier of the cosine similarities.</summary>
    public float LogitScale { get; }

    /// <summary>The image embedding column read.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The class probability column added.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The predicted class column added.</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>The class text embedding of class <paramref name="classIndex"/> (L2-normalised).</summary>
    public ReadOnlySpan<float> ClassEmbedding(int classIndex) => _head.Row(classIndex);

    internal float[] ClassEmbeddings => _head.Weights;

    private protected override ICanSaveModel SavedChain() => SavedChains.ZeroShot(this);

    private protected override RowMapping Bind(DataViewSchema inputSchema) =>
        ClassifierMapping.Bind(_head, inputSchema, FeatureColumnName, ScoreColumnName, PredictedLabelColumnName);

    /// <summary>Softmax of the scaled cosine similarities of <paramref name="embedding"/> to every class; returns the
    /// arg-max (the first maximum), or -1 when the embedding has a NaN (then every score is NaN).</summary>
    internal int Score(ReadOnlySpan<float> embedding, Span<float> scores) => _head.Score(embedding, scores);
}
