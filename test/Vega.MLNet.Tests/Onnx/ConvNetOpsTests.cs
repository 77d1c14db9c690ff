using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Tensors;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// BatchNormalization (inference), AveragePool, GlobalAveragePool and Pad: the tensor-core ops against direct loops
/// written here and finite differences, and a small ResNet-style graph (reflect/edge pads, strided convolutions,
/// batch norm, ReLU, average pools with ceil mode and counted padding, a residual block, global pooling) against ONNX
/// Runtime, value and input gradient. ONNX's own node tests for these ops run in OnnxConformanceTests.
/// </summary>
public sealed class ConvNetOpsTests
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;

    // ------------------------------------------------------------------ AveragePool

    /// <summary>Average pooling of one [N, C, H, W] tensor by plain loops (the definition: mean of the input elements in
    /// the window; with countIncludePad divided by the window's size clipped to the padded extent).</summary>
    private static float[] DirectAvgPool2d(float[] x, int n, int c, int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int oh, int ow, bool includePad)
    {
        var y = new float[n * c * oh * ow];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    int h0 = i * sh - pt, w0 = j * sw - pl;
                    int h1 = Math.Min(h0 + kh, h + pb), w1 = Math.Min(w0 + kw, w + pr);
                    double sum = 0;
                    int count = 0;
                    for (int a = h0; a < h1; a++)
                        for (int b = w0; b < w1; b++)
                            if (a >= 0 && a < h && b >= 0 && b < w) { sum += x[(p * h + a) * w + b]; count++; }
                    int divisor = includePad ? (h1 - h0) * (w1 - w0) : count;
                    y[(p * oh + i) * ow + j] = (float)(sum / divisor);
                }
        return y;
    }

    [Theory]
    [InlineData(3, 3, 2, 2, 1, 1, 0, 0, false)]
    [InlineData(3, 2, 2, 1, 1, 0, 1, 1, true)]
    [InlineData(2, 2, 2, 2, 0, 0, 0, 0, false)]
    [InlineData(3, 3, 1, 3, 2, 1, 2, 0, true)]
    public void AveragePool2dEqualsTheDefinitionAndItsGradientChecks(int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, bool includePad)
    {
        int n = 2, c = 3, h = 7, w = 6;
        int oh = (h + pt + pb - kh) / sh + 1, ow = (w + pl + pr - kw) / sw + 1;
        var input = GradCheck.Input.Random(11, n, c, h, w);
        var ours = Ops.AveragePool(Tensor.FromArray(input.Values, n, c, h, w), [kh, kw], [sh, sw], [pt, pl], [pb, pr], [oh, ow], includePad);
        Assert.Equal(new[] { n, c, oh, ow }, ours.Shape);
        var direct = DirectAvgPool2d(input.Values, n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, oh, ow, includePad);
        Assert.True(Fixtures.MaxAbsDiff(direct, ours.ToArray()) <= 1e-6);
        GradCheck.Check(t => Ops.AveragePool(t[0], [kh, kw], [sh, sw], [pt, pl], [pb, pr], [oh, ow], includePad), input);
    }

    [Fact]
    public void AveragePoolIn1dAnd3dChecksGradientsAndMatchesTheSumOverItsWindow()
    {
        GradCheck.Check(t => Ops.AveragePool(t[0], [3], [2], [1], [1], [4], false), GradCheck.Input.Random(3, 2, 2, 7));
        GradCheck.Check(t => Ops.AveragePool(t[0], [2, 2, 2], [1, 2, 2], [0, 1, 0], [0, 0, 1], [2, 2, 2], true), GradCheck.Input.Random(4, 1, 2, 3, 3, 3));
        // 1-D, no padding: y[j] = (x[2j] + x[2j+1] + x[2j+2]) / 3.
        var x = Enumerable.Range(0, 7).Select(i => (float)(i * i)).ToArray();
        var y = Ops.AveragePool(Tensor.FromArray(x, 1, 1, 7), [3], [2], [0], [0], [3], false).ToArray();
        Assert.True(Fixtures.MaxAbsDiff([5 / 3f, 29 / 3f, 77 / 3f], y) <= 2e-6);
    }

    // ------------------------------------------------------------------ Pad

    /// <summary>numpy.pad semantics written directly for one axis at a time (reflect: mirror without the edge).</summary>
    private static int SourceIndex(int o, int before, int size, PadMode mode)
    {
        int i = o - before;
        if (i >= 0 && i < size) return i;
        if (mode == PadMode.Constant) return -1;
        if (mode == PadMode.Edge) return i < 0 ? 0 : size - 1;
        while (i < 0 || i >= size) i = i < 0 ? -i : 2 * (size - 1) - i;
        return i;
    }

    [Theory]
    [InlineData("Constant")]
    [InlineData("Reflect")]
    [InlineData("Edge")]
    public void PadEqualsTheDefinitionCropsWithNegativePadsAndItsGradientChecks(string modeName)
    {
        var mode = Enum.Parse<PadMode>(modeName);
        int[] shape = [2, 3, 4];
        int[] before = [0, 2, -1], after = [1, mode == PadMode.Reflect ? 5 : 3, 2]; // reflect 5 > size − 1: reflects twice
        var input = GradCheck.Input.Random(21, shape);
        var y = Ops.Pad(Tensor.FromArray(input.Values, shape), before, after, mode, 0.75f);
        int[] outShape = [shape[0] + before[0] + after[0], shape[1] + before[1] + after[1], shape[2] + before[2] + after[2]];
        Assert.Equal(outShape, y.Shape);
        var values = y.ToArray();
        for (int a = 0; a < outShape[0]; a++)
            for (int b = 0; b < outShape[1]; b++)
                for (int c = 0; c < outShape[2]; c++)
                {
                    int sa = SourceIndex(a, before[0], shape[0], mode), sb = SourceIndex(b, before[1], shape[1], mode), sc = SourceIndex(c, before[2], shape[2], mode);
                    float expected = sa < 0 || sb < 0 || sc < 0 ? 0.75f : input.Values[(sa * shape[1] + sb) * shape[2] + sc];
                    Assert.Equal(expected, values[(a * outShape[1] + b) * outShape[2] + c]);
                }
        GradCheck.Check(t => Ops.Pad(t[0], before, after, mode, 0.75f), input);
    }

    [Fact]
    public void PadRejectsWhatItCannotDo()
    {
        Assert.Contains("remove more", Assert.Throws<ArgumentException>(() => Ops.Pad(Tensor.Zeros(2, 3), [0, -2], [0, -2], PadMode.Constant)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => Ops.Pad(Tensor.Zeros(2, 0), [0, 1], [0, 1], PadMode.Edge)).Message);
    }

    // ------------------------------------------------------------------ BatchNormalization

    [Fact]
    public void BatchNormalizationIsTheAffineMapOfItsStatisticsAndIsDifferentiableInEveryInput()
    {
        var g = new OnnxGraphBuilder("bn");
        string x = g.Input("x", F32, 2, 3, 4);
        var names = new[] { "scale", "bias", "mean", "var" }.Select(s => g.Input(s, F32, 3)).ToArray();
        g.Output(g.Identity(g.Node("BatchNormalization", [x, .. names], null, ("epsilon", 0.01f)), "y"), F32, 2, 3, 4);
        var interp = OnnxInterpreter.Create(g.Build(), "bn");
        Tensor Run(Tensor[] t) => interp.Run(new Dictionary<string, OnnxValue>
        {
            ["x"] = OnnxValue.FromTensor(t[0]), ["scale"] = OnnxValue.FromTensor(t[1]), ["bias"] = OnnxValue.FromTensor(t[2]),
            ["mean"] = OnnxValue.FromTensor(t[3]), ["var"] = OnnxValue.FromTensor(t[4]),
        })["y"].Tensor!;
        var inputs = new[]
        {
            GradCheck.Input.Random(1, 2, 3, 4), GradCheck.Input.Random(2, 3), GradCheck.Input.Random(3, 3),
            GradCheck.Input.Random(4, 3), GradCheck.Input.Between(5, 0.2, 1.5, 3),
        };
        var y = Run(inputs.Select(i => Tensor.FromArray(i.Values, i.Shape)).ToArray()).ToArray();
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 4; k++)
                {
                    int e = (n * 3 + c) * 4 + k;
                    double expected = (inputs[0].Values[e] - inputs[3].Values[c]) / Math.Sqrt(inputs[4].Values[c] + 0.01) * inputs[1].Values[c] + inputs[2].Values[c];
                    Assert.Equal(expected, y[e], 5);
                }
        GradCheck.Check(Run, inputs);

        // Training mode and its outputs are refused, naming the node.
        var t = new OnnxGraphBuilder("bn-train");
        string tx = t.Input("x", F32, 2, 3);
        var p = new[] { "s", "b", "m", "v" }.Select(s => t.Initializer(s, [1f, 1f, 1f], 3)).ToArray();
        t.Output(t.Identity(t.Node("BatchNormalization", [tx, .. p], null, ("training_mode", 1L)), "y"), F32, 2, 3);
        Assert.Contains("training_mode", Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Create(t.Build(), "bn-train")).Message);
    }

    // ------------------------------------------------------------------ a ResNet-style graph

    /// <summary>A small ResNet-style image tower (CLIP's ModifiedResNet uses average pools in its stem and blocks).</summary>
    internal static ModelProto ResNetStyle(bool smooth)
    {
        var rng = new Rng(42);
        Tensor Weight(params int[] shape) => Init.Normal(Tensor.Zeros(shape), rng, 0, 1.0 / Math.Sqrt(shape.Skip(1).Aggregate(1, (a, b) => a * b)));
        var g = new OnnxGraphBuilder("resnet-style");
        string Act(string v) => g.Node(smooth ? "Tanh" : "Relu", [v]);
        string Bn(string v, int c, string prefix)
        {
            var scale = Init.Normal(Tensor.Zeros(c), rng, 1, 0.2);
            var bias = Init.Normal(Tensor.Zeros(c), rng, 0, 0.1);
            var mean = Init.Normal(Tensor.Zeros(c), rng, 0, 0.1);
            var variance = new float[c];
            rng.FillUniform(variance, 0.5, 1.5);
            return g.Node("BatchNormalization", [v, g.Initializer(prefix + ".scale", scale), g.Initializer(prefix + ".bias", bias),
                g.Initializer(prefix + ".mean", mean), g.Initializer(prefix + ".var", variance, c)], null, ("epsilon", 1e-5f));
        }
        string Conv(string v, int cin, int cout, int k, int stride, int pad, string prefix) =>
            g.Node("Conv", [v, g.Initializer(prefix + ".weight", Weight(cout, cin, k, k))], null,
                ("kernel_shape", new long[] { k, k }), ("strides", new long[] { stride, stride }), ("pads", new long[] { pad, pad, pad, pad }));

        string x = g.Input("pixel_values", F32, "batch", 3, 16, 16);
        string h = g.Node("Pad", [x, g.Int64s(0, 0, 1, 1, 0, 0, 1, 1)], null, ("mode", "reflect"));
        h = Act(Bn(Conv(h, 3, 8, 3, 2, 0, "stem"), 8, "stem.bn"));                                      // [b, 8, 8, 8]
        h = g.Node("AveragePool", [h], null, ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 })); // [b, 8, 4, 4]
        string skip = h;
        h = Act(Bn(Conv(h, 8, 8, 3, 1, 1, "block.conv1"), 8, "block.bn1"));
        h = Bn(Conv(h, 8, 8, 3, 1, 1, "block.conv2"), 8, "block.bn2");
        h = Act(g.Node("Add", [h, skip]));
        h = g.Node("Pad", [h, g.Int64s(0, 0, 0, 0, 0, 0, 1, 1), g.FloatScalar(0f)], null, ("mode", "edge"));       // [b, 8, 5, 5]
        h = g.Node("AveragePool", [h], null, ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }),
            ("pads", new long[] { 1, 1, 0, 0 }), ("ceil_mode", 1L), ("count_include_pad", 1L));                     // [b, 8, 3, 3]
        h = g.Node("Pad", [h, g.Int64s(0, 0, 1, 0, 0, 0, 0, 1), g.FloatScalar(0.5f)], null, ("mode", "constant"));  // [b, 8, 4, 4]
        h = g.Node("Flatten", [g.Node("GlobalAveragePool", [h])], null, ("axis", 1L));                              // [b, 8]
        h = g.Node("Gemm", [h, g.Initializer("fc.weight", Weight(5, 8)), g.Initializer("fc.bias", Init.Normal(Tensor.Zeros(5), rng, 0, 0.1))], null, ("transB", 1L));
        g.Output(g.Identity(h, "image_embeds"), F32, "batch", 5);
        return g.Build();
    }

    [Fact]
    public void AResNetStyleGraphMatchesOnnxRuntime()
    {
        string path = Path.Combine(Fixtures.TempDir(), "resnet-style.onnx");
        OnnxModelFile.Save(ResNetStyle(smooth: false), path);
        var pixels = new float[3 * 3 * 16 * 16];
        new Rng(7).FillNormal(pixels);
        using var session = OnnxSession.Open(path);
        using var r = session.Run([OnnxInput.Create("pixel_values", pixels, 3, 3, 16, 16)]);
        var ort = r.GetFloats("image_embeds").ToArray();
        var interp = OnnxInterpreter.Load(path);
        var ours = interp.Run(new Dictionary<string, OnnxValue> { ["pixel_values"] = OnnxValue.FromTensor(Tensor.FromArray(pixels, 3, 3, 16, 16)) })["image_embeds"];
        Assert.Equal(new[] { 3, 5 }, ours.Shape);
        Assert.True(Fixtures.MaxAbsDiff(ort, ours.ToFloatArray()) <= 1e-4, $"max |interpreter − ONNX Runtime| = {Fixtures.MaxAbsDiff(ort, ours.ToFloatArray()):G3}");
    }

    [Fact]
    public void TheResNetStyleGraphsInputGradientMatchesFiniteDifferences()
    {
        // Tanh instead of ReLU: no kinks for the finite differences to cross.
        var interp = OnnxInterpreter.Create(ResNetStyle(smooth: true), "resnet-style (tanh)");
        GradCheck.Check(t => interp.Run(new Dictionary<string, OnnxValue> { ["pixel_values"] = OnnxValue.FromTensor(t[0]) })["image_embeds"].Tensor!,
            [GradCheck.Input.Random(9, 2, 3, 16, 16)], h: 1e-2, maxCoordinates: 64);
    }
}
