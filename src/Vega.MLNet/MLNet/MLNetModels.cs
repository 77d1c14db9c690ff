using Vega.MLNet.Models;

namespace Vega.MLNet;

/// <summary>How the ML.NET entry points load models.</summary>
internal static class MLNetModels
{
    /// <summary>The optimised-model folder inside an embedding cache folder.</summary>
    public const string OptimizedModelsFolder = "optimized-models";

    public static ClipModelOptions ModelOptions(int? gpuDeviceId, bool fallbackToCpu, int intraOpThreads, string? cacheDirectory, Action<string>? warning)
    {
        if (gpuDeviceId is < 0) throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), gpuDeviceId, "gpuDeviceId must be a CUDA device ordinal (0 or more), or null for the CPU.");
        if (intraOpThreads < 0) throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads, "IntraOpThreads must be 0 (one per core) or more.");
        return new ClipModelOptions
        {
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
            IntraOpThreads = intraOpThreads,
            OptimizedModelDirectory = cacheDirectory is null ? null : Path.Combine(cacheDirectory, OptimizedModelsFolder),
            Warning = warning,
        };
    }
}
