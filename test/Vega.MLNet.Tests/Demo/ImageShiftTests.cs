using Vega.MLNet.Samples.Demo;

namespace Vega.MLNet.Tests.Demo;

/// <summary>The demo's shifts against their definitions on real Fashion-MNIST images.</summary>
public sealed class ImageShiftTests
{
    private static byte[] Image(int i) => DemoTestData.Data.Test.Gray(i).ToArray();

    private static byte[] Shift(ImageShiftKind kind, byte[] src)
    {
        var dst = new byte[src.Length];
        ImageShift.Apply(kind, src, dst, 28, 28);
        return dst;
    }

    [Fact]
    public void InvertIsAnInvolutionAndLowContrastFollowsItsFormula()
    {
        var src = Image(3);
        Assert.Equal(src, Shift(ImageShiftKind.Invert, Shift(ImageShiftKind.Invert, src)));
        var low = Shift(ImageShiftKind.LowContrast, src);
        for (int i = 0; i < src.Length; i++) Assert.Equal((int)Math.Floor(64 + src[i] / 2.0 + 0.5), low[i]);
        Assert.InRange(low.Min(), (byte)64, (byte)64);
    }

    [Fact]
    public void TranslateMovesEveryPixelThreeRightTwoDown()
    {
        var src = Image(7);
        var t = Shift(ImageShiftKind.Translate, src);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
                Assert.Equal(y >= 2 && x >= 3 ? src[(y - 2) * 28 + x - 3] : 0, t[y * 28 + x]);
    }

    [Fact]
    public void BlurKeepsConstantsAndMatchesADirectTwoDimensionalSum()
    {
        Assert.All(Shift(ImageShiftKind.Blur, Enumerable.Repeat((byte)77, 784).ToArray()), v => Assert.Equal(77, v));
        var src = Image(1);
        var b = Shift(ImageShiftKind.Blur, src);
        int[] k = [1, 4, 6, 4, 1];
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
            {
                long s = 0;
                for (int j = -2; j <= 2; j++)
                    for (int i = -2; i <= 2; i++)
                        s += k[j + 2] * k[i + 2] * src[Math.Clamp(y + j, 0, 27) * 28 + Math.Clamp(x + i, 0, 27)];
                Assert.Equal((int)((s + 128) / 256), b[y * 28 + x]);
            }
    }

    [Fact]
    public void RotationByNinetyDegreesIsAnExactQuarterTurn()
    {
        var src = Image(0);
        var dst = new byte[784];
        ImageShift.Rotate(src, dst, 28, 28, 90);
        // Inverse map of a counter-clockwise quarter turn about the centre: (x, y) ← (27 − y, x).
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) Assert.Equal(src[x * 28 + 27 - y], dst[y * 28 + x]);
        ImageShift.Rotate(src, dst, 28, 28, 0);
        Assert.Equal(src, dst);
    }
}
