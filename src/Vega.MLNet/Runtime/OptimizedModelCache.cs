using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using System.Text;

namespace Vega.MLNet.Runtime;

/// <summary>
/// Keeps the form of a model that ONNX Runtime produces after graph optimisation (constant folding, fusions) in a
/// folder, keyed by the source file (path, size, modification time), the ONNX Runtime version, the optimisation
/// level, the device and the CPU's instruction sets (an optimised graph may use kernels of this machine). The file is
/// written under a temporary name and renamed when complete, so a crash or a concurrent writer never leaves a torn file.
/// </summary>
internal static class OptimizedModelCache
{
    internal sealed record Pending(string TemporaryPath, string FinalPath)
    {
        public void Commit(OnnxSessionOptions options)
        {
            try
            {
                if (File.Exists(TemporaryPath) && new FileInfo(TemporaryPath).Length > 0) File.Move(TemporaryPath, FinalPath, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                options.Warn($"The optimised model could not be kept at '{FinalPath}': {e.Message}");
            }
            finally
            {
                TryDelete(TemporaryPath);
            }
        }
    }

    public static string? Lookup(OnnxSessionOptions options, string modelPath)
    {
        if (options.OptimizedModelDirectory is null) return null;
        string path = FinalPath(options, modelPath);
        return File.Exists(path) ? path : null;
    }

    public static Pending? Prepare(OnnxSessionOptions options, string modelPath)
    {
        if (options.OptimizedModelDirectory is not { } dir) return null;
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            options.Warn($"The optimised-model folder '{dir}' cannot be created ({e.Message}); models load without it.");
            return null;
        }
        string final = FinalPath(options, modelPath);
        return new Pending(Path.Combine(dir, $".{Path.GetFileName(final)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"), final);
    }

    public static void Discard(string path) => TryDelete(path);

    internal static string FinalPath(OnnxSessionOptions options, string modelPath)
    {
        var info = new FileInfo(modelPath);
        var key = new StringBuilder()
            .Append(info.FullName).Append('\n')
            .Append(info.Length).Append('\n')
            .Append(info.LastWriteTimeUtc.Ticks).Append('\n')
            .Append(OnnxSession.RuntimeVersion).Append('\n')
            .Append(options.Optimization).Append('\n')
            .Append(options.GpuDeviceId is int d ? $"cuda{d}" : "cpu").Append('\n')
            .Append(RuntimeInformation.ProcessArchitecture).Append(Avx2.IsSupported ? "+avx2" : "").Append(Avx512F.IsSupported ? "+avx512" : "");
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())))[..16];
        return Path.Combine(options.OptimizedModelDirectory!, $"{Path.GetFileNameWithoutExtension(modelPath)}.{hash}.optimized.onnx");
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
