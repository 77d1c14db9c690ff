using Vega.MLNet.Imaging;

namespace Vega.MLNet.Tests.Imaging;

public sealed class ImagePreprocessorTests
{
    public static TheoryData<string> Names() => Goldens.Names();

    private static readonly ImagePreprocessor Clip = new();

    [Theory]
    [MemberData(nameof(Names))]
    public void ResizesEveryGoldenExactlyLikePillow(string name)
    {
        var g = Goldens.Get(name);
        Assert.Equal((g.ResizedWidth, g.ResizedHeight), Clip.ResizedSize(g.Width, g.Height));
        var resized = new byte[g.ResizedWidth * g.ResizedHeight * 3];
        Resampler.Resize(g.Rgb(), g.Width, g.Height, resized, g.ResizedWidth, g.ResizedHeight, ResamplingFilter.Bicubic);
        var (count, max) = Goldens.Diff(g.Resized(), resized);
        Assert.True(count == 0, $"{name}: {count} of {resized.Length} bytes differ from golden resized.u8 (max {max})");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void CropOffsetsAreTorchvisionsRoundHalfEven(string name)
    {
        var g = Goldens.Get(name);
        Assert.Equal((g.CropLeft, g.CropTop), Clip.CropOffset(g.ResizedWidth, g.ResizedHeight));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void ResizingOnlyTheCropEqualsResizingThenCropping(string name)
    {
        var g = Goldens.Get(name);
        var cropped = new byte[224 * 224 * 3];
        Clip.ResizeAndCrop(g.RgbImage(), cropped);
        var resized = g.Resized();
        var expected = new byte[cropped.Length];
        for (int y = 0; y < 224; y++)
            Array.Copy(resized, ((g.CropTop + y) * g.ResizedWidth + g.CropLeft) * 3, expected, y * 224 * 3, 224 * 3);
        Assert.Equal(expected, cropped);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void CropAndNormalizeFromResizedBytesIsBitExact(string name)
    {
        var g = Goldens.Get(name);
        // Process the golden resized image with an identity resize (the shorter side is already 224).
        var image = RgbImage.FromRgb(g.Resized(), g.ResizedWidth, g.ResizedHeight);
        var tensor = Clip.Process(image);
        var golden = g.Tensor();
        for (int i = 0; i < golden.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(golden[i]) == BitConverter.SingleToInt32Bits(tensor[i]), $"{name}: value {i}: {tensor[i]} vs {golden[i]}");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void EndToEndFromTheFileMatchesTheGoldenTensor(string name)
    {
        var g = Goldens.Get(name);
        var tensor = new float[Clip.OutputLength];
        Clip.Process(ImageDecoder.Decode(g.File), tensor);
        double max = Vega.MLNet.Tests.Infrastructure.Fixtures.MaxAbsDiff(g.Tensor(), tensor);
        Assert.True(max <= 0.02, $"{name}: max abs difference {max}");
        Assert.Equal(0.0, max); // decode and resize are exact, so the whole pipeline is
    }

    [Fact]
    public void HuggingFaceFloorCropDiffersExactlyForChinaProgressive()
    {
        var floor = new ImagePreprocessor(new PreprocessSettings { CropRounding = CropRounding.Floor });
        foreach (var g in Goldens.Images)
        {
            var (left, top) = floor.CropOffset(g.ResizedWidth, g.ResizedHeight);
            // Floor of (resized − 224) / 2, computed independently.
            Assert.Equal((int)Math.Floor((g.ResizedWidth - 224) / 2.0), left);
            Assert.Equal((int)Math.Floor((g.ResizedHeight - 224) / 2.0), top);
            bool differs = (left, top) != (g.CropLeft, g.CropTop);
            Assert.Equal(g.Name == "china_progressive.jpg", differs);
        }
        Assert.Equal((55, 0), floor.CropOffset(335, 224));
        Assert.Equal((56, 0), Clip.CropOffset(335, 224));
    }

    [Fact]
    public void RescaleByMultiplicationEqualsTheFloat32DivisionForEveryByte()
    {
        // Hugging Face multiplies by 1/255 in double and casts to float32; torchvision divides in float32.
        for (int v = 0; v < 256; v++)
            Assert.Equal(v / 255f, (float)(v * (1.0 / 255)));
        var hf = new ImagePreprocessor(new PreprocessSettings { RescaleFactor = 0.00392156862745098 });
        var g = Goldens.Get("dots.png");
        Assert.Equal(Clip.Process(g.RgbImage()), hf.Process(g.RgbImage()));
    }

    public static TheoryData<string, string, int> SquashCases() => new()
    {
        { "grace_hopper.jpg", nameof(ResamplingFilter.Bicubic), 224 },
        { "grace_hopper.jpg", nameof(ResamplingFilter.Bilinear), 224 },
        { "panorama_12to1.png", nameof(ResamplingFilter.Bicubic), 96 },
        { "panorama_12to1.png", nameof(ResamplingFilter.Bilinear), 96 },
        { "tiny_7x5.png", nameof(ResamplingFilter.Bicubic), 64 },
        { "tiny_7x5.png", nameof(ResamplingFilter.Bilinear), 64 },
        { "china_progressive.jpg", nameof(ResamplingFilter.Bilinear), 300 },
    };

    [Theory]
    [MemberData(nameof(SquashCases))]
    public void SquashResizeMatchesAStraightforwardDoubleImplementation(string name, string filterName, int size)
    {
        var filter = Enum.Parse<ResamplingFilter>(filterName);
        var g = Goldens.Get(name);
        var pre = new ImagePreprocessor(new PreprocessSettings { ImageSize = size, ResizeMode = ResizeMode.Squash, Resampling = filter });
        var got = new byte[size * size * 3];
        pre.ResizeAndCrop(g.RgbImage(), got);
        Assert.Equal(ReferenceResize(g.Rgb(), g.Width, g.Height, size, size, filter, fixedPoint: true), got);
        AssertClose(ReferenceResize(g.Rgb(), g.Width, g.Height, size, size, filter, fixedPoint: false), got, $"{name} {filter} {size}");

        // Normalisation of the squashed bytes, recomputed independently.
        var tensor = pre.Process(g.RgbImage());
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < size * size; i += 97)
            {
                float x = got[3 * i + c] / 255f;
                Assert.Equal((x - PreprocessSettings.ClipMean[c]) / PreprocessSettings.ClipStd[c], tensor[c * size * size + i]);
            }
    }

    [Theory]
    [InlineData("grace_hopper.jpg")]
    [InlineData("osx_installer_logo.png")]
    [InlineData("minus.png")]
    public void BilinearShortestEdgeMatchesTheDoubleImplementation(string name)
    {
        var g = Goldens.Get(name);
        var pre = new ImagePreprocessor(new PreprocessSettings { Resampling = ResamplingFilter.Bilinear, ImageSize = 200, ResizeShortestEdge = 240 });
        var (rw, rh) = pre.ResizedSize(g.Width, g.Height);
        var (left, top) = pre.CropOffset(rw, rh);
        var got = new byte[200 * 200 * 3];
        pre.ResizeAndCrop(g.RgbImage(), got);
        foreach (bool fixedPoint in new[] { true, false })
        {
            var full = ReferenceResize(g.Rgb(), g.Width, g.Height, rw, rh, ResamplingFilter.Bilinear, fixedPoint);
            var expected = new byte[200 * 200 * 3];
            for (int y = 0; y < 200; y++) Array.Copy(full, ((top + y) * rw + left) * 3, expected, y * 600, 600);
            if (fixedPoint) Assert.Equal(expected, got);
            else AssertClose(expected, got, name);
        }
    }

    [Theory]
    [InlineData("grace_hopper.jpg")]
    [InlineData("tiny_7x5.png")]
    [InlineData("osx_installer_logo.png")]
    public void TheTestsReferenceImplementationsAgreeWithPillow(string name)
    {
        // The test's own implementations checked against Pillow's bicubic output: the fixed-point one exactly, the
        // double one within one level (it rounds sums that Pillow sees as exact ties slightly differently).
        var g = Goldens.Get(name);
        Assert.Equal(g.Resized(), ReferenceResize(g.Rgb(), g.Width, g.Height, g.ResizedWidth, g.ResizedHeight, ResamplingFilter.Bicubic, fixedPoint: true));
        AssertClose(g.Resized(), ReferenceResize(g.Rgb(), g.Width, g.Height, g.ResizedWidth, g.ResizedHeight, ResamplingFilter.Bicubic, fixedPoint: false), name);
    }

    [Fact]
    public void InvalidSettingsAndBuffersAreClearErrors()
    {
        var e = Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessSettings { ImageSize = 224, ResizeShortestEdge = 200 }));
        Assert.Contains("ResizeShortestEdge (200) must be at least ImageSize (224)", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessSettings { Std = [1f, 0f, 1f] }));
        Assert.Contains("Std", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessSettings { Mean = [0.5f] }));
        Assert.Contains("exactly 3 values", e.Message);
        e = Assert.Throws<ArgumentException>(() => Clip.Process(new RgbImage(4, 4), new float[100]));
        Assert.Contains("150528", e.Message);
        Assert.Throws<ArgumentException>(() => Clip.Process(new RgbImage(), new float[Clip.OutputLength]));
    }

    [Fact]
    public void ParallelPreprocessingIsDeterministic()
    {
        var inputs = Goldens.Images.Select(g => (g.RgbImage(), g.Tensor())).ToArray();
        var bad = new System.Collections.Concurrent.ConcurrentBag<int>();
        Parallel.For(0, inputs.Length * 3, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var (image, golden) = inputs[i % inputs.Length];
            if (!Clip.Process(image).AsSpan().SequenceEqual(golden)) bad.Add(i);
        });
        Assert.Empty(bad);
    }

    /// <summary>Within one level, and at most 1 % of the bytes differ (rounding of near-ties).</summary>
    private static void AssertClose(byte[] expected, byte[] got, string what)
    {
        var (count, max) = Goldens.Diff(expected, got);
        Assert.True(max <= 1, $"{what}: max difference {max}");
        Assert.True(count <= expected.Length / 100, $"{what}: {count} of {expected.Length} bytes differ (more than 1 %)");
    }

    /// <summary>
    /// Pillow's resampling written plainly, pixel by pixel with 64-bit sums, for whole images only: normalised filter
    /// weights per output index (double), horizontal pass rounded to bytes, then vertical pass. With
    /// <paramref name="fixedPoint"/> the weights become 22-bit integers as in Pillow (README step 2, transcribed);
    /// without, the sums stay in double and are rounded half up (the filter is then written in expanded form).
    /// </summary>
    private static byte[] ReferenceResize(byte[] src, int inW, int inH, int outW, int outH, ResamplingFilter filter, bool fixedPoint)
    {
        byte[] h = src;
        int w = inW;
        if (outW != inW)
        {
            h = new byte[outW * inH * 3];
            var (start, weights) = Weights(inW, outW, filter, fixedPoint);
            for (int y = 0; y < inH; y++)
                for (int x = 0; x < outW; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        double s = 0;
                        long q = 0;
                        for (int t = 0; t < weights[x].Length; t++)
                        {
                            s += src[(y * inW + start[x] + t) * 3 + c] * weights[x][t];
                            q += src[(y * inW + start[x] + t) * 3 + c] * (long)weights[x][t];
                        }
                        h[(y * outW + x) * 3 + c] = fixedPoint ? FromFixed(q) : ToByte(s);
                    }
            w = outW;
        }
        if (outH == inH) return h;
        var v = new byte[w * outH * 3];
        var (vs, vw) = Weights(inH, outH, filter, fixedPoint);
        for (int y = 0; y < outH; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double s = 0;
                    long q = 0;
                    for (int t = 0; t < vw[y].Length; t++)
                    {
                        s += h[((vs[y] + t) * w + x) * 3 + c] * vw[y][t];
                        q += h[((vs[y] + t) * w + x) * 3 + c] * (long)vw[y][t];
                    }
                    v[(y * w + x) * 3 + c] = fixedPoint ? FromFixed(q) : ToByte(s);
                }
        return v;

        static byte ToByte(double s) => (byte)Math.Clamp(Math.Floor(s + 0.5), 0, 255);
        static byte FromFixed(long q) => (byte)Math.Clamp((q + (1L << 21)) >> 22, 0, 255);
    }

    /// <summary>Per output index: first input and the weights (normalised doubles, or 22-bit integers stored as doubles).</summary>
    private static (int[] Start, double[][] Weights) Weights(int inSize, int outSize, ResamplingFilter filter, bool fixedPoint)
    {
        double scale = (double)inSize / outSize;
        double stretch = Math.Max(1.0, scale);
        double radius = (filter == ResamplingFilter.Bicubic ? 2.0 : 1.0) * stretch;
        var start = new int[outSize];
        var weights = new double[outSize][];
        for (int i = 0; i < outSize; i++)
        {
            double center = (i + 0.5) * scale;
            int lo = Math.Max(0, (int)Math.Truncate(center - radius + 0.5));
            int hi = Math.Min(inSize, (int)Math.Truncate(center + radius + 0.5));
            var w = new double[hi - lo];
            if (fixedPoint)
            {
                // README step 2 verbatim: w = K((x − center + 0.5) · (1/fs)), Horner form, sequential sum, then 2^22 rounding.
                double sum = 0;
                for (int x = lo; x < hi; x++) sum += w[x - lo] = HornerKernel((x - center + 0.5) * (1.0 / stretch), filter);
                for (int k = 0; k < w.Length; k++)
                {
                    double n = w[k] / sum;
                    w[k] = n < 0 ? (int)(n * 4194304.0 - 0.5) : (int)(n * 4194304.0 + 0.5);
                }
            }
            else
            {
                for (int x = lo; x < hi; x++) w[x - lo] = Kernel((x + 0.5 - center) / stretch, filter);
                double sum = w.Sum();
                for (int k = 0; k < w.Length; k++) w[k] /= sum;
            }
            start[i] = lo;
            weights[i] = w;
        }
        return (start, weights);
    }

    private static double HornerKernel(double t, ResamplingFilter filter)
    {
        double u = Math.Abs(t);
        if (filter == ResamplingFilter.Bilinear) return u < 1 ? 1 - u : 0;
        const double a = -0.5;
        return u < 1 ? ((a + 2) * u - (a + 3)) * u * u + 1 : u < 2 ? (((u - 5) * u + 8) * u - 4) * a : 0;
    }

    private static double Kernel(double t, ResamplingFilter filter)
    {
        double u = Math.Abs(t);
        if (filter == ResamplingFilter.Bilinear) return Math.Max(0, 1 - u);
        const double a = -0.5;
        return u < 1 ? (a + 2) * u * u * u - (a + 3) * u * u + 1
             : u < 2 ? a * u * u * u - 5 * a * u * u + 8 * a * u - 4 * a
             : 0;
    }
}

public sealed class ExtremeAspectTests
{
    [Fact]
    public void AVeryLongAxisUsesAPartialTableWithTheSameNumbers()
    {
        var full = new AxisKernel(700, 20000, ResamplingFilter.Bicubic);
        var part = new AxisKernel(700, 20000, ResamplingFilter.Bicubic, 9000, 224);
        for (int i = 0; i < 224; i++)
        {
            Assert.Equal(full.Start[9000 + i], part.Start[i]);
            Assert.Equal(full.Count[9000 + i], part.Count[i]);
            Assert.Equal(full.Weights.AsSpan((9000 + i) * full.KernelSize, full.KernelSize).ToArray(), part.Weights.AsSpan(i * part.KernelSize, part.KernelSize).ToArray());
        }
    }

    [Fact]
    public void AThinStripCropsTheSameAsAFullResize()
    {
        // 3 × 400 → shorter side 224 → 224 × 29866 (longer than the cached-table limit); crop computed directly vs full resize.
        var rgb = TestImages.Random(3 * 400 * 3, 12);
        var pre = new ImagePreprocessor();
        var (rw, rh) = pre.ResizedSize(3, 400);
        Assert.Equal((224, 29866), (rw, rh));
        var (left, top) = pre.CropOffset(rw, rh);
        var full = new byte[rw * rh * 3];
        Resampler.Resize(rgb, 3, 400, full, rw, rh, ResamplingFilter.Bicubic);
        var crop = new byte[224 * 224 * 3];
        pre.ResizeAndCrop(RgbImage.FromRgb(rgb, 3, 400), crop);
        Assert.Equal(full.AsSpan(top * rw * 3, 224 * 224 * 3).ToArray(), crop);
    }

    [Fact]
    public void AnImpossibleAspectRatioIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => new ImagePreprocessor().ResizedSize(1, 2_000_000));
        Assert.Contains("aspect ratio too extreme", e.Message);
    }
}
