using Vega.MLNet.Imaging;
using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>
/// Edits a composed model (<see cref="ClipGraphComposer"/>) into the exact input and output columns ML.NET's
/// ApplyOnnxModel will map inside a saved Vega.MLNet model: inputs renamed to the column names, outputs reshaped to the
/// 1-D vectors the fitted transformers produce, a missing value for rows that could not be decoded, the arg-max as −1
/// when the scores are missing. Every node written is valid from opset 13 on.
/// </summary>
internal static class SavedGraph
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;

    /// <summary>Renames graph inputs (and every use of them).</summary>
    public static void RenameInputs(ModelProto model, Dictionary<string, string> renames) =>
        OnnxGraphSurgery.Rename(model.Graph, n => renames.TryGetValue(n, out var r) ? r : n);

    /// <summary>Replaces output <paramref name="output"/> ([1, K]) by <paramref name="column"/> ([K]).</summary>
    public static void Vector(ModelProto model, string output, string column)
    {
        var g = model.Graph;
        var info = Output(g, output);
        long k = info.Type.TensorType.Shape.Dim.Aggregate(1L, (p, d) => p * (d.HasDimValue ? d.DimValue : 1));
        string source = Park(g, output);
        g.Node.Add(Node("Reshape", [source, Int64s(g, [-1])], column));
        g.Output.Remove(Output(g, source));
        g.Output.Add(ValueInfo(column, ElementType(info), [k]));
    }

    /// <summary>Replaces the <c>index</c> output ([1, 1] int64) by <paramref name="column"/> ([1]): −1 when any score is NaN.</summary>
    public static void IndexOrMissing(ModelProto model, string scores, string column)
    {
        var g = model.Graph;
        string index = ClipGraphComposer.IndexOutput;
        Output(g, index);
        string nan = Fresh(g, "nan");
        g.Node.Add(Node("Cast", [Fresh(g, "isnan_in", n => g.Node.Add(Node("IsNaN", [scores], n)))], nan, ("to", (long)F32)));
        string anyNan = Fresh(g, "any_nan");
        g.Node.Add(Node("ReduceMax", [nan], anyNan, ("keepdims", 0L)));
        string cond = Fresh(g, "cond");
        g.Node.Add(Node("Greater", [anyNan, FloatScalar(g, 0f)], cond));
        string flat = Fresh(g, "index_flat");
        g.Node.Add(Node("Reshape", [index, Int64s(g, [-1])], flat));
        g.Node.Add(Node("Where", [cond, Int64s(g, [-1]), flat], column));
        g.Output.Remove(Output(g, index));
        g.Output.Add(ValueInfo(column, I64, [1]));
    }

    /// <summary>Adds output <paramref name="column"/> ([1]): the largest element of the 1-D value <paramref name="vector"/>.</summary>
    public static void MaxOf(ModelProto model, string vector, string column)
    {
        var g = model.Graph;
        g.Node.Add(Node("ReduceMax", [vector], column, ("keepdims", 1L)));
        g.Output.Add(ValueInfo(column, F32, [1]));
    }

    /// <summary>Keeps <paramref name="output"/> inside the graph but no longer as an output.</summary>
    public static void DropOutput(ModelProto model, string output) => model.Graph.Output.Remove(Output(model.Graph, output));

    /// <summary>Multiplies output <paramref name="embedding"/> by a new float input <paramref name="valid"/> ([1, 1]: 1, or NaN
    /// for a row whose image could not be decoded).</summary>
    public static void MaskWithValid(ModelProto model, string embedding, string valid)
    {
        var g = model.Graph;
        string source = Park(g, embedding);
        var info = Output(g, source);
        g.Input.Add(ValueInfo(valid, F32, [1, 1]));
        string flat = Fresh(g, "valid_flat");
        g.Node.Add(Node("Reshape", [valid, Int64s(g, [-1])], flat));
        g.Node.Add(Node("Mul", [source, flat], embedding));
        info.Name = embedding;
    }

    /// <summary>
    /// Replaces the <c>pixel_values</c> input (normalised CHW) by <paramref name="input"/>: raw R, G, B planes of 0..255
    /// values (ML.NET's ExtractPixels), divided by 255 and normalised with the model's mean and std in float32, as the
    /// C# preprocessor does after resizing.
    /// </summary>
    public static void RawPixels(ModelProto model, string input, PreprocessSettings p)
    {
        var g = model.Graph;
        string pixels = ClipGraphComposer.PixelInput;
        var info = g.Input.Single(i => i.Name == pixels);
        string normalised = Fresh(g, "pixel_values");
        OnnxGraphSurgery.Rename(g, n => n == pixels ? normalised : n);
        g.Input.Remove(g.Input.Single(i => i.Name == normalised));
        int s = p.ImageSize;
        g.Input.Add(ValueInfo(input, F32, [1, 3, s, s]));
        string scaled = Fresh(g, "scaled"), centred = Fresh(g, "centred");
        var nodes = new List<NodeProto>
        {
            Node("Div", [input, FloatScalar(g, 255f)], scaled),
            Node("Sub", [scaled, Floats(g, [.. p.Mean], [1, 3, 1, 1])], centred),
            Node("Div", [centred, Floats(g, [.. p.Std], [1, 3, 1, 1])], normalised),
        };
        // First, so that the graph stays topologically sorted.
        for (int i = nodes.Count - 1; i >= 0; i--) g.Node.Insert(0, nodes[i]);
    }

    private static ValueInfoProto Output(GraphProto g, string name) =>
        g.Output.FirstOrDefault(o => o.Name == name) ?? throw new InvalidOperationException($"Internal: the composed graph has no output '{name}'.");

    private static TensorProto.Types.DataType ElementType(ValueInfoProto info) => (TensorProto.Types.DataType)info.Type.TensorType.ElemType;

    /// <summary>Renames the value <paramref name="name"/> to a fresh internal name (so that a column may take the name) and returns it.</summary>
    private static string Park(GraphProto g, string name)
    {
        string parked = Fresh(g, "out");
        OnnxGraphSurgery.Rename(g, n => n == name ? parked : n);
        return parked;
    }

    private static int _counter;

    private static string Fresh(GraphProto g, string hint) => $"vega_saved/{hint}_{Interlocked.Increment(ref _counter)}";

    private static string Fresh(GraphProto g, string hint, Action<string> define)
    {
        string name = Fresh(g, hint);
        define(name);
        return name;
    }

    private static NodeProto Node(string op, IReadOnlyList<string> inputs, string output, params (string Name, object Value)[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = "vega_saved/" + op + "_" + Interlocked.Increment(ref _counter) };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        foreach (var (name, value) in attributes) n.Attribute.Add(OnnxGraphBuilder.Attribute(name, value));
        return n;
    }

    private static string Int64s(GraphProto g, long[] values)
    {
        string name = Fresh(g, "i64");
        g.Initializer.Add(TensorProtoData.FromInt64s(name, [values.Length], values));
        return name;
    }

    private static string FloatScalar(GraphProto g, float value)
    {
        string name = Fresh(g, "f32");
        g.Initializer.Add(TensorProtoData.FromFloats(name, [], [value]));
        return name;
    }

    private static string Floats(GraphProto g, float[] values, long[] dims)
    {
        string name = Fresh(g, "f32");
        g.Initializer.Add(TensorProtoData.FromFloats(name, dims, values));
        return name;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }
}
