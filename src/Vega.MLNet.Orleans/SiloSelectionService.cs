using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Orleans;

/// <summary>Options of a silo that runs selection shards (<see cref="VegaOrleansHosting.AddVegaSelection(global::Orleans.Hosting.ISiloBuilder, Action{VegaSiloOptions}?)"/>).</summary>
public sealed record VegaSiloOptions
{
    /// <summary>
    /// This silo's embedding cache folder, or null for none. Give every silo its own folder (a cache file has one
    /// writer); the coordinator's cache folder is not used on silos.
    /// </summary>
    public string? CacheDirectory { get; set; }

    /// <summary>Models kept loaded between shards (least recently used ones are unloaded). Default 2.</summary>
    public int MaxLoadedModels { get; set; } = 2;

    /// <summary>How models are loaded on this silo (e.g. ONNX Runtime threads, GPU); the name is always the candidate's.</summary>
    public ClipModelOptions ModelOptions { get; set; } = new();
}

/// <summary>
/// The work of the shard grains on one silo: one shard at a time (a shard already uses every core through the decode
/// threads and ONNX Runtime), the candidate models loaded once and kept (LRU), each shard embedded through
/// <see cref="LocalSelectionWorker"/> — the engine, cache and statistics of a single-machine run.
/// </summary>
internal sealed class SiloSelectionService : IDisposable
{
    private readonly VegaSiloOptions _options;
    private readonly string _silo;
    private readonly ILogger<SiloSelectionService> _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly LinkedList<(string Key, ClipModel Model)> _models = new(); // most recently used first

    public SiloSelectionService(VegaSiloOptions options, ILocalSiloDetails silo, ILogger<SiloSelectionService> log)
    {
        if (options.MaxLoadedModels < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxLoadedModels, "VegaSiloOptions.MaxLoadedModels must be at least 1.");
        _options = options;
        _silo = $"{silo.Name} ({silo.SiloAddress.Endpoint})";
        _log = log;
    }

    public async Task<ShardResult> ComputeAsync(ShardRequest request, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Off the grain scheduler: the embedding and the statistics are CPU-bound.
            return await Task.Run(() => Compute(request, ct), ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private ShardResult Compute(ShardRequest r, CancellationToken ct)
    {
        long t0 = Stopwatch.GetTimestamp();
        ClipModel model;
        try
        {
            model = Model(r.ModelPath, r.ModelName);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Failed(ShardErrorKind.ModelUnavailable, $"Silo {_silo} cannot load the model '{r.ModelName}' from '{r.ModelPath}': {e.Message}");
        }
        if (r.ModelHash is { } hash && !string.Equals(model.ContentHash, hash, StringComparison.OrdinalIgnoreCase))
            return Failed(ShardErrorKind.ModelUnavailable,
                $"Silo {_silo} has a different model at '{r.ModelPath}' than the coordinator (SHA-256 of the tower files {model.ContentHash[..12]}… here, {hash[..Math.Min(12, hash.Length)]}… there); give every silo the same model files.");
        if (model.EmbeddingDimension != r.Dimension)
            return Failed(ShardErrorKind.ModelUnavailable,
                $"Silo {_silo}: the model at '{r.ModelPath}' embeds in dimension {model.EmbeddingDimension}, the coordinator's class texts have {r.Dimension}; give every silo the same model files.");

        var images = ImageSource.FromPaths(r.Paths);
        images.DecodeOptions = r.DecodeOptions;
        var work = new SelectionWork
        {
            Candidate = ModelCandidate.FromModel(model),
            Model = model,
            ClassTexts = new EmbeddingMatrix(r.ClassTexts, r.ClassCount, r.Dimension),
            Images = images,
            ImageIndices = r.ImageIndices,
            Labels = r.Labels,
            Selection = r.Selection.ToOptions(),
            Embedding = new ImageEmbeddingOptions
            {
                BatchSize = r.BatchSize,
                DecodeThreads = r.DecodeThreads,
                QueuedBatches = r.QueuedBatches,
                Identity = (ImageIdentity)r.Identity,
                CacheDirectory = _options.CacheDirectory,
            },
        };
        SelectionWorkResult done;
        try
        {
            done = new LocalSelectionWorker().ComputeAsync(work, ct).GetAwaiter().GetResult();
        }
        catch (ArgumentException e)
        {
            return Failed(ShardErrorKind.BadInput, $"Silo {_silo}: {e.Message}");
        }
        var skipped = done.Skipped.Where(s => s.Index is not null).ToArray();
        var result = new ShardResult
        {
            Statistics = done.Statistics.ToBytes(),
            ImagesEmbedded = done.ImagesEmbedded,
            FromCache = done.FromCache,
            CorrectPredictions = done.CorrectPredictions,
            SkippedIndices = [.. skipped.Select(s => s.Index!.Value)],
            SkippedReasons = [.. skipped.Select(s => s.Reason)],
            Silo = _silo,
            Seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds,
        };
        _log.LogInformation("Shard of {Model}: {Images} images ({Cached} cached, {Skipped} skipped) in {Seconds:F2} s", r.ModelName, done.ImagesEmbedded, done.FromCache, skipped.Length, result.Seconds);
        return result;

        ShardResult Failed(ShardErrorKind kind, string message)
        {
            _log.LogWarning("{Message}", message);
            return new ShardResult { ErrorKind = kind, Error = message, Silo = _silo, Seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds };
        }
    }

    // The loaded model for (path, name): kept between shards, least recently used ones unloaded. Called under the gate.
    private ClipModel Model(string path, string name)
    {
        string key = path + "\n" + name;
        for (var node = _models.First; node is not null; node = node.Next)
            if (node.Value.Key == key)
            {
                _models.Remove(node);
                _models.AddFirst(node);
                return node.Value.Model;
            }
        var model = ClipModel.Load(path, _options.ModelOptions with { Name = name });
        _models.AddFirst((key, model));
        while (_models.Count > _options.MaxLoadedModels)
        {
            _models.Last!.Value.Model.Dispose();
            _models.RemoveLast();
        }
        return model;
    }

    public void Dispose()
    {
        foreach (var (_, model) in _models) model.Dispose();
        _models.Clear();
        _gate.Dispose();
    }
}

/// <summary>The shard grain: one activation per (run, shard, attempt), placed by the coordinator's hint, deactivated after its shard.</summary>
internal sealed class SelectionShardGrain(SiloSelectionService service, ILocalSiloDetails silo) : Grain, ISelectionShardGrain
{
    private int _status;

    public Task<SiloAddress> PrepareAsync(CancellationToken cancellationToken) => Task.FromResult(silo.SiloAddress);

    public Task<int> StatusAsync(CancellationToken cancellationToken) => Task.FromResult(Volatile.Read(ref _status));

    public async Task<ShardResult> ComputeAsync(ShardRequest request, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _status, 1);
        try
        {
            return await service.ComputeAsync(request, cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _status, 2);
            DeactivateOnIdle();
        }
    }
}
