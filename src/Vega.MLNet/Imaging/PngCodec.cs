using Vega.MLNet.Common;
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Vega.MLNet.Imaging;

/// <summary>
/// PNG decoding through libpng's simplified API with Pillow 9.4's <c>convert("RGB")</c> semantics:
/// the chunk list is walked here first (every CRC checked, gAMA/cHRM/sRGB/iCCP removed so that libpng applies no colour
/// correction, as Pillow applies none); then 8-bit and palette images without transparency are read as RGB, those with
/// alpha or tRNS as RGBA and the alpha dropped (RGB output would composite), 16-bit images without alpha are read as raw 16-bit samples and reduced to the high byte, 16-bit
/// images with alpha are read as RGBA with <c>PNG_IMAGE_FLAG_16BIT_sRGB</c> (rounded /257: may differ from Pillow's
/// high byte by 1).
/// </summary>
internal static unsafe class PngCodec
{

    /// <summary>Decodes into <paramref name="target"/>; returns the offset and length of the eXIf chunk data (or (0, 0)).</summary>
    public static (int Offset, int Length) Decode(ReadOnlySpan<byte> data, string name, DecodeOptions options, RgbImage target)
    {
        var (keptLength, dropped, exif) = WalkChunks(data, name);
        byte[]? copy = null;
        try
        {
            ReadOnlySpan<byte> input = data;
            if (dropped)
            {
                copy = ArrayPool<byte>.Shared.Rent(keptLength);
                input = copy.AsSpan(0, CopyKeptChunks(data, copy));
            }
            else input = data[..keptLength];
            Read(input, name, options, target);
        }
        finally
        {
            if (copy is not null) ArrayPool<byte>.Shared.Return(copy);
        }
        return exif;
    }

    private static void Read(ReadOnlySpan<byte> input, string name, DecodeOptions options, RgbImage target)
    {
        var api = LibPng.F;
        // libpng keeps pointers to both the png_image and the input between begin_read and finish_read: the struct is a
        // stack local (never moves) and the input stays pinned by the one fixed block around both calls.
        LibPng.PngImage img = default;
        img.Version = LibPng.IMAGE_VERSION;
        fixed (byte* src = input)
        {
            if (api.BeginReadFromMemory(&img, src, (nuint)input.Length) == 0)
            {
                string m = img.MessageText();
                api.Free(&img);
                throw new ImageDecodeException(name, $"corrupt PNG ({m})");
            }
            int w = (int)Math.Min(img.Width, int.MaxValue), h = (int)Math.Min(img.Height, int.MaxValue);
            try
            {
                ImageDecoder.CheckPixels(name, w, h, options, 8);
            }
            catch
            {
                api.Free(&img);
                throw;
            }
            uint source = img.Format;
            int mode; // 0: RGBA8 drop alpha, 1: 16-bit RGB high byte, 2: 16-bit gray high byte, 3: RGB8 straight into the target
            if ((source & LibPng.FORMAT_FLAG_LINEAR) != 0 && (source & LibPng.FORMAT_FLAG_ALPHA) == 0)
            {
                // Without gAMA/sRGB and without the 16BIT_sRGB flag libpng treats the samples as linear and converts
                // linear → linear: the raw 16-bit values (host byte order) come out unchanged.
                bool color = (source & LibPng.FORMAT_FLAG_COLOR) != 0;
                img.Format = color ? LibPng.FORMAT_LINEAR_RGB : LibPng.FORMAT_LINEAR_Y;
                mode = color ? 1 : 2;
            }
            else if ((source & LibPng.FORMAT_FLAG_ALPHA) == 0)
            {
                // 8-bit (or less) without alpha or tRNS: nothing to composite, RGB output is the stored colour.
                img.Format = LibPng.FORMAT_RGB;
                mode = 3;
            }
            else
            {
                // Alpha or tRNS: read RGBA (RGB output would composite) and drop the alpha like Pillow's convert("RGB").
                if ((source & LibPng.FORMAT_FLAG_LINEAR) != 0) img.Flags |= LibPng.IMAGE_FLAG_16BIT_sRGB;
                img.Format = LibPng.FORMAT_RGBA;
                mode = 0;
            }
            if (mode == 3)
            {
                target.Reset(w, h);
                int ok;
                fixed (byte* dst = target.Pixels)
                    ok = api.FinishRead(&img, null, dst, 0, null);
                if (ok == 0) throw new ImageDecodeException(name, $"corrupt PNG data ({img.MessageText()})");
                return;
            }
            int bytes = mode switch { 0 => 4, 1 => 6, _ => 2 } * w * h;
            byte[] pixels = ArrayPool<byte>.Shared.Rent(bytes);
            try
            {
                int ok;
                fixed (byte* dst = pixels)
                    ok = api.FinishRead(&img, null, dst, 0, null);
                if (ok == 0)
                    throw new ImageDecodeException(name, $"corrupt PNG data ({img.MessageText()})");
                target.Reset(w, h);
                var outSpan = target.Span;
                switch (mode)
                {
                    case 0: DropAlpha(pixels.AsSpan(0, bytes), outSpan); break;
                    case 1: HighBytes(MemoryMarshal.Cast<byte, ushort>(pixels.AsSpan(0, bytes)), outSpan); break;
                    default: GrayHighBytes(MemoryMarshal.Cast<byte, ushort>(pixels.AsSpan(0, bytes)), outSpan); break;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(pixels);
            }
        }
    }

    private static void DropAlpha(ReadOnlySpan<byte> rgba, Span<byte> rgb)
    {
        int n = rgb.Length / 3;
        for (int i = 0, s = 0, o = 0; i < n; i++, s += 4, o += 3)
        {
            rgb[o] = rgba[s];
            rgb[o + 1] = rgba[s + 1];
            rgb[o + 2] = rgba[s + 2];
        }
    }

    private static void HighBytes(ReadOnlySpan<ushort> rgb16, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(rgb16[i] >> 8);
    }

    // Pillow 9.4 opens 16-bit gray as mode "I" and convert("RGB") clips at 255 (nearly every pixel white); the high
    // byte is used here instead (documented difference).
    private static void GrayHighBytes(ReadOnlySpan<ushort> gray16, Span<byte> rgb)
    {
        for (int i = 0, o = 0; o < rgb.Length; i++, o += 3)
        {
            byte v = (byte)(gray16[i] >> 8);
            rgb[o] = v;
            rgb[o + 1] = v;
            rgb[o + 2] = v;
        }
    }

    /// <summary>
    /// Checks the chunk structure and every CRC. Returns the length up to and including IEND, whether a colour chunk
    /// (gAMA, cHRM, sRGB, iCCP) must be removed, and where the eXIf data is.
    /// </summary>
    internal static (int KeptLength, bool Dropped, (int Offset, int Length) Exif) WalkChunks(ReadOnlySpan<byte> data, string name)
    {
        int p = 8;
        bool dropped = false, sawIend = false;
        (int, int) exif = (0, 0);
        while (p < data.Length)
        {
            if (data.Length - p < 12)
                throw new ImageDecodeException(name, $"truncated PNG (incomplete chunk header at byte {p})");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[p..]);
            string type = ChunkType(data.Slice(p + 4, 4));
            if (length > int.MaxValue || length > (uint)(data.Length - p - 12))
                throw new ImageDecodeException(name, $"truncated PNG (chunk '{type}' at byte {p} needs {length} bytes, the file ends first)");
            int len = (int)length;
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(data[(p + 8 + len)..]);
            if (Crc32.Compute(data.Slice(p + 4, len + 4)) != stored)
                throw new ImageDecodeException(name, $"PNG {type} CRC error");
            if (type is "gAMA" or "cHRM" or "sRGB" or "iCCP") dropped = true;
            else if (type == "eXIf") exif = (p + 8, len);
            p += 12 + len;
            if (type == "IEND")
            {
                sawIend = true;
                break;
            }
        }
        if (!sawIend && p == 8) throw new ImageDecodeException(name, "truncated PNG (no chunks after the signature)");
        return (p, dropped, exif);
    }

    private static int CopyKeptChunks(ReadOnlySpan<byte> data, Span<byte> dst)
    {
        data[..8].CopyTo(dst);
        int p = 8, o = 8;
        while (p + 12 <= data.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(data[p..]);
            var t = data.Slice(p + 4, 4);
            bool drop = t.SequenceEqual("gAMA"u8) || t.SequenceEqual("cHRM"u8) || t.SequenceEqual("sRGB"u8) || t.SequenceEqual("iCCP"u8);
            if (!drop)
            {
                data.Slice(p, 12 + len).CopyTo(dst[o..]);
                o += 12 + len;
            }
            p += 12 + len;
            if (t.SequenceEqual("IEND"u8)) break;
        }
        return o;
    }

    private static string ChunkType(ReadOnlySpan<byte> t)
    {
        Span<char> c = stackalloc char[4];
        for (int i = 0; i < 4; i++) c[i] = t[i] is >= 0x20 and < 0x7F ? (char)t[i] : '?';
        return new string(c);
    }
}
