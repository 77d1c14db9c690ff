using System.Buffers;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Turns an <see cref="RgbImage"/> into a model input tensor (float32, CHW, <c>3 × ImageSize × ImageSize</c>) following
/// <see cref="PreprocessSettings"/>: Pillow-exact resize (only the pixels of the crop are computed), centre crop,
/// rescale and per-channel normalisation in float32 exactly as torchvision does (a 256-entry table per channel holds the
/// same float32 results). Thread-safe and allocation-free per call (scratch buffers are pooled).
/// </summary>
public sealed class ImagePreprocessor
{
    private readonly float[] _table; // [3 × 256]: normalised value of each byte per channel

    /// <summary>Creates a preprocessor; <paramref name="settings"/> defaults to <see cref="PreprocessSettings.Clip"/>.</summary>
    public ImagePreprocessor(PreprocessSettings? settings = null)
    {
        Settings = settings ?? PreprocessSettings.Clip;
        Settings.Validate();
        _table = BuildTable(Settings);
    }

    /// <summary>The settings in use.</summary>
    public PreprocessSettings Settings { get; }

    /// <summary>Number of floats written per image: 3 × ImageSize × ImageSize.</summary>
    public int OutputLength => 3 * Settings.ImageSize * Settings.ImageSize;

    /// <summary>Preprocesses <paramref name="image"/> into <paramref name="destinationChw"/> (exactly <see cref="OutputLength"/> floats, CHW).</summary>
    public void Process(RgbImage image, Span<float> destinationChw)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Width <= 0 || image.Height <= 0) throw new ArgumentException("The image is empty (0 × 0).", nameof(image));
        if (destinationChw.Length != OutputLength)
            throw new ArgumentException($"The destination must hold exactly 3 × {Settings.ImageSize} × {Settings.ImageSize} = {OutputLength} floats, got {destinationChw.Length}.", nameof(destinationChw));
        int s = Settings.ImageSize;
        byte[] cropped = ArrayPool<byte>.Shared.Rent(s * s * 3);
        try
        {
            ResizeAndCrop(image, cropped);
            Normalize(cropped.AsSpan(0, s * s * 3), destinationChw);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(cropped);
        }
    }

    /// <summary>Preprocesses <paramref name="image"/> into a new array of <see cref="OutputLength"/> floats (CHW).</summary>
    public float[] Process(RgbImage image)
    {
        var result = new float[OutputLength];
        Process(image, result);
        return result;
    }

    /// <summary>Longest resized side accepted (the resized image is never materialised, only its crop).</summary>
    internal const int MaxResizedSide = 1 << 28;

    /// <summary>Size after the resize step (before cropping) for an input of <paramref name="width"/> × <paramref name="height"/>.</summary>
    internal (int Width, int Height) ResizedSize(int width, int height)
    {
        if (Settings.ResizeMode == ResizeMode.Squash) return (Settings.ImageSize, Settings.ImageSize);
        long n = Settings.EffectiveShortestEdge;
        // torchvision: int(n * long / short); the integer quotient is the same number.
        long longSide = width <= height ? n * height / width : n * width / height;
        if (longSide > MaxResizedSide)
            throw new ArgumentException($"An image of {width} × {height} cannot be resized so that its shorter side is {n}: the longer side would be {longSide} pixels (aspect ratio too extreme, limit {MaxResizedSide}).");
        return width <= height ? ((int)n, (int)longSide) : ((int)longSide, (int)n);
    }

    /// <summary>Top-left corner of the crop inside an image resized to <paramref name="width"/> × <paramref name="height"/>.</summary>
    internal (int Left, int Top) CropOffset(int width, int height)
    {
        int s = Settings.ImageSize;
        return Settings.CropRounding == CropRounding.Floor
            ? ((width - s) / 2, (height - s) / 2)
            : ((int)Math.Round((width - s) / 2.0, MidpointRounding.ToEven), (int)Math.Round((height - s) / 2.0, MidpointRounding.ToEven));
    }

    /// <summary>Resize + crop: writes the ImageSize × ImageSize × 3 bytes (HWC) of the model input before scaling.</summary>
    internal void ResizeAndCrop(RgbImage image, Span<byte> croppedHwc)
    {
        int s = Settings.ImageSize;
        var (rw, rh) = ResizedSize(image.Width, image.Height);
        var (left, top) = CropOffset(rw, rh);
        Resampler.ResizeRegion(image.Span, image.Width, image.Height, rw, rh, left, top, s, s, croppedHwc, Settings.Resampling);
    }

    /// <summary>Scales and normalises HWC bytes into CHW floats.</summary>
    internal void Normalize(ReadOnlySpan<byte> hwc, Span<float> chw)
    {
        int plane = hwc.Length / 3;
        var r = chw[..plane];
        var g = chw.Slice(plane, plane);
        var b = chw.Slice(2 * plane, plane);
        ReadOnlySpan<float> tr = _table.AsSpan(0, 256), tg = _table.AsSpan(256, 256), tb = _table.AsSpan(512, 256);
        for (int i = 0, j = 0; i < plane; i++, j += 3)
        {
            r[i] = tr[hwc[j]];
            g[i] = tg[hwc[j + 1]];
            b[i] = tb[hwc[j + 2]];
        }
    }

    /// <summary>The normalised value of every byte per channel, [3 × 256] (R then G then B), in float32 as torchvision computes it.</summary>
    internal static float[] BuildTable(PreprocessSettings settings)
    {
        var table = new float[3 * 256];
        bool division = settings.RescaleFactor == 1.0 / 255;
        for (int c = 0; c < 3; c++)
        {
            float mean = settings.Mean[c], std = settings.Std[c];
            for (int v = 0; v < 256; v++)
            {
                float x = division ? v / 255f : (float)(v * settings.RescaleFactor);
                table[c * 256 + v] = (x - mean) / std;
            }
        }
        return table;
    }
}
