using System.Buffers;
using System.Buffers.Binary;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Reads the EXIF Orientation tag (0x0112 in IFD0) from a JPEG APP1 "Exif" segment or a PNG eXIf chunk, and applies it
/// to a raster the way Pillow's <c>ImageOps.exif_transpose</c> does (2 mirror, 3 rotate 180°, 4 flip, 5 transpose,
/// 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise).
/// </summary>
internal static class ExifOrientation
{
    /// <summary>The orientation of a JPEG stream (1 when absent or unreadable).</summary>
    public static int FromJpeg(ReadOnlySpan<byte> jpeg)
    {
        int p = 2;
        while (p + 4 <= jpeg.Length)
        {
            if (jpeg[p] != 0xFF) return 1;
            byte marker = jpeg[p + 1];
            if (marker == 0xFF) { p++; continue; } // fill byte
            if (marker is 0xD9 or 0xDA) return 1; // EOI, SOS: no more headers
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) { p += 2; continue; } // no length
            int len = BinaryPrimitives.ReadUInt16BigEndian(jpeg[(p + 2)..]);
            if (len < 2 || p + 2 + len > jpeg.Length) return 1;
            var segment = jpeg.Slice(p + 4, len - 2);
            if (marker == 0xE1 && segment.Length >= 6 && segment[..6].SequenceEqual("Exif\0\0"u8))
                return FromTiff(segment[6..]);
            p += 2 + len;
        }
        return 1;
    }

    /// <summary>The orientation in a TIFF-structured EXIF block (1 when absent or unreadable).</summary>
    public static int FromTiff(ReadOnlySpan<byte> tiff)
    {
        if (tiff.Length < 8) return 1;
        bool little;
        if (tiff[0] == 'I' && tiff[1] == 'I') little = true;
        else if (tiff[0] == 'M' && tiff[1] == 'M') little = false;
        else return 1;
        if (U16(tiff[2..], little) != 42) return 1;
        uint ifd = U32(tiff[4..], little);
        if (ifd > (uint)tiff.Length - 2) return 1;
        int count = U16(tiff[(int)ifd..], little);
        for (int i = 0; i < count; i++)
        {
            long e = ifd + 2 + 12L * i;
            if (e + 12 > tiff.Length) return 1;
            var entry = tiff.Slice((int)e, 12);
            if (U16(entry, little) != 0x0112) continue;
            int type = U16(entry[2..], little);
            if (U32(entry[4..], little) < 1) return 1;
            int value = type switch
            {
                3 => U16(entry[8..], little),                 // SHORT (the standard type)
                4 => (int)Math.Min(U32(entry[8..], little), 9), // LONG (seen in the wild)
                _ => 1,
            };
            return value is >= 1 and <= 8 ? value : 1;
        }
        return 1;

        static int U16(ReadOnlySpan<byte> b, bool le) => le ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);
        static uint U32(ReadOnlySpan<byte> b, bool le) => le ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);
    }

    /// <summary>Rotates/flips <paramref name="image"/> in place (its size swaps for orientations 5–8).</summary>
    public static void Apply(RgbImage image, int orientation)
    {
        if (orientation is < 2 or > 8) return;
        int w = image.Width, h = image.Height, n = image.ByteCount;
        // Source coordinates of output pixel (x, y): sx = ax·x + bx·y + cx, sy = ay·x + by·y + cy.
        (int ax, int bx, int cx, int ay, int by, int cy) = orientation switch
        {
            2 => (-1, 0, w - 1, 0, 1, 0),          // mirror left-right
            3 => (-1, 0, w - 1, 0, -1, h - 1),     // rotate 180°
            4 => (1, 0, 0, 0, -1, h - 1),          // flip top-bottom
            5 => (0, 1, 0, 1, 0, 0),               // transpose
            6 => (0, 1, 0, -1, 0, h - 1),          // rotate 90° clockwise
            7 => (0, -1, w - 1, -1, 0, h - 1),     // transverse
            _ => (0, -1, w - 1, 1, 0, 0),          // 8: rotate 90° counter-clockwise
        };
        byte[] source = ArrayPool<byte>.Shared.Rent(n);
        try
        {
            image.Span.CopyTo(source);
            bool swap = orientation >= 5;
            int ow = swap ? h : w, oh = swap ? w : h;
            image.Reset(ow, oh);
            var dst = image.Span;
            int o = 0;
            for (int y = 0; y < oh; y++)
            {
                int sx = bx * y + cx, sy = by * y + cy;
                for (int x = 0; x < ow; x++, o += 3, sx += ax, sy += ay)
                {
                    int s = (sy * w + sx) * 3;
                    dst[o] = source[s];
                    dst[o + 1] = source[s + 1];
                    dst[o + 2] = source[s + 2];
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(source);
        }
    }
}
