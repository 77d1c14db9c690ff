using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>Graphs written with <see cref="OnnxGraphBuilder"/> run in ONNX Runtime and compute what a direct evaluation computes.</summary>
public sealed class OnnxGraphBuilderTests
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;

    [Fact]
    public void LinearReluLayerNormGraphMatchesADirectComputation()
    {
        var rng = new Rng(4);
        var w = Init.Normal(Tensor.Zeros(3, 5), rng);
        var b = Init.Normal(Tensor.Zeros(3), rng);
        var gamma = Init.Normal(Tensor.Zeros(3), rng, 1, 0.1);
        var beta = Init.Normal(Tensor.Zeros(3), rng);
        var g = new OnnxGraphBuilder("test");
        string x = g.Input("x", F32, "batch", 5);
        string y = g.Node("Relu", [g.Linear(x, "fc", w, b)]);
        y = g.LayerNorm(y, "ln", gamma, beta, 1e-5f);
        y = g.Node("ReduceSum", [g.Node("Mul", [y, g.FloatScalar(2f)]), g.Int64s(1)], null, ("keepdims", 1L));
        g.Output(g.Identity(y, "y"), F32, "batch", 1);
        string path = Path.Combine(Fixtures.TempDir(), "g.onnx");
        OnnxModelFile.Save(g.Build(metadata: new Dictionary<string, string> { ["k"] = "v" }), path);

        using var session = OnnxSession.Open(path);
        Assert.Equal("v", session.GetMetadata("k"));
        var input = Assert.Single(session.Inputs);
        Assert.Equal(new long[] { -1, 5 }, input.Shape);
        Assert.Equal("batch", input.SymbolicShape[0]);

        var xs = new float[4 * 5];
        rng.FillNormal(xs);
        using var r = session.Run([OnnxInput.Create("x", xs, 4, 5)]);
        var got = r.GetFloats("y").ToArray();
        var wa = w.ToArray(); var ba = b.ToArray(); var ga = gamma.ToArray(); var be = beta.ToArray();
        for (int n = 0; n < 4; n++)
        {
            var h = new double[3];
            for (int o = 0; o < 3; o++)
            {
                double s = ba[o];
                for (int i = 0; i < 5; i++) s += (double)xs[n * 5 + i] * wa[o * 5 + i];
                h[o] = Math.Max(0, s);
            }
            double mean = h.Average(), var = h.Sum(v => (v - mean) * (v - mean)) / 3;
            double expected = 0;
            for (int o = 0; o < 3; o++) expected += 2 * ((h[o] - mean) / Math.Sqrt(var + 1e-5) * ga[o] + be[o]);
            Assert.Equal(expected, got[n], 4);
        }
    }

    [Fact]
    public void AttributesOfEveryKindSurviveSerialisation()
    {
        var g = new OnnxGraphBuilder("attrs");
        string x = g.Input("x", F32, 2, 3);
        g.Output(g.Node("Transpose", [x], "t", ("perm", new long[] { 1, 0 }), ("i", 3), ("f", 0.5), ("s", "text"), ("fs", new[] { 1f, 2f })), F32, 3, 2);
        var parsed = OnnxModelFile.Parse(Google.Protobuf.MessageExtensions.ToByteArray(g.Build()), "attrs");
        Assert.Equal(17, parsed.OpsetImport.Single().Version);
        var node = parsed.Graph.Node.Single();
        Assert.Equal(new long[] { 1, 0 }, node.Attribute.Single(a => a.Name == "perm").Ints);
        Assert.Equal(3, node.Attribute.Single(a => a.Name == "i").I);
        Assert.Equal(0.5f, node.Attribute.Single(a => a.Name == "f").F);
        Assert.Equal("text", node.Attribute.Single(a => a.Name == "s").S.ToStringUtf8());
        Assert.Equal(new[] { 1f, 2f }, node.Attribute.Single(a => a.Name == "fs").Floats);
    }

    [Fact]
    public void MistakesAreReportedByName()
    {
        var g = new OnnxGraphBuilder("bad");
        string x = g.Input("x", F32, 2);
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => g.Input("x", F32, 2)).Message);
        Assert.Contains("'nowhere'", Assert.Throws<ArgumentException>(() => g.Node("Relu", ["nowhere"])).Message);
        Assert.Contains("'y'", Assert.Throws<ArgumentException>(() => g.Output("y", F32, 2)).Message);
        Assert.Contains("needs 4 values", Assert.Throws<ArgumentException>(() => g.Initializer("w", new float[3], 2, 2)).Message);
        Assert.Contains("no outputs", Assert.Throws<InvalidOperationException>(() => g.Build()).Message);
        Assert.NotEqual(g.Node("Relu", [x]), g.Node("Relu", [x]));
    }
}
