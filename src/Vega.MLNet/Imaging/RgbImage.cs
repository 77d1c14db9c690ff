namespace Vega.MLNet.Imaging;

/// <summary>
/// An 8-bit RGB raster, HWC (row by row, pixels left to right, R, G, B interleaved), as Pillow's
/// <c>convert("RGB")</c> produces it. An instance can be reused as a decode buffer (pass it as <c>reuse</c> to
/// <see cref="ImageDecoder"/> or <see cref="ImageSource.TryLoad"/>): its array then only grows, so
/// <see cref="Pixels"/> may be longer than the image; <see cref="Span"/> is exactly the image.
/// </summary>
internal sealed class RgbImage
{
    /// <summary>Creates an empty (0 × 0) image, meant to be passed as a reusable decode buffer.</summary>
    public RgbImage() => Pixels = [];

    /// <summary>Creates a black image of the given size.</summary>
    public RgbImage(int width, int height)
    {
        Pixels = [];
        Reset(width, height);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; private set; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; private set; }

    /// <summary>
    /// The pixel bytes, HWC RGB. The first <see cref="ByteCount"/> bytes are the image; the array is longer only when the
    /// image is a reused buffer that once held a larger image.
    /// </summary>
    public byte[] Pixels { get; private set; }

    /// <summary>Width × Height × 3.</summary>
    public int ByteCount => Width * Height * 3;

    /// <summary>Exactly the image's bytes (HWC RGB).</summary>
    public Span<byte> Span => Pixels.AsSpan(0, ByteCount);

    /// <summary>Copies an HWC RGB buffer of exactly <paramref name="width"/> × <paramref name="height"/> × 3 bytes.</summary>
    public static RgbImage FromRgb(ReadOnlySpan<byte> rgb, int width, int height)
    {
        CheckSize(width, height, nameof(width));
        long need = (long)width * height * 3;
        if (rgb.Length != need)
            throw new ArgumentException($"An RGB image of {width} × {height} needs {need} bytes (HWC, R,G,B interleaved), got {rgb.Length}.", nameof(rgb));
        var image = new RgbImage(width, height);
        rgb.CopyTo(image.Pixels);
        return image;
    }

    /// <summary>Copies a grayscale buffer (one byte per pixel, row by row), replicating each value into R, G and B.</summary>
    public static RgbImage FromGray(ReadOnlySpan<byte> gray, int width, int height)
    {
        CheckSize(width, height, nameof(width));
        long need = (long)width * height;
        if (gray.Length != need)
            throw new ArgumentException($"A grayscale image of {width} × {height} needs {need} bytes (one per pixel), got {gray.Length}.", nameof(gray));
        var image = new RgbImage(width, height);
        GrayToRgb(gray, image.Pixels);
        return image;
    }

    /// <summary>Sets the size, growing the array if needed; the content is unspecified afterwards.</summary>
    internal void Reset(int width, int height)
    {
        CheckSize(width, height, nameof(width));
        int need = width * height * 3;
        if (Pixels.Length < need) Pixels = GC.AllocateUninitializedArray<byte>(need);
        Width = width;
        Height = height;
    }

    /// <summary>Largest supported image: the byte count must fit an array.</summary>
    internal const long MaxBytes = int.MaxValue - 64;

    private static void CheckSize(int width, int height, string param)
    {
        if (width <= 0 || height <= 0 || (long)width * height * 3 > MaxBytes)
            throw new ArgumentOutOfRangeException(param, $"Image size {width} × {height} is not supported (both sides must be positive and width × height × 3 at most {MaxBytes}).");
    }

    internal static void GrayToRgb(ReadOnlySpan<byte> gray, Span<byte> rgb)
    {
        for (int i = 0, o = 0; i < gray.Length; i++, o += 3)
        {
            byte v = gray[i];
            rgb[o] = v;
            rgb[o + 1] = v;
            rgb[o + 2] = v;
        }
    }
}
