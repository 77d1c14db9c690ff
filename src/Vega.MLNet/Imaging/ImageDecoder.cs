using System.Buffers;
using System.Text;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Decodes JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libpng's simplified API) into 8-bit RGB with the semantics of
/// Pillow 9.4's <c>Image.open(p).convert("RGB")</c>: alpha dropped without compositing, palette looked up, gray
/// replicated, CMYK/YCCK converted with Pillow's integer formula, no gamma/ICC handling, EXIF orientation ignored unless
/// <see cref="DecodeOptions.ApplyExifOrientation"/> is set. The format is sniffed from the magic bytes, never from the
/// file extension. Failures are <see cref="ImageDecodeException"/>s naming the file and the reason. Thread-safe.
/// </summary>
public static class ImageDecoder
{
    /// <summary>
    /// Reads and decodes the file at <paramref name="path"/>. Reading failures (missing file, permission, a folder) are
    /// reported as <see cref="ImageDecodeException"/> too. When <paramref name="reuse"/> is given its buffer is reused
    /// (grown if needed) and it is returned.
    /// </summary>
    public static RgbImage Decode(string path, DecodeOptions? options = null, RgbImage? reuse = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] buffer = ReadFile(path, options, out int length);
        try
        {
            return Decode(buffer.AsSpan(0, length), path, options, reuse);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Decodes an encoded image held in memory; <paramref name="nameForErrors"/> is used as the exception's path. When
    /// <paramref name="reuse"/> is given its buffer is reused (grown if needed) and it is returned.
    /// </summary>
    public static RgbImage Decode(ReadOnlySpan<byte> bytes, string nameForErrors, DecodeOptions? options = null, RgbImage? reuse = null)
    {
        options ??= DecodeOptions.Default;
        var target = reuse ?? new RgbImage();
        int orientation = 1;
        switch (Sniff(bytes, nameForErrors))
        {
            case Format.Jpeg:
                JpegCodec.Decode(bytes, nameForErrors, options, target);
                if (options.ApplyExifOrientation) orientation = ExifOrientation.FromJpeg(bytes);
                break;
            default:
                var (offset, length) = PngCodec.Decode(bytes, nameForErrors, options, target);
                if (options.ApplyExifOrientation && length > 0) orientation = ExifOrientation.FromTiff(bytes.Slice(offset, length));
                break;
        }
        if (orientation != 1) ExifOrientation.Apply(target, orientation);
        return target;
    }

    internal enum Format { Jpeg, Png }

    /// <summary>Identifies the format by its magic bytes; anything else is an <see cref="ImageDecodeException"/> saying what it looks like.</summary>
    internal static Format Sniff(ReadOnlySpan<byte> b, string name)
    {
        if (b.Length == 0) throw new ImageDecodeException(name, "empty file");
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format.Jpeg;
        if (b.StartsWith(PngSignature)) return Format.Png;
        string? other =
            b.StartsWith("GIF87a"u8) || b.StartsWith("GIF89a"u8) ? "GIF" :
            b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8) ? "WebP" :
            b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8) ? "TIFF" :
            b.Length >= 12 && b[4..8].SequenceEqual("ftyp"u8) ? "ISO media (HEIF/AVIF)" :
            b.Length >= 18 && b.StartsWith("BM"u8) && BitConverter.ToInt32(b[14..18]) is 12 or 40 or 52 or 56 or 64 or 108 or 124 ? "BMP" :
            b.StartsWith(Jp2Signature) || b.StartsWith(J2kSignature) ? "JPEG 2000" :
            null;
        if (other is not null)
            throw new ImageDecodeException(name, $"unsupported image format {other} (only JPEG and PNG are decoded)");
        if (b.Length >= 2 && b[0] == 0xFF && b[1] == 0xD8)
            throw new ImageDecodeException(name, "truncated JPEG (the file ends after the start-of-image marker)");
        throw new ImageDecodeException(name, $"not an image ({Describe(b)})");
    }

    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly byte[] Jp2Signature = [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20];
    private static readonly byte[] J2kSignature = [0xFF, 0x4F, 0xFF, 0x51];

    private static string Describe(ReadOnlySpan<byte> b)
    {
        var head = b[..Math.Min(8, b.Length)];
        bool text = true;
        foreach (byte c in head) text &= c is >= 0x20 and < 0x7F or (byte)'\t' or (byte)'\n' or (byte)'\r';
        if (text)
        {
            var s = Encoding.ASCII.GetString(head).Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t");
            return $"starts with '{s}'";
        }
        var sb = new StringBuilder("starts with bytes");
        foreach (byte c in head) sb.Append(' ').Append(c.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>Rejects images over <see cref="DecodeOptions.MaxPixels"/> or too large for a buffer of <paramref name="bytesPerPixel"/>.</summary>
    internal static void CheckPixels(string name, int width, int height, DecodeOptions options, int bytesPerPixel)
    {
        if (width <= 0 || height <= 0)
            throw new ImageDecodeException(name, $"invalid image size {width} × {height}");
        long pixels = (long)width * height;
        if (pixels > options.MaxPixels)
            throw new ImageDecodeException(name, $"image too large ({width} × {height} = {pixels} pixels, the limit is DecodeOptions.MaxPixels = {options.MaxPixels})");
        if (pixels * bytesPerPixel > Array.MaxLength || pixels * 3 > RgbImage.MaxBytes)
            throw new ImageDecodeException(name, $"image too large ({width} × {height} does not fit in memory buffers)");
    }

    /// <summary>Reads a whole file into a pooled buffer (return it to <see cref="ArrayPool{T}.Shared"/>), with the
    /// type, size and signature checks of <see cref="ImageFile"/>.</summary>
    internal static byte[] ReadFile(string path, DecodeOptions? options, out int length) =>
        ImageFile.Read(path, options ?? DecodeOptions.Default, out length);
}
