using Google.Protobuf;
using Vega.MLNet.Imaging;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Imaging;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// The preprocessing graph run by ONNX Runtime against Pillow's goldens (../shared/images: resized bytes and final
/// tensors, from the golden decoded bytes) and, bit for bit, against the C# <see cref="ImagePreprocessor"/> and
/// <see cref="AxisKernel"/> on random sizes and every setting.
/// </summary>
public sealed class ClipPreprocessGraphTests
{
    public static TheoryData<string> Names() => Goldens.Names();

    private static OnnxSession Open(ModelProto model) => OnnxSession.FromBytes(model.ToByteArray(), name: model.Graph.Name);

    internal static float[] Preprocess(OnnxSession session, byte[] rgb, int width, int height)
    {
        using var r = session.Run(
        [
            OnnxInput.Create(ClipPreprocessGraph.RgbInput, rgb, 1, rgb.Length),
            OnnxInput.Create(ClipPreprocessGraph.HeightInput, new long[] { height }, 1, 1),
            OnnxInput.Create(ClipPreprocessGraph.WidthInput, new long[] { width }, 1, 1),
        ]);
        return r.GetFloats(ClipPreprocessGraph.PixelOutput).ToArray();
    }

    private static byte[] Resize(OnnxSession session, byte[] rgb, int width, int height, int outWidth, int outHeight)
    {
        using var r = session.Run(
        [
            OnnxInput.Create(ClipPreprocessGraph.RgbInput, rgb, 1, rgb.Length),
            OnnxInput.Create(ClipPreprocessGraph.HeightInput, new long[] { height }, 1, 1),
            OnnxInput.Create(ClipPreprocessGraph.WidthInput, new long[] { width }, 1, 1),
            OnnxInput.Create("out_width", new long[] { outWidth }, 1, 1),
            OnnxInput.Create("out_height", new long[] { outHeight }, 1, 1),
        ]);
        Assert.Equal(new long[] { outHeight, outWidth, 3 }, r.Describe("resized").Shape);
        return r.GetBytes("resized").ToArray();
    }

    private static readonly Lazy<OnnxSession> ClipSession = new(() => Open(ClipPreprocessGraph.Build(PreprocessSettings.Clip)));
    private static readonly Lazy<OnnxSession> BicubicResize = new(() => Open(ClipPreprocessGraph.BuildResizeModel(ResamplingFilter.Bicubic)));
    private static readonly Lazy<OnnxSession> BilinearResize = new(() => Open(ClipPreprocessGraph.BuildResizeModel(ResamplingFilter.Bilinear)));

    [Theory]
    [MemberData(nameof(Names))]
    public void ResizeGraphReproducesPillowsResizedBytes(string name)
    {
        var g = Goldens.Get(name);
        var got = Resize(BicubicResize.Value, g.Rgb(), g.Width, g.Height, g.ResizedWidth, g.ResizedHeight);
        var (count, max) = Goldens.Diff(g.Resized(), got);
        Assert.True(count == 0, $"{name}: {count} of {got.Length} bytes differ from golden resized.u8 (max {max})");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void PreprocessingGraphReproducesTheGoldenTensorBitForBit(string name)
    {
        var g = Goldens.Get(name);
        var got = Preprocess(ClipSession.Value, g.Rgb(), g.Width, g.Height);
        var golden = g.Tensor();
        Assert.Equal(golden.Length, got.Length);
        int differing = 0;
        for (int i = 0; i < golden.Length; i++)
            if (BitConverter.SingleToInt32Bits(golden[i]) != BitConverter.SingleToInt32Bits(got[i])) differing++;
        Assert.True(differing == 0, $"{name}: {differing} of {golden.Length} values differ from the golden f32");
    }

    [Theory]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(18)]
    [InlineData(21)]
    public void TheGraphIsValidAtEveryOpsetFrom13(int opset)
    {
        // The composer keeps the tower's opset (13 or later); the preprocessing nodes must mean the same at each.
        using var session = Open(ClipPreprocessGraph.Build(PreprocessSettings.Clip, opset));
        foreach (var name in new[] { "china_progressive.jpg", "osx_installer_logo.png", "tiny_7x5.png" })
        {
            var g = Goldens.Get(name);
            var got = Preprocess(session, g.Rgb(), g.Width, g.Height);
            Assert.True(g.Tensor().AsSpan().SequenceEqual(got), $"{name} at opset {opset}");
        }
    }

    [Fact]
    public void TheModelDeclaresItsInputsAndOutput()
    {
        var session = ClipSession.Value;
        Assert.Equal(["rgb uint8 [1, rgb_length]", "height int64 [1, 1]", "width int64 [1, 1]"], session.Inputs.Select(i => i.ToString()));
        Assert.Equal("pixel_values float [1, 3, 224, 224]", Assert.Single(session.Outputs).ToString());
    }

    /// <summary>Random images of awkward sizes: noise (bicubic overshoot, clipping) on a gradient.</summary>
    private static byte[] RandomImage(Rng rng, int width, int height)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    int v = rng.NextInt(4) == 0 ? rng.NextInt(256) : (x * 255 / Math.Max(1, width - 1) + c * 60 + y) % 256;
                    rgb[(y * width + x) * 3 + c] = (byte)v;
                }
        return rgb;
    }

    private static readonly (int W, int H)[] AwkwardSizes =
    [
        (1, 1), (7, 5), (5, 7), (1, 300), (300, 1), (2, 1000), (1000, 3), (224, 224), (225, 224), (224, 225), (223, 223),
        (335, 224), (640, 480), (480, 640), (97, 1301), (1301, 97), (33, 31), (600, 512), (512, 600), (1000, 999),
    ];

    public static TheoryData<string> SettingNames() => new(SettingVariants.Keys);

    private static readonly Dictionary<string, PreprocessSettings> SettingVariants = new()
    {
        ["clip"] = PreprocessSettings.Clip,
        ["bilinear"] = new PreprocessSettings { Resampling = ResamplingFilter.Bilinear },
        ["floor"] = new PreprocessSettings { CropRounding = CropRounding.Floor },
        ["bilinear-floor"] = new PreprocessSettings { Resampling = ResamplingFilter.Bilinear, CropRounding = CropRounding.Floor },
        ["squash-bicubic"] = new PreprocessSettings { ResizeMode = ResizeMode.Squash },
        ["squash-bilinear"] = new PreprocessSettings { ResizeMode = ResizeMode.Squash, Resampling = ResamplingFilter.Bilinear },
        ["size-33-edge-40"] = new PreprocessSettings { ImageSize = 33, ResizeShortestEdge = 40 },
        ["size-64-edge-77-bilinear-floor"] = new PreprocessSettings { ImageSize = 64, ResizeShortestEdge = 77, Resampling = ResamplingFilter.Bilinear, CropRounding = CropRounding.Floor },
        ["size-336-own-mean-std-rescale"] = new PreprocessSettings
        {
            ImageSize = 336, Mean = [0.5f, 0.25f, 0.125f], Std = [0.5f, 0.75f, 0.2f], RescaleFactor = 1.0 / 256,
        },
    };

    [Theory]
    [MemberData(nameof(SettingNames))]
    public void RandomSizesMatchTheCSharpPreprocessorBitForBit(string setting)
    {
        var settings = SettingVariants[setting];
        var pre = new ImagePreprocessor(settings);
        using var session = Open(ClipPreprocessGraph.Build(settings));
        var rng = new Rng(71);
        var sizes = AwkwardSizes.Concat(Enumerable.Range(0, 6).Select(_ => (1 + rng.NextInt(900), 1 + rng.NextInt(900)))).ToArray();
        foreach (var (w, h) in sizes)
        {
            var rgb = RandomImage(rng, w, h);
            var expected = pre.Process(RgbImage.FromRgb(rgb, w, h));
            var got = Preprocess(session, rgb, w, h);
            Assert.Equal(expected.Length, got.Length);
            int differing = 0;
            for (int i = 0; i < expected.Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(got[i])) differing++;
            Assert.True(differing == 0, $"{setting}, {w}×{h}: {differing} of {expected.Length} values differ from ImagePreprocessor");
        }
    }

    [Theory]
    [InlineData(ResamplingFilter.Bicubic)]
    [InlineData(ResamplingFilter.Bilinear)]
    public void WholeImageResizeMatchesTheCSharpResamplerOnRandomSizes(ResamplingFilter filter)
    {
        var session = filter == ResamplingFilter.Bicubic ? BicubicResize.Value : BilinearResize.Value;
        var rng = new Rng(72);
        // Up, down, one axis only (the other unchanged: C# skips that pass), and mixed.
        (int W, int H, int OW, int OH)[] cases =
        [
            (1, 1, 9, 4), (7, 5, 7, 13), (7, 5, 19, 5), (300, 200, 300, 41), (300, 200, 17, 200), (64, 48, 31, 97),
            (1000, 3, 10, 3), (3, 1000, 3, 10), (50, 50, 50, 50), (512, 600, 224, 262), (200, 150, 1, 1), (11, 11, 224, 224),
        ];
        foreach (var (w, h, ow, oh) in cases)
        {
            var rgb = RandomImage(rng, w, h);
            var expected = new byte[ow * oh * 3];
            Resampler.Resize(rgb, w, h, expected, ow, oh, filter);
            var got = Resize(session, rgb, w, h, ow, oh);
            var (count, max) = Goldens.Diff(expected, got);
            Assert.True(count == 0, $"{filter} {w}×{h} → {ow}×{oh}: {count} bytes differ from Resampler (max {max})");
        }
    }

    [Theory]
    [InlineData(ResamplingFilter.Bicubic)]
    [InlineData(ResamplingFilter.Bilinear)]
    public void AxisTapsEqualTheCSharpKernelTables(ResamplingFilter filter)
    {
        using var session = Open(ClipPreprocessGraph.BuildAxisKernelModel(filter));
        var rng = new Rng(73);
        var cases = new List<(int In, int Out, int First, int Count)> { (1, 1, 0, 1), (1, 224, 0, 224), (5, 313, 44, 224), (4000, 224, 0, 224), (3000, 298, 37, 224), (224, 224, 0, 224), (12, 7, 2, 5) };
        for (int i = 0; i < 200; i++)
        {
            int inSize = 1 + rng.NextInt(rng.NextInt(2) == 0 ? 64 : 5000), outSize = 1 + rng.NextInt(rng.NextInt(2) == 0 ? 64 : 3000);
            int first = rng.NextInt(outSize);
            cases.Add((inSize, outSize, first, 1 + rng.NextInt(outSize - first)));
        }
        foreach (var (inSize, outSize, first, count) in cases)
        {
            var expected = new AxisKernel(inSize, outSize, filter, first, count);
            using var r = session.Run(
            [
                OnnxInput.Create("in_size", new long[] { inSize }), OnnxInput.Create("out_size", new long[] { outSize }),
                OnnxInput.Create("first", new long[] { first }), OnnxInput.Create("count", new long[] { count }),
            ]);
            string what = $"{filter} {inSize} → {outSize}, outputs {first}..{first + count - 1}";
            int taps = (int)r.GetInt64s("taps")[0];
            Assert.True(taps == expected.KernelSize, $"{what}: {taps} taps, expected {expected.KernelSize}");
            var index = r.GetInt64s("index");
            var weight = r.GetInt32s("weight");
            for (int j = 0; j < count; j++)
                for (int t = 0; t < taps; t++)
                {
                    int w = weight[t * count + j];
                    if (t < expected.Count[j])
                    {
                        Assert.True(index[t * count + j] == expected.Start[j] + t, $"{what}: output {first + j} tap {t} index");
                        Assert.True(w == expected.Weights[j * taps + t], $"{what}: output {first + j} tap {t}: weight {w}, expected {expected.Weights[j * taps + t]}");
                    }
                    else
                    {
                        Assert.True(w == 0, $"{what}: output {first + j} tap {t} is past the taps but weighs {w}");
                        Assert.True(index[t * count + j] == expected.Start[j] + expected.Count[j] - 1, $"{what}: output {first + j} tap {t} past the taps reads {index[t * count + j]}");
                    }
                }
            Assert.Equal(expected.Start[0], r.GetInt64s("first_input")[0]);
            Assert.Equal(expected.Start[count - 1] + expected.Count[count - 1], r.GetInt64s("end_input")[0]);
        }
    }

    [Fact]
    public void TruncatingDivisionThenClipEqualsTheArithmeticShiftThenClip()
    {
        // Pillow: clamp(v >> 22, 0, 255) with an arithmetic shift; the graph: clamp(v / 2^22, 0, 255) with ONNX's
        // truncating integer Div. They differ before the clamp only for negative v that are not multiples of 2^22
        // (shift rounds down, Div toward zero), where both clamp to 0. Checked in C# over edge values and in ONNX Runtime.
        var values = new List<int> { int.MinValue, int.MinValue + 1, -(1 << 22) - 1, -(1 << 22), -(1 << 22) + 1, -(1 << 21), -1, 0, 1,
            (1 << 22) - 1, 1 << 22, (1 << 22) + 1, 255 << 22, (256 << 22) - 1, 256 << 22, int.MaxValue };
        var rng = new Rng(74);
        for (int i = 0; i < 2000; i++) values.Add((int)rng.NextUInt64());
        foreach (int v in values)
            Assert.Equal(Math.Clamp(v >> 22, 0, 255), Math.Clamp(v / (1 << 22), 0, 255));

        var g = new OnnxGraphBuilder("clip8");
        string x = g.Input("x", TensorProto.Types.DataType.Int32, "n");
        string y = g.Node("Min", [g.Node("Max", [g.Node("Div", [x, g.Int32Scalar(1 << 22)]), g.Int32Scalar(0)]), g.Int32Scalar(255)]);
        g.Output(g.Identity(y, "y"), TensorProto.Types.DataType.Int32, "n");
        using var session = Open(g.Build());
        var input = values.ToArray();
        using var r = session.Run([OnnxInput.Create("x", input, input.Length)]);
        var got = r.GetInt32s("y");
        for (int i = 0; i < input.Length; i++)
            Assert.True(got[i] == Math.Clamp(input[i] >> 22, 0, 255), $"{input[i]}: ONNX Runtime gives {got[i]}, the shift {Math.Clamp(input[i] >> 22, 0, 255)}");
    }

    [Fact]
    public void InputsThatDoNotMatchTheirSizesFailInOnnxRuntime()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Preprocess(ClipSession.Value, new byte[10 * 10 * 3], 10, 11));
        Assert.Contains("Reshape", e.Message, StringComparison.OrdinalIgnoreCase);
    }
}
