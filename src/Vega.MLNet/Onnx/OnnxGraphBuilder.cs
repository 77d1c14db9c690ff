using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>One dimension of a graph input or output: a fixed size or a symbolic name (e.g. "batch").</summary>
internal readonly record struct OnnxDim(long Value, string? Symbol)
{
    public static implicit operator OnnxDim(long value) => new(value, null);
    public static implicit operator OnnxDim(string symbol) => new(-1, symbol);
    public override string ToString() => Symbol ?? Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// A small API to write ONNX graphs with the project's protobuf subset: graph inputs and outputs with fixed or symbolic
/// dimensions, initializers from tensors or arrays, constants, nodes with attributes (int, float, string, ints, floats,
/// tensor), and the model wrapper with its opset import. Node outputs get unique names unless given; every method
/// returns the name of the value it produced, so graphs read like the computation:
/// <code>
/// var g = new OnnxGraphBuilder("vision");
/// string x = g.Input("pixel_values", OnnxType.Float, "batch", 3, 28, 28);
/// string y = g.Node("Relu", [g.Node("MatMul", [x, g.Initializer("w", w)])]);
/// g.Output(g.Identity(y, "image_embeds"), OnnxType.Float, "batch", 64);
/// ModelProto model = g.Build();
/// </code>
/// Default opset 17 (LayerNormalization is one op; ReduceMean still takes its axes as an attribute, ReduceSum,
/// Unsqueeze, Squeeze and Slice take them as inputs).
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly GraphProto _graph;
    private readonly HashSet<string> _names;
    private readonly Dictionary<string, int> _counters;
    private readonly int[] _nodeCount;

    public OnnxGraphBuilder(string graphName, int opset = 17)
    {
        ArgumentException.ThrowIfNullOrEmpty(graphName);
        if (opset < 13) throw new ArgumentOutOfRangeException(nameof(opset), opset, "The graph builder writes opset 13 or later (axes as inputs of ReduceSum/Unsqueeze/Squeeze).");
        _graph = new GraphProto { Name = graphName };
        Opset = opset;
        _names = new HashSet<string>(StringComparer.Ordinal);
        _counters = new Dictionary<string, int>(StringComparer.Ordinal);
        _nodeCount = [0];
    }

    private OnnxGraphBuilder(OnnxGraphBuilder parent, string graphName)
    {
        _graph = new GraphProto { Name = graphName };
        Opset = parent.Opset;
        // One name scope for the graph and its sub-graphs: sub-graph values never shadow outer ones, and a body may
        // read any value of the enclosing graph (ONNX outer-scope references).
        _names = parent._names;
        _counters = parent._counters;
        _nodeCount = parent._nodeCount;
    }

    /// <summary>
    /// A builder for a sub-graph (a Loop or If body): it shares this builder's names, so its nodes may read values of
    /// the enclosing graph and its own values get names unique across both. Pass <see cref="Graph"/> of the result as
    /// a graph attribute (<see cref="GraphProto"/> values are accepted by <see cref="Node(string, IReadOnlyList{string}, string?, ValueTuple{string, object}[])"/>).
    /// </summary>
    public OnnxGraphBuilder Subgraph(string graphName)
    {
        ArgumentException.ThrowIfNullOrEmpty(graphName);
        return new OnnxGraphBuilder(this, graphName);
    }

    /// <summary>Makes a value that was added to <see cref="Graph"/> directly (not through this builder, e.g. by merging
    /// another model's nodes) known to the builder so that nodes may read it.</summary>
    public string Adopt(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _names.Add(name);
        return name;
    }

    /// <summary>A fresh name (not yet a value) starting with <paramref name="stem"/>, e.g. for sub-graph inputs.</summary>
    public string NewName(string stem) => FreshUnclaimed(stem);

    /// <summary>Whether <paramref name="name"/> is a value known to the builder.</summary>
    public bool Contains(string name) => _names.Contains(name);

    /// <summary>The default-domain opset the model imports.</summary>
    public int Opset { get; }

    /// <summary>The graph being built (for inspection; prefer the builder methods to change it).</summary>
    public GraphProto Graph => _graph;

    // ------------------------------------------------------------------ inputs, outputs, initializers

    /// <summary>Declares a graph input.</summary>
    public string Input(string name, TensorProto.Types.DataType type, params OnnxDim[] dims)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph input of unknown shape (sub-graph inputs whose shapes vary, e.g. Loop-carried values).</summary>
    public string InputOfAnyShape(string name, TensorProto.Types.DataType type)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, type, null));
        return name;
    }

    /// <summary>Declares <paramref name="name"/> (an existing value) as a graph output.</summary>
    public void Output(string name, TensorProto.Types.DataType type, params OnnxDim[] dims)
    {
        if (!_names.Contains(name)) throw new ArgumentException($"Graph output '{name}' is not a value of the graph.", nameof(name));
        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    /// <summary>Declares <paramref name="name"/> (an existing value) as a graph output of unknown shape.</summary>
    public void OutputOfAnyShape(string name, TensorProto.Types.DataType type)
    {
        if (!_names.Contains(name)) throw new ArgumentException($"Graph output '{name}' is not a value of the graph.", nameof(name));
        _graph.Output.Add(ValueInfo(name, type, null));
    }

    /// <summary>A float initializer with the tensor's shape and values.</summary>
    public string Initializer(string name, Tensor tensor) =>
        Initializer(name, tensor.ToArray(), Array.ConvertAll(tensor.Shape, d => (long)d));

    /// <summary>A float initializer.</summary>
    public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        CheckCount(name, values.Length, dims);
        Claim(name);
        _graph.Initializer.Add(TensorProtoData.FromFloats(name, dims, values));
        return name;
    }

    /// <summary>An int64 initializer.</summary>
    public string Int64Initializer(string name, ReadOnlySpan<long> values, params long[] dims)
    {
        CheckCount(name, values.Length, dims);
        Claim(name);
        _graph.Initializer.Add(TensorProtoData.FromInt64s(name, dims, values));
        return name;
    }

    /// <summary>An int32 initializer.</summary>
    public string Int32Initializer(string name, ReadOnlySpan<int> values, params long[] dims)
    {
        CheckCount(name, values.Length, dims);
        Claim(name);
        _graph.Initializer.Add(TensorProtoData.FromRaw(name, TensorProto.Types.DataType.Int32, dims, MemoryMarshal.AsBytes(values)));
        return name;
    }

    /// <summary>A double initializer.</summary>
    public string DoubleInitializer(string name, ReadOnlySpan<double> values, params long[] dims)
    {
        CheckCount(name, values.Length, dims);
        Claim(name);
        _graph.Initializer.Add(TensorProtoData.FromRaw(name, TensorProto.Types.DataType.Double, dims, MemoryMarshal.AsBytes(values)));
        return name;
    }

    /// <summary>A scalar (rank-0) int32 constant.</summary>
    public string Int32Scalar(int value) => Int32Initializer(FreshUnclaimed("const_i32"), [value]);

    /// <summary>A scalar (rank-0) double constant.</summary>
    public string DoubleScalar(double value) => DoubleInitializer(FreshUnclaimed("const_f64"), [value]);

    /// <summary>A 1-D int64 constant (shapes, axes, starts/ends) stored as an initializer with a generated name.</summary>
    public string Int64s(params long[] values) => Int64Initializer(FreshUnclaimed("const_i64"), values, values.Length);

    /// <summary>A scalar (rank-0) int64 constant.</summary>
    public string Int64Scalar(long value) => Int64Initializer(FreshUnclaimed("const_i64"), [value]);

    /// <summary>A scalar (rank-0) float constant.</summary>
    public string FloatScalar(float value) => Initializer(FreshUnclaimed("const_f32"), [value]);

    // ------------------------------------------------------------------ nodes

    /// <summary>
    /// Adds a node with one output; returns the output's name (<paramref name="output"/> or a fresh one).
    /// Attribute values: int/long → INT, float/double → FLOAT, string → STRING, long[]/int[] → INTS, float[] → FLOATS,
    /// <see cref="TensorProto"/> → TENSOR, <see cref="GraphProto"/> → GRAPH. An empty input name stands for an omitted optional input.
    /// </summary>
    public string Node(string opType, IReadOnlyList<string> inputs, string? output = null, params (string Name, object Value)[] attributes) =>
        NodeMulti(opType, inputs, output is null ? 1 : 0, output is null ? [] : [output], attributes)[0];

    /// <summary>A node with <paramref name="outputCount"/> fresh outputs (e.g. Split).</summary>
    public string[] Node(string opType, IReadOnlyList<string> inputs, int outputCount, params (string Name, object Value)[] attributes) =>
        NodeMulti(opType, inputs, outputCount, [], attributes);

    private string[] NodeMulti(string opType, IReadOnlyList<string> inputs, int fresh, string[] named, (string Name, object Value)[] attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        foreach (var i in inputs)
            if (i.Length > 0 && !_names.Contains(i))
                throw new ArgumentException($"Node {opType}: input '{i}' is not a value of the graph (declare inputs and initializers first).", nameof(inputs));
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{_nodeCount[0]++}" };
        node.Input.AddRange(inputs);
        var outputs = new string[named.Length + fresh];
        for (int k = 0; k < named.Length; k++) { Claim(named[k]); outputs[k] = named[k]; }
        for (int k = 0; k < fresh; k++) outputs[named.Length + k] = Fresh(opType.ToLowerInvariant());
        node.Output.AddRange(outputs);
        foreach (var (name, value) in attributes) node.Attribute.Add(Attribute(name, value));
        _graph.Node.Add(node);
        return outputs;
    }

    /// <summary>Renames a value by an Identity node (graph outputs with fixed names).</summary>
    public string Identity(string input, string output) => Node("Identity", [input], output);

    // Common patterns, written once.

    /// <summary>x · Wᵀ + b for a PyTorch-layout weight [out, in] (stored transposed as [in, out] for MatMul); bias may be null.</summary>
    public string Linear(string x, string prefix, Tensor weight, Tensor? bias)
    {
        if (weight.Rank != 2) throw new ArgumentException($"Linear '{prefix}': the weight must be [out, in], got {weight.ShapeString}.", nameof(weight));
        int outF = weight.Shape[0], inF = weight.Shape[1];
        var w = weight.ToArray();
        var wt = new float[w.Length];
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++) wt[i * outF + o] = w[o * inF + i];
        string y = Node("MatMul", [x, Initializer(prefix + ".weight_t", wt, inF, outF)]);
        return bias is null ? y : Node("Add", [y, Initializer(prefix + ".bias", bias)]);
    }

    /// <summary>LayerNormalization over the last axis (opset ≥ 17).</summary>
    public string LayerNorm(string x, string prefix, Tensor gamma, Tensor beta, float epsilon)
    {
        if (Opset < 17) throw new InvalidOperationException("LayerNormalization needs opset 17.");
        return Node("LayerNormalization", [x, Initializer(prefix + ".weight", gamma), Initializer(prefix + ".bias", beta)], null,
            ("axis", -1L), ("epsilon", epsilon));
    }

    // ------------------------------------------------------------------ model

    /// <summary>The model: the IR version of the opset, the default-domain opset, producer and metadata.</summary>
    public ModelProto Build(string producer = "Vega.MLNet", IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (_graph.Output.Count == 0) throw new InvalidOperationException($"Graph '{_graph.Name}' has no outputs.");
        var model = new ModelProto
        {
            // The IR version that introduced the opset (ONNX's versioning table): 8 up to opset 18, 9 for 19–20,
            // 10 for 21–22, 11 from 23.
            IrVersion = Opset <= 18 ? 8 : Opset <= 20 ? 9 : Opset <= 22 ? 10 : 11,
            ProducerName = producer,
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        if (metadata is not null)
            foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    // ------------------------------------------------------------------ helpers

    private void Claim(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!_names.Add(name)) throw new ArgumentException($"The name '{name}' is already used in graph '{_graph.Name}'.", nameof(name));
    }

    private string Fresh(string stem)
    {
        int n = _counters.GetValueOrDefault(stem);
        string name;
        do name = $"{stem}_{n++}"; while (_names.Contains(name));
        _counters[stem] = n;
        _names.Add(name);
        return name;
    }

    private string FreshUnclaimed(string stem)
    {
        string name = Fresh(stem);
        _names.Remove(name); // the initializer methods claim it
        return name;
    }

    private static void CheckCount(string name, int count, long[] dims)
    {
        long n = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new ArgumentException($"Initializer '{name}' has a negative dimension.", nameof(dims));
            n *= d;
        }
        if (n != count) throw new ArgumentException($"Initializer '{name}' of shape [{string.Join(", ", dims)}] needs {n} values, got {count}.", nameof(dims));
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, OnnxDim[]? dims)
    {
        if (dims is null)
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type } } };
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            if (d.Symbol is { } s) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = s });
            else if (d.Value >= 0) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d.Value });
            else throw new ArgumentException($"Value '{name}': a dimension must be ≥ 0 or symbolic.", nameof(dims));
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    internal static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case int[] iss: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(iss.Select(v => (long)v)); break;
            case float[] fs: a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(fs); break;
            case TensorProto t: a.Type = AttributeProto.Types.AttributeType.Tensor; a.T = t; break;
            case GraphProto g: a.Type = AttributeProto.Types.AttributeType.Graph; a.G = g; break;
            default: throw new ArgumentException($"Attribute '{name}': values of type {value?.GetType().Name ?? "null"} are not supported.", nameof(value));
        }
        return a;
    }
}
