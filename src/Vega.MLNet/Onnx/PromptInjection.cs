using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>
/// Graph surgery for prompt learning: the text tower's token-embedding lookup (a Gather on a [vocab, width]
/// initializer indexed by the token ids) is removed and its output becomes a new graph input <c>inputs_embeds</c>
/// [batch, sequence, width]. The ids input stays (the tower pools at the end token with ArgMax over the ids, and
/// Hugging Face towers derive positions and masks from it).
/// </summary>
internal static class PromptInjection
{
    public const string EmbedsInput = "inputs_embeds";

    /// <summary>The result of <see cref="ExposeTokenEmbeddings"/>.</summary>
    /// <param name="Model">The modified model (the input is not changed).</param>
    /// <param name="TokenEmbedding">The [vocab, width] lookup table that was removed from the graph.</param>
    /// <param name="VocabularySize">Rows of the table.</param>
    /// <param name="Width">Token embedding width.</param>
    /// <param name="GatherOutput">Name of the tensor the Gather produced (now fed by <see cref="EmbedsInput"/>).</param>
    public sealed record Result(ModelProto Model, float[] TokenEmbedding, int VocabularySize, int Width, string GatherOutput);

    public static Result ExposeTokenEmbeddings(ModelProto original, string idsInput, string source)
    {
        var model = original.Clone();
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        var ids = graph.Input.FirstOrDefault(i => i.Name == idsInput)
            ?? throw new InvalidDataException($"'{source}' has no graph input '{idsInput}'.");

        // Names that carry the ids: the input itself and Casts of it.
        var idNames = new HashSet<string> { idsInput };
        foreach (var n in graph.Node)
            if (n.OpType is "Cast" or "Identity" && n.Input.Count > 0 && idNames.Contains(n.Input[0])) idNames.Add(n.Output[0]);

        NodeProto? gather = null;
        foreach (var n in graph.Node)
        {
            if (n.OpType != "Gather" || n.Input.Count < 2 || !idNames.Contains(n.Input[1])) continue;
            if (!initializers.TryGetValue(n.Input[0], out var table) || table.Dims.Count != 2) continue;
            long axis = n.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 0;
            if (axis != 0) continue;
            if (gather is not null)
                throw new InvalidDataException($"'{source}' has more than one Gather on an embedding table indexed by '{idsInput}'; cannot tell which is the token embedding.");
            gather = n;
        }
        if (gather is null)
            throw new InvalidDataException(
                $"'{source}' has no token-embedding lookup (a Gather on a [vocab, width] initializer indexed by '{idsInput}'): prompt learning needs a text tower exported with its embedding table.");

        var tableProto = initializers[gather.Input[0]];
        int vocab = (int)tableProto.Dims[0], width = (int)tableProto.Dims[1];
        float[] tableData = TensorProtoData.ToFloats(tableProto);
        string gatherOutput = gather.Output[0];
        graph.Node.Remove(gather);
        foreach (var n in graph.Node)
            for (int i = 0; i < n.Input.Count; i++)
                if (n.Input[i] == gatherOutput) n.Input[i] = EmbedsInput;
        foreach (var o in graph.Output)
            if (o.Name == gatherOutput) throw new InvalidDataException($"'{source}' exposes the token embeddings as a graph output; nothing to inject.");
        bool tableStillUsed = graph.Node.Any(n => n.Input.Contains(tableProto.Name));
        if (!tableStillUsed) graph.Initializer.Remove(tableProto);

        // New input [batch, sequence, width] with the ids input's batch/sequence dimensions.
        var idsShape = ids.Type?.TensorType?.Shape;
        var shape = new TensorShapeProto();
        for (int d = 0; d < 2; d++)
        {
            var dim = idsShape is not null && idsShape.Dim.Count == 2 ? idsShape.Dim[d].Clone() : new TensorShapeProto.Types.Dimension { DimParam = d == 0 ? "batch" : "sequence" };
            shape.Dim.Add(dim);
        }
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = width });
        graph.Input.Add(new ValueInfoProto
        {
            Name = EmbedsInput,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        });
        // Value infos of the removed tensor would now describe a graph input; drop them.
        foreach (var vi in graph.ValueInfo.Where(v => v.Name == gatherOutput).ToList()) graph.ValueInfo.Remove(vi);
        return new Result(model, tableData, vocab, width, gatherOutput);
    }
}
