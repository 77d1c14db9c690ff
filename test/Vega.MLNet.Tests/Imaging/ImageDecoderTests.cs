using System.Buffers.Binary;
using Vega.MLNet.Common;
using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

public sealed class ImageDecoderTests
{
    public static TheoryData<string> Names() => Goldens.Names();

    [Theory]
    [MemberData(nameof(Names))]
    public void DecodesEveryGoldenImageToTheExactPillowBytes(string name)
    {
        var g = Goldens.Get(name);
        var image = ImageDecoder.Decode(g.File);
        Assert.Equal((g.Width, g.Height), (image.Width, image.Height));
        Assert.Equal(image.ByteCount, image.Pixels.Length);
        var (count, max) = Goldens.Diff(g.Rgb(), image.Span);
        Assert.True(count == 0, $"{name}: {count} bytes differ from golden rgb.u8 (max {max})");
    }

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "bad/truncated_60pct.jpg", "truncated JPEG (premature end of data)" },
        { "bad/empty.jpg", "empty file" },
        { "bad/not_an_image.jpg", "not an image (starts with 'This is ')" },
        { "bad/png_bad_ihdr_crc.png", "PNG IHDR CRC error" },
        { "bad/png_corrupt_idat.png", "corrupt PNG data (the compressed image data is broken or ends early)" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void EveryBadFileIsRejectedWithItsReasonAndPath(string name, string reason)
    {
        string path = Path.Combine(Fixtures.Images, name);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(path));
        Assert.Equal(path, e.Path);
        Assert.Equal(reason, e.Reason);
        Assert.Contains(path, e.Message);
        // From memory too, with the given name.
        var e2 = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(File.ReadAllBytes(path), "upload #3"));
        Assert.Equal("upload #3", e2.Path);
        Assert.Equal(reason, e2.Reason);
    }

    [Fact]
    public void TheBadFileListIsCovered()
    {
        var covered = BadFiles().Select(r => (string)r[0]).Order(StringComparer.Ordinal);
        Assert.Equal(Goldens.BadNames().Order(StringComparer.Ordinal), covered);
    }

    [Fact]
    public void FormatIsSniffedFromBytesNotTheExtension()
    {
        // A PNG named .jpg and a JPEG named .png decode by content.
        string dir = Fixtures.TempDir();
        var png = Goldens.Get("dots.png");
        var jpg = Goldens.Get("flower_gray.jpg");
        string p1 = Path.Combine(dir, "really_png.jpg"), p2 = Path.Combine(dir, "really_jpeg.png");
        File.Copy(png.File, p1);
        File.Copy(jpg.File, p2);
        Assert.Equal(png.Rgb(), ImageDecoder.Decode(p1).Span.ToArray());
        Assert.Equal(jpg.Rgb(), ImageDecoder.Decode(p2).Span.ToArray());
    }

    [Theory]
    [InlineData(new byte[] { (byte)'G', (byte)'I', (byte)'F', (byte)'8', (byte)'9', (byte)'a', 1, 0 }, "truncated GIF (the file ends inside its header)")]
    [InlineData(new byte[] { (byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0 }, "unsupported image format TIFF (JPEG, PNG, WebP, GIF and BMP are decoded; convert the file to PNG)")]
    [InlineData(new byte[] { 0, 1, 2, 250 }, "not an image (starts with bytes 00 01 02 fa)")]
    [InlineData(new byte[] { 0xFF, 0xD8 }, "truncated JPEG (the file ends after the start-of-image marker)")]
    [InlineData(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, "truncated PNG (no chunks after the signature)")]
    public void OtherContentGetsAClearReason(byte[] bytes, string reason)
    {
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bytes, "x"));
        Assert.Equal(reason, e.Reason);
    }

    [Fact]
    public void TruncatedPngIsRejected()
    {
        var bytes = File.ReadAllBytes(Goldens.Get("dots.png").File);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bytes.AsSpan(0, bytes.Length * 6 / 10), "cut.png"));
        Assert.StartsWith("truncated PNG (chunk 'IDAT'", e.Reason);
    }

    [Fact]
    public void FileProblemsAreDecodeExceptionsWithTheirPath()
    {
        string dir = Fixtures.TempDir();
        string missing = Path.Combine(dir, "nope.jpg");
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(missing));
        Assert.Equal((missing, "file not found"), (e.Path, e.Reason));
        e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(dir));
        Assert.Equal("is a folder, not a file", e.Reason);
        e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(Path.Combine(dir, "no", "such.png")));
        Assert.StartsWith("file not found", e.Reason);
    }

    [Fact]
    public void AJpegWithAHarmlessWarningIsAcceptedLikePillowDoes()
    {
        // Three junk bytes before the SOF0 marker: libjpeg warns "extraneous bytes before marker", the pixels are intact.
        var g = Goldens.Get("grace_hopper.jpg");
        var bytes = File.ReadAllBytes(g.File);
        int sof = FindMarker(bytes, 0xC0);
        byte[] patched = [.. bytes.AsSpan(0, sof), 1, 2, 3, .. bytes.AsSpan(sof)];
        Assert.Equal(g.Rgb(), ImageDecoder.Decode(patched, "junk.jpg").Span.ToArray());
    }

    [Fact]
    public void ImagesLargerThanTheLimitAreRejectedBeforeDecoding()
    {
        var g = Goldens.Get("grace_hopper.jpg");
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(g.File, new DecodeOptions { MaxPixels = 1000 }));
        Assert.Contains("image too large (512 × 600", e.Reason);
        var p = Goldens.Get("dots.png");
        e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(p.File, new DecodeOptions { MaxPixels = 1000 }));
        Assert.Contains("image too large (420 × 300", e.Reason);
    }

    [Fact]
    public void AReusedBufferGrowsAndShrinksCorrectly()
    {
        var buffer = new RgbImage();
        foreach (var name in new[] { "grace_hopper.jpg", "tiny_7x5.png", "flower_cmyk.jpg", "china_16bit.png", "minus.png" })
        {
            var g = Goldens.Get(name);
            var got = ImageDecoder.Decode(g.File, reuse: buffer);
            Assert.Same(buffer, got);
            Assert.Equal((g.Width, g.Height), (got.Width, got.Height));
            Assert.True(g.Rgb().AsSpan().SequenceEqual(got.Span), name);
        }
        Assert.Equal(512 * 600 * 3, buffer.Pixels.Length); // grown once, never shrunk
    }

    [Fact]
    public void ParallelDecodingGivesTheSameBytes()
    {
        var goldens = Goldens.Images.Select(g => g.Rgb()).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, goldens.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var g = Goldens.Images[i % goldens.Length];
            if (!goldens[i % goldens.Length].AsSpan().SequenceEqual(ImageDecoder.Decode(g.File).Span)) failures.Add(g.Name);
        });
        Assert.Empty(failures);
    }

    // ---------------------------------------------------------------- EXIF orientation

    [Fact]
    public void ExifOrientationIsIgnoredByDefaultAndAppliedOnRequest()
    {
        var g = Goldens.Get("grace_hopper_exif6.jpg");
        var plain = ImageDecoder.Decode(g.File);
        Assert.Equal((200, 150), (plain.Width, plain.Height));
        var rotated = ImageDecoder.Decode(g.File, new DecodeOptions { ApplyExifOrientation = true });
        var (expected, w, h) = TestImages.Rotate90Clockwise(g.Rgb(), g.Width, g.Height);
        Assert.Equal((150, 200), (w, h));
        Assert.Equal((w, h), (rotated.Width, rotated.Height));
        Assert.Equal(expected, rotated.Span.ToArray());
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(5)] [InlineData(6)] [InlineData(7)] [InlineData(8)]
    public void EveryExifOrientationMatchesTheComposedTransform(int orientation)
    {
        // Patch the Orientation value of the big-endian IFD0 entry (tag 0112, SHORT, count 1) in the EXIF-6 file.
        var g = Goldens.Get("grace_hopper_exif6.jpg");
        var bytes = File.ReadAllBytes(g.File);
        int at = bytes.AsSpan().IndexOf(new byte[] { 0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06 });
        Assert.True(at > 0);
        bytes[at + 9] = (byte)orientation;
        var image = ImageDecoder.Decode(bytes, "patched.jpg", new DecodeOptions { ApplyExifOrientation = true });
        var (expected, w, h) = TestImages.Orient(g.Rgb(), g.Width, g.Height, orientation);
        Assert.Equal((w, h), (image.Width, image.Height));
        Assert.Equal(expected, image.Span.ToArray());
    }

    [Fact]
    public void PngExifChunkOrientationIsAppliedOnRequest()
    {
        var g = Goldens.Get("tiny_7x5.png");
        // Little-endian TIFF, IFD0 with one entry: Orientation (0x0112) SHORT 1 = 8.
        byte[] tiff = [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0];
        var png = TestImages.InsertAfterIhdr(File.ReadAllBytes(g.File), "eXIf", tiff);
        Assert.Equal(g.Rgb(), ImageDecoder.Decode(png, "exif.png").Span.ToArray());
        var image = ImageDecoder.Decode(png, "exif.png", new DecodeOptions { ApplyExifOrientation = true });
        var (expected, w, h) = TestImages.Orient(g.Rgb(), g.Width, g.Height, 8);
        Assert.Equal((w, h), (image.Width, image.Height));
        Assert.Equal(expected, image.Span.ToArray());
    }

    // ---------------------------------------------------------------- synthetic PNGs (expected bytes come from the encoded data)

    [Fact]
    public void Png16BitRgbKeepsTheHighByteOfArbitrarySamples()
    {
        const int w = 13, h = 7;
        var rows = TestImages.Random(w * h * 6, 1);
        var image = ImageDecoder.Decode(TestImages.Png(w, h, 2, 16, rows), "rgb16.png");
        var expected = Enumerable.Range(0, w * h * 3).Select(i => rows[2 * i]).ToArray();
        Assert.Equal(expected, image.Span.ToArray());
    }

    [Fact]
    public void Png16BitGrayKeepsTheHighByte()
    {
        const int w = 9, h = 4;
        var rows = TestImages.Random(w * h * 2, 2);
        var image = ImageDecoder.Decode(TestImages.Png(w, h, 0, 16, rows), "gray16.png");
        var expected = Enumerable.Range(0, w * h * 3).Select(i => rows[2 * (i / 3)]).ToArray();
        Assert.Equal(expected, image.Span.ToArray());
    }

    [Fact]
    public void Png16BitWithAlphaIsWithinOneOfTheHighByte()
    {
        const int w = 11, h = 5;
        var rows = TestImages.Random(w * h * 8, 3);
        var image = ImageDecoder.Decode(TestImages.Png(w, h, 6, 16, rows), "rgba16.png");
        var span = image.Span;
        for (int p = 0; p < w * h; p++)
            for (int c = 0; c < 3; c++)
                Assert.InRange(span[3 * p + c] - rows[8 * p + 2 * c], -1, 1);
    }

    [Fact]
    public void PngColourChunksAreIgnoredAsPillowIgnoresThem()
    {
        const int w = 16, h = 6;
        var rows = TestImages.Random(w * h * 3, 4);
        var gama = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(gama, 100000); // gamma 1.0: libpng alone would re-encode every value
        var chrm = new byte[32];
        var png = TestImages.Png(w, h, 2, 8, rows, ("gAMA", gama), ("cHRM", chrm), ("sRGB", [0]));
        Assert.Equal(rows, ImageDecoder.Decode(png, "gamma.png").Span.ToArray());
    }

    [Fact]
    public void PngAlphaIsDroppedWithoutCompositing()
    {
        const int w = 8, h = 8;
        var rgba = TestImages.Random(w * h * 4, 5);
        for (int i = 3; i < rgba.Length; i += 8) rgba[i] = 0; // every other pixel fully transparent
        var expected = Enumerable.Range(0, w * h * 3).Select(i => rgba[4 * (i / 3) + i % 3]).ToArray();
        Assert.Equal(expected, ImageDecoder.Decode(TestImages.Png(w, h, 6, 8, rgba), "rgba.png").Span.ToArray());

        var ga = TestImages.Random(w * h * 2, 6);
        var expectedGa = Enumerable.Range(0, w * h * 3).Select(i => ga[2 * (i / 3)]).ToArray();
        Assert.Equal(expectedGa, ImageDecoder.Decode(TestImages.Png(w, h, 4, 8, ga), "ga.png").Span.ToArray());

        var rgb = TestImages.Random(w * h * 3, 7);
        var trns = new byte[] { 0, rgb[0], 0, rgb[1], 0, rgb[2] }; // colour key = the first pixel
        Assert.Equal(rgb, ImageDecoder.Decode(TestImages.Png(w, h, 2, 8, rgb, ("tRNS", trns)), "key.png").Span.ToArray());
    }

    [Fact]
    public void PngPaletteIsLookedUpAndTransparencyIgnored()
    {
        const int w = 10, h = 3;
        var palette = TestImages.Random(16 * 3, 8);
        var indices = TestImages.Random(w * h, 9).Select(b => (byte)(b % 16)).ToArray();
        var trns = Enumerable.Range(0, 16).Select(i => (byte)(i * 16)).ToArray();
        var image = ImageDecoder.Decode(TestImages.Png(w, h, 3, 8, indices, ("PLTE", palette), ("tRNS", trns)), "pal.png");
        var expected = indices.SelectMany(i => palette.AsSpan(3 * i, 3).ToArray()).ToArray();
        Assert.Equal(expected, image.Span.ToArray());
    }

    [Fact]
    public void Png1BitGrayExpandsTo0And255()
    {
        const int w = 16, h = 2;
        byte[] rows = [0b1010_0000, 0b1111_0001, 0b0000_0001, 0b1000_0000];
        var image = ImageDecoder.Decode(TestImages.Png(w, h, 0, 1, rows), "bits.png");
        var span = image.Span;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int bit = (rows[y * 2 + x / 8] >> (7 - x % 8)) & 1;
                for (int c = 0; c < 3; c++) Assert.Equal(bit * 255, span[(y * w + x) * 3 + c]);
            }
    }

    [Fact]
    public void AnyPngChunkWithABadCrcIsRejected()
    {
        var rows = TestImages.Random(4 * 4 * 3, 10);
        var png = TestImages.Png(4, 4, 2, 8, rows, ("tEXt", "Comment\0hello"u8.ToArray()));
        png[33 + 8 + 2] ^= 0x20; // a byte inside the tEXt data; its CRC no longer matches
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png, "t.png"));
        Assert.Equal("PNG tEXt CRC error", e.Reason);
    }

    [Fact]
    public void InMemoryBuffersBecomeImages()
    {
        var g = Goldens.Get("dots.png");
        var image = RgbImage.FromRgb(g.Rgb(), g.Width, g.Height);
        Assert.Equal(g.Rgb(), image.Pixels);
        var gray = RgbImage.FromGray([10, 20, 30, 40, 50, 60], 3, 2);
        Assert.Equal(new byte[] { 10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40, 50, 50, 50, 60, 60, 60 }, gray.Pixels);
        Assert.Throws<ArgumentException>(() => RgbImage.FromRgb(new byte[10], 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => RgbImage.FromGray([], 0, 3));
    }

    private static int FindMarker(byte[] jpeg, byte marker)
    {
        for (int i = 2; i + 1 < jpeg.Length; i++)
            if (jpeg[i] == 0xFF && jpeg[i + 1] == marker) return i;
        throw new InvalidOperationException("marker not found");
    }
}

public sealed class PngCrcTests
{
    [Fact]
    public void TheChunkCrcEqualsABitwiseCrcForEveryLengthAndAlignment()
    {
        var data = TestImages.Random(300, 11);
        for (int start = 0; start < 9; start++)
            for (int length = 0; start + length <= data.Length; length += length < 40 ? 1 : 37)
                Assert.Equal(TestImages.BitwiseCrc32(data.AsSpan(start, length)), Crc32.Compute(data.AsSpan(start, length)));
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8)); // the standard check value
    }
}

/// <summary>
/// GIF (first frame), WebP (lossless, lossy, with alpha) and BMP (24-bit, 8-bit palette, gray) against Pillow 9.4's
/// <c>convert("RGB")</c> of the same files (TestData/formats, made by tools/gen_format_goldens.py).
/// </summary>
public sealed class OtherFormatTests
{
    private static string Dir => Path.Combine(Fixtures.RepositoryRoot, "test", "Vega.MLNet.Tests", "TestData", "formats");

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        using var index = Fixtures.Json(Path.Combine(Dir, "index.json"));
        foreach (var i in index.RootElement.GetProperty("images").EnumerateArray()) data.Add(i.GetProperty("file").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void DecodesLikePillow(string file)
    {
        string path = Path.Combine(Dir, file);
        var expected = File.ReadAllBytes(path + ".rgb.u8");
        var image = ImageDecoder.Decode(path);
        Assert.Equal(expected.Length, image.ByteCount);
        var (count, max) = Goldens.Diff(expected, image.Span);
        // Lossy WebP: libwebp inside Skia and inside Pillow may convert YUV to RGB with different rounding.
        int tolerance = file.Contains("lossy", StringComparison.Ordinal) ? 3 : 0;
        Assert.True(max <= tolerance, $"{file}: {count} bytes differ from Pillow (max {max}, allowed {tolerance})");
    }

    [Fact]
    public void TruncatedFilesOfEveryFormatAreErrorsNotPartialImages()
    {
        foreach (var file in new[] { "photo_palette.gif", "photo_lossless.webp", "photo_lossy.webp", "photo_palette8.bmp", "dots_rgb24.bmp" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(Dir, file));
            var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bytes.AsSpan(0, bytes.Length * 2 / 3), file));
            Assert.Equal(file, e.Path);
            Assert.False(string.IsNullOrWhiteSpace(e.Reason));
        }
    }
}
