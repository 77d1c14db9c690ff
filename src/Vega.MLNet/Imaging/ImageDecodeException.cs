namespace Vega.MLNet.Imaging;

/// <summary>
/// A file or buffer could not be decoded as an image. <see cref="Path"/> names the file (or the name given for a
/// buffer) and <see cref="Reason"/> says what is wrong with it, e.g. "truncated JPEG (premature end of data)".
/// </summary>
public sealed class ImageDecodeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ImageDecodeException(string path, string reason, Exception? inner = null)
        : base($"Cannot decode image '{path}': {reason}.", inner)
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>The file path, or the name given for an in-memory buffer.</summary>
    public string Path { get; }

    /// <summary>What is wrong, without the path (e.g. "empty file", "PNG IHDR CRC error").</summary>
    public string Reason { get; }
}

/// <summary>Options for <see cref="ImageDecoder"/>.</summary>
public sealed record DecodeOptions
{
    /// <summary>The defaults: EXIF orientation ignored, as the reference CLIP preprocessing does.</summary>
    public static DecodeOptions Default { get; } = new();

    /// <summary>
    /// Rotate/flip the decoded raster by the EXIF Orientation tag (JPEG APP1 Exif, PNG eXIf), as Pillow's
    /// <c>ImageOps.exif_transpose</c> would. Off by default: CLIP's reference preprocessing never applies it.
    /// </summary>
    public bool ApplyExifOrientation { get; init; }

    /// <summary>
    /// Images with more pixels are rejected before decoding (default 178,956,970, the size at which Pillow raises
    /// <c>DecompressionBombError</c>).
    /// </summary>
    public long MaxPixels { get; init; } = 178_956_970;

    /// <summary>
    /// Files larger than this many bytes are refused from their metadata, before anything is read (default 256 MiB).
    /// Only regular files are read at all (see docs/reliability.md).
    /// </summary>
    public long MaxFileBytes { get; init; } = DefaultMaxFileBytes;

    /// <summary>The default of <see cref="MaxFileBytes"/>: 256 MiB.</summary>
    public const long DefaultMaxFileBytes = 256L << 20;
}
