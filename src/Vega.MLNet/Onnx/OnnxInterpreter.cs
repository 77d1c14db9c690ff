using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>Options of an <see cref="OnnxInterpreter"/> session.</summary>
internal sealed record OnnxInterpreterOptions
{
    /// <summary>
    /// Internal values (node outputs) that the caller feeds at run time instead of computing them: the nodes that
    /// produced them (and whatever only fed those nodes) are dropped. Used to evaluate a text tower from the output of its
    /// token-embedding Gather.
    /// </summary>
    public IReadOnlyCollection<string> BoundValues { get; init; } = [];

    /// <summary>Values kept alive besides the graph outputs: constants stay readable with <see cref="OnnxInterpreter.Constant"/>.</summary>
    public IReadOnlyCollection<string> KeepValues { get; init; } = [];

    /// <summary>Replace known sub-graphs (decomposed LayerNorm, GELU, QuickGELU) by fused kernels with fused backward.</summary>
    public bool Fuse { get; init; } = true;

    /// <summary>
    /// The largest tensor, in elements, that a kernel may create (default 2^28: 1 GiB of float32). Ops whose result size
    /// comes from data (ConstantOfShape, Expand, Range, Pad, broadcasting, Concat, Gather, MatMul, Conv, pooling) check it
    /// before allocating, so a damaged or hostile model fails with an error naming the node instead of exhausting memory.
    /// </summary>
    public long MaxTensorElements { get; init; } = DefaultMaxTensorElements;

    internal const long DefaultMaxTensorElements = 1L << 28;

    public static OnnxInterpreterOptions Default { get; } = new();
}

/// <summary>A graph input as the interpreter expects it: element type and dimensions (null = symbolic/dynamic).</summary>
internal sealed record OnnxGraphInput(string Name, OnnxElementType Type, int?[]? Dims, string[] SymbolicDims)
{
    public override string ToString() =>
        $"{Name} {Type} " + (Dims is null ? "[?]" : "[" + string.Join(", ", Dims.Select((d, i) => d?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? (SymbolicDims[i].Length > 0 ? SymbolicDims[i] : "?"))) + "]");
}

/// <summary>
/// Runs an ONNX graph on the tensor core. The GraphProto is compiled once per session into an execution plan: value
/// names become slots, initializers become persistent constants (float → <see cref="Tensor"/>, integer/bool → host
/// arrays), every node whose inputs are all constants is evaluated once (constant folding, including in-graph weight
/// generators), dead nodes are dropped, known sub-graphs are fused, and the remaining nodes run in the given
/// topological order. Float values go through the differentiable ops: run inside a <see cref="Tape"/> with an input
/// that requires a gradient and the result is on the tape; constants never require a gradient, so frozen weights get no
/// gradient buffers. Integer shape sub-graphs are evaluated on the fly on small host arrays.
/// A session is not thread-safe; run it from one thread at a time.
/// </summary>
internal sealed class OnnxInterpreter
{
    /// <summary>One node of the execution plan.</summary>
    internal sealed class Step(string opType, string name, int[] inputs, int[] outputs, OnnxKernel kernel, OnnxNode? node)
    {
        public string OpType { get; } = opType;
        public string Name { get; } = name;
        public int[] Inputs { get; } = inputs;
        public int[] Outputs { get; } = outputs;
        public OnnxKernel Kernel { get; } = kernel;
        public OnnxNode? Node { get; } = node;
    }

    private readonly OnnxValue?[] _constants;
    private readonly Dictionary<string, int> _slots;
    private readonly string[] _slotNames;
    private readonly Step[] _steps;
    private readonly int[] _outputSlots;
    private readonly int[][] _releaseAfter;
    private readonly Dictionary<string, int> _inputSlots;
    private readonly HashSet<string> _declaredInputs;

    private OnnxInterpreter(string source, int opset, OnnxValue?[] constants, Dictionary<string, int> slots, Step[] steps,
        IReadOnlyList<OnnxGraphInput> inputs, HashSet<string> declaredInputs, IReadOnlyList<string> outputs, CompileStatistics stats)
    {
        Source = source;
        Opset = opset;
        _constants = constants;
        _slots = slots;
        _slotNames = new string[constants.Length];
        foreach (var (name, slot) in slots) _slotNames[slot] = name;
        _steps = steps;
        Inputs = inputs;
        Outputs = outputs;
        _outputSlots = outputs.Select(o => slots[o]).ToArray();
        // The last step that reads each slot (or the producing step when nothing reads it): without a tape, buffers
        // whose every value has been read for the last time go back to the pool during the run.
        var last = new int[constants.Length];
        Array.Fill(last, -1);
        for (int i = 0; i < steps.Length; i++)
        {
            foreach (int o in steps[i].Outputs) if (o >= 0 && last[o] < i) last[o] = i;
            foreach (int x in steps[i].Inputs) if (x >= 0) last[x] = i;
        }
        var release = new List<int>[steps.Length];
        for (int slot = 0; slot < last.Length; slot++)
            if (last[slot] >= 0 && constants[slot] is null) (release[last[slot]] ??= []).Add(slot);
        _releaseAfter = release.Select(r => r?.ToArray() ?? []).ToArray();
        _inputSlots = inputs.ToDictionary(i => i.Name, i => slots[i.Name]);
        _declaredInputs = declaredInputs;
        Statistics = stats;
    }

    /// <summary>The model file (or description) used in error messages.</summary>
    public string Source { get; }

    /// <summary>The opset imported for the default domain.</summary>
    public int Opset { get; }

    /// <summary>Inputs the caller feeds (graph inputs that are not initializers, plus bound values).</summary>
    public IReadOnlyList<OnnxGraphInput> Inputs { get; }

    /// <summary>The graph outputs.</summary>
    public IReadOnlyList<string> Outputs { get; }

    /// <summary>What compilation did.</summary>
    public CompileStatistics Statistics { get; }

    /// <summary>
    /// When set, the forward time of every step is added to it by op type (seconds and calls): a coarse profiler for
    /// benchmarks. Null (the default) costs nothing.
    /// </summary>
    internal Dictionary<string, (int Calls, double Seconds)>? Profile { get; set; }

    /// <summary>
    /// Bytes of step outputs held at once at the peak of the last run without a tape, and in total over that run (the
    /// difference is what early release saved).
    /// </summary>
    internal (long Peak, long Total) LastRunBytes { get; private set; }

    /// <summary>The execution plan (after folding, dead-node removal and fusion).</summary>
    internal IReadOnlyList<Step> Steps => _steps;

    /// <summary>Node counts of the compilation.</summary>
    /// <param name="GraphNodes">Nodes in the graph.</param>
    /// <param name="FoldedNodes">Nodes evaluated once at compile time (all inputs constant).</param>
    /// <param name="DeadNodes">Nodes that no output depends on (dropped).</param>
    /// <param name="FusedNodes">Runtime nodes replaced by fused kernels.</param>
    /// <param name="RuntimeSteps">Steps that run per call.</param>
    /// <param name="CompileSeconds">Wall time of the compilation.</param>
    internal sealed record CompileStatistics(int GraphNodes, int FoldedNodes, int DeadNodes, int FusedNodes, int RuntimeSteps, double CompileSeconds);

    // ---------------------------------------------------------------- loading

    public static OnnxInterpreter Load(string path, OnnxInterpreterOptions? options = null) =>
        Create(OnnxModelFile.Load(path), path, options);

    public static OnnxInterpreter Create(ModelProto model, string source, OnnxInterpreterOptions? options = null)
    {
        options ??= OnnxInterpreterOptions.Default;
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var graph = model.Graph ?? throw new InvalidDataException($"'{source}' has no graph: it is not an ONNX model.");
        int opset = DefaultOpset(model, source);

        var slots = new Dictionary<string, int>(StringComparer.Ordinal);
        int Slot(string name)
        {
            if (!slots.TryGetValue(name, out int s)) slots[name] = s = slots.Count;
            return s;
        }

        // Constants: initializers first.
        var constantList = new Dictionary<int, OnnxValue>();
        foreach (var init in graph.Initializer)
        {
            if (string.IsNullOrEmpty(init.Name)) throw new InvalidDataException($"'{source}' has an initializer without a name.");
            try { constantList[Slot(init.Name)] = OnnxValue.FromProto(init, source); }
            catch (NotSupportedException e) { throw new InvalidDataException(e.Message, e); }
        }

        var bound = new HashSet<string>(options.BoundValues, StringComparer.Ordinal);
        var inputs = new List<OnnxGraphInput>();
        var defined = new HashSet<string>(StringComparer.Ordinal);
        foreach (var init in graph.Initializer) defined.Add(init.Name);
        foreach (var vi in graph.Input)
        {
            if (defined.Contains(vi.Name)) continue; // an initializer listed as input (IR < 4): a constant here
            inputs.Add(Describe(vi, source));
            Slot(vi.Name);
            defined.Add(vi.Name);
        }

        // Nodes → kernels (unsupported ops fail here, naming op, node and file).
        var nodes = new List<(OnnxNode Node, OnnxKernel Kernel, int[] In, int[] Out)>();
        var producers = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        foreach (var proto in graph.Node)
        {
            var node = new OnnxNode(proto, opset, source) { MaxElements = options.MaxTensorElements };
            if (!string.IsNullOrEmpty(proto.Domain) && proto.Domain != "ai.onnx")
                throw new InvalidDataException($"ONNX op '{proto.OpType}' of domain '{proto.Domain}' (node '{node.Name}') in '{source}' is not supported: the interpreter implements the default ONNX domain only.");
            if (!OnnxOps.Supported.TryGetValue(proto.OpType, out var info))
                throw new InvalidDataException($"ONNX op '{proto.OpType}' (node '{node.Name}') in '{source}' is not supported by the interpreter. Supported: {string.Join(", ", OnnxOps.Supported.Keys.Order(StringComparer.Ordinal))}.");
            if (opset < info.SinceVersion)
                throw new InvalidDataException($"ONNX op '{proto.OpType}' (node '{node.Name}') in '{source}' uses opset {opset}; the interpreter implements it from opset {info.SinceVersion}.");
            var ins = new int[proto.Input.Count];
            for (int k = 0; k < ins.Length; k++)
            {
                string name = proto.Input[k];
                if (name.Length == 0) { ins[k] = -1; continue; }
                if (!defined.Contains(name) && !bound.Contains(name))
                    throw new InvalidDataException($"ONNX {proto.OpType} node '{node.Name}' in '{source}' reads '{name}', which no earlier node, input or initializer defines (the graph is not in topological order or is incomplete).");
                ins[k] = Slot(name);
            }
            var outs = new int[proto.Output.Count];
            for (int k = 0; k < outs.Length; k++)
            {
                string name = proto.Output[k];
                if (name.Length == 0) { outs[k] = -1; continue; }
                outs[k] = Slot(name);
                defined.Add(name);
                producers[name] = node;
            }
            OnnxKernel kernel;
            try { kernel = info.Factory(node); }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or NotSupportedException or OverflowException or FormatException)
            {
                throw node.Error(e.Message, e); // attribute values the op cannot use
            }
            nodes.Add((node, kernel, ins, outs));
        }

        foreach (var b in bound)
        {
            if (!producers.ContainsKey(b) && !inputs.Any(i => i.Name == b))
                throw new InvalidDataException($"'{source}' has no node output named '{b}' to bind as an input.");
            if (inputs.Any(i => i.Name == b)) continue;
            inputs.Add(new OnnxGraphInput(b, OnnxElementType.Float, null, []));
        }
        foreach (var vi in graph.Output)
            if (!defined.Contains(vi.Name) && !bound.Contains(vi.Name))
                throw new InvalidDataException($"'{source}' declares the output '{vi.Name}', which nothing computes.");
        var outputs = graph.Output.Select(o => o.Name).ToList();
        foreach (var k in options.KeepValues)
            if (!slots.ContainsKey(k)) throw new InvalidDataException($"'{source}' has no value named '{k}' to keep.");

        int slotCount = slots.Count;
        var boundSlots = new bool[slotCount];
        foreach (var b in bound) boundSlots[slots[b]] = true;

        // Dead-node elimination: keep what the outputs (and KeepValues) need.
        var needed = new bool[slotCount];
        foreach (var o in outputs) needed[slots[o]] = true;
        foreach (var k in options.KeepValues) needed[slots[k]] = true;
        var live = new bool[nodes.Count];
        for (int n = nodes.Count - 1; n >= 0; n--)
        {
            var (_, _, ins, outs) = nodes[n];
            bool any = false;
            foreach (int o in outs) if (o >= 0 && needed[o] && !boundSlots[o]) any = true;
            if (!any) continue;
            live[n] = true;
            foreach (int i in ins) if (i >= 0) needed[i] = true;
        }

        // Remaining uses of every slot by live nodes (to drop folded intermediates as soon as possible).
        var uses = new int[slotCount];
        for (int n = 0; n < nodes.Count; n++)
            if (live[n]) foreach (int i in nodes[n].In) if (i >= 0) uses[i]++;
        var pinned = new bool[slotCount];
        foreach (var o in outputs) pinned[slots[o]] = true;
        foreach (var k in options.KeepValues) pinned[slots[k]] = true;

        var constants = new OnnxValue?[slotCount];
        foreach (var (slot, value) in constantList) constants[slot] = value;

        // Constant folding: live nodes whose inputs are all constants run once, now, outside any scope or tape.
        var runtime = new List<(OnnxNode Node, OnnxKernel Kernel, int[] In, int[] Out)>();
        int folded = 0, dead = 0;
        TensorScope? previousScope = TensorScope.Current;
        TensorScope.Restore(null);
        try
        {
            using var _ = Tape.NoGrad();
            for (int n = 0; n < nodes.Count; n++)
            {
                var (node, kernel, ins, outs) = nodes[n];
                if (!live[n]) { dead++; continue; }
                bool constant = true;
                foreach (int i in ins) if (i >= 0 && (constants[i] is null || boundSlots[i])) constant = false;
                if (!constant)
                {
                    runtime.Add(nodes[n]);
                    continue;
                }
                var inVals = new OnnxValue?[ins.Length];
                for (int k = 0; k < ins.Length; k++) inVals[k] = ins[k] >= 0 ? constants[ins[k]] : null;
                var outVals = new OnnxValue?[outs.Length];
                Invoke(node.OpType, node.Name, node, kernel, inVals, outVals, source);
                for (int k = 0; k < outs.Length; k++)
                    if (outs[k] >= 0 && !boundSlots[outs[k]]) constants[outs[k]] = outVals[k];
                folded++;
                foreach (int i in ins)
                    if (i >= 0 && --uses[i] == 0 && !pinned[i]) constants[i] = null;
            }
        }
        finally
        {
            TensorScope.Restore(previousScope);
        }
        // Constants that no runtime node, output or kept value reads are dropped.
        var read = new bool[slotCount];
        foreach (var r in runtime) foreach (int i in r.In) if (i >= 0) read[i] = true;
        for (int s = 0; s < slotCount; s++)
            if (!read[s] && !pinned[s]) constants[s] = null;
        foreach (int s in Enumerable.Range(0, slotCount)) if (boundSlots[s]) constants[s] = null;

        var steps = runtime.Select(r => new Step(r.Node.OpType, r.Node.Name, r.In,
            r.Out.Select(o => o >= 0 && boundSlots[o] ? -1 : o).ToArray(), r.Kernel, r.Node)).ToList();
        int fused = 0;
        if (options.Fuse) fused = OnnxFusion.Apply(steps, constants, pinned, source);

        var usedInputs = inputs.Where(i => needed[slots[i.Name]] || pinned[slots[i.Name]]).ToList();
        var stats = new CompileStatistics(nodes.Count, folded, dead, fused, steps.Count,
            System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds);
        return new OnnxInterpreter(source, opset, constants, slots, steps.ToArray(), usedInputs,
            new HashSet<string>(inputs.Select(i => i.Name), StringComparer.Ordinal), outputs, stats);
    }

    private static int DefaultOpset(ModelProto model, string source)
    {
        foreach (var o in model.OpsetImport)
            if (string.IsNullOrEmpty(o.Domain) || o.Domain == "ai.onnx") return (int)o.Version;
        throw new InvalidDataException($"'{source}' imports no opset for the default ONNX domain.");
    }

    private static OnnxGraphInput Describe(ValueInfoProto vi, string source)
    {
        var tt = vi.Type?.TensorType;
        var type = tt is null ? OnnxElementType.Undefined : (OnnxElementType)tt.ElemType;
        if (tt is not null && !OnnxValue.IsSupported(type))
            throw new InvalidDataException($"'{source}' input '{vi.Name}' has element type {type}; the interpreter handles float32, integer and bool tensors.");
        if (tt?.Shape is null) return new OnnxGraphInput(vi.Name, type, null, []);
        var dims = new int?[tt.Shape.Dim.Count];
        var sym = new string[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            var d = tt.Shape.Dim[i];
            dims[i] = d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? (int)d.DimValue : null;
            sym[i] = d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : "";
        }
        return new OnnxGraphInput(vi.Name, type, dims, sym);
    }

    // ---------------------------------------------------------------- running

    /// <summary>The value of a constant (initializer or folded node output), or null when it is computed at run time or was dropped.</summary>
    public OnnxValue? Constant(string name) => _slots.TryGetValue(name, out int s) ? _constants[s] : null;

    /// <summary>Every float constant the plan reads (initializers and folded values): they never require a gradient.</summary>
    public IEnumerable<Tensor> ConstantTensors()
    {
        foreach (var c in _constants) if (c?.Tensor is { } t) yield return t;
    }

    /// <summary>Runs the graph and returns the graph outputs (or <paramref name="outputs"/>) by name.</summary>
    /// <remarks>
    /// Float results are tensors. Without a recording tape, intermediate buffers go back to the pool when the run ends
    /// and the results belong to the caller's <see cref="TensorScope"/> (or are persistent when none is open). With a
    /// tape, everything stays on the tape's scope until it is disposed.
    /// </remarks>
    public Dictionary<string, OnnxValue> Run(IReadOnlyDictionary<string, OnnxValue> feeds, IReadOnlyCollection<string>? outputs = null)
    {
        ArgumentNullException.ThrowIfNull(feeds);
        var values = (OnnxValue?[])_constants.Clone();
        foreach (var (name, value) in feeds)
        {
            if (!_inputSlots.TryGetValue(name, out int slot))
            {
                if (!_declaredInputs.Contains(name))
                    throw new ArgumentException($"'{Source}' has no input named '{name}' (inputs: {string.Join(", ", Inputs.Select(i => i.Name))}).", nameof(feeds));
                continue; // a declared input the plan does not read
            }
            Validate(Inputs.First(i => i.Name == name), value);
            values[slot] = value;
        }
        foreach (var input in Inputs)
            if (values[_inputSlots[input.Name]] is null)
                throw new ArgumentException($"'{Source}' needs the input '{input}', which was not given.", nameof(feeds));

        int[] wanted = outputs is null ? _outputSlots : outputs.Select(o => _slots.TryGetValue(o, out int s) ? s
            : throw new ArgumentException($"'{Source}' has no value named '{o}'.", nameof(outputs))).ToArray();

        bool ownScope = !Tape.IsRecording;
        var parent = TensorScope.Current;
        var scope = ownScope ? new TensorScope() : null;
        // Live slots per buffer of this run (no tape only): a buffer is released when no live slot refers to it.
        Dictionary<TensorStorage, int>? live = scope is null ? null : new(ReferenceEqualityComparer.Instance);
        bool[]? keep = null;
        long liveBytes = 0, peakBytes = 0, totalBytes = 0;
        if (live is not null)
        {
            keep = new bool[values.Length];
            foreach (int s in wanted) keep[s] = true;
        }
        try
        {
            for (int index = 0; index < _steps.Length; index++)
            {
                var step = _steps[index];
                var ins = new OnnxValue?[step.Inputs.Length];
                for (int k = 0; k < ins.Length; k++)
                {
                    int s = step.Inputs[k];
                    if (s < 0) continue;
                    ins[k] = values[s] ?? throw new InvalidOperationException($"Internal error: '{_slotNames[s]}' read by {step.OpType} node '{step.Name}' in '{Source}' has no value.");
                }
                var outs = new OnnxValue?[step.Outputs.Length];
                long started = Profile is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
                Invoke(step.OpType, step.Name, step.Node, step.Kernel, ins, outs, Source);
                if (Profile is { } profile)
                {
                    var (calls, seconds) = profile.GetValueOrDefault(step.OpType);
                    profile[step.OpType] = (calls + 1, seconds + System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
                }
                for (int k = 0; k < outs.Length; k++)
                    if (step.Outputs[k] >= 0)
                    {
                        values[step.Outputs[k]] = outs[k];
                        if (live is not null && outs[k]?.Tensor is { } t && t.Storage.Owner == scope)
                        {
                            int refs = live.GetValueOrDefault(t.Storage);
                            if (refs == 0)
                            {
                                liveBytes += t.Storage.Length * 4L;
                                totalBytes += t.Storage.Length * 4L;
                                peakBytes = Math.Max(peakBytes, liveBytes);
                            }
                            live[t.Storage] = refs + 1;
                        }
                    }
                if (live is null) continue;
                foreach (int s in _releaseAfter[index])
                {
                    if (keep![s]) continue;
                    if (values[s]?.Tensor is { } t && live.TryGetValue(t.Storage, out int refs))
                    {
                        if (refs > 1) live[t.Storage] = refs - 1;
                        else
                        {
                            live.Remove(t.Storage);
                            liveBytes -= t.Storage.Length * 4L;
                            t.Storage.Release();
                        }
                    }
                    values[s] = null;
                }
            }
            if (live is not null) LastRunBytes = (peakBytes, totalBytes);
            var result = new Dictionary<string, OnnxValue>(StringComparer.Ordinal);
            foreach (int s in wanted)
                result[_slotNames[s]] = values[s] ?? throw new InvalidOperationException($"'{_slotNames[s]}' was not computed (is it bound or an unused value?).");
            if (scope is not null)
                foreach (var v in result.Values)
                    if (v.Tensor is { } t && t.Storage.Owner == scope)
                    {
                        // Hand the result's buffer over to the caller's scope (or make it persistent).
                        t.Storage.Owner = parent;
                        parent?.Register(t.Storage);
                    }
            return result;
        }
        finally
        {
            scope?.Dispose();
        }
    }

    private static void Validate(OnnxGraphInput input, OnnxValue value)
    {
        if (input.Type != OnnxElementType.Undefined && input.Type != value.Type)
            throw new ArgumentException($"Input '{input.Name}' expects {input.Type}, got {value.Type} {Shapes.ToString(value.Shape)}.");
        if (input.Dims is null) return;
        if (input.Dims.Length != value.Rank)
            throw new ArgumentException($"Input '{input}' expects rank {input.Dims.Length}, got shape {Shapes.ToString(value.Shape)}.");
        for (int i = 0; i < value.Rank; i++)
            if (input.Dims[i] is int d && d != value.Shape[i])
                throw new ArgumentException($"Input '{input}' expects dimension {i} to be {d}, got shape {Shapes.ToString(value.Shape)}.");
    }

    private static void Invoke(string opType, string name, OnnxNode? node, OnnxKernel kernel, OnnxValue?[] ins, OnnxValue?[] outs, string source)
    {
        try
        {
            kernel(ins, outs);
        }
        catch (InvalidDataException) { throw; }
        catch (OutOfMemoryException e)
        {
            if (node is not null) throw node.Error("ran out of memory (the model asks for tensors too large for this machine).", e);
            throw new InvalidDataException($"ONNX {opType} node '{name}' in '{source}' ran out of memory.", e);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or NotSupportedException or OverflowException or DivideByZeroException)
        {
            if (node is not null) throw node.Error(e.Message, e);
            throw new InvalidDataException($"ONNX {opType} node '{name}' in '{source}': {e.Message}", e);
        }
        if (node is not null)
            for (int k = 0; k < outs.Length; k++)
                if (outs[k] is null && node.HasOutput(k))
                    throw node.Error($"produced no value for its output #{k} '{node.Proto.Output[k]}' (the node declares more outputs than the op computes).");
    }
}
