using Vega.MLNet.Imaging;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

/// <summary>
/// Seeded fuzzing of the image decoder on every format it reads (JPEG baseline/progressive/grey/EXIF, PNG 8/16-bit,
/// palette and grey, GIF, BMP, WebP lossy and lossless): byte-level mutations of real files. Every mutant must decode
/// to a well-formed image or fail with <see cref="ImageDecodeException"/> naming the file — nothing else escapes,
/// nothing hangs — and decoding the same bytes twice must give the same pixels or the same error (no uninitialised
/// memory shows through a partly decoded image).
/// </summary>
public sealed class ImageDecoderFuzzTests
{
    private static IEnumerable<string> SeedFiles()
    {
        foreach (var name in new[] { "tiny_7x5.png", "minus.png", "dots.png", "Minduka_Present_Blue_Pack.png", "flower_gray.jpg", "grace_hopper_exif6.jpg", "china_progressive.jpg" })
            yield return Path.Combine(Fixtures.Images, name);
        string formats = Path.Combine(Fixtures.RepositoryRoot, "test", "Vega.MLNet.Tests", "TestData", "formats");
        foreach (var f in Directory.GetFiles(formats).Where(f => Path.GetExtension(f) is ".gif" or ".bmp" or ".webp").Order(StringComparer.Ordinal))
            yield return f;
    }

    public static TheoryData<string> Seeds() => new(SeedFiles().Select(Path.GetFileName)!);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void MutatedImagesDecodeOrFailWithTheDocumentedError(string fileName)
    {
        string path = SeedFiles().Single(f => Path.GetFileName(f) == fileName);
        var original = File.ReadAllBytes(path);
        var rng = new Rng(Fuzz.Seed(0xDEC0DE ^ (ulong)fileName.Length * 7919UL ^ original[^1]));
        int decoded = 0, rejected = 0;
        var options = new DecodeOptions { ApplyExifOrientation = fileName.Contains("exif") };
        Fuzz.Run(Fuzz.Iterations(300), TimeSpan.FromSeconds(120), (i, note) =>
        {
            var bytes = Fuzz.MutateBytes(original, rng, out string what);
            note(what);
            string name = $"mutant-{i}-{fileName}";
            var (first, error) = TryDecode(bytes, name, options);
            if (error is not null && error is not ImageDecodeException) return Fuzz.Undocumented(error, typeof(ImageDecodeException));
            if (error is ImageDecodeException de)
            {
                rejected++;
                if (de.Path != name || !de.Message.Contains(name)) return $"the error does not name the input: '{de.Message}'";
                if (string.IsNullOrWhiteSpace(de.Reason)) return "the error gives no reason";
            }
            else
            {
                decoded++;
                if (first!.Width < 1 || first.Height < 1 || first.Span.Length != first.Width * first.Height * 3)
                    return $"a malformed image: {first.Width}×{first.Height}, {first.Span.Length} bytes";
            }
            if (i % 4 == 0)
            {
                // Decoding is a function of the bytes: the same pixels (into a dirty reused buffer) or the same reason.
                var dirty = RgbImage.FromRgb(Enumerable.Repeat((byte)0xA5, 3 * 64 * 64).ToArray(), 64, 64);
                var (second, again) = TryDecode(bytes, name, options, dirty);
                if ((error is null) != (again is null)) return $"decoded once and failed once ({error?.Message ?? again?.Message})";
                if (error is ImageDecodeException e1 && again is ImageDecodeException e2 && e1.Reason != e2.Reason) return $"two reasons: '{e1.Reason}' and '{e2.Reason}'";
                if (first is not null && !first.Span.SequenceEqual(second!.Span)) return "two decodes of the same bytes differ";
            }
            return null;
        });
        // The mutations exercise both outcomes (a fuzz test whose every mutant is rejected at the header tests little) —
        // except PNG, whose every chunk carries a CRC that the decoder checks first: a mutant decodes only when the
        // mutation falls outside the chunks, which small files rarely leave room for.
        Assert.True(rejected > 0, $"{fileName}: no mutant was rejected");
        if (Path.GetExtension(fileName) != ".png") Assert.True(decoded > 0, $"{fileName}: no mutant decoded");
    }

    private static (RgbImage? Image, Exception? Error) TryDecode(byte[] bytes, string name, DecodeOptions options, RgbImage? reuse = null)
    {
        try
        {
            return (ImageDecoder.Decode(bytes, name, options, reuse), null);
        }
        catch (Exception e)
        {
            return (null, e);
        }
    }
}
