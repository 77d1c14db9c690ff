using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>
/// Whole-graph edits used to merge models: pruning to the nodes some outputs need, renaming every value, and the
/// outer-scope values that sub-graphs (Loop, If, Scan bodies) read.
/// </summary>
internal static class OnnxGraphSurgery
{
    /// <summary>
    /// Keeps only the nodes that <paramref name="outputs"/> depend on (in their original, topological order), and the
    /// initializers, graph inputs and value infos those nodes use. The graph's outputs become exactly
    /// <paramref name="outputs"/>, which must be values of the graph.
    /// </summary>
    public static void Prune(GraphProto graph, IReadOnlyList<string> outputs, string source)
    {
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var o in graph.Node[i].Output)
                if (o.Length > 0) producer[o] = i;
        var defined = new HashSet<string>(producer.Keys, StringComparer.Ordinal);
        foreach (var t in graph.Initializer) defined.Add(t.Name);
        foreach (var v in graph.Input) defined.Add(v.Name);
        foreach (var o in outputs)
            if (!defined.Contains(o)) throw new InvalidDataException($"'{source}' has no value named '{o}'.");

        var needed = new HashSet<string>(StringComparer.Ordinal);
        var keep = new bool[graph.Node.Count];
        var stack = new Stack<string>(outputs);
        while (stack.Count > 0)
        {
            string name = stack.Pop();
            if (!needed.Add(name) || !producer.TryGetValue(name, out int i) || keep[i]) continue;
            keep[i] = true;
            var node = graph.Node[i];
            foreach (var input in node.Input)
                if (input.Length > 0) stack.Push(input);
            foreach (var input in ImplicitInputs(node)) stack.Push(input);
        }

        var nodes = graph.Node.Where((_, i) => keep[i]).ToList();
        var produced = new HashSet<string>(nodes.SelectMany(n => n.Output), StringComparer.Ordinal);
        var initializers = graph.Initializer.Where(t => needed.Contains(t.Name)).ToList();
        var inputs = graph.Input.Where(v => needed.Contains(v.Name)).ToList();
        var valueInfo = graph.ValueInfo.Where(v => produced.Contains(v.Name)).ToList();
        var declared = graph.Output.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var newOutputs = outputs.Select(o => declared.TryGetValue(o, out var v) ? v : new ValueInfoProto { Name = o }).ToList();

        graph.Node.Clear(); graph.Node.AddRange(nodes);
        graph.Initializer.Clear(); graph.Initializer.AddRange(initializers);
        graph.Input.Clear(); graph.Input.AddRange(inputs);
        graph.ValueInfo.Clear(); graph.ValueInfo.AddRange(valueInfo);
        graph.Output.Clear(); graph.Output.AddRange(newOutputs);
    }

    /// <summary>Values of the enclosing graph that the sub-graphs of <paramref name="node"/> read.</summary>
    public static IEnumerable<string> ImplicitInputs(NodeProto node)
    {
        foreach (var a in node.Attribute)
        {
            if (a.G is not null) foreach (var n in OuterReferences(a.G)) yield return n;
            foreach (var g in a.Graphs) foreach (var n in OuterReferences(g)) yield return n;
        }
    }

    private static HashSet<string> OuterReferences(GraphProto graph)
    {
        var defined = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in graph.Input) defined.Add(v.Name);
        foreach (var t in graph.Initializer) defined.Add(t.Name);
        foreach (var n in graph.Node) foreach (var o in n.Output) defined.Add(o);
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in graph.Node)
        {
            foreach (var i in n.Input) if (i.Length > 0) used.Add(i);
            foreach (var i in ImplicitInputs(n)) used.Add(i);
        }
        foreach (var o in graph.Output) used.Add(o.Name);
        used.ExceptWith(defined);
        return used;
    }

    /// <summary>Renames every value, initializer and node of the graph and of its sub-graphs with <paramref name="rename"/>
    /// (empty names, which stand for omitted optional inputs, stay empty).</summary>
    public static void Rename(GraphProto graph, Func<string, string> rename)
    {
        string R(string name) => name.Length == 0 ? name : rename(name);
        foreach (var v in graph.Input) v.Name = R(v.Name);
        foreach (var v in graph.Output) v.Name = R(v.Name);
        foreach (var v in graph.ValueInfo) v.Name = R(v.Name);
        foreach (var t in graph.Initializer) t.Name = R(t.Name);
        foreach (var n in graph.Node)
        {
            for (int i = 0; i < n.Input.Count; i++) n.Input[i] = R(n.Input[i]);
            for (int i = 0; i < n.Output.Count; i++) n.Output[i] = R(n.Output[i]);
            if (n.HasName) n.Name = R(n.Name);
            foreach (var a in n.Attribute)
            {
                if (a.G is not null) Rename(a.G, rename);
                foreach (var g in a.Graphs) Rename(g, rename);
            }
        }
    }

    /// <summary>Bytes of tensor data in the graph and its sub-graphs (initializers and tensor attributes).</summary>
    public static long TensorBytes(GraphProto graph)
    {
        long total = 0;
        foreach (var t in OnnxModelFile.AllTensors(graph))
            total += t.RawData.Length + 4L * t.FloatData.Count + 4L * t.Int32Data.Count + 8L * t.Int64Data.Count
                + 8L * t.DoubleData.Count + 8L * t.Uint64Data.Count + t.StringData.Sum(s => (long)s.Length);
        return total;
    }
}
