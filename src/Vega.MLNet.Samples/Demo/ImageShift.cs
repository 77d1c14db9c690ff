namespace Vega.MLNet.Samples.Demo;

/// <summary>Distribution shifts the demo can apply to its downstream images (docs/demo.md).</summary>
internal enum ImageShiftKind
{
    /// <summary>Rotation by a fixed angle about the centre (bilinear, black outside).</summary>
    Rotate,

    /// <summary>Lower contrast on a brighter background: v' = round(64 + v/2).</summary>
    LowContrast,

    /// <summary>Gaussian blur with σ = 1 (5-tap separable kernel, integer arithmetic).</summary>
    Blur,

    /// <summary>Translation by 3 pixels right and 2 down (black fill).</summary>
    Translate,

    /// <summary>Inverted gray values (255 − v).</summary>
    Invert,
}

/// <summary>
/// Deterministic byte-level shifts of 28 × 28 (any size) gray images, for the demo's shifted downstream set. All
/// arithmetic is integer or double with explicit rounding, so the shifted images are the same on every machine.
/// </summary>
internal static class ImageShift
{
    /// <summary>Rotation angle of <see cref="ImageShiftKind.Rotate"/>, in degrees (counter-clockwise).</summary>
    public const double RotationDegrees = 20;

    public static string Describe(ImageShiftKind kind) => kind switch
    {
        ImageShiftKind.Rotate => $"rotated by {RotationDegrees:0}° (bilinear, black corners)",
        ImageShiftKind.LowContrast => "low contrast on a gray background (v' = 64 + v/2)",
        ImageShiftKind.Blur => "Gaussian blur (σ = 1)",
        ImageShiftKind.Translate => "translated 3 px right and 2 px down",
        ImageShiftKind.Invert => "inverted (255 − v)",
        _ => kind.ToString(),
    };

    public static ImageShiftKind Parse(string s) => s.Trim().ToLowerInvariant() switch
    {
        "rotate" or "rotation" => ImageShiftKind.Rotate,
        "low-contrast" or "contrast" => ImageShiftKind.LowContrast,
        "blur" => ImageShiftKind.Blur,
        "translate" or "shift" => ImageShiftKind.Translate,
        "invert" => ImageShiftKind.Invert,
        _ => throw new ArgumentException($"Unknown shift '{s}'; use rotate, low-contrast, blur, translate or invert."),
    };

    /// <summary>Writes the shifted version of <paramref name="src"/> (width × height gray bytes) into <paramref name="dst"/>.</summary>
    public static void Apply(ImageShiftKind kind, ReadOnlySpan<byte> src, Span<byte> dst, int width, int height)
    {
        if (src.Length != width * height || dst.Length != width * height)
            throw new ArgumentException($"A {width} × {height} gray image has {width * height} bytes.");
        switch (kind)
        {
            case ImageShiftKind.LowContrast:
                for (int i = 0; i < src.Length; i++) dst[i] = (byte)(64 + (src[i] + 1) / 2);
                break;
            case ImageShiftKind.Invert:
                for (int i = 0; i < src.Length; i++) dst[i] = (byte)(255 - src[i]);
                break;
            case ImageShiftKind.Translate:
                dst.Clear();
                for (int y = 2; y < height; y++)
                    src.Slice((y - 2) * width, width - 3).CopyTo(dst.Slice(y * width + 3, width - 3));
                break;
            case ImageShiftKind.Blur:
                Blur(src, dst, width, height);
                break;
            case ImageShiftKind.Rotate:
                Rotate(src, dst, width, height, RotationDegrees);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown shift.");
        }
    }

    // Binomial 5-tap kernel [1 4 6 4 1]/16 (≈ Gaussian σ = 1), clamped borders, rounded once at the end.
    private static void Blur(ReadOnlySpan<byte> src, Span<byte> dst, int w, int h)
    {
        ReadOnlySpan<int> k = [1, 4, 6, 4, 1];
        var tmp = new int[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int s = 0;
                for (int t = -2; t <= 2; t++) s += k[t + 2] * src[y * w + Math.Clamp(x + t, 0, w - 1)];
                tmp[y * w + x] = s;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int s = 0;
                for (int t = -2; t <= 2; t++) s += k[t + 2] * tmp[Math.Clamp(y + t, 0, h - 1) * w + x];
                dst[y * w + x] = (byte)((s + 128) / 256);
            }
    }

    internal static void Rotate(ReadOnlySpan<byte> src, Span<byte> dst, int w, int h, double degrees)
    {
        double a = degrees * Math.PI / 180, cos = Math.Cos(a), sin = Math.Sin(a);
        double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                // Inverse mapping: the source point that lands on (x, y).
                double dx = x - cx, dy = y - cy;
                double sx = cos * dx - sin * dy + cx, sy = sin * dx + cos * dy + cy;
                int x0 = (int)Math.Floor(sx), y0 = (int)Math.Floor(sy);
                double fx = sx - x0, fy = sy - y0;
                double v = 0;
                for (int j = 0; j <= 1; j++)
                    for (int i = 0; i <= 1; i++)
                    {
                        int xx = x0 + i, yy = y0 + j;
                        if ((uint)xx >= (uint)w || (uint)yy >= (uint)h) continue;
                        v += (i == 0 ? 1 - fx : fx) * (j == 0 ? 1 - fy : fy) * src[yy * w + xx];
                    }
                dst[y * w + x] = (byte)Math.Clamp((int)Math.Round(v, MidpointRounding.AwayFromZero), 0, 255);
            }
    }
}
