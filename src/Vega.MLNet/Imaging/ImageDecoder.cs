using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using SkiaSharp;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Decodes JPEG, PNG, WebP, GIF (first frame) and BMP into 8-bit RGB with the semantics of Pillow 9.4's
/// <c>Image.open(p).convert("RGB")</c>: alpha dropped without compositing (the stored colour under transparent pixels
/// is kept), palette looked up, gray replicated, CMYK JPEGs converted as Pillow does, no gamma/ICC handling, EXIF
/// orientation ignored unless <see cref="DecodeOptions.ApplyExifOrientation"/> is set. Pixels come from SkiaSharp's
/// codecs (libjpeg-turbo, libpng, libwebp inside Skia) decoded unpremultiplied; a decode that does not complete
/// (truncated file, broken compressed data) is an error, never a partial image. The format is sniffed from the magic
/// bytes, never from the file extension. Failures are <see cref="ImageDecodeException"/>s naming the file and the
/// reason. Thread-safe.
/// </summary>
internal static class ImageDecoder
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
        var format = Sniff(bytes, nameForErrors);
        (int Offset, int Length) pngExif = format == Format.Png ? PngChunks.Check(bytes, nameForErrors) : default;
        var target = reuse ?? new RgbImage();
        int origin = SkiaDecode(bytes, nameForErrors, format, options, target);
        if (options.ApplyExifOrientation)
        {
            int orientation = format switch
            {
                Format.Jpeg => ExifOrientation.FromJpeg(bytes),
                Format.Png => pngExif.Length > 0 ? ExifOrientation.FromTiff(bytes.Slice(pngExif.Offset, pngExif.Length)) : 1,
                _ => origin,
            };
            if (orientation != 1) ExifOrientation.Apply(target, orientation);
        }
        return target;
    }

    /// <summary>Decodes with SkiaSharp into <paramref name="target"/>; returns the EXIF orientation Skia read (1 = none).</summary>
    private static unsafe int SkiaDecode(ReadOnlySpan<byte> bytes, string name, Format format, DecodeOptions options, RgbImage target)
    {
        fixed (byte* p = bytes)
        {
            // SKData over the pinned input, no copy: the codec and the stream never outlive this block.
            using var data = SKData.Create((IntPtr)p, bytes.Length);
            using var stream = new SKMemoryStream(data);
            using var codec = SKCodec.Create(stream, out var created);
            if (codec is null) throw new ImageDecodeException(name, HeaderError(format, created));
            int w = codec.Info.Width, h = codec.Info.Height;
            CheckPixels(name, w, h, options, 4);
            var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul); // no colour space: no colour management
            int length = checked(w * h * 4);
            byte[] rgba = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                SKCodecResult result;
                fixed (byte* d = rgba) result = codec.GetPixels(info, (IntPtr)d, w * 4, new SKCodecOptions(0));
                if (result != SKCodecResult.Success) throw new ImageDecodeException(name, DataError(format, result));
                target.Reset(w, h);
                DropAlpha(rgba.AsSpan(0, length), target.Span);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(rgba);
            }
            return (int)codec.EncodedOrigin is int o and >= 1 and <= 8 ? o : 1;
        }
    }

    private static string Name(Format f) => f switch { Format.Jpeg => "JPEG", Format.Png => "PNG", Format.WebP => "WebP", Format.Gif => "GIF", _ => "BMP" };

    private static string HeaderError(Format format, SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => $"truncated {Name(format)} (the file ends inside its header)",
        SKCodecResult.Unimplemented => $"unsupported {Name(format)} variant",
        _ => $"corrupt {Name(format)} header",
    };

    private static string DataError(Format format, SKCodecResult result) => (format, result) switch
    {
        (Format.Jpeg, SKCodecResult.IncompleteInput) => "truncated JPEG (premature end of data)",
        (Format.Png, SKCodecResult.IncompleteInput or SKCodecResult.ErrorInInput) => "corrupt PNG data (the compressed image data is broken or ends early)",
        (_, SKCodecResult.IncompleteInput) => $"truncated {Name(format)} (premature end of data)",
        (_, SKCodecResult.ErrorInInput) => $"corrupt {Name(format)} data",
        (_, SKCodecResult.Unimplemented or SKCodecResult.InvalidConversion) => $"unsupported {Name(format)} variant",
        _ => $"{Name(format)} decoding failed ({result})",
    };

    /// <summary>RGBA → RGB: every fourth byte dropped.</summary>
    internal static void DropAlpha(ReadOnlySpan<byte> rgba, Span<byte> rgb)
    {
        int n = rgb.Length / 3;
        int i = 0;
        if (Vector128.IsHardwareAccelerated && n >= 8)
        {
            // Four pixels per step: a 16-byte load gives 12 useful bytes; the store writes 16, so stop 2 pixels early.
            var shuffle = Vector128.Create((byte)0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 255, 255, 255, 255);
            ref byte src = ref MemoryMarshal.GetReference(rgba);
            ref byte dst = ref MemoryMarshal.GetReference(rgb);
            for (; i + 6 <= n; i += 4)
            {
                var v = Vector128.LoadUnsafe(ref src, (nuint)(i * 4));
                Vector128.Shuffle(v, shuffle).StoreUnsafe(ref dst, (nuint)(i * 3));
            }
        }
        for (int s = i * 4, o = i * 3; i < n; i++, s += 4, o += 3)
        {
            rgb[o] = rgba[s];
            rgb[o + 1] = rgba[s + 1];
            rgb[o + 2] = rgba[s + 2];
        }
    }

    internal enum Format { Jpeg, Png, WebP, Gif, Bmp }

    /// <summary>Identifies the format by its magic bytes; anything else is an <see cref="ImageDecodeException"/> saying what it looks like.</summary>
    internal static Format Sniff(ReadOnlySpan<byte> b, string name)
    {
        if (b.Length == 0) throw new ImageDecodeException(name, "empty file");
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format.Jpeg;
        if (b.StartsWith(PngSignature)) return Format.Png;
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return Format.WebP;
        if (b.StartsWith("GIF87a"u8) || b.StartsWith("GIF89a"u8)) return Format.Gif;
        if (b.Length >= 18 && b.StartsWith("BM"u8) && BitConverter.ToInt32(b[14..18]) is 12 or 40 or 52 or 56 or 64 or 108 or 124) return Format.Bmp;
        string? other =
            b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8) ? "TIFF" :
            b.Length >= 12 && b[4..8].SequenceEqual("ftyp"u8) ? "ISO media (HEIF/AVIF)" :
            b.StartsWith(Jp2Signature) || b.StartsWith(J2kSignature) ? "JPEG 2000" :
            null;
        if (other is not null)
            throw new ImageDecodeException(name, $"unsupported image format {other} (JPEG, PNG, WebP, GIF and BMP are decoded; convert the file to PNG)");
        if (b.Length >= 2 && b[0] == 0xFF && b[1] == 0xD8)
            throw new ImageDecodeException(name, "truncated JPEG (the file ends after the start-of-image marker)");
        throw new ImageDecodeException(name, $"not an image ({ImageFile.Describe(b)})");
    }

    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly byte[] Jp2Signature = [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20];
    private static readonly byte[] J2kSignature = [0xFF, 0x4F, 0xFF, 0x51];

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
