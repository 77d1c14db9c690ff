using Vega.MLNet.Imaging;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Orleans;

/// <summary>
/// One (candidate model, image shard) of a selection: embeds the shard on the silo it is placed on and returns the
/// serialised selection statistics. Keyed by run, shard and attempt, so every attempt is a fresh activation placed where
/// the coordinator asks (placement hint).
/// </summary>
[Alias("Vega.MLNet.Orleans.ISelectionShardGrain")]
internal interface ISelectionShardGrain : IGrainWithStringKey
{
    /// <summary>Activates the grain and returns the silo it runs on (cheap; lets the coordinator watch that silo).</summary>
    [Alias("Prepare")]
    Task<SiloAddress> PrepareAsync(CancellationToken cancellationToken);

    /// <summary>Whether <see cref="ComputeAsync"/> has started (1), finished (2) or not reached the grain (0); answered while it runs.</summary>
    [Alias("Status")]
    [global::Orleans.Concurrency.AlwaysInterleave]
    Task<int> StatusAsync(CancellationToken cancellationToken);

    /// <summary>Embeds the shard and returns its statistics (or a deterministic error such as a model the silo cannot load).</summary>
    /// <remarks>The coordinator bounds every call itself (<see cref="ClusterWorkerOptions.ShardTimeout"/>) and cancels it,
    /// so the runtime's own response timeout is set out of the way.</remarks>
    [Alias("Compute")]
    [ResponseTimeout("1.00:00:00")]
    Task<ShardResult> ComputeAsync(ShardRequest request, CancellationToken cancellationToken);
}

/// <summary>What a shard grain computes: the candidate, its class texts, the images and every option.</summary>
[GenerateSerializer, Alias("Vega.MLNet.Orleans.ShardRequest")]
internal sealed record ShardRequest
{
    [Id(0)] public required string ModelName { get; init; }
    [Id(1)] public required string ModelPath { get; init; }
    /// <summary>SHA-256 of the coordinator's tower files (<see cref="Models.ClipModel.ContentHash"/>), when it has the model loaded.</summary>
    [Id(2)] public string? ModelHash { get; init; }
    [Id(3)] public required int ClassCount { get; init; }
    [Id(4)] public required int Dimension { get; init; }
    /// <summary>C×D class text embeddings, row-major.</summary>
    [Id(5)] public required float[] ClassTexts { get; init; }
    /// <summary>Full paths of the shard's images.</summary>
    [Id(6)] public required string[] Paths { get; init; }
    /// <summary>Each image's index in the task.</summary>
    [Id(7)] public required int[] ImageIndices { get; init; }
    /// <summary>Each image's class index (−1 for none), or null without labels.</summary>
    [Id(8)] public int[]? Labels { get; init; }
    [Id(9)] public bool ApplyExifOrientation { get; init; }
    [Id(10)] public long MaxPixels { get; init; }
    [Id(11)] public int BatchSize { get; init; }
    [Id(12)] public int DecodeThreads { get; init; }
    [Id(13)] public int QueuedBatches { get; init; }
    [Id(14)] public int Identity { get; init; }
    [Id(15)] public required WireSelectionOptions Selection { get; init; }

    public DecodeOptions DecodeOptions => new() { ApplyExifOrientation = ApplyExifOrientation, MaxPixels = MaxPixels };
}

/// <summary>Why a shard could not be computed, when retrying elsewhere would not help.</summary>
[GenerateSerializer, Alias("Vega.MLNet.Orleans.ShardErrorKind")]
internal enum ShardErrorKind
{
    /// <summary>No error.</summary>
    None,
    /// <summary>The silo cannot load the model, or has a different one at that path.</summary>
    ModelUnavailable,
    /// <summary>The request itself is wrong (e.g. class texts of another width, an embedding with NaN).</summary>
    BadInput,
}

/// <summary>A shard's outcome: the statistics bytes (<see cref="SelectionStatistics.ToBytes"/>) and the run's figures, or an error.</summary>
[GenerateSerializer, Alias("Vega.MLNet.Orleans.ShardResult")]
internal sealed record ShardResult
{
    [Id(0)] public byte[]? Statistics { get; init; }
    [Id(1)] public int ImagesEmbedded { get; init; }
    [Id(2)] public int FromCache { get; init; }
    [Id(3)] public long? CorrectPredictions { get; init; }
    /// <summary>Task indices of the images that could not be read.</summary>
    [Id(4)] public int[] SkippedIndices { get; init; } = [];
    [Id(5)] public string[] SkippedReasons { get; init; } = [];
    /// <summary>The silo that computed it.</summary>
    [Id(6)] public string Silo { get; init; } = "";
    /// <summary>Seconds the silo spent on the shard (model load, embedding, statistics, serialisation), not waiting for its turn.</summary>
    [Id(7)] public double Seconds { get; init; }
    [Id(8)] public ShardErrorKind ErrorKind { get; init; }
    [Id(9)] public string? Error { get; init; }
}

/// <summary>
/// <see cref="SelectionOptions"/> on the wire: every option that decides the statistics or the scores (the statistics
/// blob carries them too, and <see cref="SelectionStatistics.Merge"/> refuses shards whose options differ).
/// </summary>
[GenerateSerializer, Alias("Vega.MLNet.Orleans.WireSelectionOptions")]
internal sealed record WireSelectionOptions
{
    [Id(0)] public int Metric { get; init; }
    [Id(1)] public double BaselineTemperature { get; init; }
    [Id(2)] public int MaxDegreeOfParallelism { get; init; }
    [Id(3)] public int BootstrapReplicates { get; init; }
    [Id(4)] public double BootstrapLevel { get; init; }
    [Id(5)] public int BootstrapSeed { get; init; }
    [Id(6)] public double Temperature { get; init; }
    [Id(7)] public int EdgeKind { get; init; }
    [Id(8)] public int Covariance { get; init; }
    [Id(9)] public double FixedShrinkage { get; init; }
    [Id(10)] public double ShrinkageFloor { get; init; }
    [Id(11)] public double VarianceFloor { get; init; }
    [Id(12)] public int? FullSubspaceDimension { get; init; }
    [Id(13)] public int MinImagesPerClass { get; init; }
    [Id(14)] public bool KeepEdgeMatrices { get; init; }
    [Id(15)] public double UndefinedEdgeScore { get; init; }

    public static WireSelectionOptions From(SelectionOptions o) => new()
    {
        Metric = (int)o.Metric,
        BaselineTemperature = o.BaselineTemperature,
        MaxDegreeOfParallelism = o.MaxDegreeOfParallelism,
        BootstrapReplicates = o.Bootstrap.Replicates,
        BootstrapLevel = o.Bootstrap.Level,
        BootstrapSeed = o.Bootstrap.Seed,
        Temperature = o.Vega.Temperature,
        EdgeKind = (int)o.Vega.EdgeKind,
        Covariance = (int)o.Vega.Covariance,
        FixedShrinkage = o.Vega.FixedShrinkage,
        ShrinkageFloor = o.Vega.ShrinkageFloor,
        VarianceFloor = o.Vega.VarianceFloor,
        FullSubspaceDimension = o.Vega.FullSubspaceDimension,
        MinImagesPerClass = o.Vega.MinImagesPerClass,
        KeepEdgeMatrices = o.Vega.KeepEdgeMatrices,
        UndefinedEdgeScore = o.Vega.UndefinedEdgeScore,
    };

    public SelectionOptions ToOptions() => new()
    {
        Metric = (SelectionMetric)Metric,
        BaselineTemperature = BaselineTemperature,
        MaxDegreeOfParallelism = MaxDegreeOfParallelism,
        Bootstrap = new BootstrapOptions { Replicates = BootstrapReplicates, Level = BootstrapLevel, Seed = BootstrapSeed },
        Vega = new VegaOptions
        {
            Temperature = Temperature,
            EdgeKind = (VisualEdgeKind)EdgeKind,
            Covariance = (CovarianceMode)Covariance,
            FixedShrinkage = FixedShrinkage,
            ShrinkageFloor = ShrinkageFloor,
            VarianceFloor = VarianceFloor,
            FullSubspaceDimension = FullSubspaceDimension,
            MinImagesPerClass = MinImagesPerClass,
            KeepEdgeMatrices = KeepEdgeMatrices,
            UndefinedEdgeScore = UndefinedEdgeScore,
        },
    };
}
