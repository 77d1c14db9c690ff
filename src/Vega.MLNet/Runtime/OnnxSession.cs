using System.Buffers;
using System.Runtime.InteropServices;

namespace Vega.MLNet.Runtime;

/// <summary>Graph optimisation level of an ONNX Runtime session.</summary>
public enum GraphOptimization
{
    /// <summary>No graph optimisation.</summary>
    None = 0,
    /// <summary>Constant folding and redundant-node elimination.</summary>
    Basic = 1,
    /// <summary>Basic plus node fusions.</summary>
    Extended = 2,
    /// <summary>Everything, including layout optimisations (default).</summary>
    All = 99,
}

/// <summary>Where a session runs.</summary>
public enum ExecutionProvider
{
    /// <summary>The CPU (default).</summary>
    Cpu,
    /// <summary>An NVIDIA GPU through ONNX Runtime's CUDA provider (needs a CUDA build of ONNX Runtime).</summary>
    Cuda,
}

/// <summary>Options of an <see cref="OnnxSession"/>.</summary>
public sealed record OnnxSessionOptions
{
    /// <summary>Threads used inside one operator; 0 lets ONNX Runtime choose (one per core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads used across independent operators (only with <see cref="ParallelExecution"/>); 0 = default.</summary>
    public int InterOpThreads { get; init; }

    /// <summary>Run independent branches of the graph in parallel.</summary>
    public bool ParallelExecution { get; init; }

    /// <summary>Graph optimisation level; default <see cref="GraphOptimization.All"/>.</summary>
    public GraphOptimization Optimization { get; init; } = GraphOptimization.All;

    /// <summary>Execution provider; default CPU.</summary>
    public ExecutionProvider Provider { get; init; } = ExecutionProvider.Cpu;

    /// <summary>CUDA device ordinal when <see cref="Provider"/> is CUDA.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>The default options.</summary>
    public static OnnxSessionOptions Default { get; } = new();
}

/// <summary>Element types of ONNX tensors (values as in ONNX's TensorProto.DataType).</summary>
public enum OnnxElementType
{
    /// <summary>Unknown or not a tensor.</summary>
    Undefined = 0,
    /// <summary>float32.</summary>
    Float = 1,
    /// <summary>uint8.</summary>
    UInt8 = 2,
    /// <summary>int8.</summary>
    Int8 = 3,
    /// <summary>uint16.</summary>
    UInt16 = 4,
    /// <summary>int16.</summary>
    Int16 = 5,
    /// <summary>int32.</summary>
    Int32 = 6,
    /// <summary>int64.</summary>
    Int64 = 7,
    /// <summary>string.</summary>
    String = 8,
    /// <summary>bool.</summary>
    Bool = 9,
    /// <summary>float16.</summary>
    Float16 = 10,
    /// <summary>float64.</summary>
    Double = 11,
    /// <summary>uint32.</summary>
    UInt32 = 12,
    /// <summary>uint64.</summary>
    UInt64 = 13,
    /// <summary>complex64.</summary>
    Complex64 = 14,
    /// <summary>complex128.</summary>
    Complex128 = 15,
    /// <summary>bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>Name, element type and shape of a model input or output. Dynamic dimensions are -1 in
/// <see cref="Shape"/> and carry their symbolic name (e.g. "batch") in <see cref="SymbolicShape"/>.</summary>
public sealed record OnnxTensorInfo(string Name, OnnxElementType ElementType, long[] Shape, string[] SymbolicShape)
{
    /// <summary>Rank of the tensor.</summary>
    public int Rank => Shape.Length;

    /// <summary>Human-readable form, e.g. <c>input_ids int64 [batch, 77]</c>.</summary>
    public override string ToString() =>
        $"{Name} {ElementType.ToString().ToLowerInvariant()} [{string.Join(", ", Shape.Select((d, i) => d >= 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : SymbolicShape[i].Length > 0 ? SymbolicShape[i] : "?"))}]";
}

/// <summary>One input of a run: a name, a shape and managed data that is pinned (not copied) for the run.</summary>
public sealed class OnnxInput
{
    private readonly Func<MemoryHandle> _pin;

    private OnnxInput(string name, OnnxElementType type, long[] shape, long elements, int elementSize, Func<MemoryHandle> pin)
    {
        Name = name;
        ElementType = type;
        Shape = shape;
        ByteLength = elements * elementSize;
        long expected = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Input '{name}' has a negative dimension in [{string.Join(", ", shape)}].", nameof(shape));
            expected *= d;
        }
        if (expected != elements)
            throw new ArgumentException($"Input '{name}' has {elements} elements but its shape [{string.Join(", ", shape)}] needs {expected}.", nameof(shape));
        _pin = pin;
    }

    /// <summary>Input name.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public OnnxElementType ElementType { get; }

    /// <summary>Shape.</summary>
    public long[] Shape { get; }

    internal long ByteLength { get; }

    internal MemoryHandle Pin() => _pin();

    /// <summary>A float32 input.</summary>
    public static OnnxInput Create(string name, ReadOnlyMemory<float> data, params long[] shape) =>
        new(name, OnnxElementType.Float, shape, data.Length, 4, () => MemoryMarshal.AsMemory(data).Pin());

    /// <summary>An int64 input.</summary>
    public static OnnxInput Create(string name, ReadOnlyMemory<long> data, params long[] shape) =>
        new(name, OnnxElementType.Int64, shape, data.Length, 8, () => MemoryMarshal.AsMemory(data).Pin());

    /// <summary>An int32 input.</summary>
    public static OnnxInput Create(string name, ReadOnlyMemory<int> data, params long[] shape) =>
        new(name, OnnxElementType.Int32, shape, data.Length, 4, () => MemoryMarshal.AsMemory(data).Pin());

    /// <summary>Human-readable form.</summary>
    public override string ToString() => $"{Name} {ElementType.ToString().ToLowerInvariant()} [{string.Join(", ", Shape)}]";
}

/// <summary>A float32 output written by the run straight into caller memory (no copy).</summary>
/// <param name="Name">Output name.</param>
/// <param name="Destination">Memory of exactly the output's size.</param>
/// <param name="Shape">The output's shape.</param>
public readonly record struct OnnxOutputTarget(string Name, Memory<float> Destination, long[] Shape);

/// <summary>
/// An ONNX Runtime inference session over one model. Thread-safe: several threads may call <see cref="Run"/> at once
/// (ONNX Runtime serialises nothing; each run has its own buffers).
/// </summary>
public sealed unsafe class OnnxSession : IDisposable
{
    private static readonly Lazy<IntPtr> Env = new(() => OrtApi.CreateEnv(3 /* error */, "vega"), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<IntPtr> CpuMemory = new(OrtApi.CreateCpuMemoryInfo, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly SessionHandle _handle;
    private readonly IntPtr[] _inputNames;
    private readonly IntPtr[] _outputNames;
    private readonly Dictionary<string, int> _inputIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _outputIndex = new(StringComparer.Ordinal);

    private OnnxSession(SessionHandle handle, string source)
    {
        _handle = handle;
        Source = source;
        IntPtr s = handle.DangerousGetHandle();
        int nIn = (int)OrtApi.SessionGetInputCount(s), nOut = (int)OrtApi.SessionGetOutputCount(s);
        var inputs = new OnnxTensorInfo[nIn];
        var outputs = new OnnxTensorInfo[nOut];
        _inputNames = new IntPtr[nIn];
        _outputNames = new IntPtr[nOut];
        for (int i = 0; i < nIn; i++)
        {
            inputs[i] = Describe(s, i, input: true);
            _inputNames[i] = Marshal.StringToCoTaskMemUTF8(inputs[i].Name);
            _inputIndex[inputs[i].Name] = i;
        }
        for (int i = 0; i < nOut; i++)
        {
            outputs[i] = Describe(s, i, input: false);
            _outputNames[i] = Marshal.StringToCoTaskMemUTF8(outputs[i].Name);
            _outputIndex[outputs[i].Name] = i;
        }
        Inputs = inputs;
        Outputs = outputs;
    }

    /// <summary>Where the model came from (file path or a given name).</summary>
    public string Source { get; }

    /// <summary>The model's inputs in declaration order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Inputs { get; }

    /// <summary>The model's outputs in declaration order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Outputs { get; }

    /// <summary>Opens a model file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the file (not ONNX, truncated, unsupported op…); the
    /// message names the file and carries ORT's reason.</exception>
    public static OnnxSession Open(string path, OnnxSessionOptions? options = null)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The ONNX model '{path}' does not exist.", path);
        string full = Path.GetFullPath(path);
        return Create(options, o => OrtApi.CreateSession(Env.Value, full, o), full);
    }

    /// <summary>Creates a session from the bytes of a model.</summary>
    public static OnnxSession FromBytes(ReadOnlySpan<byte> model, OnnxSessionOptions? options = null, string name = "<memory>")
    {
        OrtApi.EnsureLoaded();
        IntPtr env = Env.Value;
        IntPtr o = BuildOptions(options ?? OnnxSessionOptions.Default);
        try
        {
            IntPtr s;
            try { s = OrtApi.CreateSessionFromArray(env, model, o); }
            catch (OnnxRuntimeException e) { throw LoadError(name, e); }
            return new OnnxSession(new SessionHandle(s), name);
        }
        finally { OrtApi.ReleaseSessionOptions(o); }
    }

    private static OnnxRuntimeException LoadError(string source, OnnxRuntimeException e) =>
        new($"Cannot load the ONNX model '{source}' (is it a complete, valid ONNX file?)", e);

    private static OnnxSession Create(OnnxSessionOptions? options, Func<IntPtr, IntPtr> create, string source)
    {
        OrtApi.EnsureLoaded();
        IntPtr o = BuildOptions(options ?? OnnxSessionOptions.Default);
        try
        {
            IntPtr s;
            try { s = create(o); }
            catch (OnnxRuntimeException e) { throw LoadError(source, e); }
            return new OnnxSession(new SessionHandle(s), source);
        }
        finally { OrtApi.ReleaseSessionOptions(o); }
    }

    private static IntPtr BuildOptions(OnnxSessionOptions options)
    {
        IntPtr o = OrtApi.CreateSessionOptions();
        try
        {
            if (options.IntraOpThreads > 0) OrtApi.SetIntraOpNumThreads(o, options.IntraOpThreads);
            if (options.InterOpThreads > 0) OrtApi.SetInterOpNumThreads(o, options.InterOpThreads);
            OrtApi.SetExecutionMode(o, options.ParallelExecution ? 1 : 0);
            OrtApi.SetGraphOptimizationLevel(o, (int)options.Optimization);
            OrtApi.SetLogSeverityLevel(o, 3);
            if (options.Provider == ExecutionProvider.Cuda)
            {
                var available = OrtApi.GetAvailableProviders();
                string providerLib = Path.Combine(Path.GetDirectoryName(OrtApi.LoadedFrom)!, "libonnxruntime_providers_cuda.so");
                if (!available.Contains("CUDAExecutionProvider") || !File.Exists(providerLib))
                    throw new NotSupportedException(
                        $"The CUDA execution provider is not usable with the loaded ONNX Runtime ({OrtApi.LoadedFrom}, version {OrtApi.Version}; compiled-in providers: {string.Join(", ", available)}; " +
                        $"'{providerLib}' {(File.Exists(providerLib) ? "exists" : "is missing")}). " +
                        $"Use a GPU build of ONNX Runtime (libonnxruntime.so.1 with libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside it) through {OrtLibraryLocator.EnvironmentVariable}, or run on the CPU.");
                try { OrtApi.AppendCuda(o, options.CudaDeviceId); }
                catch (OnnxRuntimeException e)
                {
                    throw new OnnxRuntimeException($"CUDA device {options.CudaDeviceId} could not be used (is the CUDA provider library and a CUDA driver installed?)", e);
                }
            }
            return o;
        }
        catch
        {
            OrtApi.ReleaseSessionOptions(o);
            throw;
        }
    }

    private static OnnxTensorInfo Describe(IntPtr session, int index, bool input)
    {
        string name = OrtApi.SessionGetName(session, (nuint)index, input);
        IntPtr typeInfo = input ? OrtApi.SessionGetInputTypeInfo(session, (nuint)index) : OrtApi.SessionGetOutputTypeInfo(session, (nuint)index);
        try
        {
            if (OrtApi.GetOnnxType(typeInfo) != 1 /* tensor */)
                return new OnnxTensorInfo(name, OnnxElementType.Undefined, [], []);
            IntPtr info = OrtApi.CastTypeInfoToTensorInfo(typeInfo);
            var type = (OnnxElementType)OrtApi.GetTensorElementType(info);
            int rank = (int)OrtApi.GetDimensionsCount(info);
            var dims = new long[rank];
            var symbolic = new string[rank];
            var names = new IntPtr[rank];
            fixed (long* d = dims) OrtApi.GetDimensions(info, d, (nuint)rank);
            fixed (IntPtr* n = names) OrtApi.GetSymbolicDimensions(info, n, (nuint)rank);
            for (int i = 0; i < rank; i++) symbolic[i] = names[i] == IntPtr.Zero ? "" : Marshal.PtrToStringUTF8(names[i]) ?? "";
            return new OnnxTensorInfo(name, type, dims, symbolic);
        }
        finally { OrtApi.ReleaseTypeInfo(typeInfo); }
    }

    /// <summary>Custom metadata of the model (<c>metadata_props</c>), or null when the key is absent.</summary>
    public string? GetMetadata(string key)
    {
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try { return OrtApi.LookupCustomMetadata(_handle.DangerousGetHandle(), key); }
        finally { if (added) _handle.DangerousRelease(); }
    }

    /// <summary>
    /// Runs the model. Inputs are pinned for the duration of the call, not copied. Returns the requested outputs (all
    /// outputs when <paramref name="outputNames"/> is null); dispose the result to free them.
    /// </summary>
    public OnnxResults Run(IReadOnlyList<OnnxInput> inputs, IReadOnlyList<string>? outputNames = null, CancellationToken cancellationToken = default)
    {
        var names = outputNames ?? Outputs.Select(o => o.Name).ToArray();
        var outIdx = new int[names.Count];
        for (int i = 0; i < names.Count; i++) outIdx[i] = OutputIndex(names[i]);
        var values = new IntPtr[names.Count];
        RunCore(inputs, outIdx, values, null, cancellationToken);
        return new OnnxResults(names, values);
    }

    /// <summary>Runs the model writing float32 outputs straight into caller memory (zero copy).</summary>
    public void RunInto(IReadOnlyList<OnnxInput> inputs, IReadOnlyList<OnnxOutputTarget> outputs, CancellationToken cancellationToken = default)
    {
        var outIdx = new int[outputs.Count];
        for (int i = 0; i < outputs.Count; i++)
        {
            outIdx[i] = OutputIndex(outputs[i].Name);
            var info = Outputs[outIdx[i]];
            if (info.ElementType != OnnxElementType.Float)
                throw new ArgumentException($"Output '{info}' of '{Source}' is not float32; RunInto writes float32 only.", nameof(outputs));
        }
        var values = new IntPtr[outputs.Count];
        RunCore(inputs, outIdx, values, outputs, cancellationToken);
    }

    private int OutputIndex(string name) => _outputIndex.TryGetValue(name, out int i) ? i
        : throw new ArgumentException($"The model '{Source}' has no output '{name}'; its outputs are: {string.Join(", ", Outputs)}.");

    private void RunCore(IReadOnlyList<OnnxInput> inputs, int[] outIdx, IntPtr[] outValues, IReadOnlyList<OnnxOutputTarget>? targets, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        int n = inputs.Count;
        var inIdx = new int[n];
        for (int i = 0; i < n; i++) inIdx[i] = Validate(inputs[i]);
        foreach (var info in Inputs)
            if (!inputs.Any(x => x.Name == info.Name))
                throw new ArgumentException($"The model '{Source}' needs the input '{info}', which was not given.", nameof(inputs));

        var pins = new MemoryHandle[n + (targets?.Count ?? 0)];
        var inValues = new IntPtr[n];
        var inNames = new IntPtr[n];
        var outNames = new IntPtr[outIdx.Length];
        IntPtr runOptions = IntPtr.Zero;
        CancellationTokenRegistration registration = default;
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            IntPtr memory = CpuMemory.Value;
            for (int i = 0; i < n; i++)
            {
                var input = inputs[i];
                pins[i] = input.Pin();
                inNames[i] = _inputNames[inIdx[i]];
                fixed (long* shape = input.Shape)
                    inValues[i] = OrtApi.CreateTensorWithData(memory, pins[i].Pointer, (nuint)input.ByteLength, shape, (nuint)input.Shape.Length, (int)input.ElementType);
            }
            for (int j = 0; j < outIdx.Length; j++) outNames[j] = _outputNames[outIdx[j]];
            if (targets is not null)
            {
                for (int j = 0; j < targets.Count; j++)
                {
                    var t = targets[j];
                    long count = 1;
                    foreach (long d in t.Shape) count *= d;
                    if (count != t.Destination.Length)
                        throw new ArgumentException($"The buffer for output '{t.Name}' holds {t.Destination.Length} floats, its shape [{string.Join(", ", t.Shape)}] needs {count}.");
                    pins[n + j] = t.Destination.Pin();
                    fixed (long* shape = t.Shape)
                        outValues[j] = OrtApi.CreateTensorWithData(memory, pins[n + j].Pointer, (nuint)(count * 4), shape, (nuint)t.Shape.Length, 1);
                }
            }
            if (ct.CanBeCanceled)
            {
                runOptions = OrtApi.CreateRunOptions();
                IntPtr ro = runOptions;
                registration = ct.Register(() => OrtApi.RunOptionsSetTerminate(ro));
            }
            fixed (IntPtr* pInNames = inNames, pIn = inValues, pOutNames = outNames, pOut = outValues)
            {
                try
                {
                    OrtApi.Run(_handle.DangerousGetHandle(), runOptions, pInNames, pIn, (nuint)n, pOutNames, (nuint)outIdx.Length, pOut);
                }
                catch (OnnxRuntimeException e)
                {
                    ct.ThrowIfCancellationRequested();
                    throw new OnnxRuntimeException($"Running '{Source}' with inputs {string.Join(", ", inputs)} failed", e);
                }
            }
        }
        catch when (targets is null)
        {
            foreach (var v in outValues) if (v != IntPtr.Zero) OrtApi.ReleaseValue(v);
            Array.Clear(outValues);
            throw;
        }
        finally
        {
            registration.Dispose();
            if (runOptions != IntPtr.Zero) OrtApi.ReleaseRunOptions(runOptions);
            foreach (var v in inValues) if (v != IntPtr.Zero) OrtApi.ReleaseValue(v);
            if (targets is not null) foreach (var v in outValues) if (v != IntPtr.Zero) OrtApi.ReleaseValue(v);
            foreach (var p in pins) p.Dispose();
            if (added) _handle.DangerousRelease();
        }
    }

    private int Validate(OnnxInput input)
    {
        if (!_inputIndex.TryGetValue(input.Name, out int idx))
            throw new ArgumentException($"The model '{Source}' has no input '{input.Name}'; its inputs are: {string.Join(", ", Inputs)}.");
        var info = Inputs[idx];
        if (info.ElementType != input.ElementType)
            throw new ArgumentException(
                $"Input '{input.Name}' of '{Source}' must be {info.ElementType.ToString().ToLowerInvariant()} (declared {info}), but {input.ElementType.ToString().ToLowerInvariant()} was given.");
        if (info.Rank != input.Shape.Length)
            throw new ArgumentException($"Input '{input.Name}' of '{Source}' has rank {info.Rank} (declared {info}), but shape [{string.Join(", ", input.Shape)}] was given.");
        for (int d = 0; d < info.Rank; d++)
            if (info.Shape[d] >= 0 && info.Shape[d] != input.Shape[d])
                throw new ArgumentException($"Input '{input.Name}' of '{Source}' needs dimension {d} = {info.Shape[d]} (declared {info}), but shape [{string.Join(", ", input.Shape)}] was given.");
        return idx;
    }

    /// <summary>Releases the native session.</summary>
    public void Dispose()
    {
        _handle.Dispose();
        if (_handle.IsClosed)
        {
            foreach (var p in _inputNames) Marshal.FreeCoTaskMem(p);
            foreach (var p in _outputNames) Marshal.FreeCoTaskMem(p);
            Array.Clear(_inputNames);
            Array.Clear(_outputNames);
        }
    }

    private sealed class SessionHandle : SafeHandle
    {
        public SessionHandle(IntPtr h) : base(IntPtr.Zero, true) => SetHandle(h);
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle()
        {
            OrtApi.ReleaseSession(handle);
            return true;
        }
    }
}

/// <summary>Outputs of a run; views into them are valid until <see cref="Dispose"/>.</summary>
public sealed unsafe class OnnxResults : IDisposable
{
    private readonly IReadOnlyList<string> _names;
    private readonly IntPtr[] _values;

    internal OnnxResults(IReadOnlyList<string> names, IntPtr[] values)
    {
        _names = names;
        _values = values;
    }

    /// <summary>Output names, in the order requested.</summary>
    public IReadOnlyList<string> Names => _names;

    private IntPtr Value(string name)
    {
        for (int i = 0; i < _names.Count; i++)
            if (_names[i] == name)
                return _values[i] != IntPtr.Zero ? _values[i] : throw new ObjectDisposedException(nameof(OnnxResults));
        throw new KeyNotFoundException($"No output '{name}' in this result; it has: {string.Join(", ", _names)}.");
    }

    /// <summary>Shape and element type of an output.</summary>
    public (OnnxElementType Type, long[] Shape) Describe(string name)
    {
        IntPtr info = OrtApi.GetTensorTypeAndShape(Value(name));
        try
        {
            var type = (OnnxElementType)OrtApi.GetTensorElementType(info);
            int rank = (int)OrtApi.GetDimensionsCount(info);
            var dims = new long[rank];
            fixed (long* d = dims) OrtApi.GetDimensions(info, d, (nuint)rank);
            return (type, dims);
        }
        finally { OrtApi.ReleaseTensorTypeAndShapeInfo(info); }
    }

    /// <summary>A view of a float32 output (valid until dispose).</summary>
    public ReadOnlySpan<float> GetFloats(string name) => View<float>(name, OnnxElementType.Float);

    /// <summary>A view of an int64 output (valid until dispose).</summary>
    public ReadOnlySpan<long> GetInt64s(string name) => View<long>(name, OnnxElementType.Int64);

    private ReadOnlySpan<T> View<T>(string name, OnnxElementType expected) where T : unmanaged
    {
        var (type, shape) = Describe(name);
        if (type != expected) throw new InvalidOperationException($"Output '{name}' is {type}, not {expected}.");
        long count = 1;
        foreach (long d in shape) count *= d;
        return new ReadOnlySpan<T>(OrtApi.GetTensorMutableData(Value(name)), checked((int)count));
    }

    /// <summary>Frees the outputs.</summary>
    public void Dispose()
    {
        for (int i = 0; i < _values.Length; i++)
        {
            if (_values[i] != IntPtr.Zero) OrtApi.ReleaseValue(_values[i]);
            _values[i] = IntPtr.Zero;
        }
    }
}
