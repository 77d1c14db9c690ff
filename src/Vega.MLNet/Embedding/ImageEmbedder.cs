using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Embedding;

/// <summary>Options of <see cref="ImageEmbedder"/>.</summary>
internal sealed record ImageEmbeddingOptions
{
    /// <summary>Images per image-tower run (default 32).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Threads that decode and preprocess (0 = one per core).</summary>
    public int DecodeThreads { get; init; }

    /// <summary>How many preprocessed batches may wait for the image tower (back-pressure bound, default 2).</summary>
    public int QueuedBatches { get; init; } = 2;

    /// <summary>Folder of the on-disk embedding cache, or null for none.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>How images are identified in the cache (default: content hash).</summary>
    public ImageIdentity Identity { get; init; } = ImageIdentity.Content;

    /// <summary>Receives progress after every batch and cache hit run.</summary>
    public IProgress<EmbeddingProgress>? Progress { get; init; }

    /// <summary>The defaults.</summary>
    public static ImageEmbeddingOptions Default { get; } = new();
}

/// <summary>Progress of an embedding run.</summary>
/// <param name="Done">Items finished (embedded, from cache, or skipped).</param>
/// <param name="Total">Items in the source.</param>
/// <param name="FromCache">Items served by the cache.</param>
/// <param name="Skipped">Items that could not be read.</param>
/// <param name="ImagesPerSecond">Throughput so far.</param>
/// <param name="Remaining">Estimated time left, when known.</param>
public sealed record EmbeddingProgress(int Done, int Total, int FromCache, int Skipped, double ImagesPerSecond, TimeSpan? Remaining);

/// <summary>The embeddings of an image source for one model.</summary>
internal sealed class ImageEmbeddings
{
    internal ImageEmbeddings(string modelName, EmbeddingMatrix embeddings, ImageItem[] items, IReadOnlyList<SkippedItem> skipped, int fromCache, int computed, TimeSpan elapsed, string? cacheFile,
        IReadOnlyList<string>? warnings = null)
    {
        Warnings = warnings ?? [];
        ModelName = modelName;
        Embeddings = embeddings;
        Items = items;
        Skipped = skipped;
        FromCache = fromCache;
        Computed = computed;
        Elapsed = elapsed;
        CacheFile = cacheFile;
    }

    /// <summary>The model's name.</summary>
    public string ModelName { get; }

    /// <summary>L2-normalised embeddings, one row per readable item, in source order.</summary>
    public EmbeddingMatrix Embeddings { get; }

    /// <summary>The item of each row (labels and candidate sets travel with it).</summary>
    public IReadOnlyList<ImageItem> Items { get; }

    /// <summary>Items that could not be read (path and reason), including problems found while listing the source.</summary>
    public IReadOnlyList<SkippedItem> Skipped { get; }

    /// <summary>Rows served by the cache.</summary>
    public int FromCache { get; }

    /// <summary>Rows computed by the image tower.</summary>
    public int Computed { get; }

    /// <summary>Wall time of the run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The cache file used, if any.</summary>
    public string? CacheFile { get; }

    /// <summary>Things the caller should know that did not stop the run, e.g. damaged cache records that were
    /// recomputed, or a read-only cache folder whose new rows could not be saved. One sentence each.</summary>
    public IReadOnlyList<string> Warnings { get; }
}

/// <summary>
/// The batched embedding engine: decode + preprocess on several threads feeding a bounded channel (back-pressure), a
/// single consumer assembling batches for the image tower, rows written into one contiguous matrix in source order.
/// With a cache folder, known images are served from disk and every computed batch is appended (and flushed) before
/// the next one, so an interrupted run keeps all finished batches and the next run resumes.
/// Unreadable files are skipped and reported; they never abort the run.
/// </summary>
internal static class ImageEmbedder
{
    private readonly record struct Prepared(int Index, CacheKey Key, float[] Pixels);

    /// <summary>Embeds every item of <paramref name="source"/> with the image tower of <paramref name="model"/>.</summary>
    public static ImageEmbeddings Embed(ClipModel model, ImageSource source, ImageEmbeddingOptions? options = null, CancellationToken cancellationToken = default) =>
        EmbedAsync(model, source, options, cancellationToken).GetAwaiter().GetResult();

    /// <summary>Embeds every item of <paramref name="source"/> with the image tower of <paramref name="model"/>.</summary>
    public static async Task<ImageEmbeddings> EmbedAsync(ClipModel model, ImageSource source, ImageEmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        options ??= ImageEmbeddingOptions.Default;
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        if (options.QueuedBatches < 1) throw new ArgumentOutOfRangeException(nameof(options), options.QueuedBatches, "QueuedBatches must be at least 1.");
        var clock = Stopwatch.StartNew();
        int n = source.Count, dim = model.EmbeddingDimension;
        int pixelCount = 3 * model.Preprocessing.ImageSize * model.Preprocessing.ImageSize;
        int maxBatch = MaxBatchSize(model);
        if (options.BatchSize > maxBatch)
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize,
                $"BatchSize {options.BatchSize} is too large for {model.Preprocessing.ImageSize}×{model.Preprocessing.ImageSize} images: one batch tensor would exceed the largest array; use at most {maxBatch}.");
        if ((long)options.BatchSize * options.QueuedBatches > MaxQueuedImages)
            throw new ArgumentOutOfRangeException(nameof(options), options.QueuedBatches,
                $"BatchSize × QueuedBatches ({(long)options.BatchSize * options.QueuedBatches}) must be at most {MaxQueuedImages}.");
        var rows = new float[(long)n * dim];
        var state = new byte[n]; // 0 pending, 1 done, 2 skipped
        var failures = new SkippedItem?[n];
        var preprocessor = new ImagePreprocessor(model.Preprocessing);
        // Augmented views (random resized crops) are squashed to the input size, as torchvision's RandomResizedCrop does.
        var squash = new ImagePreprocessor(model.Preprocessing with { ResizeMode = ResizeMode.Squash, ResizeShortestEdge = null });
        using var lease = options.CacheDirectory is null ? null
            : SharedEmbeddingCache.Acquire(options.CacheDirectory, model.ContentHash, model.Name, PreprocessKey.Describe(model.Preprocessing, source.DecodeOptions), dim);
        var cache = lease?.Cache;

        int fromCache = 0, computed = 0, skipped = 0, done = 0;
        int capacity = options.BatchSize * options.QueuedBatches;
        var pool = ArrayPool<float>.Create(pixelCount, capacity + 4 * Math.Max(1, options.DecodeThreads == 0 ? Environment.ProcessorCount : options.DecodeThreads));
        var channel = Channel.CreateBounded<Prepared>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = linked.Token;
        int next = -1;
        var progressGate = new Lock();

        void Report()
        {
            if (options.Progress is null) return;
            lock (progressGate)
            {
                double seconds = clock.Elapsed.TotalSeconds;
                int d = Volatile.Read(ref done);
                double rate = seconds > 0 ? d / seconds : 0;
                TimeSpan? eta = rate > 0 && d < n ? TimeSpan.FromSeconds((n - d) / rate) : null;
                options.Progress.Report(new EmbeddingProgress(d, n, Volatile.Read(ref fromCache), Volatile.Read(ref skipped), rate, eta));
            }
        }

        // Failure handling: every stage catches its own exceptions; the first real one is kept, cancels the other
        // stages (workers waiting on a full channel, the consumer waiting for a batch, a running image tower) and is
        // rethrown once all of them have stopped, so a failing stage can never leave another blocked forever.
        Exception? failure = null;
        void Fault(Exception e)
        {
            // Once the run is being cancelled (by the caller or by a failed stage), later errors are consequences of it
            // (a closed channel, a terminated tower run) and are not reported.
            if (!linked.IsCancellationRequested)
                Interlocked.CompareExchange(ref failure, e, null);
            try { linked.Cancel(); } catch (AggregateException) { /* a callback failed; the first error is kept */ }
            channel.Writer.TryComplete();
        }

        int activeWorkers = options.DecodeThreads > 0 ? options.DecodeThreads : Environment.ProcessorCount;
        async Task Worker()
        {
            try
            {
                await WorkerLoop().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Fault(e);
            }
            finally
            {
                if (Interlocked.Decrement(ref activeWorkers) == 0) channel.Writer.TryComplete();
            }
        }

        async Task WorkerLoop()
        {
            var reuse = new RgbImage();
            var cropScratch = new RgbImage();
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                int i = Interlocked.Increment(ref next);
                if (i >= n) return;
                var item = source.Items[i];
                CacheKey key = default;
                RgbImage? image = null;
                try
                {
                    if (item.Path is not null)
                    {
                        if (cache is not null && options.Identity == ImageIdentity.PathSizeTime && File.Exists(item.Path))
                        {
                            key = Salted(CacheKey.FromFileStamp(item.Path), item);
                            if (cache.TryGet(key, rows.AsSpan(i * dim, dim))) { Hit(); continue; }
                        }
                        byte[] buffer = ImageFile.Read(item.Path, source.DecodeOptions, out int length);
                        try
                        {
                            var bytes = buffer.AsSpan(0, length);
                            if (cache is not null && options.Identity == ImageIdentity.Content)
                            {
                                key = Salted(CacheKey.FromBytes(bytes), item);
                                if (cache.TryGet(key, rows.AsSpan(i * dim, dim))) { Hit(); continue; }
                            }
                            image = ImageDecoder.Decode(bytes, item.Path, source.DecodeOptions, reuse);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                        }
                        if (item.Augmentation is { } aug) image = aug.Crop.Apply(image, aug.SourceIndex, cropScratch);
                    }
                    else
                    {
                        image = source.Load(item, reuse);
                        if (cache is not null)
                        {
                            key = PixelKey(image);
                            if (cache.TryGet(key, rows.AsSpan(i * dim, dim))) { Hit(); continue; }
                        }
                    }
                    float[] pixels = pool.Rent(pixelCount);
                    (item.Augmentation is null ? preprocessor : squash).Process(image, pixels.AsSpan(0, pixelCount));
                    await channel.Writer.WriteAsync(new Prepared(i, key, pixels), ct).ConfigureAwait(false);
                }
                catch (ImageDecodeException e)
                {
                    Fail(i, item, item.Path is not null && item.Origin is not null ? $"{e.Reason} ({item.Origin})" : e.Reason);
                }
                catch (ArgumentException e) when (image is not null)
                {
                    Fail(i, item, e.Message); // e.g. an aspect ratio too extreme to resize
                }

                void Hit()
                {
                    state[i] = 1;
                    Interlocked.Increment(ref fromCache);
                    if (Interlocked.Increment(ref done) % 256 == 0) Report();
                }
            }
        }

        void Fail(int i, ImageItem item, string reason)
        {
            failures[i] = new SkippedItem(item.Index, item.Id, item.Path, reason);
            state[i] = 2;
            Interlocked.Increment(ref skipped);
            Interlocked.Increment(ref done);
        }

        async Task Consumer()
        {
            try
            {
                await ConsumerLoop().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Fault(e);
            }
        }

        async Task ConsumerLoop()
        {
            int b = options.BatchSize;
            var batchPixels = new float[(long)b * pixelCount];
            var batchRows = new float[b * dim];
            var batchItems = new Prepared[b];
            var keys = new CacheKey[b];
            int count = 0;
            var reader = channel.Reader;
            void Flush()
            {
                if (count == 0) return;
                for (int k = 0; k < count; k++)
                {
                    batchItems[k].Pixels.AsSpan(0, pixelCount).CopyTo(batchPixels.AsSpan(k * pixelCount, pixelCount));
                    pool.Return(batchItems[k].Pixels);
                }
                model.EmbedPixelsInto(batchPixels.AsMemory(0, count * pixelCount), count, batchRows.AsMemory(0, count * dim), ct);
                for (int k = 0; k < count; k++)
                {
                    batchRows.AsSpan(k * dim, dim).CopyTo(rows.AsSpan(batchItems[k].Index * dim, dim));
                    state[batchItems[k].Index] = 1;
                    keys[k] = batchItems[k].Key;
                }
                cache?.Append(keys.AsSpan(0, count), batchRows.AsSpan(0, count * dim));
                Interlocked.Add(ref computed, count);
                Interlocked.Add(ref done, count);
                count = 0;
                Report();
            }
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (count < b && reader.TryRead(out var p)) batchItems[count++] = p;
                if (count == b) Flush();
            }
            Flush();
        }

        int threads = activeWorkers;
        var workers = new Task[threads];
        for (int t = 0; t < threads; t++) workers[t] = Task.Run(Worker, CancellationToken.None);
        var consumer = Task.Run(Consumer, CancellationToken.None);
        await Task.WhenAll([.. workers, consumer]).ConfigureAwait(false); // the stages never fault: they record
        if (failure is not null) ExceptionDispatchInfo.Throw(failure);
        cancellationToken.ThrowIfCancellationRequested();
        Report();

        // Compact to the readable items, in source order.
        int kept = 0;
        for (int i = 0; i < n; i++) if (state[i] == 1) kept++;
        var matrix = new EmbeddingMatrix(kept, dim);
        var items = new ImageItem[kept];
        var skippedList = new List<SkippedItem>(source.Skipped);
        var listed = new HashSet<int>();
        foreach (var s in skippedList) if (s.Index is int si) listed.Add(si);
        for (int i = 0, r = 0; i < n; i++)
        {
            if (state[i] == 1)
            {
                rows.AsSpan(i * dim, dim).CopyTo(matrix.Row(r));
                items[r++] = source.Items[i];
            }
            else if (failures[i] is { } f && !listed.Contains(i)) skippedList.Add(f);
        }
        return new ImageEmbeddings(model.Name, matrix, items, skippedList, fromCache, computed, clock.Elapsed, cache?.FilePath, CacheWarnings(cache));
    }

    private static List<string> CacheWarnings(EmbeddingCache? cache)
    {
        var warnings = new List<string>();
        if (cache is null) return warnings;
        if (cache.DamagedRecords > 0)
            warnings.Add($"The embedding cache '{cache.FilePath}' had {cache.DamagedRecords} damaged record(s) (checksum mismatch); they were dropped and their images recomputed, the other records were used.");
        if (cache.RecoveredBytes > 0)
            warnings.Add($"The embedding cache '{cache.FilePath}' ended with {cache.RecoveredBytes} bytes of an interrupted write; they were cut off and recomputed.");
        if (cache.IsReadOnly)
            warnings.Add($"The embedding cache is read-only ({cache.ReadOnlyReason}): cached embeddings were used, {cache.UnsavedRows} new one(s) were not saved.");
        return warnings;
    }

    /// <summary>Images queued between the decoders and the image tower at most (BatchSize × QueuedBatches).</summary>
    internal const int MaxQueuedImages = 1 << 16;

    /// <summary>The largest batch whose pixel tensor fits in one array for <paramref name="model"/>'s input size.</summary>
    internal static int MaxBatchSize(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long pixelCount = 3L * model.Preprocessing.ImageSize * model.Preprocessing.ImageSize;
        return (int)Math.Min(MaxQueuedImages, Array.MaxLength / pixelCount);
    }

    // An augmented view has its own key: the image's identity combined with the crop's parameters.
    private static CacheKey Salted(CacheKey key, ImageItem item)
    {
        if (item.Augmentation is not { } aug) return key;
        Span<byte> buffer = stackalloc byte[32];
        key.Write(buffer);
        return CacheKey.FromText(Convert.ToHexString(buffer) + "|" + aug.Crop.Key);
    }

    internal static CacheKey PixelKey(RgbImage image)
    {
        Span<byte> header = stackalloc byte[8];
        BitConverter.TryWriteBytes(header, image.Width);
        BitConverter.TryWriteBytes(header[4..], image.Height);
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(header);
        sha.AppendData(image.Span);
        Span<byte> h = stackalloc byte[32];
        sha.GetHashAndReset(h);
        return CacheKey.FromHash(h);
    }
}
