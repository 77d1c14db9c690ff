using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Models;
using Vega.MLNet.Text;

namespace Vega.MLNet;

/// <summary>
/// Embeds texts with the text tower of a CLIP model exported to ONNX: one L2-normalised <c>Vector&lt;Single, D&gt;</c> per
/// row. Created by <see cref="VegaCatalog.EmbedText(TransformsCatalog, string, string, string?, int?, bool)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | No |
/// | Input column data type | String |
/// | Output column data type | Known-sized vector of Single (L2-normalised); optionally a String error column |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save when the model uses the standard CLIP vocabulary, see docs/mlnet.md) |
/// ]]></format>
/// <para>Texts are tokenized exactly as the reference CLIP tokenizer does (ftfy, HTML unescaping, byte-level BPE) and
/// embedded in batches read ahead of the cursor. A text longer than the model's context is an error unless
/// <see cref="Options.Truncate"/> is set. The model is loaded when the estimator is created; dispose the fitted
/// transformer to release it.</para>
/// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
/// </remarks>
public sealed class TextEmbeddingEstimator : IEstimator<TextEmbeddingTransformer>
{
    /// <summary>Default values shared by the catalog methods and <see cref="Options"/>.</summary>
    public static class Defaults
    {
        /// <summary>Texts per ONNX Runtime run.</summary>
        public const int BatchSize = 64;
    }

    /// <summary>Options of <see cref="TextEmbeddingEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The model folder or clip.json file.</summary>
        public string ModelPath = "";

        /// <summary>The embedding column to add.</summary>
        public string OutputColumnName = VegaColumnNames.TextEmbedding;

        /// <summary>The text column.</summary>
        public string InputColumnName = VegaColumnNames.Text;

        /// <summary>The CUDA device to run on, or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>Texts per ONNX Runtime run.</summary>
        public int BatchSize = Defaults.BatchSize;

        /// <summary>ONNX Runtime threads inside one operator (0: one per core).</summary>
        public int IntraOpThreads;

        /// <summary>Cut a text longer than the context (its last kept token becomes the end token) instead of failing.</summary>
        public bool Truncate;

        /// <summary>What to do with a text that does not fit the context (when <see cref="Truncate"/> is off).</summary>
        public EmbeddingErrorHandling OnError = EmbeddingErrorHandling.Throw;

        /// <summary>With <see cref="EmbeddingErrorHandling.MissingValue"/>: the String column that receives the reason; null
        /// gives <c>OutputColumnName + "Error"</c>.</summary>
        public string? ErrorColumnName;

        /// <summary>A folder where ONNX Runtime's optimised model is kept so that the model loads faster next time (null: none).</summary>
        public string? CacheDirectory;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;
    }

    private readonly TextEmbeddingTransformer _transformer;

    internal TextEmbeddingEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _transformer = new TextEmbeddingTransformer(options);
    }

    /// <summary>Returns the transformer, which needs no training (the same instance every time).</summary>
    public TextEmbeddingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _transformer.GetOutputSchema(input.Schema);
        return _transformer;
    }

    /// <summary>The input shape plus the embedding column; checks the text column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaChecks.RequireText(SchemaChecks.Find(inputSchema, _transformer.InputColumnName), "input");
        return SchemaShapes.With(inputSchema, _transformer.AddedColumns);
    }
}

/// <summary>
/// The fitted text embedding transform (see <see cref="TextEmbeddingEstimator"/>). Owns the model's ONNX Runtime
/// sessions: dispose it when done. Thread-safe: several cursors may run at once.
/// </summary>
public sealed class TextEmbeddingTransformer : VegaTransformerBase, IDisposable
{
    private readonly TextEmbeddingEstimator.Options _options;
    private int _disposed;

    internal TextEmbeddingTransformer(TextEmbeddingEstimator.Options options)
    {
        if (string.IsNullOrWhiteSpace(options.ModelPath))
            throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        if (string.IsNullOrWhiteSpace(options.OutputColumnName)) throw new ArgumentOutOfRangeException(nameof(options), "OutputColumnName must not be empty.");
        if (string.IsNullOrWhiteSpace(options.InputColumnName)) throw new ArgumentOutOfRangeException(nameof(options), "InputColumnName must not be empty.");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        _options = options;
        Model = ClipModel.Load(options.ModelPath, MLNetModels.ModelOptions(options.GpuDeviceId, options.FallbackToCpu, options.IntraOpThreads, options.CacheDirectory, options.Warning));
        var added = new List<AddedColumn> { new(options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, Model.EmbeddingDimension)) };
        if (options.OnError == EmbeddingErrorHandling.MissingValue) added.Add(new(ErrorColumnName!, TextDataViewType.Instance));
        AddedColumns = added;
    }

    internal ClipModel Model { get; }

    internal IReadOnlyList<AddedColumn> AddedColumns { get; }

    internal TextEmbeddingEstimator.Options Options => _options;

    /// <summary>The embedding column.</summary>
    public string OutputColumnName => _options.OutputColumnName;

    /// <summary>The text column.</summary>
    public string InputColumnName => _options.InputColumnName;

    /// <summary>The error column, or null when errors throw.</summary>
    public string? ErrorColumnName => _options.OnError == EmbeddingErrorHandling.MissingValue ? _options.ErrorColumnName ?? _options.OutputColumnName + "Error" : null;

    /// <summary>Width D of the embedding vectors.</summary>
    public int EmbeddingDimension => Model.EmbeddingDimension;

    /// <summary>The model's name.</summary>
    public string ModelName => Model.Name;

    /// <summary>The model's tokenizer (an ML.NET <see cref="Microsoft.ML.Tokenizers.Tokenizer"/>).</summary>
    public ClipTokenizer Tokenizer => Model.Tokenizer;

    /// <summary>Where the text tower runs: "CPU" or "CUDA:&lt;id&gt;".</summary>
    public string ExecutionDevice => Model.ExecutionDevice;

    private protected override ICanSaveModel SavedChain() => SavedChains.TextEmbedding(this);

    private protected override RowMapping Bind(DataViewSchema inputSchema)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        ArgumentNullException.ThrowIfNull(inputSchema);
        var column = SchemaChecks.Find(inputSchema, InputColumnName);
        SchemaChecks.RequireText(column, "input");
        return new Mapping(this, inputSchema, column);
    }

    /// <summary>Releases the ONNX Runtime sessions (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Model.Dispose();
    }

    /// <summary>Tokenizes and embeds the texts of a batch; a text that does not fit gets an error instead of a row.</summary>
    internal void Embed(TextBatch batch, CancellationToken ct)
    {
        int n = batch.Count, dim = Model.EmbeddingDimension;
        var kept = new List<string>(n);
        var rows = new List<int>(n);
        for (int i = 0; i < n; i++)
        {
            batch.Errors[i] = null;
            string text = batch.Texts[i] ?? "";
            if (!_options.Truncate)
            {
                int count = Model.Tokenizer.CountTokens(text); // start and end included
                if (count > Model.ContextLength)
                {
                    batch.Errors[i] = $"the text has {count} tokens with start and end, more than the model's context of {Model.ContextLength}; shorten it or set Truncate";
                    continue;
                }
            }
            kept.Add(text);
            rows.Add(i);
        }
        if (kept.Count == 0) return;
        var tokens = Model.Tokenizer.EncodeBatch(kept, Model.ContextLength, truncate: true, (int)Model.PadId);
        var output = new float[kept.Count * dim];
        Model.EmbedTokensInto(tokens, output, ct);
        for (int k = 0; k < rows.Count; k++) output.AsSpan(k * dim, dim).CopyTo(batch.Rows.AsSpan(rows[k] * dim, dim));
    }

    internal static Func<string> Reader(DataViewRow row, DataViewSchema.Column column)
    {
        var getter = row.GetGetter<ReadOnlyMemory<char>>(column);
        ReadOnlyMemory<char> value = default;
        return () =>
        {
            getter(ref value);
            return value.ToString();
        };
    }

    private sealed class Mapping(TextEmbeddingTransformer owner, DataViewSchema input, DataViewSchema.Column column) : RowMapping(input, owner.AddedColumns)
    {
        public override IEnumerable<DataViewSchema.Column> InputsFor(bool[] activeAdded) => [column];

        public override AddedValues CreateValues(DataViewRow row, bool[] activeAdded) => new RowValues(owner, row, Reader(row, column));

        public override DataViewRowCursor? CreateBatchedCursor(IDataView data, IReadOnlyList<DataViewSchema.Column> inputColumns, bool[] activeAdded)
        {
            var follower = data.GetRowCursor(inputColumns);
            try
            {
                var lead = data.GetRowCursor([column]);
                var read = Reader(lead, column);
                int capacity = owner._options.BatchSize, dim = owner.EmbeddingDimension;
                var pipeline = new ReadAheadPipeline<TextBatch>(lead,
                    (cursor, batch) =>
                    {
                        batch.Count = 0;
                        while (batch.Count < capacity && cursor.MoveNext()) batch.Texts[batch.Count++] = read();
                        return batch.Count > 0;
                    },
                    (_, _) => { }, owner.Embed, [new TextBatch(capacity, dim), new TextBatch(capacity, dim), new TextBatch(capacity, dim)]);
                return new BatchedEmbeddingCursor<TextBatch>(this, follower, pipeline, activeAdded, dim, owner._options.OnError,
                    b => (b.Count, b.Rows, b.Errors, b.Texts.Take(b.Count).Select(Quote).ToArray()), "text");
            }
            catch
            {
                follower.Dispose();
                throw;
            }
        }
    }

    internal static string Quote(string? text) => text is null ? "null" : text.Length <= 40 ? $"\"{text}\"" : $"\"{text[..37]}...\"";

    private sealed class RowValues(TextEmbeddingTransformer owner, DataViewRow row, Func<string> read) : PerRowValues(row)
    {
        private readonly TextBatch _batch = new(1, owner.EmbeddingDimension);

        protected override void Compute()
        {
            _batch.Texts[0] = read();
            _batch.Count = 1;
            owner.Embed(_batch, CancellationToken.None);
        }

        public override Delegate Getter(int addedIndex)
        {
            if (addedIndex == 0)
                return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                {
                    Ensure();
                    EmbeddingValues.Write(ref dst, _batch.Rows.AsSpan(0, owner.EmbeddingDimension), _batch.Errors[0], Input.Position, Quote(_batch.Texts[0]), owner._options.OnError, "text");
                });
            return (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) =>
            {
                Ensure();
                dst = (_batch.Errors[0] ?? "").AsMemory();
            });
        }
    }
}

/// <summary>Buffers of one batch of texts.</summary>
internal sealed class TextBatch(int capacity, int dimension)
{
    public int Count;
    public string?[] Texts { get; } = new string?[capacity];
    public float[] Rows { get; } = new float[capacity * dimension];
    public string?[] Errors { get; } = new string?[capacity];
}
