using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>
/// Computes a node's outputs from its inputs. <paramref name="inputs"/> has one entry per declared input (null for an
/// omitted optional input, i.e. an empty name); the kernel fills <paramref name="outputs"/> (one entry per declared
/// output; it may leave an output null when its name is empty).
/// </summary>
internal delegate void OnnxKernel(OnnxValue?[] inputs, OnnxValue?[] outputs);

/// <summary>
/// A node as a kernel factory sees it: op type, name, opset of its domain, the model file (for error messages) and
/// typed attribute accessors. Factories read attributes once, when the session is compiled.
/// </summary>
internal sealed class OnnxNode
{
    private readonly Dictionary<string, AttributeProto> _attributes;

    public OnnxNode(NodeProto proto, int opset, string source)
    {
        Proto = proto;
        Opset = opset;
        Source = source;
        _attributes = new Dictionary<string, AttributeProto>(StringComparer.Ordinal);
        foreach (var a in proto.Attribute) _attributes[a.Name] = a;
    }

    public NodeProto Proto { get; }

    public string OpType => Proto.OpType;

    public string Name => string.IsNullOrEmpty(Proto.Name) ? $"<unnamed {Proto.OpType} → {string.Join(", ", Proto.Output)}>" : Proto.Name;

    /// <summary>The opset version imported for the node's domain.</summary>
    public int Opset { get; }

    /// <summary>The model file or a description of where the graph came from.</summary>
    public string Source { get; }

    public int InputCount => Proto.Input.Count;

    public int OutputCount => Proto.Output.Count;

    /// <summary>True when input <paramref name="i"/> is declared and not empty.</summary>
    public bool HasInput(int i) => i < Proto.Input.Count && Proto.Input[i].Length > 0;

    /// <summary>True when output <paramref name="i"/> is declared and not empty.</summary>
    public bool HasOutput(int i) => i < Proto.Output.Count && Proto.Output[i].Length > 0;

    public bool Has(string attribute) => _attributes.ContainsKey(attribute);

    public long Int(string name, long defaultValue) => _attributes.TryGetValue(name, out var a) ? a.I : defaultValue;

    public float Float(string name, float defaultValue) => _attributes.TryGetValue(name, out var a) ? a.F : defaultValue;

    public long[]? Ints(string name) => _attributes.TryGetValue(name, out var a) ? a.Ints.ToArray() : null;

    public float[]? Floats(string name) => _attributes.TryGetValue(name, out var a) ? a.Floats.ToArray() : null;

    public string? String(string name) => _attributes.TryGetValue(name, out var a) ? a.S.ToStringUtf8() : null;

    public TensorProto? Tensor(string name) => _attributes.TryGetValue(name, out var a) ? a.T : null;

    /// <summary>The largest tensor (in elements) a kernel of this node may create (<see cref="OnnxInterpreterOptions.MaxTensorElements"/>).</summary>
    public long MaxElements { get; init; } = OnnxInterpreterOptions.DefaultMaxTensorElements;

    /// <summary>Refuses a result of <paramref name="count"/> elements above <see cref="MaxElements"/> before it is allocated.</summary>
    public void CheckElements(long count, string what = "the result")
    {
        if (count > MaxElements)
            throw Error($"{what} would have {count} elements, more than the interpreter's limit of {MaxElements} (OnnxInterpreterOptions.MaxTensorElements).");
    }

    /// <summary>Refuses a result of shape <paramref name="shape"/> above <see cref="MaxElements"/> (the product saturates instead of overflowing).</summary>
    public void CheckElements(ReadOnlySpan<int> shape, string what = "the result") => CheckElements(SaturatingProduct(shape), what);

    internal static long SaturatingProduct(ReadOnlySpan<int> shape)
    {
        long p = 1;
        foreach (int d in shape)
        {
            if (d <= 0) return 0;
            p = p > long.MaxValue / d ? long.MaxValue : p * d;
        }
        return p;
    }

    /// <summary>An exception that names the op, the node and the file.</summary>
    public InvalidDataException Error(string message, Exception? inner = null) => new($"ONNX {OpType} node '{Name}' (opset {Opset}) in '{Source}': {message}", inner);

    /// <summary>An input that must be present.</summary>
    public OnnxValue Required(OnnxValue?[] inputs, int i, string what) =>
        (i < inputs.Length ? inputs[i] : null) ?? throw Error($"the {what} input (#{i}) is missing.");
}
