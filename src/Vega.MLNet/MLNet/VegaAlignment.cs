using System.Numerics.Tensors;
using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>
/// VEGA over an image embedding column: <c>Fit</c> streams the rows once into per-pseudo-class statistics (counts, sums,
/// co-moments in float64) and scores how well the model's visual graph agrees with its textual graph — a label-free
/// predictor of its zero-shot accuracy on these images (docs/vega.md). The transformer adds each row's pseudo-label and
/// node score and exposes the data-set result (<see cref="VegaAlignmentTransformer.Result"/>).
/// Created by <see cref="VegaCatalog.VegaAlignment(TransformsCatalog, string, IReadOnlyList{string}, string)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | Yes (one pass) |
/// | Input column data type | Known-sized vector of Single (the image embeddings of the same model) |
/// | Output column data type | `PseudoLabel`: key over the class names; `NodeScore`: Single |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save, see docs/mlnet.md) |
/// ]]></format>
/// <para>Rows whose embedding is missing (NaN, e.g. from <see cref="EmbeddingErrorHandling.MissingValue"/>) are left
/// out of the statistics and counted in <see cref="VegaAlignmentTransformer.SkippedRows"/>; they get a missing
/// PseudoLabel and a NaN NodeScore.</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class VegaAlignmentEstimator : IEstimator<VegaAlignmentTransformer>
{
    /// <summary>Options of <see cref="VegaAlignmentEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The model folder or clip.json file (the model that produced the image embeddings).</summary>
        public string ModelPath = "";

        /// <summary>The class names (at least 2, distinct), in key order.</summary>
        public IReadOnlyList<string> ClassNames = [];

        /// <summary>The image embedding column.</summary>
        public string ImageEmbeddingColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The pseudo-label column to add (a key over the class names: the class of the highest cosine).</summary>
        public string PseudoLabelColumnName = VegaColumnNames.PseudoLabel;

        /// <summary>The node score column to add: the softmax probability, at VEGA's node temperature, of the row's pseudo-class.</summary>
        public string NodeScoreColumnName = VegaColumnNames.NodeScore;

        /// <summary>Prompt templates with "{}" for the class name (default "a photo of a {}.").</summary>
        public IReadOnlyList<string>? Templates;

        /// <summary>VEGA's settings (covariance, shrinkage, edge kind, temperature, …); <see cref="VegaOptions.Paper"/> is
        /// the published definition.</summary>
        public VegaOptions Vega = new();

        /// <summary>The bootstrap of the scores' intervals (replicates, level, seed).</summary>
        public BootstrapOptions Bootstrap = new();

        /// <summary>Temperature of the softmax of the label-free baselines computed alongside (confidence, entropy, dispersity).</summary>
        public double BaselineTemperature = new SelectionOptions().BaselineTemperature;

        /// <summary>Rows streamed per statistics update.</summary>
        public int BatchSize = 4096;

        /// <summary>The CUDA device for embedding the prompts, or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>A folder where ONNX Runtime's optimised model is kept (null: none).</summary>
        public string? CacheDirectory;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;

        internal SelectionOptions Selection => new() { Metric = SelectionMetric.Vega, Vega = Vega, Bootstrap = Bootstrap, BaselineTemperature = BaselineTemperature };
    }

    private readonly Options _options;

    internal VegaAlignmentEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ModelPath)) throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        ArgumentNullException.ThrowIfNull(options.ClassNames, nameof(options.ClassNames));
        ArgumentNullException.ThrowIfNull(options.Vega, nameof(options.Vega));
        try { PromptTemplates.ValidateClassNames(options.ClassNames); }
        catch (ArgumentException e) { throw new ArgumentOutOfRangeException(nameof(options), e.Message); }
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        _options = options;
    }

    /// <summary>Embeds the class prompts, streams the embedding column once into the statistics and scores them.</summary>
    public VegaAlignmentTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = SchemaChecks.Find(input.Schema, _options.ImageEmbeddingColumnName);
        SchemaChecks.RequireFloatVector(column, "input");
        using var model = ClipModel.Load(_options.ModelPath, MLNetModels.ModelOptions(_options.GpuDeviceId, _options.FallbackToCpu, 0, _options.CacheDirectory, _options.Warning));
        var texts = model.EmbedClassNames(_options.ClassNames, _options.Templates is null ? null : PromptTemplates.Create(_options.Templates));
        SchemaChecks.RequireFloatVector(column, "input", texts.Dimension);
        var stats = SelectionStatistics.Create(model.Name, texts, _options.Selection);
        long skipped = Stream(input, column, texts.Dimension, _options.BatchSize, stats);
        if (stats.ImageCount == 0)
            throw new InvalidOperationException($"VEGA needs at least one image embedding, but column '{column.Name}' had {(skipped > 0 ? $"only missing values ({skipped} rows)" : "no rows")}.");
        var scores = stats.Score();
        var transformer = new VegaAlignmentTransformer(_options, model.Name, texts.Data.ToArray(), texts.Dimension, scores, skipped);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <summary>Adds the rows of <paramref name="column"/> to <paramref name="stats"/> in batches; returns the rows left out
    /// because their embedding is missing (NaN, infinite or all zeros).</summary>
    internal static long Stream(IDataView input, DataViewSchema.Column column, int dimension, int batchSize, SelectionStatistics stats)
    {
        using var cursor = input.GetRowCursor([column]);
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var value = default(VBuffer<float>);
        var batch = new EmbeddingMatrix(batchSize, dimension);
        var ids = new long[batchSize];
        int n = 0;
        long skipped = 0, row = -1;
        void Flush()
        {
            if (n == 0) return;
            var full = n == batchSize ? batch : Slice(batch, n);
            stats.Add(full, ids.AsSpan(0, n));
            n = 0;
        }
        while (cursor.MoveNext())
        {
            row++;
            getter(ref value);
            var dst = batch.Row(n);
            value.CopyTo(dst);
            float norm = TensorPrimitives.Norm(dst);
            if (!float.IsFinite(norm) || norm == 0) { skipped++; continue; }
            ids[n++] = row;
            if (n == batchSize) Flush();
        }
        Flush();
        return skipped;
    }

    private static EmbeddingMatrix Slice(EmbeddingMatrix m, int rows)
    {
        var r = new EmbeddingMatrix(rows, m.Dimension);
        m.Data.AsSpan(0, rows * m.Dimension).CopyTo(r.Data);
        return r;
    }

    /// <summary>The input shape plus PseudoLabel and NodeScore; checks the embedding column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaChecks.RequireFloatVector(SchemaChecks.Find(inputSchema, _options.ImageEmbeddingColumnName), "input");
        return SchemaShapes.With(inputSchema, VegaAlignmentTransformer.Columns(_options));
    }
}

/// <summary>
/// The fitted VEGA alignment (see <see cref="VegaAlignmentEstimator"/>): the data-set result, and a transform that adds
/// each row's pseudo-label and node score. Holds no native resources. Thread-safe.
/// </summary>
public sealed class VegaAlignmentTransformer : VegaTransformerBase
{
    private readonly VegaAlignmentEstimator.Options _options;
    private readonly float[] _classes;

    internal VegaAlignmentTransformer(VegaAlignmentEstimator.Options options, string modelName, float[] classes, int dimension, ModelScores scores, long skipped)
    {
        _options = options;
        _classes = classes;
        ModelName = modelName;
        EmbeddingDimension = dimension;
        Scores = scores;
        SkippedRows = skipped;
        ClassNames = [.. options.ClassNames];
    }

    internal static IReadOnlyList<AddedColumn> Columns(VegaAlignmentEstimator.Options o) =>
    [
        new(o.PseudoLabelColumnName, new KeyDataViewType(typeof(uint), o.ClassNames.Count), KeyValues: o.ClassNames),
        new(o.NodeScoreColumnName, NumberDataViewType.Single),
    ];

    /// <summary>VEGA's result on the fitted rows: <c>Score</c> = <c>NodeScore</c> + <c>EdgeScore</c>, the per-class
    /// counts and node similarities (<c>Classes</c>), the textual and visual edge matrices (<c>Edges</c>) and warnings.</summary>
    public VegaResult Result => Scores.Vega;

    /// <summary>Every label-free score of the model on the fitted rows (VEGA, dispersity, confidence, entropy, …) with
    /// bootstrap intervals.</summary>
    public ModelScores Scores { get; }

    /// <summary>Rows left out of the statistics because their embedding was missing.</summary>
    public long SkippedRows { get; }

    /// <summary>The model's name.</summary>
    public string ModelName { get; }

    /// <summary>The class names, in key order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The embedding width.</summary>
    public int EmbeddingDimension { get; }

    // Saved: the per-row transform only (the data-set Result is not part of the saved model; keep it yourself).
    private protected override ICanSaveModel SavedChain() => SavedChains.VegaAlignment(this);

    internal float[] ClassEmbeddings => _classes;

    internal double Temperature => _options.Vega.Temperature;

    internal VegaAlignmentEstimator.Options Options => _options;

    private protected override RowMapping Bind(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var column = SchemaChecks.Find(inputSchema, _options.ImageEmbeddingColumnName);
        SchemaChecks.RequireFloatVector(column, "input", EmbeddingDimension);
        return new Mapping(this, inputSchema, column);
    }

    /// <summary>The pseudo-class (first highest cosine) of an embedding and its node probability; (-1, NaN) when missing.</summary>
    internal (int Class, float Node) Node(ReadOnlySpan<float> embedding, Span<float> scratch)
    {
        float norm = TensorPrimitives.Norm(embedding);
        if (!float.IsFinite(norm) || norm == 0) return (-1, float.NaN);
        int d = EmbeddingDimension, best = 0;
        for (int c = 0; c < scratch.Length; c++)
        {
            scratch[c] = TensorPrimitives.Dot(embedding, _classes.AsSpan(c * d, d)) / norm;
            if (scratch[c] > scratch[best]) best = c;
        }
        // Softmax at the node temperature, in float64 as the statistics compute it.
        double t = Temperature, max = scratch[best], sum = 0;
        for (int c = 0; c < scratch.Length; c++) sum += Math.Exp((scratch[c] - max) / t);
        return (best, (float)(1 / sum));
    }

    private sealed class Mapping(VegaAlignmentTransformer owner, DataViewSchema input, DataViewSchema.Column column) : RowMapping(input, Columns(owner._options))
    {
        public override IEnumerable<DataViewSchema.Column> InputsFor(bool[] activeAdded) => [column];

        public override AddedValues CreateValues(DataViewRow row, bool[] activeAdded) => new Values(owner, row, row.GetGetter<VBuffer<float>>(column));
    }

    private sealed class Values(VegaAlignmentTransformer owner, DataViewRow row, ValueGetter<VBuffer<float>> embedding) : PerRowValues(row)
    {
        private VBuffer<float> _value;
        private readonly float[] _dense = new float[owner.EmbeddingDimension];
        private readonly float[] _scratch = new float[owner.ClassNames.Count];
        private (int Class, float Node) _result;

        protected override void Compute()
        {
            embedding(ref _value);
            _value.CopyTo(_dense);
            _result = owner.Node(_dense, _scratch);
        }

        public override Delegate Getter(int addedIndex) => addedIndex == 0
            ? (ValueGetter<uint>)((ref uint dst) =>
            {
                Ensure();
                dst = (uint)(_result.Class + 1);
            })
            : (ValueGetter<float>)((ref float dst) =>
            {
                Ensure();
                dst = _result.Node;
            });
    }
}
