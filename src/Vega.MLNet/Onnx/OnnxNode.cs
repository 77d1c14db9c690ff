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

    /// <summary>An exception that names the op, the node and the file.</summary>
    public InvalidDataException Error(string message, Exception? inner = null) => new($"ONNX {OpType} node '{Name}' (opset {Opset}) in '{Source}': {message}", inner);

    /// <summary>An input that must be present.</summary>
    public OnnxValue Required(OnnxValue?[] inputs, int i, string what) =>
        (i < inputs.Length ? inputs[i] : null) ?? throw Error($"the {what} input (#{i}) is missing.");
}
