using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet;

/// <summary>What an embedding transform does with an input it cannot embed (an unreadable image, a text longer than the
/// model's context).</summary>
public enum EmbeddingErrorHandling
{
    /// <summary>Throw an <see cref="InvalidOperationException"/> naming the row and the file when the row's embedding is
    /// read (as ML.NET's LoadImages does).</summary>
    Throw,

    /// <summary>Give the row an all-NaN embedding and the reason in the error column, so that
    /// <c>ml.Data.FilterRowsByMissingValues(data, outputColumnName)</c> drops such rows.</summary>
    MissingValue,
}

/// <summary>
/// Embeds images with the image tower of a CLIP model exported to ONNX: one L2-normalised <c>Vector&lt;Single, D&gt;</c>
/// per row. Created by <see cref="VegaCatalog.EmbedImages(TransformsCatalog, string, string, string?, int?, bool)"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ###  Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | No |
/// | Input column data type | String (an image file path), Vector of Byte (encoded image, from LoadRawImageBytes), or Image (MLImage, from LoadImages) |
/// | Output column data type | Known-sized vector of Single (L2-normalised); optionally a String error column |
/// | Required NuGet in addition to Microsoft.ML | Vega.MLNet |
/// | Exportable to ONNX | No (saved with ml.Model.Save, see docs/mlnet.md) |
/// ]]></format>
/// <para>Images are decoded and preprocessed exactly as the reference CLIP pipeline does (Pillow 9.4 + torchvision) for
/// file paths and encoded bytes; an MLImage column is only as exact as ML.NET's decoder (premultiplied alpha). Rows are
/// embedded in batches read ahead of the cursor (parallel decoding, one ONNX Runtime run per batch, row order kept); a
/// cursor that does not ask for the embedding column runs nothing. The estimator loads the model when it is created, as
/// ApplyOnnxModel does; dispose the fitted transformer to release it.</para>
/// <para>Only load models you trust: an ONNX model runs code paths chosen by its author, and applying an untrusted one
/// is a security risk.</para>
/// </remarks>
public sealed class ImageEmbeddingEstimator : IEstimator<ImageEmbeddingTransformer>
{
    /// <summary>Default values shared by the catalog methods and <see cref="Options"/>.</summary>
    public static class Defaults
    {
        /// <summary>Images per ONNX Runtime run.</summary>
        public const int BatchSize = 32;
    }

    /// <summary>Options of <see cref="ImageEmbeddingEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The model: a folder (Hugging Face split or combined, OpenAI-style, or with a clip.json) or a clip.json file.</summary>
        public string ModelPath = "";

        /// <summary>The embedding column to add.</summary>
        public string OutputColumnName = VegaColumnNames.ImageEmbedding;

        /// <summary>The image column: a file path (String), encoded bytes (Vector of Byte) or an MLImage.</summary>
        public string InputColumnName = VegaColumnNames.ImagePath;

        /// <summary>Folder that relative paths of a path column are resolved against (null: the current directory).</summary>
        public string? ImageFolder;

        /// <summary>The CUDA device to run on, or null for the CPU.</summary>
        public int? GpuDeviceId;

        /// <summary>Run on the CPU (after one warning) when the GPU cannot be used, instead of throwing.</summary>
        public bool FallbackToCpu;

        /// <summary>Images per ONNX Runtime run.</summary>
        public int BatchSize = Defaults.BatchSize;

        /// <summary>Threads that decode and preprocess images (0: one per core).</summary>
        public int DecodeThreads;

        /// <summary>ONNX Runtime threads inside one operator (0: one per core).</summary>
        public int IntraOpThreads;

        /// <summary>A folder for the crash-safe embedding cache (null: no cache). Images already embedded by the same model
        /// with the same preprocessing are read from it instead of being run again; ONNX Runtime's optimised model is kept
        /// there too, so the model loads faster the next time.</summary>
        public string? CacheDirectory;

        /// <summary>Rotate images by their EXIF orientation (the reference CLIP preprocessing does not).</summary>
        public bool ApplyExifOrientation;

        /// <summary>Images with more pixels are errors (decompression-bomb guard; default Pillow's limit).</summary>
        public long MaxPixels = DecodeOptions.Default.MaxPixels;

        /// <summary>What to do with an image that cannot be read or decoded.</summary>
        public EmbeddingErrorHandling OnError = EmbeddingErrorHandling.Throw;

        /// <summary>With <see cref="EmbeddingErrorHandling.MissingValue"/>: the String column that receives the reason (empty when
        /// the image was embedded); null gives <c>OutputColumnName + "Error"</c>.</summary>
        public string? ErrorColumnName;

        /// <summary>Receives warnings, such as a GPU fallback (default: System.Diagnostics.Trace).</summary>
        public Action<string>? Warning;
    }

    private readonly ImageEmbeddingTransformer _transformer;

    internal ImageEmbeddingEstimator(Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _transformer = new ImageEmbeddingTransformer(options);
    }

    /// <summary>Returns the transformer, which needs no training (the same instance every time).</summary>
    public ImageEmbeddingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _transformer.GetOutputSchema(input.Schema);
        return _transformer;
    }

    /// <summary>The input shape plus the embedding column (and the error column, when requested); checks the image column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaChecks.ImageInput(SchemaChecks.Find(inputSchema, _transformer.InputColumnName), "input");
        return SchemaShapes.With(inputSchema, _transformer.AddedColumns);
    }
}

/// <summary>
/// The fitted image embedding transform (see <see cref="ImageEmbeddingEstimator"/>). Owns the model's ONNX Runtime
/// sessions: dispose it when done. Thread-safe: several cursors may run at once.
/// </summary>
public sealed class ImageEmbeddingTransformer : VegaTransformerBase, IDisposable
{
    private readonly ImageEmbeddingEstimator.Options _options;
    private readonly SharedEmbeddingCache.Lease? _cache;
    private readonly DecodeOptions _decode;
    private int _disposed;

    internal ImageEmbeddingTransformer(ImageEmbeddingEstimator.Options options)
    {
        if (string.IsNullOrWhiteSpace(options.ModelPath))
            throw new ArgumentOutOfRangeException(nameof(options), "ModelPath must name a model folder or a clip.json file.");
        if (string.IsNullOrWhiteSpace(options.OutputColumnName)) throw new ArgumentOutOfRangeException(nameof(options), "OutputColumnName must not be empty.");
        if (string.IsNullOrWhiteSpace(options.InputColumnName)) throw new ArgumentOutOfRangeException(nameof(options), "InputColumnName must not be empty.");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        if (options.DecodeThreads < 0) throw new ArgumentOutOfRangeException(nameof(options), options.DecodeThreads, "DecodeThreads must be 0 (one per core) or more.");
        if (options.MaxPixels < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxPixels, "MaxPixels must be positive.");
        _options = options;
        _decode = new DecodeOptions { ApplyExifOrientation = options.ApplyExifOrientation, MaxPixels = options.MaxPixels };
        Model = ClipModel.Load(options.ModelPath, MLNetModels.ModelOptions(options.GpuDeviceId, options.FallbackToCpu, options.IntraOpThreads, options.CacheDirectory, options.Warning));
        try
        {
            if (options.CacheDirectory is not null)
                _cache = SharedEmbeddingCache.Acquire(options.CacheDirectory, Model.ContentHash, Model.Name, PreprocessKey.Describe(Model.Preprocessing, _decode), Model.EmbeddingDimension);
        }
        catch
        {
            Model.Dispose();
            throw;
        }
        Embedder = new ImageBatchEmbedder(Model, _decode, _cache?.Cache, options.DecodeThreads);
        var added = new List<AddedColumn> { new(options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, Model.EmbeddingDimension)) };
        if (options.OnError == EmbeddingErrorHandling.MissingValue) added.Add(new(ErrorColumnName!, TextDataViewType.Instance));
        AddedColumns = added;
    }

    internal ClipModel Model { get; }

    internal ImageBatchEmbedder Embedder { get; }

    internal IReadOnlyList<AddedColumn> AddedColumns { get; }

    internal ImageEmbeddingEstimator.Options Options => _options;

    /// <summary>The embedding column.</summary>
    public string OutputColumnName => _options.OutputColumnName;

    /// <summary>The image column.</summary>
    public string InputColumnName => _options.InputColumnName;

    /// <summary>The error column, or null when errors throw.</summary>
    public string? ErrorColumnName => _options.OnError == EmbeddingErrorHandling.MissingValue ? _options.ErrorColumnName ?? _options.OutputColumnName + "Error" : null;

    /// <summary>Width D of the embedding vectors.</summary>
    public int EmbeddingDimension => Model.EmbeddingDimension;

    /// <summary>The model's name (its folder name, or the manifest's name).</summary>
    public string ModelName => Model.Name;

    /// <summary>Where the image tower runs: "CPU" or "CUDA:&lt;id&gt;".</summary>
    public string ExecutionDevice => Model.ExecutionDevice;

    private protected override ICanSaveModel SavedChain() => SavedChains.ImageEmbedding(this);

    private protected override RowMapping Bind(DataViewSchema inputSchema)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        ArgumentNullException.ThrowIfNull(inputSchema);
        var column = SchemaChecks.Find(inputSchema, InputColumnName);
        var kind = SchemaChecks.ImageInput(column, "input");
        _inputType = column.Type;
        return new Mapping(this, inputSchema, column, kind);
    }

    private DataViewType? _inputType;

    /// <summary>The type of the image column the transformer was fitted on (what a saved model reads).</summary>
    internal DataViewType InputType => _inputType ?? throw new InvalidOperationException("The transformer has not seen an input schema yet.");

    internal ImageInputKind InputKind => InputType switch
    {
        TextDataViewType => ImageInputKind.Path,
        Microsoft.ML.Transforms.Image.ImageDataViewType => ImageInputKind.Image,
        _ => ImageInputKind.Bytes,
    };

    /// <summary>Releases the ONNX Runtime sessions and the cache (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _cache?.Dispose();
        Model.Dispose();
    }

    /// <summary>Reads the image of the current row of a cursor or row.</summary>
    internal static Func<ImageInput> Reader(DataViewRow row, DataViewSchema.Column column, ImageInputKind kind, string? folder)
    {
        switch (kind)
        {
            case ImageInputKind.Path:
            {
                var getter = row.GetGetter<ReadOnlyMemory<char>>(column);
                ReadOnlyMemory<char> value = default;
                return () =>
                {
                    getter(ref value);
                    if (value.IsEmpty || value.Span.IsWhiteSpace()) return ImageInput.Missing($"row {row.Position}: empty path");
                    string path = value.ToString();
                    if (folder is not null && !Path.IsPathRooted(path)) path = Path.Combine(folder, path);
                    return new ImageInput(path, Path: path);
                };
            }
            case ImageInputKind.Bytes:
            {
                var getter = row.GetGetter<VBuffer<byte>>(column);
                VBuffer<byte> value = default;
                return () =>
                {
                    getter(ref value);
                    string name = $"row {row.Position} of column '{column.Name}'";
                    if (value.Length == 0) return ImageInput.Missing(name);
                    var bytes = new byte[value.Length];
                    value.CopyTo(bytes);
                    return new ImageInput(name, Bytes: bytes);
                };
            }
            default:
            {
                var getter = row.GetGetter<MLImage>(column);
                MLImage? value = null;
                return () =>
                {
                    getter(ref value!);
                    string name = value?.Tag is { Length: > 0 } tag ? tag : $"row {row.Position} of column '{column.Name}'";
                    return value is null ? ImageInput.Missing(name) : new ImageInput(name, Pixels: FromMLImage(value));
                };
            }
        }
    }

    /// <summary>The RGB pixels of an MLImage (BGRA32 or RGBA32 as ML.NET stores them; alpha, premultiplied there, dropped).</summary>
    internal static RgbImage FromMLImage(MLImage image)
    {
        var pixels = image.Pixels;
        var rgb = new RgbImage(image.Width, image.Height);
        var dst = rgb.Span;
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        for (int p = 0, s = 0, o = 0; p < image.Width * image.Height; p++, s += 4, o += 3)
        {
            dst[o] = bgra ? pixels[s + 2] : pixels[s];
            dst[o + 1] = pixels[s + 1];
            dst[o + 2] = bgra ? pixels[s] : pixels[s + 2];
        }
        return rgb;
    }

    private sealed class Mapping(ImageEmbeddingTransformer owner, DataViewSchema input, DataViewSchema.Column column, ImageInputKind kind)
        : RowMapping(input, owner.AddedColumns)
    {
        public override IEnumerable<DataViewSchema.Column> InputsFor(bool[] activeAdded) => [column];

        public override AddedValues CreateValues(DataViewRow row, bool[] activeAdded) => new RowValues(owner, row, Reader(row, column, kind, owner._options.ImageFolder));

        public override DataViewRowCursor? CreateBatchedCursor(IDataView data, IReadOnlyList<DataViewSchema.Column> inputColumns, bool[] activeAdded)
        {
            var follower = data.GetRowCursor(inputColumns);
            try
            {
                var lead = data.GetRowCursor([column]);
                var read = Reader(lead, column, kind, owner._options.ImageFolder);
                int capacity = owner._options.BatchSize;
                var embedder = owner.Embedder;
                var pipeline = new ReadAheadPipeline<ImageBatch>(lead,
                    (cursor, batch) =>
                    {
                        batch.Clear();
                        while (batch.Count < capacity && cursor.MoveNext()) batch.Inputs[batch.Count++] = read();
                        return batch.Count > 0;
                    },
                    embedder.Prepare, embedder.Run, [embedder.NewBatch(capacity), embedder.NewBatch(capacity), embedder.NewBatch(capacity)]);
                return new BatchedEmbeddingCursor<ImageBatch>(this, follower, pipeline, activeAdded, owner.Dimension, owner._options.OnError,
                    b => (b.Count, b.Rows, b.Errors, b.Inputs.Select(i => i.Name).ToArray()));
            }
            catch
            {
                follower.Dispose();
                throw;
            }
        }
    }

    private int Dimension => Model.EmbeddingDimension;

    /// <summary>One image at a time (PredictionEngine): no read-ahead, one tower run of one image per row.</summary>
    private sealed class RowValues(ImageEmbeddingTransformer owner, DataViewRow row, Func<ImageInput> read) : PerRowValues(row)
    {
        private readonly ImageBatch _batch = owner.Embedder.NewBatch(1);

        protected override void Compute()
        {
            _batch.Clear();
            _batch.Inputs[0] = read();
            _batch.Count = 1;
            owner.Embedder.Prepare(_batch, CancellationToken.None);
            owner.Embedder.Run(_batch, CancellationToken.None);
        }

        public override Delegate Getter(int addedIndex)
        {
            int dim = owner.Dimension;
            if (addedIndex == 0)
                return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                {
                    Ensure();
                    EmbeddingValues.Write(ref dst, _batch.Rows.AsSpan(0, dim), _batch.Errors[0], Input.Position, _batch.Inputs[0].Name, owner._options.OnError);
                });
            return (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) =>
            {
                Ensure();
                dst = (_batch.Errors[0] ?? "").AsMemory();
            });
        }
    }
}

/// <summary>Writing embedding rows into ML.NET vectors, with the error behaviour of <see cref="EmbeddingErrorHandling"/>.</summary>
internal static class EmbeddingValues
{
    public static void Write(ref VBuffer<float> dst, ReadOnlySpan<float> row, string? error, long position, string name, EmbeddingErrorHandling onError, string what = "image")
    {
        var editor = VBufferEditor.Create(ref dst, row.Length);
        if (error is null) row.CopyTo(editor.Values);
        else if (onError == EmbeddingErrorHandling.MissingValue) editor.Values.Fill(float.NaN);
        else
            throw new InvalidOperationException(
                $"Cannot embed the {what} of row {position} ({name}): {error}. To keep going instead, set OnError = EmbeddingErrorHandling.MissingValue " +
                "(the row gets a NaN embedding and the reason in an error column) and drop such rows with ml.Data.FilterRowsByMissingValues.");
        dst = editor.Commit();
    }
}

/// <summary>
/// A cursor whose embedding columns come from batches computed ahead by a <see cref="ReadAheadPipeline{TBatch}"/>; every
/// other column comes from a second input cursor that moves in step with this one, so read-ahead never shifts them.
/// </summary>
internal sealed class BatchedEmbeddingCursor<TBatch>(RowMapping mapping, DataViewRowCursor follower, ReadAheadPipeline<TBatch> pipeline,
    bool[] activeAdded, int dimension, EmbeddingErrorHandling onError, Func<TBatch, (int Count, float[] Rows, string?[] Errors, string[] Names)> view, string what = "image")
    : DataViewRowCursor where TBatch : class
{
    private TBatch? _batch;
    private (int Count, float[] Rows, string?[] Errors, string[] Names) _view;
    private int _index = -1;
    private long _position = -1;

    public override long Position => _position;
    public override long Batch => 0;
    public override DataViewSchema Schema => mapping.OutputSchema;
    public override ValueGetter<DataViewRowId> GetIdGetter() => follower.GetIdGetter();

    public override bool IsColumnActive(DataViewSchema.Column column) =>
        column.Index < mapping.FirstAdded ? follower.IsColumnActive(mapping.InputSchema[column.Index]) : activeAdded[column.Index - mapping.FirstAdded];

    public override bool MoveNext()
    {
        if (!follower.MoveNext()) return false;
        _position++;
        if (_batch is null || ++_index >= _view.Count)
        {
            if (_batch is not null) pipeline.Recycle(_batch);
            _batch = pipeline.Next()
                ?? throw new InvalidOperationException("The input data view gave fewer rows to the read-ahead cursor than to the row cursor; it must return the same rows on every pass.");
            _view = view(_batch);
            _index = 0;
        }
        return true;
    }

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        if (column.Index < mapping.FirstAdded) return follower.GetGetter<TValue>(mapping.InputSchema[column.Index]);
        int k = column.Index - mapping.FirstAdded;
        if (!activeAdded[k]) throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it when creating the cursor.");
        Delegate getter = k == 0
            ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
            {
                if (_position < 0) throw new InvalidOperationException("The cursor is not on a row; call MoveNext first.");
                EmbeddingValues.Write(ref dst, _view.Rows.AsSpan(_index * dimension, dimension), _view.Errors[_index], _position, _view.Names[_index], onError, what);
            })
            : (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) => dst = (_view.Errors[_index] ?? "").AsMemory());
        return getter as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Invalid TValue in GetGetter<{typeof(TValue).Name}> for column '{column.Name}' of type {column.Type}.");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            pipeline.Dispose();
            follower.Dispose();
        }
        base.Dispose(disposing);
    }
}
