using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Vega.MLNet.Common;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Safe reading of image files: only regular files (symbolic links are followed; a FIFO, a device, a socket or a
/// folder is refused with the reason and never read, so a link to <c>/dev/zero</c> cannot exhaust memory and a FIFO
/// cannot block), at most <see cref="DecodeOptions.MaxFileBytes"/> bytes (checked from the file's metadata before
/// anything is read), and the first bytes must be the signature of an image format before the rest is read (a large
/// file that is not an image costs one small read). The type checks are <see cref="SafeFile"/>'s. Failures are
/// <see cref="ImageDecodeException"/>s naming the file and the reason.
/// </summary>
internal static class ImageFile
{
    /// <summary>Bytes read first to check the signature.</summary>
    internal const int HeaderBytes = 32;

    /// <summary>
    /// Reads the file at <paramref name="path"/> into a buffer rented from <see cref="ArrayPool{T}.Shared"/> (return
    /// it); <paramref name="length"/> is the number of bytes read.
    /// </summary>
    public static byte[] Read(string path, DecodeOptions options, out int length)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        if (path.Contains('\0')) throw new ImageDecodeException(path, "the path contains a NUL character");
        long max = options.MaxFileBytes;
        if (max < 1) throw new ArgumentOutOfRangeException(nameof(options), max, "DecodeOptions.MaxFileBytes must be at least 1.");
        SafeFileHandle handle;
        try
        {
            handle = SafeFile.OpenRegular(path);
        }
        catch (SafeFile.RefusedException e)
        {
            throw new ImageDecodeException(path, e.Reason, e.InnerException);
        }
        using var _ = handle;
        long size = RandomAccess.GetLength(handle);
        CheckSize(path, size, max);
        if (size == 0) throw new ImageDecodeException(path, "empty file");

        Span<byte> header = stackalloc byte[HeaderBytes];
        int got = ReadAt(handle, path, header[..(int)Math.Min(size, HeaderBytes)], 0);
        header = header[..got];
        if (got == 0) throw new ImageDecodeException(path, "empty file");
        if (!LooksLikeImage(header)) throw new ImageDecodeException(path, $"not an image ({Describe(header)})");

        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)size);
        try
        {
            header.CopyTo(buffer);
            int read = got;
            while (read < size)
            {
                int n = ReadAt(handle, path, buffer.AsSpan(read, (int)size - read), read);
                if (n == 0) break; // the file shrank while reading: decode what is there
                read += n;
            }
            length = read;
            return buffer;
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static int ReadAt(SafeFileHandle handle, string path, Span<byte> destination, long offset)
    {
        try
        {
            return RandomAccess.Read(handle, destination, offset);
        }
        catch (IOException e)
        {
            throw new ImageDecodeException(path, $"read error ({e.Message})", e);
        }
    }

    private static void CheckSize(string path, long size, long max)
    {
        if (size > max)
            throw new ImageDecodeException(path, string.Create(CultureInfo.InvariantCulture,
                $"file too large ({size} bytes; the limit is {max} bytes, DecodeOptions.MaxFileBytes)"));
        if (size > Array.MaxLength)
            throw new ImageDecodeException(path, string.Create(CultureInfo.InvariantCulture, $"file too large ({size} bytes)"));
    }

    // ------------------------------------------------------------------ signatures

    /// <summary>
    /// Whether <paramref name="b"/> (the first bytes of a file) starts like an image format: JPEG, PNG, GIF, WebP,
    /// BMP, TIFF, ICO/CUR, HEIF/AVIF (ISO media), JPEG 2000, JPEG XL, QOI, PSD or PNM. The decoder then decodes it or
    /// rejects it with a reason; anything else is refused before the rest of the file is read.
    /// </summary>
    internal static bool LooksLikeImage(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 2 && b[0] == 0xFF && b[1] == 0xD8) return true;                              // JPEG (possibly truncated)
        if (b.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47])) return true;                  // PNG
        if (b.StartsWith("GIF8"u8)) return true;                                                       // GIF87a / GIF89a
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return true; // WebP
        if (b.StartsWith("BM"u8)) return true;                                                         // BMP
        if (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8)) return true;                           // TIFF
        if (b.Length >= 4 && b[0] == 0 && b[1] == 0 && b[2] is 1 or 2 && b[3] == 0) return true;      // ICO / CUR
        if (b.Length >= 12 && b[4..8].SequenceEqual("ftyp"u8)) return true;                            // HEIF / AVIF (ISO media)
        if (b.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20])) return true; // JPEG 2000 (JP2)
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x4F, 0xFF, 0x51])) return true;                  // JPEG 2000 codestream
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x0A])) return true;                              // JPEG XL codestream
        if (b.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20])) return true; // JPEG XL container
        if (b.StartsWith("qoif"u8) || b.StartsWith("8BPS"u8)) return true;                             // QOI, PSD
        if (b.Length >= 3 && b[0] == (byte)'P' && b[1] is >= (byte)'1' and <= (byte)'7' && b[2] is (byte)'\n' or (byte)' ' or (byte)'\r' or (byte)'\t') return true; // PNM / PAM
        return false;
    }

    /// <summary>"starts with 'text'" or "starts with bytes xx xx …" for the first 8 bytes.</summary>
    internal static string Describe(ReadOnlySpan<byte> b)
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
        foreach (byte c in head) sb.Append(' ').Append(c.ToString("x2", CultureInfo.InvariantCulture));
        return sb.ToString();
    }
}
