using System.Numerics.Tensors;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vega.MLNet;

/// <summary>
/// A fitted multiclass head over an image embedding column: class probabilities and the arg-max for one embedding.
/// The zero-shot, prompt-tuning and AAPE transformers score through it and share one row mapping
/// (<see cref="ClassifierMapping"/>), so their Score and PredictedLabel columns are computed and annotated alike.
/// </summary>
internal interface IEmbeddingClassifier
{
    /// <summary>The class names, in score-slot and key order.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The width D of the embeddings it reads.</summary>
    int EmbeddingDimension { get; }

    /// <summary>Writes the class probabilities of <paramref name="embedding"/> into <paramref name="probabilities"/>;
    /// returns the arg-max (the first maximum), or -1 when the embedding has a NaN (then every probability is NaN).</summary>
    int Score(ReadOnlySpan<float> embedding, Span<float> probabilities);
}

/// <summary>
/// softmax(s·(x̂·W_cᵀ) + b_c) with x̂ = x/‖x‖: a constant class matrix W (C × D), a scale s and an optional bias b.
/// Zero-shot and CoOp: W the L2-normalised class text embeddings, s the model's logit scale, no bias (a cosine
/// classifier). The linear probe: its learnt W and b. Holds no native resources; thread-safe.
/// </summary>
internal sealed class LinearClassHead : IEmbeddingClassifier
{
    public LinearClassHead(IReadOnlyList<string> classNames, float[] weights, int dimension, float scale, float[]? bias)
    {
        if (weights.Length != (long)classNames.Count * dimension)
            throw new ArgumentException($"{classNames.Count} classes of width {dimension} need {(long)classNames.Count * dimension} weights, got {weights.Length}.", nameof(weights));
        if (bias is not null && bias.Length != classNames.Count)
            throw new ArgumentException($"{classNames.Count} classes need {classNames.Count} biases, got {bias.Length}.", nameof(bias));
        ClassNames = classNames;
        Weights = weights;
        EmbeddingDimension = dimension;
        Scale = scale;
        Bias = bias;
    }

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>W, C × D row-major.</summary>
    public float[] Weights { get; }

    public int EmbeddingDimension { get; }

    /// <summary>s, the multiplier of x̂·W_cᵀ.</summary>
    public float Scale { get; }

    /// <summary>b, or null for none.</summary>
    public float[]? Bias { get; }

    public ReadOnlySpan<float> Row(int classIndex) => Weights.AsSpan(classIndex * EmbeddingDimension, EmbeddingDimension);

    public int Score(ReadOnlySpan<float> embedding, Span<float> probabilities)
    {
        float norm = TensorPrimitives.Norm(embedding);
        if (!float.IsFinite(norm))
        {
            probabilities.Fill(float.NaN);
            return -1;
        }
        float inv = norm > 0 ? Scale / norm : 0;
        for (int c = 0; c < probabilities.Length; c++) probabilities[c] = TensorPrimitives.Dot(embedding, Row(c)) * inv;
        if (Bias is not null) TensorPrimitives.Add(probabilities, Bias, probabilities);
        TensorPrimitives.SoftMax(probabilities, probabilities);
        return ArgMax(probabilities);
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int c = 1; c < values.Length; c++) if (values[c] > values[best]) best = c;
        return best;
    }
}

/// <summary>
/// The Score (known-size Single vector, class names as SlotNames) and PredictedLabel (UInt32 key over the class names,
/// KeyValues) columns of a classifier over a feature column, computed once per row for both getters.
/// </summary>
internal sealed class ClassifierMapping : RowMapping
{
    private readonly IEmbeddingClassifier _head;
    private readonly DataViewSchema.Column _feature;

    private ClassifierMapping(IEmbeddingClassifier head, DataViewSchema input, DataViewSchema.Column feature, string score, string predictedLabel)
        : base(input, Columns(head.ClassNames, score, predictedLabel))
    {
        _head = head;
        _feature = feature;
    }

    /// <summary>The two added columns.</summary>
    public static IReadOnlyList<AddedColumn> Columns(IReadOnlyList<string> classNames, string score, string predictedLabel) =>
    [
        new(score, new VectorDataViewType(NumberDataViewType.Single, classNames.Count), SlotNames: classNames),
        new(predictedLabel, new KeyDataViewType(typeof(uint), classNames.Count), KeyValues: classNames),
    ];

    /// <summary>Binds to <paramref name="inputSchema"/>, checking the feature column (type and width) with ML.NET's messages.</summary>
    public static ClassifierMapping Bind(IEmbeddingClassifier head, DataViewSchema inputSchema, string featureColumnName, string score, string predictedLabel)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var feature = SchemaChecks.Find(inputSchema, featureColumnName, "feature");
        SchemaChecks.RequireFloatVector(feature, "feature", head.EmbeddingDimension);
        return new ClassifierMapping(head, inputSchema, feature, score, predictedLabel);
    }

    public override IEnumerable<DataViewSchema.Column> InputsFor(bool[] activeAdded) => [_feature];

    public override AddedValues CreateValues(DataViewRow row, bool[] activeAdded) => new Values(_head, row, row.GetGetter<VBuffer<float>>(_feature));

    private sealed class Values(IEmbeddingClassifier head, DataViewRow row, ValueGetter<VBuffer<float>> features) : PerRowValues(row)
    {
        private VBuffer<float> _features;
        private readonly float[] _dense = new float[head.EmbeddingDimension];
        private readonly float[] _scores = new float[head.ClassNames.Count];
        private int _best;

        protected override void Compute()
        {
            features(ref _features);
            _features.CopyTo(_dense);
            _best = head.Score(_dense, _scores);
        }

        public override Delegate Getter(int addedIndex) => addedIndex == 0
            ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
            {
                Ensure();
                var editor = VBufferEditor.Create(ref dst, _scores.Length);
                _scores.CopyTo(editor.Values);
                dst = editor.Commit();
            })
            : (ValueGetter<uint>)((ref uint dst) =>
            {
                Ensure();
                dst = (uint)(_best + 1); // ML.NET keys are 1-based; 0 is the missing value
            });
    }
}
