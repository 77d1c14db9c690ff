using System.Buffers;
using System.Runtime.InteropServices;

namespace Vega.MLNet.Imaging;

/// <summary>
/// JPEG decoding through TurboJPEG with the settings that reproduce Pillow 9.4 (libjpeg-turbo defaults: ISLOW IDCT,
/// fancy upsampling). Gray is replicated by TurboJPEG itself; CMYK/YCCK is decoded as stored (Adobe-inverted) CMYK and
/// converted with Pillow's integer formula. A truncated stream and fatal errors are rejected; other libjpeg warnings
/// (e.g. extraneous bytes before a marker) are accepted, as Pillow accepts them.
/// </summary>
internal static unsafe class JpegCodec
{
    public static void Decode(ReadOnlySpan<byte> data, string name, DecodeOptions options, RgbImage target)
    {
        var api = TurboJpeg.F;
        IntPtr h = TurboJpeg.RentHandle();
        bool healthy = false;
        try
        {
            fixed (byte* src = data)
            {
                var size = new CULong((nuint)data.Length);
                int w, hgt, subsamp, cs;
                if (api.DecompressHeader3(h, src, size, &w, &hgt, &subsamp, &cs) != 0 && api.GetErrorCode(h) == TurboJpeg.ERR_FATAL)
                    throw new ImageDecodeException(name, $"invalid JPEG header ({Clean(TurboJpeg.ErrorString(h))})");
                ImageDecoder.CheckPixels(name, w, hgt, options, 3);
                if (cs is TurboJpeg.CS_CMYK or TurboJpeg.CS_YCCK)
                {
                    long n = (long)w * hgt * 4;
                    if (n > Array.MaxLength) throw new ImageDecodeException(name, $"image too large ({w} × {hgt} CMYK)");
                    byte[] cmyk = ArrayPool<byte>.Shared.Rent((int)n);
                    try
                    {
                        fixed (byte* dst = cmyk)
                            Check(api.Decompress2(h, src, size, dst, w, 0, hgt, TurboJpeg.PF_CMYK, TurboJpeg.FLAG_ACCURATEDCT), h, name);
                        target.Reset(w, hgt);
                        InvertedCmykToRgb(cmyk.AsSpan(0, (int)n), target.Span);
                    }
                    finally { ArrayPool<byte>.Shared.Return(cmyk); }
                }
                else
                {
                    target.Reset(w, hgt);
                    fixed (byte* dst = target.Pixels)
                        Check(api.Decompress2(h, src, size, dst, w, 0, hgt, TurboJpeg.PF_RGB, TurboJpeg.FLAG_ACCURATEDCT), h, name);
                }
            }
            healthy = true;
        }
        finally
        {
            // A handle that saw an error is destroyed rather than reused.
            if (healthy) TurboJpeg.ReturnHandle(h);
            else api.Destroy(h);
        }
    }

    private static void Check(int rc, IntPtr h, string name)
    {
        if (rc == 0) return;
        var api = TurboJpeg.F;
        string message = Clean(TurboJpeg.ErrorString(h));
        if (api.GetErrorCode(h) == TurboJpeg.ERR_FATAL)
            throw new ImageDecodeException(name, $"corrupt JPEG ({message})");
        if (message.StartsWith("Premature end of JPEG file", StringComparison.Ordinal))
            throw new ImageDecodeException(name, "truncated JPEG (premature end of data)");
        // Any other warning: the image is complete and Pillow accepts it too.
    }

    private static string Clean(string message) => message.Trim().TrimEnd('.');

    /// <summary>
    /// Pillow's CMYK→RGB for a JPEG that stores Adobe-inverted CMYK: un-invert (c = 255 − C, …, k = 255 − K), then
    /// <c>nk = 255 − k</c> (the stored K byte) and for each of c, m, y: <c>t = x·nk + 128; clamp(nk − (((t &gt;&gt; 8) + t) &gt;&gt; 8))</c>.
    /// </summary>
    internal static void InvertedCmykToRgb(ReadOnlySpan<byte> cmyk, Span<byte> rgb)
    {
        for (int i = 0, o = 0; i + 3 < cmyk.Length; i += 4, o += 3)
        {
            int nk = cmyk[i + 3];
            rgb[o] = MulDiv(255 - cmyk[i], nk);
            rgb[o + 1] = MulDiv(255 - cmyk[i + 1], nk);
            rgb[o + 2] = MulDiv(255 - cmyk[i + 2], nk);
        }

        static byte MulDiv(int x, int nk)
        {
            int t = x * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            return (byte)Math.Clamp(v, 0, 255);
        }
    }
}
