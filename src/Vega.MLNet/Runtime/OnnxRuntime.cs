namespace Vega.MLNet.Runtime;

/// <summary>
/// Process-wide ONNX Runtime settings. The native library (<c>libonnxruntime.so.1</c>) is found, in this order, at
/// <see cref="LibraryPath"/>, at the path in the environment variable <c>VEGA_ONNXRUNTIME_PATH</c> (a file or a
/// folder), or in the application's native folder (<c>runtimes/linux-x64/native/</c> or next to the app). It is loaded
/// once, on first use.
/// </summary>
public static class OnnxRuntime
{
    private static string? _libraryPath;

    /// <summary>
    /// Explicit path of the native library (file or folder). Must be set before the first session is created;
    /// changing it afterwards throws.
    /// </summary>
    public static string? LibraryPath
    {
        get => _libraryPath;
        set
        {
            if (OrtApi.LoadedFrom is not null && value != _libraryPath)
                throw new InvalidOperationException($"ONNX Runtime is already loaded from '{OrtApi.LoadedFrom}'; set OnnxRuntime.LibraryPath before the first session.");
            _libraryPath = value;
        }
    }

    /// <summary>Loads the native library now (otherwise it loads with the first session) and returns its version.</summary>
    public static string Load()
    {
        OrtApi.EnsureLoaded();
        return OrtApi.Version;
    }

    /// <summary>The version of the loaded runtime, loading it if needed.</summary>
    public static string Version => Load();

    /// <summary>The path the native library was loaded from, or null before loading.</summary>
    public static string? LoadedFrom => OrtApi.LoadedFrom;

    /// <summary>The execution providers compiled into the loaded runtime (e.g. "CPUExecutionProvider").</summary>
    public static IReadOnlyList<string> AvailableProviders => OrtApi.GetAvailableProviders();
}

/// <summary>Finds <c>libonnxruntime.so.1</c>: explicit option, then environment variable, then the app's native folder.</summary>
internal static class OrtLibraryLocator
{
    public const string EnvironmentVariable = "VEGA_ONNXRUNTIME_PATH";
    public const string FileName = "libonnxruntime.so.1";

    public const string Fix =
        "Install it with `bash scripts/setup.sh` (fetches onnxruntime-node@1.30.0 from npm, sha256-checked, into .native/), " +
        "or point the environment variable " + EnvironmentVariable + " (or OnnxRuntime.LibraryPath) at a libonnxruntime.so.1 of version 1.11 or newer.";

    public static string Resolve(string? explicitPath, string? environmentValue, string baseDirectory)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
            return Existing(explicitPath, "OnnxRuntime.LibraryPath");
        if (!string.IsNullOrWhiteSpace(environmentValue))
            return Existing(environmentValue, "the environment variable " + EnvironmentVariable);
        string[] candidates =
        [
            Path.Combine(baseDirectory, "runtimes", "linux-x64", "native", FileName),
            Path.Combine(baseDirectory, FileName),
        ];
        foreach (var c in candidates) if (File.Exists(c)) return c;
        throw new OnnxRuntimeNotFoundException(
            $"The ONNX Runtime native library was not found (looked at OnnxRuntime.LibraryPath, {EnvironmentVariable}, {string.Join(", ", candidates)}). {Fix}");
    }

    private static string Existing(string path, string source)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file))
            throw new OnnxRuntimeNotFoundException($"The ONNX Runtime library named by {source} does not exist: '{file}'. {Fix}");
        return Path.GetFullPath(file);
    }
}

/// <summary>An error reported by ONNX Runtime; <see cref="Exception.Message"/> carries ORT's own message.</summary>
public class OnnxRuntimeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OnnxRuntimeException(OrtErrorCode code, string message) : base($"ONNX Runtime error {code}: {message}") => Code = code;

    /// <summary>Creates the exception with extra context in front of ORT's message.</summary>
    public OnnxRuntimeException(string context, OnnxRuntimeException inner) : base($"{context}: {inner.Message}", inner) => Code = inner.Code;

    /// <summary>ORT's error code.</summary>
    public OrtErrorCode Code { get; }
}

/// <summary>The native ONNX Runtime library is missing or unusable; the message says how to install it.</summary>
public sealed class OnnxRuntimeNotFoundException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OnnxRuntimeNotFoundException(string message, Exception? inner = null) : base(message, inner) { }
}
