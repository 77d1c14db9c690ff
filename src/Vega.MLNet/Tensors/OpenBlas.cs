using System.Runtime.InteropServices;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Binding to OpenBLAS (<c>libopenblas.so.0</c>, the SONAME of Debian's libopenblas0-pthread; the unversioned name only
/// exists with the -dev package). Loaded lazily with <see cref="NativeLibrary"/>; when absent, <see cref="Gemm"/> falls
/// back to <see cref="ManagedGemm"/>. Functions: <c>cblas_sgemm</c> (row-major, 32-bit <c>blasint</c>),
/// <c>openblas_set_num_threads</c>, <c>openblas_get_num_threads</c>, <c>openblas_get_config</c>.
/// </summary>
internal static unsafe class OpenBlas
{
    public const string LibraryName = "libopenblas.so.0";
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private static readonly Lock Gate = new();
    private static int _state; // 0 not tried, 1 loaded, -1 absent
    private static string? _error;
    private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> _sgemm;
    private static delegate* unmanaged<int, void> _setThreads;
    private static delegate* unmanaged<int> _getThreads;
    private static delegate* unmanaged<byte*> _getConfig;

    /// <summary>True when the library was found and bound (loads it on first call).</summary>
    public static bool IsAvailable => EnsureLoaded();

    /// <summary>Why loading failed (null when loaded or not yet tried).</summary>
    public static string? LoadError { get { EnsureLoaded(); return _error; } }

    /// <summary>The build configuration string, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".</summary>
    public static string Config => Require() ? Marshal.PtrToStringUTF8((nint)_getConfig()) ?? "" : "";

    /// <summary>The library's current thread count.</summary>
    public static int Threads => Require() ? _getThreads() : 0;

    public const string InstallHint =
        "Install Debian's libopenblas0-pthread (bash scripts/setup.sh does), or use the managed kernel (Gemm.Backend = GemmBackend.Managed, or VEGA_GEMM=managed).";

    private static bool Require()
    {
        if (!EnsureLoaded()) throw new InvalidOperationException($"OpenBLAS ({LibraryName}) is not available: {_error} {InstallHint}");
        return true;
    }

    private static bool EnsureLoaded()
    {
        if (_state != 0) return _state > 0;
        lock (Gate)
        {
            if (_state != 0) return _state > 0;
            if (!NativeLibrary.TryLoad(LibraryName, out nint handle))
            {
                _error = $"'{LibraryName}' could not be loaded.";
                _state = -1;
                return false;
            }
            if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out nint sgemm) ||
                !NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out nint set) ||
                !NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out nint get) ||
                !NativeLibrary.TryGetExport(handle, "openblas_get_config", out nint config))
            {
                _error = $"'{LibraryName}' lacks one of cblas_sgemm, openblas_set_num_threads, openblas_get_num_threads, openblas_get_config.";
                _state = -1;
                return false;
            }
            _sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
            _setThreads = (delegate* unmanaged<int, void>)set;
            _getThreads = (delegate* unmanaged<int>)get;
            _getConfig = (delegate* unmanaged<byte*>)config;
            _setThreads(Parallelism.ThreadCount);
            _state = 1;
            return true;
        }
    }

    internal static void SetThreadsIfLoaded(int threads)
    {
        if (_state > 0) _setThreads(threads);
    }

    /// <summary>C = alpha·op(A)·op(B) + beta·C, all row-major.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Require();
        _sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
