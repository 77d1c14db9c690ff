using System.Runtime.InteropServices;

namespace Vega.MLNet.Runtime;

/// <summary>
/// The ONNX Runtime C API function table (<c>OrtGetApiBase()->GetApi(version)</c>), bound by slot index. The table is
/// append-only, so the indices below (counted from onnxruntime_c_api.h and checked against the runtime's own
/// <c>static_assert</c>s) are stable across releases. Only the slots this library calls are named.
/// </summary>
internal static unsafe class OrtApi
{
    // Lowest API version that covers every slot used here (CUDA V2 options arrived in API 11).
    private const uint ApiVersion = 11;

    private static readonly object Gate = new();
    private static IntPtr* _table;

    /// <summary>The path of the loaded library.</summary>
    public static string? LoadedFrom { get; private set; }

    /// <summary>The runtime's version string, e.g. "1.30.0".</summary>
    public static string Version { get; private set; } = "";

    public static void EnsureLoaded()
    {
        if (_table != null) return;
        lock (Gate)
        {
            if (_table != null) return;
            string path = OrtLibraryLocator.Resolve(OnnxRuntime.LibraryPath, Environment.GetEnvironmentVariable(OrtLibraryLocator.EnvironmentVariable), AppContext.BaseDirectory);
            IntPtr lib;
            try
            {
                lib = NativeLibrary.Load(path);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new OnnxRuntimeNotFoundException(
                    $"The ONNX Runtime library '{path}' exists but could not be loaded ({e.Message}). {OrtLibraryLocator.Fix}", e);
            }
            if (!NativeLibrary.TryGetExport(lib, "OrtGetApiBase", out IntPtr getBase))
                throw new OnnxRuntimeNotFoundException($"'{path}' has no OrtGetApiBase export: it is not an ONNX Runtime library. {OrtLibraryLocator.Fix}");
            IntPtr* apiBase = ((delegate* unmanaged<IntPtr*>)getBase)();
            var getApi = (delegate* unmanaged<uint, IntPtr*>)apiBase[0];
            var getVersion = (delegate* unmanaged<byte*>)apiBase[1];
            IntPtr* table = getApi(ApiVersion);
            Version = Marshal.PtrToStringUTF8((IntPtr)getVersion()) ?? "";
            if (table == null)
                throw new OnnxRuntimeNotFoundException(
                    $"The ONNX Runtime at '{path}' (version {Version}) does not provide C API version {ApiVersion}; Vega.MLNet needs ONNX Runtime 1.{ApiVersion} or newer. {OrtLibraryLocator.Fix}");
            LoadedFrom = path;
            _table = table;
        }
    }

    private static IntPtr Slot(int index)
    {
        EnsureLoaded();
        return _table[index];
    }

    // ---- status
    public static void Check(IntPtr status)
    {
        if (status == IntPtr.Zero) return;
        var code = (OrtErrorCode)((delegate* unmanaged<IntPtr, int>)Slot(1))(status);
        string message = Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr, IntPtr>)Slot(2))(status)) ?? "";
        ((delegate* unmanaged<IntPtr, void>)Slot(93))(status);
        throw new OnnxRuntimeException(code, message);
    }

    // ---- environment
    public static IntPtr CreateEnv(int logLevel, string logId)
    {
        IntPtr env;
        IntPtr id = Marshal.StringToCoTaskMemUTF8(logId);
        try { Check(((delegate* unmanaged<int, IntPtr, IntPtr*, IntPtr>)Slot(3))(logLevel, id, &env)); }
        finally { Marshal.FreeCoTaskMem(id); }
        return env;
    }

    // ---- sessions
    public static IntPtr CreateSession(IntPtr env, string path, IntPtr options)
    {
        IntPtr session;
        IntPtr p = Marshal.StringToCoTaskMemUTF8(path);
        try { Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, IntPtr>)Slot(7))(env, p, options, &session)); }
        finally { Marshal.FreeCoTaskMem(p); }
        return session;
    }

    public static IntPtr CreateSessionFromArray(IntPtr env, ReadOnlySpan<byte> model, IntPtr options)
    {
        IntPtr session;
        fixed (byte* m = model)
            Check(((delegate* unmanaged<IntPtr, byte*, nuint, IntPtr, IntPtr*, IntPtr>)Slot(8))(env, m, (nuint)model.Length, options, &session));
        return session;
    }

    public static void Run(IntPtr session, IntPtr runOptions, IntPtr* inputNames, IntPtr* inputs, nuint inputCount,
        IntPtr* outputNames, nuint outputCount, IntPtr* outputs) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr>)Slot(9))(
            session, runOptions, inputNames, inputs, inputCount, outputNames, outputCount, outputs));

    // ---- session options
    public static IntPtr CreateSessionOptions()
    {
        IntPtr o;
        Check(((delegate* unmanaged<IntPtr*, IntPtr>)Slot(10))(&o));
        return o;
    }

    public static void SetExecutionMode(IntPtr o, int mode) => Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(13))(o, mode));
    public static void SetGraphOptimizationLevel(IntPtr o, int level) => Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(23))(o, level));
    public static void SetIntraOpNumThreads(IntPtr o, int n) => Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(24))(o, n));
    public static void SetInterOpNumThreads(IntPtr o, int n) => Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(25))(o, n));
    public static void SetLogSeverityLevel(IntPtr o, int level) => Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(22))(o, level));

    public static void AddSessionConfigEntry(IntPtr o, string key, string value)
    {
        IntPtr k = Marshal.StringToCoTaskMemUTF8(key), v = Marshal.StringToCoTaskMemUTF8(value);
        try { Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr>)Slot(130))(o, k, v)); }
        finally { Marshal.FreeCoTaskMem(k); Marshal.FreeCoTaskMem(v); }
    }

    public static void AppendCuda(IntPtr o, int deviceId)
    {
        IntPtr cuda;
        Check(((delegate* unmanaged<IntPtr*, IntPtr>)Slot(205))(&cuda));
        try
        {
            IntPtr key = Marshal.StringToCoTaskMemUTF8("device_id"), value = Marshal.StringToCoTaskMemUTF8(deviceId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            try { Check(((delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, nuint, IntPtr>)Slot(206))(cuda, &key, &value, 1)); }
            finally { Marshal.FreeCoTaskMem(key); Marshal.FreeCoTaskMem(value); }
            Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Slot(204))(o, cuda));
        }
        finally { ((delegate* unmanaged<IntPtr, void>)Slot(208))(cuda); }
    }

    public static string[] GetAvailableProviders()
    {
        IntPtr* list;
        int n;
        Check(((delegate* unmanaged<IntPtr**, int*, IntPtr>)Slot(125))(&list, &n));
        var result = new string[n];
        for (int i = 0; i < n; i++) result[i] = Marshal.PtrToStringUTF8(list[i]) ?? "";
        Check(((delegate* unmanaged<IntPtr*, int, IntPtr>)Slot(126))(list, n));
        return result;
    }

    // ---- metadata
    public static nuint SessionGetInputCount(IntPtr s) { nuint n; Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(30))(s, &n)); return n; }
    public static nuint SessionGetOutputCount(IntPtr s) { nuint n; Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(31))(s, &n)); return n; }
    public static IntPtr SessionGetInputTypeInfo(IntPtr s, nuint i) { IntPtr t; Check(((delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)Slot(33))(s, i, &t)); return t; }
    public static IntPtr SessionGetOutputTypeInfo(IntPtr s, nuint i) { IntPtr t; Check(((delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)Slot(34))(s, i, &t)); return t; }

    public static string SessionGetName(IntPtr s, nuint i, bool input)
    {
        IntPtr allocator = DefaultAllocator();
        IntPtr name;
        Check(((delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr*, IntPtr>)Slot(input ? 36 : 37))(s, i, allocator, &name));
        string result = Marshal.PtrToStringUTF8(name) ?? "";
        Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Slot(76))(allocator, name));
        return result;
    }

    public static IntPtr CastTypeInfoToTensorInfo(IntPtr typeInfo) { IntPtr t; Check(((delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)Slot(55))(typeInfo, &t)); return t; }
    public static int GetOnnxType(IntPtr typeInfo) { int t; Check(((delegate* unmanaged<IntPtr, int*, IntPtr>)Slot(56))(typeInfo, &t)); return t; }
    public static int GetTensorElementType(IntPtr info) { int t; Check(((delegate* unmanaged<IntPtr, int*, IntPtr>)Slot(60))(info, &t)); return t; }
    public static nuint GetDimensionsCount(IntPtr info) { nuint n; Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(61))(info, &n)); return n; }
    public static void GetDimensions(IntPtr info, long* dims, nuint n) => Check(((delegate* unmanaged<IntPtr, long*, nuint, IntPtr>)Slot(62))(info, dims, n));
    public static void GetSymbolicDimensions(IntPtr info, IntPtr* names, nuint n) => Check(((delegate* unmanaged<IntPtr, IntPtr*, nuint, IntPtr>)Slot(63))(info, names, n));
    public static nuint GetTensorShapeElementCount(IntPtr info) { nuint n; Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(64))(info, &n)); return n; }
    public static IntPtr GetTensorTypeAndShape(IntPtr value) { IntPtr t; Check(((delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)Slot(65))(value, &t)); return t; }
    public static void ReleaseTypeInfo(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(98))(p);
    public static void ReleaseTensorTypeAndShapeInfo(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(99))(p);

    public static string? LookupCustomMetadata(IntPtr session, string key)
    {
        IntPtr meta;
        Check(((delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)Slot(111))(session, &meta));
        IntPtr k = Marshal.StringToCoTaskMemUTF8(key);
        try
        {
            IntPtr allocator = DefaultAllocator();
            IntPtr value;
            Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, IntPtr>)Slot(116))(meta, allocator, k, &value));
            if (value == IntPtr.Zero) return null;
            string s = Marshal.PtrToStringUTF8(value) ?? "";
            Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Slot(76))(allocator, value));
            return s;
        }
        finally
        {
            Marshal.FreeCoTaskMem(k);
            ((delegate* unmanaged<IntPtr, void>)Slot(118))(meta);
        }
    }

    // ---- values
    public static IntPtr CreateTensorWithData(IntPtr memoryInfo, void* data, nuint bytes, long* shape, nuint rank, int elementType)
    {
        IntPtr value;
        Check(((delegate* unmanaged<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)Slot(49))(memoryInfo, data, bytes, shape, rank, elementType, &value));
        return value;
    }

    public static void* GetTensorMutableData(IntPtr value) { void* p; Check(((delegate* unmanaged<IntPtr, void**, IntPtr>)Slot(51))(value, &p)); return p; }
    public static void ReleaseValue(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(96))(p);

    public static IntPtr CreateCpuMemoryInfo()
    {
        IntPtr info;
        Check(((delegate* unmanaged<int, int, IntPtr*, IntPtr>)Slot(69))(1 /* arena */, 0 /* default mem */, &info));
        return info;
    }

    private static IntPtr DefaultAllocator() { IntPtr a; Check(((delegate* unmanaged<IntPtr*, IntPtr>)Slot(78))(&a)); return a; }

    // ---- run options
    public static IntPtr CreateRunOptions() { IntPtr r; Check(((delegate* unmanaged<IntPtr*, IntPtr>)Slot(39))(&r)); return r; }
    public static void RunOptionsSetTerminate(IntPtr r) => Check(((delegate* unmanaged<IntPtr, IntPtr>)Slot(46))(r));

    // ---- release
    public static void ReleaseSession(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(95))(p);
    public static void ReleaseRunOptions(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(97))(p);
    public static void ReleaseSessionOptions(IntPtr p) => ((delegate* unmanaged<IntPtr, void>)Slot(100))(p);
}

/// <summary>ONNX Runtime's error codes (<c>OrtErrorCode</c>).</summary>
public enum OrtErrorCode
{
    /// <summary>No error.</summary>
    Ok = 0,
    /// <summary>Generic failure.</summary>
    Fail = 1,
    /// <summary>An argument (input name, shape, type…) is invalid.</summary>
    InvalidArgument = 2,
    /// <summary>A file does not exist.</summary>
    NoSuchFile = 3,
    /// <summary>No model loaded.</summary>
    NoModel = 4,
    /// <summary>Execution engine error.</summary>
    EngineError = 5,
    /// <summary>Runtime exception inside a kernel.</summary>
    RuntimeException = 6,
    /// <summary>The model file is not a valid ONNX protobuf.</summary>
    InvalidProtobuf = 7,
    /// <summary>Model already loaded.</summary>
    ModelLoaded = 8,
    /// <summary>Feature not implemented by this build.</summary>
    NotImplemented = 9,
    /// <summary>The graph is invalid.</summary>
    InvalidGraph = 10,
    /// <summary>Execution provider failure.</summary>
    ExecutionProviderFail = 11,
}
