using System.Buffers.Binary;

namespace Vega.MLNet.Common;

/// <summary>
/// CRC-32 as zip, gzip and PNG define it (ISO 3309 / IEEE 802.3, reflected polynomial 0xEDB88320), eight bytes per
/// step ("slicing by 8"). Used for PNG chunks (read and write) and the embedding cache's records.
/// </summary>
internal static class Crc32
{
    private static readonly uint[] Table = MakeTable();

    /// <summary>The CRC-32 of <paramref name="bytes"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> bytes) => Finish(Append(Start, bytes));

    /// <summary>The running state before any byte.</summary>
    public const uint Start = 0xFFFFFFFFu;

    /// <summary>The final value of a running state.</summary>
    public static uint Finish(uint state) => state ^ 0xFFFFFFFFu;

    /// <summary>Feeds <paramref name="bytes"/> into a running state.</summary>
    public static uint Append(uint state, ReadOnlySpan<byte> bytes)
    {
        uint c = state;
        var t = Table;
        while (bytes.Length >= 8)
        {
            uint one = BinaryPrimitives.ReadUInt32LittleEndian(bytes) ^ c;
            uint two = BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]);
            c = t[0x700 + (one & 0xFF)] ^ t[0x600 + ((one >> 8) & 0xFF)] ^ t[0x500 + ((one >> 16) & 0xFF)] ^ t[0x400 + (one >> 24)]
              ^ t[0x300 + (two & 0xFF)] ^ t[0x200 + ((two >> 8) & 0xFF)] ^ t[0x100 + ((two >> 16) & 0xFF)] ^ t[two >> 24];
            bytes = bytes[8..];
        }
        foreach (byte b in bytes) c = t[(c ^ b) & 0xFF] ^ (c >> 8);
        return c;
    }

    private static uint[] MakeTable()
    {
        // Table k holds the CRC contribution of a byte followed by k zero bytes.
        var t = new uint[8 * 256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        for (int k = 1; k < 8; k++)
            for (int n = 0; n < 256; n++)
            {
                uint prev = t[(k - 1) * 256 + n];
                t[k * 256 + n] = (prev >> 8) ^ t[prev & 0xFF];
            }
        return t;
    }
}
