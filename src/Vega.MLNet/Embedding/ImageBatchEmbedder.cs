using System.Buffers;
using System.Collections.Concurrent;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Embedding;

/// <summary>An image to embed: a file, its encoded bytes, or decoded pixels; <see cref="Name"/> is used in errors.</summary>
internal readonly record struct ImageInput(string Name, string? Path = null, byte[]? Bytes = null, RgbImage? Pixels = null)
{
    public static ImageInput Missing(string name) => new(name);

    public bool IsMissing => Path is null && Bytes is null && Pixels is null;
}

/// <summary>Reusable buffers of one batch: its inputs, then its embeddings (L2-normalised rows) or per-row errors.</summary>
internal sealed class ImageBatch
{
    internal ImageBatch(int capacity, int pixelsPerImage, int dimension)
    {
        Inputs = new ImageInput[capacity];
        Rows = new float[capacity * dimension];
        Errors = new string?[capacity];
        Keys = new CacheKey[capacity];
        Computed = new bool[capacity];
        Pixels = new float[(long)capacity * pixelsPerImage];
        Slots = new int[capacity];
    }

    public int Count { get; set; }
    public int Capacity => Inputs.Length;
    public ImageInput[] Inputs { get; }
    public float[] Rows { get; }
    public string?[] Errors { get; }
    internal CacheKey[] Keys { get; }
    internal bool[] Computed { get; }
    internal float[] Pixels { get; }
    internal int[] Slots { get; }
    internal int TowerCount { get; set; }

    public void Clear()
    {
        Array.Clear(Inputs, 0, Count);
        Array.Clear(Errors, 0, Count);
        Count = 0;
        TowerCount = 0;
    }
}

/// <summary>
/// Embeds batches of images with a model's image tower in two stages that a caller can overlap:
/// <see cref="Prepare"/> reads, looks up the cache and decodes + preprocesses (Pillow-exact) on several threads;
/// <see cref="Run"/> runs the tower once on the images that need it, normalises the rows and appends them to the cache.
/// A file that cannot be read or decoded gets an error text instead of a row; nothing else stops the batch.
/// Thread-safe for different batches.
/// </summary>
internal sealed class ImageBatchEmbedder
{
    private readonly ClipModel _model;
    private readonly EmbeddingCache? _cache;
    private readonly DecodeOptions _decode;
    private readonly ImagePreprocessor _preprocessor;
    private readonly int _threads;
    private readonly ConcurrentBag<RgbImage> _buffers = [];

    public ImageBatchEmbedder(ClipModel model, DecodeOptions decode, EmbeddingCache? cache, int decodeThreads)
    {
        _model = model;
        _decode = decode;
        _cache = cache;
        _preprocessor = new ImagePreprocessor(model.Preprocessing);
        _threads = decodeThreads > 0 ? decodeThreads : Environment.ProcessorCount;
    }

    public int Dimension => _model.EmbeddingDimension;

    public ImageBatch NewBatch(int capacity) => new(capacity, _preprocessor.OutputLength, _model.EmbeddingDimension);

    /// <summary>Stage 1: cache lookups, reading and decoding, preprocessing into the batch's pixel buffer.</summary>
    public void Prepare(ImageBatch batch, CancellationToken ct)
    {
        int n = batch.Count, dim = Dimension, per = _preprocessor.OutputLength;
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Min(_threads, Math.Max(n, 1)), CancellationToken = ct };
        Parallel.For(0, n, options, i =>
        {
            batch.Computed[i] = false;
            batch.Errors[i] = null;
            var input = batch.Inputs[i];
            if (input.IsMissing)
            {
                batch.Errors[i] = "no image (the input value is empty)";
                return;
            }
            var buffer = _buffers.TryTake(out var b) ? b : new RgbImage();
            byte[]? rented = null;
            try
            {
                RgbImage image;
                if (input.Pixels is { } pixels)
                {
                    if (_cache is not null) batch.Keys[i] = ImageEmbedder.PixelKey(pixels);
                    if (_cache is not null && _cache.TryGet(batch.Keys[i], batch.Rows.AsSpan(i * dim, dim))) return;
                    image = pixels;
                }
                else
                {
                    ReadOnlySpan<byte> bytes;
                    if (input.Bytes is { } given) bytes = given;
                    else
                    {
                        rented = ImageDecoder.ReadFile(input.Path!, _decode, out int length);
                        bytes = rented.AsSpan(0, length);
                    }
                    if (_cache is not null)
                    {
                        batch.Keys[i] = CacheKey.FromBytes(bytes);
                        if (_cache.TryGet(batch.Keys[i], batch.Rows.AsSpan(i * dim, dim))) return;
                    }
                    image = ImageDecoder.Decode(bytes, input.Name, _decode, buffer);
                }
                _preprocessor.Process(image, batch.Pixels.AsSpan(i * per, per));
                batch.Computed[i] = true;
            }
            catch (ImageDecodeException e)
            {
                batch.Errors[i] = e.Reason;
            }
            catch (ArgumentException e)
            {
                batch.Errors[i] = e.Message; // e.g. an aspect ratio too extreme to resize to the model's size
            }
            finally
            {
                if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
                _buffers.Add(buffer);
            }
        });
        // Compact the images that need the tower to the front of the pixel buffer (in row order).
        int t = 0;
        for (int i = 0; i < n; i++)
        {
            if (!batch.Computed[i]) continue;
            if (t != i) Array.Copy(batch.Pixels, (long)i * per, batch.Pixels, (long)t * per, per);
            batch.Slots[t++] = i;
        }
        batch.TowerCount = t;
    }

    /// <summary>Stage 2: one tower run over the prepared images; rows normalised and written in place; cache appended.</summary>
    public void Run(ImageBatch batch, CancellationToken ct)
    {
        int t = batch.TowerCount, dim = Dimension, per = _preprocessor.OutputLength;
        if (t == 0) return;
        var rows = ArrayPool<float>.Shared.Rent(t * dim);
        try
        {
            _model.EmbedPixelsInto(batch.Pixels.AsMemory(0, t * per), t, rows.AsMemory(0, t * dim), ct);
            for (int k = 0; k < t; k++)
                rows.AsSpan(k * dim, dim).CopyTo(batch.Rows.AsSpan(batch.Slots[k] * dim, dim));
            if (_cache is not null)
            {
                var keys = new CacheKey[t];
                for (int k = 0; k < t; k++) keys[k] = batch.Keys[batch.Slots[k]];
                _cache.Append(keys, rows.AsSpan(0, t * dim));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rows);
        }
    }
}
