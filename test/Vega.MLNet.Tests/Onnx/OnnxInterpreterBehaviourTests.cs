using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// Compilation behaviour (fusion is exact, constant folding, bound values), clear errors for bad models and inputs,
/// and the benchmark-sized towers (weights generated in-graph) against ONNX Runtime.
/// </summary>
public sealed class OnnxInterpreterBehaviourTests
{
    private static string Model(string name) => Path.Combine(Fixtures.Onnx, name);

    private static int Count(OnnxInterpreter i, string op) => i.Steps.Count(s => s.OpType == op);

    [Fact]
    public void FusionReplacesTheExportedSubgraphsOfBothLayouts()
    {
        var openai = OnnxInterpreter.Load(Model("openai/textual.onnx"));
        Assert.Equal(5, Count(openai, "vega.LayerNorm")); // 2 blocks × 2 + ln_final
        Assert.Equal(2, Count(openai, "vega.QuickGelu"));
        Assert.Equal(0, Count(openai, "ReduceMean") + Count(openai, "Sigmoid") + Count(openai, "Pow") + Count(openai, "Gemm"));
        Assert.Equal(9, Count(openai, "vega.Linear")); // in_proj, out_proj, c_fc, c_proj per block + text_projection
        var hf = OnnxInterpreter.Load(Model("hf/text_model.onnx"));
        Assert.Equal(2, Count(hf, "vega.Gelu"));
        Assert.Equal(0, Count(hf, "Erf"));
        Assert.Equal(13, Count(hf, "vega.Linear")); // q, k, v, out, fc1, fc2 per layer + text_projection
        Assert.Equal(5, Count(hf, "LayerNormalization"));
        var unfused = OnnxInterpreter.Load(Model("hf/text_model.onnx"), new OnnxInterpreterOptions { Fuse = false });
        Assert.Equal(0, unfused.Steps.Count(s => s.OpType.StartsWith("vega.", StringComparison.Ordinal)));
        Assert.Equal(0, unfused.Statistics.FusedNodes);
        Assert.True(hf.Statistics.FusedNodes > 0 && hf.Statistics.FoldedNodes > 0);
    }

    [Theory]
    [InlineData("openai/textual.onnx", "openai_textual", 77, false)]
    [InlineData("hf/text_model.onnx", "hf_text", 8, true)]
    public void FusedAndUnfusedPlansAgreeInValueAndGradient(string model, string prefix, int seq, bool hf)
    {
        string g(string f) => OnnxInterpreterParityTests.Golden(f);
        var e = Fixtures.ReadF32(g(prefix + ".E.f32"));
        var r = Fixtures.ReadF32(g("grad_R.f32"));
        (float[] Y, float[] Grad) Run(bool fuse)
        {
            var interp = OnnxInterpreter.Load(Model(model), new OnnxInterpreterOptions { BoundValues = ["/token_embedding/Gather_output_0"], Fuse = fuse });
            var leaf = Tensor.Parameter(e, [4, seq, 64]);
            using var tape = new Tape();
            var feeds = new Dictionary<string, OnnxValue>
            {
                ["input_ids"] = OnnxValue.FromInts(Fixtures.ReadI64(g(hf ? "input_ids_longest.i64" : "input_ids_ctx77.i64")), [4, seq]),
                ["/token_embedding/Gather_output_0"] = OnnxValue.FromTensor(leaf),
            };
            if (hf) feeds["attention_mask"] = OnnxValue.FromInts(Fixtures.ReadI64(g("attention_mask_longest.i64")), [4, seq]);
            var y = interp.Run(feeds)["text_embeds"].Tensor!;
            var values = y.ToArray();
            tape.Backward(Ops.Sum(Ops.Mul(y, Tensor.FromArray(r, 4, 32))));
            return (values, leaf.Grad!.ToArray());
        }
        var fused = Run(true);
        var plain = Run(false);
        Assert.True(Fixtures.MaxAbsDiff(fused.Y, plain.Y) <= 1e-5);
        double scale = plain.Grad.Max(v => Math.Abs((double)v));
        Assert.True(Fixtures.MaxAbsDiff(fused.Grad, plain.Grad) <= 1e-5 * scale);
    }

    [Fact]
    public void WithoutATapeBuffersAreReleasedAfterTheirLastUse()
    {
        var c = OnnxInterpreterParityTests.Lookup("openai_textual");
        var interp = OnnxInterpreter.Load(Model(c.Model));
        var first = interp.Run(OnnxInterpreterParityTests.Feeds(c))["text_embeds"].ToFloatArray();
        var (peak, total) = interp.LastRunBytes;
        Assert.True(total > 0 && peak * 4 < total, $"peak {peak} bytes of {total}");
        // The released buffers were reused, and a second run gives the same result (nothing read after release).
        var second = interp.Run(OnnxInterpreterParityTests.Feeds(c))["text_embeds"].ToFloatArray();
        Assert.Equal(first, second);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(OnnxInterpreterParityTests.Golden("openai_textual.f32")), second) <= 1e-4);
    }

    // ---------------------------------------------------------------- errors

    private static ModelProto Tiny(int opset, params NodeProto[] nodes)
    {
        var m = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "tiny" } };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        m.Graph.Node.AddRange(nodes);
        m.Graph.Input.Add(new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        m.Graph.Output.Add(new ValueInfoProto { Name = nodes[^1].Output[0] });
        return m;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attributes);
        return n;
    }

    [Fact]
    public void AnUnsupportedOpIsAnErrorNamingOpNodeAndFile()
    {
        var model = OnnxModelFile.Load(Model("openai/textual.onnx"));
        var node = model.Graph.Node.First(n => n.OpType == "Sigmoid");
        node.OpType = "HardSwish";
        var e = Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Create(model, "some/dir/textual.onnx"));
        Assert.Contains("'HardSwish'", e.Message);
        Assert.Contains(node.Name, e.Message);
        Assert.Contains("some/dir/textual.onnx", e.Message);

        node.OpType = "FusedGelu";
        node.Domain = "com.microsoft";
        e = Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Create(model, "t.onnx"));
        Assert.Contains("com.microsoft", e.Message);
        Assert.Contains(node.Name, e.Message);

        var old = Tiny(13, Node("LayerNormalization", "ln", ["x", "x"], "y"));
        e = Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Create(old, "old.onnx"));
        Assert.Contains("opset 13", e.Message);
        Assert.Contains("'ln'", e.Message);
    }

    [Fact]
    public void AFileThatIsNotOnnxIsAClearError()
    {
        string junk = Path.Combine(Fixtures.TempDir(), "junk.onnx");
        File.WriteAllText(junk, "this is not a protobuf model at all");
        var e = Assert.ThrowsAny<InvalidDataException>(() => OnnxInterpreter.Load(junk));
        Assert.Contains(junk, e.Message);
        Assert.Throws<FileNotFoundException>(() => OnnxInterpreter.Load(junk + ".missing"));
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        var interp = OnnxInterpreter.Load(Model("openai/textual.onnx"));
        var ids = new long[4 * 77];
        var e = Assert.Throws<ArgumentException>(() => interp.Run(new Dictionary<string, OnnxValue>()));
        Assert.Contains("input_ids", e.Message);
        e = Assert.Throws<ArgumentException>(() => interp.Run(new Dictionary<string, OnnxValue> { ["input_ids"] = OnnxValue.FromInts(new long[4 * 76], [4, 76]) }));
        Assert.Contains("77", e.Message);
        e = Assert.Throws<ArgumentException>(() => interp.Run(new Dictionary<string, OnnxValue> { ["input_ids"] = OnnxValue.FromTensor(Tensor.Zeros(4, 77)) }));
        Assert.Contains("Int64", e.Message);
        e = Assert.Throws<ArgumentException>(() => interp.Run(new Dictionary<string, OnnxValue> { ["input_ids"] = OnnxValue.FromInts(ids, [4, 77]), ["pixels"] = OnnxValue.Scalar(1) }));
        Assert.Contains("pixels", e.Message);
        // An id outside the vocabulary fails inside the Gather, naming the node.
        ids[5] = 49408;
        var d = Assert.Throws<InvalidDataException>(() => interp.Run(new Dictionary<string, OnnxValue> { ["input_ids"] = OnnxValue.FromInts(ids, [4, 77]) }));
        Assert.Contains("Gather", d.Message);
        Assert.Contains("/token_embedding/Gather", d.Message);
    }

    [Fact]
    public void ARuntimeFailureNamesTheNode()
    {
        var shape = new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = TensorProtoData.FromInt64s("s", [2], [5, 7]) };
        var model = Tiny(14, Node("Constant", "c", [], "shape", shape), Node("Reshape", "bad_reshape", ["x", "shape"], "y"));
        var interp = OnnxInterpreter.Create(model, "tiny.onnx");
        var e = Assert.Throws<InvalidDataException>(() => interp.Run(new Dictionary<string, OnnxValue> { ["x"] = OnnxValue.FromTensor(Tensor.Zeros(2, 3)) }));
        Assert.Contains("bad_reshape", e.Message);
        Assert.Contains("tiny.onnx", e.Message);
        Assert.Contains("[5, 7]", e.Message);
    }

    [Fact]
    public void ConstantSubgraphsAreFoldedOnceAndBoundValuesPruneTheirProducers()
    {
        // x + (Range(0, 4) * 2): the Range/Mul branch is folded at compile time.
        var f = (string n, float v) => new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = TensorProtoData.FromFloats(n, [], [v]) };
        var model = Tiny(14,
            Node("Constant", "c0", [], "zero", f("z", 0)), Node("Constant", "c4", [], "four", f("f", 4)), Node("Constant", "c1", [], "one", f("o", 1)),
            Node("Constant", "c2", [], "two", f("t", 2)),
            Node("Range", "range", ["zero", "four", "one"], "r"), Node("Mul", "double", ["r", "two"], "r2"),
            Node("Add", "add", ["x", "r2"], "y"));
        var interp = OnnxInterpreter.Create(model, "fold.onnx");
        Assert.Equal(6, interp.Statistics.FoldedNodes);
        Assert.Single(interp.Steps);
        Assert.Equal(new float[] { 0, 2, 4, 6 }, interp.Constant("r2")!.ToFloatArray());
        Assert.Equal(new float[] { 1, 3, 5, 7 }, interp.Run(new Dictionary<string, OnnxValue> { ["x"] = OnnxValue.FromTensor(Tensor.Ones(4)) })["y"].ToFloatArray());

        var bound = OnnxInterpreter.Create(model, "fold.onnx", new OnnxInterpreterOptions { BoundValues = ["r2"] });
        Assert.Contains(bound.Inputs, i => i.Name == "r2");
        Assert.Equal(new float[] { 2, 2, 2, 2 }, bound.Run(new Dictionary<string, OnnxValue> { ["x"] = OnnxValue.FromTensor(Tensor.Ones(4)), ["r2"] = OnnxValue.FromTensor(Tensor.Ones(4)) })["y"].ToFloatArray());
        Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Create(model, "fold.onnx", new OnnxInterpreterOptions { BoundValues = ["nope"] }));
    }

    // ---------------------------------------------------------------- benchmark towers

    [Theory]
    [InlineData("openai-vit-b32/textual.onnx", false)]
    [InlineData("hf-vit-b32/text_model.onnx", true)]
    public void BenchmarkTowersWithInGraphWeightsMatchOnnxRuntime(string file, bool hf)
    {
        string path = Path.Combine(Fixtures.Shared, "bench", file);
        var interp = OnnxInterpreter.Load(path);
        Assert.Equal(25, Count(interp, "vega.LayerNorm")); // 12 layers × 2 + final, decomposed in both exports
        Assert.Equal(12, Count(interp, hf ? "vega.Gelu" : "vega.QuickGelu"));
        Assert.DoesNotContain(interp.Steps, s => s.OpType is "Sin" or "Range" && s.Inputs.All(i => i < 0));
        var tok = ClipTokenizer.Load(Fixtures.Tokenizer);
        string[] texts = ["a photo of a cat.", "an origami ankle boot on a wooden table"];
        int width = hf ? texts.Max(t => tok.EncodeWithSpecialTokens(t).Length) : 77;
        var batch = tok.EncodeBatch(texts, width, padId: hf ? tok.EndOfTextId : 0);
        var feeds = new Dictionary<string, OnnxValue> { ["input_ids"] = OnnxValue.FromInts(batch.Ids, [2, width]) };
        var inputs = new List<OnnxInput> { OnnxInput.Create("input_ids", batch.Ids, 2, width) };
        if (hf)
        {
            feeds["attention_mask"] = OnnxValue.FromInts(batch.AttentionMask(width), [2, width]);
            inputs.Add(OnnxInput.Create("attention_mask", batch.AttentionMask(width), 2, width));
        }
        var ours = interp.Run(feeds)["text_embeds"].ToFloatArray();
        using var session = OnnxSession.Open(path);
        using var result = session.Run(inputs);
        var ort = result.GetFloats("text_embeds").ToArray();
        double scale = Math.Max(1, ort.Max(v => Math.Abs((double)v)));
        double diff = Fixtures.MaxAbsDiff(ort, ours);
        Assert.True(diff <= 1e-4 * scale, $"max |interpreter − ONNX Runtime| = {diff:G3} (outputs up to {scale:G3})");
    }
}
