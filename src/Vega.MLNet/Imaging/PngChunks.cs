using System.Buffers.Binary;
using Vega.MLNet.Common;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Checks a PNG's chunk structure before it is decoded: every chunk complete and every CRC correct (Pillow 9.4 rejects a
/// file with any bad chunk CRC, while libpng inside the decoder would only warn about ancillary chunks), and finds the
/// eXIf chunk for the EXIF orientation option.
/// </summary>
internal static class PngChunks
{
    /// <summary>Checks the chunk structure and every CRC; returns where the eXIf data is ((0, 0) when absent).</summary>
    internal static (int Offset, int Length) Check(ReadOnlySpan<byte> data, string name)
    {
        int p = 8;
        bool sawIend = false;
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
            if (type == "eXIf") exif = (p + 8, len);
            p += 12 + len;
            if (type == "IEND")
            {
                sawIend = true;
                break;
            }
        }
        if (!sawIend && p == 8) throw new ImageDecodeException(name, "truncated PNG (no chunks after the signature)");
        return exif;
    }

    private static string ChunkType(ReadOnlySpan<byte> t)
    {
        Span<char> c = stackalloc char[4];
        for (int i = 0; i < 4; i++) c[i] = t[i] is >= 0x20 and < 0x7F ? (char)t[i] : '?';
        return new string(c);
    }
}
