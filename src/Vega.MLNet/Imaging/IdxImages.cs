using System.Buffers.Binary;
using System.IO.Compression;

namespace Vega.MLNet.Imaging;

/// <summary>
/// An IDX file (the MNIST format: big-endian header <c>00 00 type ndims</c>, then one big-endian uint32 per dimension,
/// then the data, row-major), raw or gzip-compressed (detected from the bytes, not the name). Images must be
/// unsigned bytes with 3 dimensions [count, rows, cols]; they are served as grayscale replicated to RGB.
/// </summary>
internal sealed class IdxImages
{
    /// <summary>Fashion-MNIST's class names by label (from the dataset's README; not in any data file).</summary>
    public static readonly IReadOnlyList<string> FashionMnistClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    private readonly byte[] _data;
    private readonly int _offset;

    private IdxImages(string path, byte[] data, int offset, int count, int rows, int cols)
    {
        Path = path;
        _data = data;
        _offset = offset;
        Count = count;
        Rows = rows;
        Columns = cols;
    }

    public string Path { get; }
    public int Count { get; }
    public int Rows { get; }
    public int Columns { get; }

    /// <summary>The raw grayscale bytes of image <paramref name="index"/> (Rows × Columns).</summary>
    public ReadOnlySpan<byte> Gray(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        int n = Rows * Columns;
        return _data.AsSpan(_offset + index * n, n);
    }

    /// <summary>Image <paramref name="index"/> as RGB, reusing <paramref name="reuse"/> when given.</summary>
    public RgbImage Image(int index, RgbImage? reuse = null)
    {
        var gray = Gray(index);
        var image = reuse ?? new RgbImage();
        image.Reset(Columns, Rows);
        RgbImage.GrayToRgb(gray, image.Span);
        return image;
    }

    public static IdxImages Open(string path)
    {
        var (data, offset, dims) = ReadIdx(path);
        if (dims.Length != 3)
            throw new InvalidDataException($"IDX file '{path}' has {dims.Length} dimensions; an image file has 3 ([count, rows, cols]).");
        if (dims[1] == 0 || dims[2] == 0 || (long)dims[1] * dims[2] * 3 > RgbImage.MaxBytes)
            throw new InvalidDataException($"IDX file '{path}' declares images of {dims[2]} × {dims[1]} pixels, which is not a usable size.");
        return new IdxImages(path, data, offset, dims[0], dims[1], dims[2]);
    }

    /// <summary>Reads a 1-dimensional unsigned-byte IDX file (labels).</summary>
    public static byte[] ReadLabels(string path)
    {
        var (data, offset, dims) = ReadIdx(path);
        if (dims.Length != 1)
            throw new InvalidDataException($"IDX file '{path}' has {dims.Length} dimensions; a label file has 1 ([count]).");
        return data.AsSpan(offset, dims[0]).ToArray();
    }

    /// <summary>Reads an unsigned-byte IDX file: the whole (decompressed) content, where the data starts, and the dimensions.</summary>
    internal static (byte[] Data, int Offset, int[] Dims) ReadIdx(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"IDX file not found: '{path}'. Fashion-MNIST is in /usr/share/datasets/fashion-mnist after `bash scripts/setup.sh` (Debian package dataset-fashion-mnist).", path);
        byte[] data;
        FileStream opened;
        try
        {
            opened = Common.SafeFile.OpenStream(path);
        }
        catch (Common.SafeFile.RefusedException e)
        {
            throw new InvalidDataException($"The IDX file '{path}' cannot be read: {e.Reason}.", e);
        }
        using (var file = opened)
        {
            Span<byte> magic = stackalloc byte[2];
            int got = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            file.Position = 0;
            if (got == 2 && magic[0] == 0x1F && magic[1] == 0x8B)
            {
                using var gz = new GZipStream(file, CompressionMode.Decompress);
                using var ms = new MemoryStream();
                try { gz.CopyTo(ms); }
                catch (InvalidDataException e) { throw new InvalidDataException($"IDX file '{path}' is a damaged gzip stream: {e.Message}", e); }
                catch (IOException e) { throw new InvalidDataException($"IDX file '{path}' decompresses to more than an array can hold ({e.Message}).", e); }
                data = ms.ToArray();
            }
            else
            {
                data = new byte[file.Length];
                file.ReadExactly(data);
            }
        }
        if (data.Length < 4 || data[0] != 0 || data[1] != 0)
            throw new InvalidDataException($"'{path}' is not an IDX file (it must start with two zero bytes, a type byte and a dimension count).");
        if (data[2] != 0x08)
            throw new InvalidDataException($"IDX file '{path}' holds type 0x{data[2]:x2}; only unsigned bytes (0x08) are supported.");
        int nd = data[3];
        if (nd < 1 || data.Length < 4 + 4 * nd)
            throw new InvalidDataException($"IDX file '{path}' has a truncated header ({nd} dimensions declared).");
        var dims = new int[nd];
        long total = 1;
        for (int i = 0; i < nd; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4 + 4 * i));
            if (d > int.MaxValue) throw new InvalidDataException($"IDX file '{path}': dimension {i} is {d}, too large.");
            dims[i] = (int)d;
            total *= d;
        }
        int offset = 4 + 4 * nd;
        if (data.Length - offset < total)
            throw new InvalidDataException($"IDX file '{path}' is truncated: the header declares [{string.Join(", ", dims)}] = {total} bytes of data, the file holds {data.Length - offset}.");
        return (data, offset, dims);
    }
}
