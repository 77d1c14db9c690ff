using System.Globalization;
using System.Text.Json;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// Builds the ONNX graph of an <see cref="AapeHead"/> (opset 17, standard operators only):
/// x̂ = x/max(‖x‖, ε); z = ReLU(Gemm(x̂, W₁, b₁)); u = Gemm(z, G_h·W₂, G_h·b₂ + b) (the generator's second layer folded
/// into g, exact algebra); v = ReLU(A + u) with A = G_w·w_c baked in ([C, D]); v̂ = v/max(‖v‖, ε);
/// logits = (v̂ · x̂)/τ via MatMul; probabilities = Softmax(logits).
/// The norms are written as √max(Σx², ε²), which equals max(‖x‖, ε) as the C# forward computes it.
/// </summary>
internal static class AapeOnnxExport
{
    public const string InputName = "image_embeds";
    public const string LogitsName = "logits";
    public const string ProbabilitiesName = "probabilities";

    public static ModelProto Build(AapeHead head)
    {
        int d = head.Dimension, r = head.Bottleneck, c = head.ClassNames.Count;
        var (w1, b1, _, _, _, _) = head.RawWeights;
        var graph = new GraphProto { Name = "aape_head" };
        void Init(string name, float[] data, params long[] dims) => graph.Initializer.Add(TensorProtoData.FromFloats(name, dims, data));
        Init("h.fc1.weight", w1, r, d);
        Init("h.fc1.bias", b1, r);
        Init("fused.weight", head.FusedPrompt.ToArray(), d, r);
        Init("fused.bias", head.FusedBias.ToArray(), d);
        Init("projected_class_weights", head.ProjectedClasses.ToArray(), c, d);
        Init("eps_squared", [1e-12f * 1e-12f]);
        Init("inverse_temperature", [1f / head.Temperature]);
        graph.Initializer.Add(TensorProtoData.FromInt64s("axis_1", [1], [1]));
        graph.Initializer.Add(TensorProtoData.FromInt64s("axis_2", [1], [2]));

        int counter = 0;
        string Node(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string output = $"{op.ToLowerInvariant()}_{counter++}";
            var node = new NodeProto { OpType = op, Name = output };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            node.Attribute.AddRange(attributes);
            graph.Node.Add(node);
            return output;
        }
        static AttributeProto Int(string name, long v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v };
        static AttributeProto Ints(string name, params long[] v)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(v);
            return a;
        }
        string Normalize(string x, long axis)
        {
            var ss = Node("ReduceSumSquare", [x], Ints("axes", axis), Int("keepdims", 1));
            var norm = Node("Sqrt", [Node("Max", [ss, "eps_squared"])]);
            return Node("Div", [x, norm]);
        }

        var xhat = Normalize(InputName, 1);
        var hidden = Node("Relu", [Node("Gemm", [xhat, "h.fc1.weight", "h.fc1.bias"], Int("transB", 1))]);
        var shift = Node("Gemm", [hidden, "fused.weight", "fused.bias"], Int("transB", 1));            // [B, D]
        var weights = Node("Relu", [Node("Add", [Node("Unsqueeze", [shift, "axis_1"]), "projected_class_weights"])]); // [B, C, D]
        var unit = Normalize(weights, 2);
        var cos = Node("Squeeze", [Node("MatMul", [unit, Node("Unsqueeze", [xhat, "axis_2"])]), "axis_2"]); // [B, C]
        var logits = Node("Mul", [cos, "inverse_temperature"]);
        graph.Node[^1].Output[0] = LogitsName;
        logits = LogitsName;
        Node("Softmax", [logits], Int("axis", 1));
        graph.Node[^1].Output[0] = ProbabilitiesName;

        graph.Input.Add(ValueInfo(InputName, "batch", d));
        graph.Output.Add(ValueInfo(LogitsName, "batch", c));
        graph.Output.Add(ValueInfo(ProbabilitiesName, "batch", c));
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "Vega.MLNet",
            ProducerVersion = typeof(AapeOnnxExport).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph,
            DocString = "AAPE classification head: image embedding in, class logits out (docs/aape.md).",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "class_names", Value = JsonSerializer.Serialize(head.ClassNames) });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "temperature", Value = head.Temperature.ToString("R", CultureInfo.InvariantCulture) });
        if (head.ModelName is not null) model.MetadataProps.Add(new StringStringEntryProto { Key = "clip_model", Value = head.ModelName });
        if (head.ModelHash is not null) model.MetadataProps.Add(new StringStringEntryProto { Key = "clip_model_hash", Value = head.ModelHash });
        return model;
    }

    private static ValueInfoProto ValueInfo(string name, string batch, long width)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = batch });
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = width });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
