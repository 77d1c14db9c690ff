using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OrtException = Microsoft.ML.OnnxRuntime.OnnxRuntimeException;

namespace Vega.MLNet.Runtime;

/// <summary>Graph optimisation level of an ONNX Runtime session.</summary>
internal enum GraphOptimization
{
    None = 0,
    Basic = 1,
    Extended = 2,
    All = 99,
}

/// <summary>Options of an <see cref="OnnxSession"/>.</summary>
internal sealed record OnnxSessionOptions
{
    /// <summary>Threads used inside one operator; 0 (default) means one per logical core of the process
    /// (<see cref="Environment.ProcessorCount"/>). ONNX Runtime's own default counts physical cores, which is one on
    /// a two-vCPU machine and halves the speed there.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads used across independent operators (only with <see cref="ParallelExecution"/>); 0 = default.</summary>
    public int InterOpThreads { get; init; }

    /// <summary>Run independent branches of the graph in parallel.</summary>
    public bool ParallelExecution { get; init; }

    /// <summary>Graph optimisation level; default <see cref="GraphOptimization.All"/>.</summary>
    public GraphOptimization Optimization { get; init; } = GraphOptimization.All;

    /// <summary>The CUDA device to run on, or null for the CPU (ML.NET's <c>gpuDeviceId</c>).</summary>
    public int? GpuDeviceId { get; init; }

    /// <summary>When the GPU cannot be used: true runs on the CPU after one warning, false throws (ML.NET's
    /// <c>fallbackToCpu</c>).</summary>
    public bool FallbackToCpu { get; init; }

    /// <summary>
    /// A folder where the optimised form of each model is kept (written on the first load, read on later ones), or
    /// null. Models whose weights ONNX Runtime must compute or fold at load time open much faster from it.
    /// </summary>
    public string? OptimizedModelDirectory { get; init; }

    /// <summary>Receives warnings (a GPU fallback, an unusable optimised-model cache); default
    /// <see cref="System.Diagnostics.Trace.TraceWarning(string)"/>.</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>The default options.</summary>
    public static OnnxSessionOptions Default { get; } = new();

    internal int EffectiveIntraOpThreads => IntraOpThreads > 0 ? IntraOpThreads : Environment.ProcessorCount;

    internal void Warn(string message)
    {
        if (Warning is { } w) w(message);
        else System.Diagnostics.Trace.TraceWarning(message);
    }
}

/// <summary>Name, element type and shape of a model input or output. Dynamic dimensions are -1 in
/// <see cref="Shape"/> and carry their symbolic name (e.g. "batch") in <see cref="SymbolicShape"/>.</summary>
internal sealed record OnnxTensorInfo(string Name, OnnxElementType ElementType, long[] Shape, string[] SymbolicShape)
{
    public int Rank => Shape.Length;

    public override string ToString() =>
        $"{Name} {ElementType.ToString().ToLowerInvariant()} [{string.Join(", ", Shape.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : SymbolicShape[i].Length > 0 ? SymbolicShape[i] : "?"))}]";
}

/// <summary>One input of a run: a name, a shape and managed data that is pinned (not copied) for the run.</summary>
internal sealed class OnnxInput
{
    private readonly Func<OrtValue> _create;

    private OnnxInput(string name, OnnxElementType type, long[] shape, long elements, Func<OrtValue> create)
    {
        Name = name;
        ElementType = type;
        Shape = shape;
        long expected = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"Input '{name}' has a negative dimension in [{string.Join(", ", shape)}].", nameof(shape));
            expected *= d;
        }
        if (expected != elements)
            throw new ArgumentException($"Input '{name}' has {elements} elements but its shape [{string.Join(", ", shape)}] needs {expected}.", nameof(shape));
        _create = create;
    }

    public string Name { get; }
    public OnnxElementType ElementType { get; }
    public long[] Shape { get; }

    /// <summary>An ONNX Runtime value over the pinned managed memory (dispose it to unpin).</summary>
    internal OrtValue ToOrtValue() => _create();

    public static OnnxInput Create(string name, ReadOnlyMemory<float> data, params long[] shape) =>
        new(name, OnnxElementType.Float, shape, data.Length, () => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(data), shape));

    public static OnnxInput Create(string name, ReadOnlyMemory<long> data, params long[] shape) =>
        new(name, OnnxElementType.Int64, shape, data.Length, () => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(data), shape));

    public static OnnxInput Create(string name, ReadOnlyMemory<byte> data, params long[] shape) =>
        new(name, OnnxElementType.UInt8, shape, data.Length, () => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(data), shape));

    public static OnnxInput Create(string name, ReadOnlyMemory<int> data, params long[] shape) =>
        new(name, OnnxElementType.Int32, shape, data.Length, () => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(data), shape));

    public override string ToString() => $"{Name} {ElementType.ToString().ToLowerInvariant()} [{string.Join(", ", Shape)}]";
}

/// <summary>A float32 output written by the run straight into caller memory (no copy).</summary>
internal readonly record struct OnnxOutputTarget(string Name, Memory<float> Destination, long[] Shape);

/// <summary>
/// An ONNX Runtime inference session over one model (Microsoft.ML.OnnxRuntime). Thread-safe: several threads may
/// call <see cref="Run"/> at once. Inputs and <see cref="RunInto"/> outputs live in pinned managed memory, so a run
/// copies nothing. Load and run failures are <see cref="InvalidDataException"/> (the file is not a usable model) or
/// <see cref="InvalidOperationException"/> (ONNX Runtime failed while running), with ONNX Runtime's reason.
/// </summary>
internal sealed class OnnxSession : IDisposable
{
    /// <summary>The CUDA libraries ONNX Runtime 1.32's CUDA provider loads (they do not come from NuGet).</summary>
    public const string CudaRequirements =
        "ONNX Runtime 1.32's CUDA provider needs the package Microsoft.ML.OnnxRuntime.Gpu 1.32.0 in the application (instead of Microsoft.ML.OnnxRuntime), " +
        "an NVIDIA driver (libcuda.so.1) and CUDA 13 with cuDNN 9 on the library path (libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcufft.so.12, libcudnn.so.9); see docs/gpu.md";

    private readonly InferenceSession _session;
    private readonly Dictionary<string, int> _inputIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _outputIndex = new(StringComparer.Ordinal);
    private int _disposed;

    private OnnxSession(InferenceSession session, string source, string device)
    {
        _session = session;
        Source = source;
        Device = device;
        Inputs = Describe(session.InputNames, session.InputMetadata, _inputIndex);
        Outputs = Describe(session.OutputNames, session.OutputMetadata, _outputIndex);
    }

    /// <summary>Where the model came from (file path or a given name).</summary>
    public string Source { get; }

    /// <summary>Where the session runs: "CPU" or "CUDA:&lt;id&gt;".</summary>
    public string Device { get; }

    /// <summary>The model's inputs in declaration order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Inputs { get; }

    /// <summary>The model's outputs in declaration order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Outputs { get; }

    /// <summary>The ONNX Runtime version in use.</summary>
    public static string RuntimeVersion
    {
        get
        {
            EnsureQuietEnvironment();
            return OrtEnv.Instance().GetVersionString();
        }
    }

    /// <summary>The execution providers compiled into the ONNX Runtime native library in use.</summary>
    public static IReadOnlyList<string> AvailableProviders
    {
        get
        {
            EnsureQuietEnvironment();
            return OrtEnv.Instance().GetAvailableProviders();
        }
    }

    /// <summary>Opens a model file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">ONNX Runtime rejected the file (not ONNX, truncated, unsupported op…).</exception>
    public static OnnxSession Open(string path, OnnxSessionOptions? options = null)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The ONNX model '{path}' does not exist.", path);
        string full = Path.GetFullPath(path);
        options ??= OnnxSessionOptions.Default;
        string? cached = OptimizedModelCache.Lookup(options, full);
        if (cached is not null)
        {
            try { return Create(options, so => new InferenceSession(cached, so), full); }
            catch (InvalidDataException e)
            {
                options.Warn($"The cached optimised form of '{full}' ({cached}) could not be loaded and is rebuilt: {e.Message}");
                OptimizedModelCache.Discard(cached);
            }
        }
        var pending = OptimizedModelCache.Prepare(options, full);
        if (pending is not null)
        {
            try
            {
                var session = Create(options, so =>
                {
                    so.OptimizedModelFilePath = pending.TemporaryPath;
                    return new InferenceSession(full, so);
                }, full);
                pending.Commit(options);
                return session;
            }
            catch (InvalidDataException e)
            {
                // Writing the optimised form can fail where loading does not (e.g. a read-only folder): load without it.
                OptimizedModelCache.Discard(pending.TemporaryPath);
                options.Warn($"The optimised form of '{full}' could not be written to '{options.OptimizedModelDirectory}': {e.Message}");
            }
        }
        return Create(options, so => new InferenceSession(full, so), full);
    }

    /// <summary>Creates a session from the bytes of a model.</summary>
    public static OnnxSession FromBytes(ReadOnlySpan<byte> model, OnnxSessionOptions? options = null, string name = "<memory>")
    {
        byte[] bytes = model.ToArray();
        return Create(options ?? OnnxSessionOptions.Default, so => new InferenceSession(bytes, so), name);
    }

    private static OnnxSession Create(OnnxSessionOptions options, Func<SessionOptions, InferenceSession> create, string source)
    {
        if (options.GpuDeviceId is int device)
        {
            string? failure;
            try
            {
                using var so = BuildOptions(options);
                so.AppendExecutionProvider_CUDA(device);
                return new OnnxSession(create(so), source, $"CUDA:{device}");
            }
            catch (Exception e) when (e is OrtException or EntryPointNotFoundException or DllNotFoundException)
            {
                failure = e.Message;
            }
            string what = $"CUDA device {device} cannot be used by ONNX Runtime's CUDAExecutionProvider for '{source}' " +
                $"(ONNX Runtime {RuntimeVersion}, providers in this build: {string.Join(", ", AvailableProviders)}): {failure.Trim()}";
            if (!options.FallbackToCpu)
                throw new InvalidOperationException($"{what}. {CudaRequirements}. Or set fallbackToCpu to run on the CPU instead.");
            options.Warn($"{what}. Running on the CPU instead (fallbackToCpu is set).");
        }
        using var cpu = BuildOptions(options);
        try
        {
            return new OnnxSession(create(cpu), source, "CPU");
        }
        catch (OrtException e)
        {
            throw new InvalidDataException($"Cannot load the ONNX model '{source}' (is it a complete, valid ONNX file?): {e.Message}", e);
        }
    }

    private static SessionOptions BuildOptions(OnnxSessionOptions options)
    {
        EnsureQuietEnvironment();
        var so = new SessionOptions
        {
            IntraOpNumThreads = options.EffectiveIntraOpThreads,
            ExecutionMode = options.ParallelExecution ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = options.Optimization switch
            {
                GraphOptimization.None => GraphOptimizationLevel.ORT_DISABLE_ALL,
                GraphOptimization.Basic => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                GraphOptimization.Extended => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (options.InterOpThreads > 0) so.InterOpNumThreads = options.InterOpThreads;
        return so;
    }

    /// <summary>
    /// ONNX Runtime's process-wide logger writes failures to stderr in colour, although every failure also reaches the
    /// caller as an exception with the same text. Unless the application created the environment itself (then its
    /// choice stands), it is created with only fatal messages logged.
    /// </summary>
    private static void EnsureQuietEnvironment()
    {
        if (OrtEnv.IsCreated) return;
        lock (EnvLock)
        {
            if (OrtEnv.IsCreated) return;
            var env = new EnvironmentCreationOptions { logId = "Vega.MLNet", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
            OrtEnv.CreateInstanceWithOptions(ref env);
        }
    }

    private static readonly Lock EnvLock = new();

    private static OnnxTensorInfo[] Describe(IReadOnlyList<string> names, IReadOnlyDictionary<string, NodeMetadata> metadata, Dictionary<string, int> index)
    {
        var result = new OnnxTensorInfo[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            var m = metadata[names[i]];
            index[names[i]] = i;
            if (!m.IsTensor)
            {
                result[i] = new OnnxTensorInfo(names[i], OnnxElementType.Undefined, [], []);
                continue;
            }
            var dims = Array.ConvertAll(m.Dimensions, d => (long)d);
            var symbolic = m.SymbolicDimensions is { Length: > 0 } s && s.Length == dims.Length ? s.Select(x => x ?? "").ToArray() : new string[dims.Length].Select(_ => "").ToArray();
            result[i] = new OnnxTensorInfo(names[i], (OnnxElementType)(int)m.ElementDataType, dims, symbolic);
        }
        return result;
    }

    /// <summary>Custom metadata of the model (<c>metadata_props</c>), or null when the key is absent.</summary>
    public string? GetMetadata(string key) => _session.ModelMetadata.CustomMetadataMap.TryGetValue(key, out var v) ? v : null;

    /// <summary>
    /// Runs the model. Inputs are pinned for the duration of the call, not copied. Returns the requested outputs (all
    /// outputs when <paramref name="outputNames"/> is null); dispose the result to free them.
    /// </summary>
    public OnnxResults Run(IReadOnlyList<OnnxInput> inputs, IReadOnlyList<string>? outputNames = null, CancellationToken cancellationToken = default)
    {
        var names = outputNames ?? Outputs.Select(o => o.Name).ToArray();
        foreach (var n in names) OutputIndex(n);
        IDisposableReadOnlyCollection<OrtValue>? values = null;
        RunCore(inputs, names, (ro, inNames, inValues) => values = _session.Run(ro, inNames, inValues, names), cancellationToken);
        return new OnnxResults(names, values!);
    }

    /// <summary>Runs the model writing float32 outputs straight into caller memory (zero copy).</summary>
    public void RunInto(IReadOnlyList<OnnxInput> inputs, IReadOnlyList<OnnxOutputTarget> outputs, CancellationToken cancellationToken = default)
    {
        var names = new string[outputs.Count];
        var values = new OrtValue[outputs.Count];
        try
        {
            for (int j = 0; j < outputs.Count; j++)
            {
                var t = outputs[j];
                var info = Outputs[OutputIndex(t.Name)];
                if (info.ElementType != OnnxElementType.Float)
                    throw new ArgumentException($"Output '{info}' of '{Source}' is not float32; RunInto writes float32 only.", nameof(outputs));
                long count = 1;
                foreach (long d in t.Shape) count *= d;
                if (count != t.Destination.Length)
                    throw new ArgumentException($"The buffer for output '{t.Name}' holds {t.Destination.Length} floats, its shape [{string.Join(", ", t.Shape)}] needs {count}.");
                names[j] = t.Name;
                values[j] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, t.Destination, t.Shape);
            }
            RunCore(inputs, names, (ro, inNames, inValues) => _session.Run(ro, inNames, inValues, names, values), cancellationToken);
        }
        finally
        {
            foreach (var v in values) v?.Dispose();
        }
    }

    private int OutputIndex(string name) => _outputIndex.TryGetValue(name, out int i) ? i
        : throw new ArgumentException($"The model '{Source}' has no output '{name}'; its outputs are: {string.Join(", ", Outputs)}.");

    private void RunCore(IReadOnlyList<OnnxInput> inputs, IReadOnlyList<string> outputNames,
        Action<RunOptions, string[], OrtValue[]> run, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ct.ThrowIfCancellationRequested();
        int n = inputs.Count;
        foreach (var input in inputs) Validate(input);
        foreach (var info in Inputs)
        {
            bool given = false;
            foreach (var x in inputs) given |= x.Name == info.Name;
            if (!given) throw new ArgumentException($"The model '{Source}' needs the input '{info}', which was not given.", nameof(inputs));
        }
        var inNames = new string[n];
        var inValues = new OrtValue[n];
        using var runOptions = new RunOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        CancellationTokenRegistration registration = default;
        try
        {
            for (int i = 0; i < n; i++)
            {
                inNames[i] = inputs[i].Name;
                inValues[i] = inputs[i].ToOrtValue();
            }
            if (ct.CanBeCanceled) registration = ct.Register(() => runOptions.Terminate = true);
            try
            {
                run(runOptions, inNames, inValues);
            }
            catch (OrtException e)
            {
                ct.ThrowIfCancellationRequested();
                throw new InvalidOperationException($"Running '{Source}' with inputs {string.Join(", ", inputs)} failed: {e.Message}", e);
            }
        }
        finally
        {
            registration.Dispose();
            foreach (var v in inValues) v?.Dispose();
        }
    }

    private void Validate(OnnxInput input)
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
    }

    /// <summary>Releases the native session (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _session.Dispose();
    }
}

/// <summary>Outputs of a run; views into them are valid until <see cref="Dispose"/>.</summary>
internal sealed class OnnxResults : IDisposable
{
    private readonly IReadOnlyList<string> _names;
    private readonly IDisposableReadOnlyCollection<OrtValue> _values;
    private bool _disposed;

    internal OnnxResults(IReadOnlyList<string> names, IDisposableReadOnlyCollection<OrtValue> values)
    {
        _names = names;
        _values = values;
    }

    /// <summary>Output names, in the order requested.</summary>
    public IReadOnlyList<string> Names => _names;

    private OrtValue Value(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int i = 0;
        foreach (var v in _values)
        {
            if (_names[i++] == name) return v;
        }
        throw new KeyNotFoundException($"No output '{name}' in this result; it has: {string.Join(", ", _names)}.");
    }

    /// <summary>Shape and element type of an output.</summary>
    public (OnnxElementType Type, long[] Shape) Describe(string name)
    {
        var info = Value(name).GetTensorTypeAndShape();
        return ((OnnxElementType)(int)info.ElementDataType, info.Shape);
    }

    /// <summary>A view of a float32 output (valid until dispose).</summary>
    public ReadOnlySpan<float> GetFloats(string name) => View<float>(name, OnnxElementType.Float);

    /// <summary>A view of an int64 output (valid until dispose).</summary>
    public ReadOnlySpan<long> GetInt64s(string name) => View<long>(name, OnnxElementType.Int64);

    /// <summary>A view of an int32 output (valid until dispose).</summary>
    public ReadOnlySpan<int> GetInt32s(string name) => View<int>(name, OnnxElementType.Int32);

    /// <summary>A view of a uint8 output (valid until dispose).</summary>
    public ReadOnlySpan<byte> GetBytes(string name) => View<byte>(name, OnnxElementType.UInt8);

    private ReadOnlySpan<T> View<T>(string name, OnnxElementType expected) where T : unmanaged
    {
        var (type, _) = Describe(name);
        if (type != expected) throw new InvalidOperationException($"Output '{name}' is {type}, not {expected}.");
        return Value(name).GetTensorDataAsSpan<T>();
    }

    /// <summary>Frees the outputs.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _values.Dispose();
    }
}
