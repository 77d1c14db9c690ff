using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Vega.MLNet.Tests.Imaging;

/// <summary>Helpers written for the tests: a minimal PNG writer, raster transforms, file patching.</summary>
internal static class TestImages
{
    /// <summary>
    /// Writes a non-interlaced PNG: IHDR, the extra chunks, one IDAT (filter 0 on every row), IEND. <paramref name="rows"/>
    /// holds the packed scanlines without filter bytes (16-bit samples big-endian).
    /// </summary>
    public static byte[] Png(int width, int height, int colorType, int bitDepth, byte[] rows, params (string Type, byte[] Data)[] extra)
    {
        int rowBytes = rows.Length / height;
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            raw.Write(rows, y * rowBytes, rowBytes);
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw.ToArray());
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        var file = new MemoryStream();
        file.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(file, "IHDR", ihdr);
        foreach (var (type, data) in extra) Chunk(file, type, data);
        Chunk(file, "IDAT", z.ToArray());
        Chunk(file, "IEND", []);
        return file.ToArray();
    }

    public static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> b4 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b4, data.Length);
        s.Write(b4);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(b4, BitwiseCrc32(typeAndData));
        s.Write(b4);
    }

    /// <summary>CRC-32 (PNG/zlib), bit by bit: independent of the library's table implementation.</summary>
    public static uint BitwiseCrc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320 & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    /// <summary>Inserts a chunk right after IHDR (offset 33) of an existing PNG.</summary>
    public static byte[] InsertAfterIhdr(byte[] png, string type, byte[] data)
    {
        var s = new MemoryStream();
        s.Write(png, 0, 33);
        Chunk(s, type, data);
        s.Write(png, 33, png.Length - 33);
        return s.ToArray();
    }

    // ---- raster transforms written by iterating over source pixels (the library iterates over output pixels)

    /// <summary>Rotation by 90° clockwise: source pixel (x, y) lands at (H−1−y, x).</summary>
    public static (byte[] Pixels, int W, int H) Rotate90Clockwise(byte[] src, int w, int h)
    {
        var dst = new byte[src.Length];
        int ow = h;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int ox = h - 1 - y, oy = x;
                Array.Copy(src, (y * w + x) * 3, dst, (oy * ow + ox) * 3, 3);
            }
        return (dst, h, w);
    }

    /// <summary>Left-right mirror.</summary>
    public static (byte[] Pixels, int W, int H) Mirror(byte[] src, int w, int h)
    {
        var dst = new byte[src.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                Array.Copy(src, (y * w + x) * 3, dst, (y * w + (w - 1 - x)) * 3, 3);
        return (dst, w, h);
    }

    /// <summary>The display raster of EXIF orientation <paramref name="o"/>, composed from mirror and 90° rotations (EXIF 2.3 table).</summary>
    public static (byte[] Pixels, int W, int H) Orient(byte[] src, int w, int h, int o)
    {
        var img = (src, w, h);
        (byte[], int, int) Rot((byte[] p, int w, int h) i, int times)
        {
            for (int t = 0; t < times; t++) i = Rotate90Clockwise(i.p, i.w, i.h);
            return i;
        }
        return o switch
        {
            1 => img,
            2 => Mirror(src, w, h),
            3 => Rot(img, 2),
            4 => Rot(Mirror(src, w, h), 2),      // vertical flip = mirror, then 180°
            5 => Rot(Mirror(src, w, h), 3),      // transpose
            6 => Rot(img, 1),
            7 => Rot(Mirror(src, w, h), 1),      // transverse
            8 => Rot(img, 3),
            _ => throw new ArgumentOutOfRangeException(nameof(o)),
        };
    }

    public static byte[] Random(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }
}
