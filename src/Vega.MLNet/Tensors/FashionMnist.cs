using System.Buffers.Binary;
using System.IO.Compression;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Minimal reader for the gzip-compressed IDX files of Fashion-MNIST as installed by Debian's
/// <c>dataset-fashion-mnist</c> (/usr/share/datasets/fashion-mnist). Internal: used by tests and benchmarks of the
/// tensor core. IDX: big-endian magic (0x0000 08 nd: unsigned bytes, nd dimensions), nd big-endian u32 sizes, data.
/// </summary>
internal static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    public static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Images as bytes (N × 28 × 28, row-major) and labels (0..9).</summary>
    public sealed record Split(byte[] Pixels, byte[] Labels, int Count, int Rows, int Cols);

    /// <summary>Loads the training (60000) or test (10000) split.</summary>
    public static Split Load(bool train, string directory = DefaultDirectory)
    {
        string prefix = train ? "train" : "t10k";
        string images = Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz");
        string labels = Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz");
        foreach (var f in new[] { images, labels })
            if (!File.Exists(f))
                throw new FileNotFoundException($"Fashion-MNIST file '{f}' is missing. Install Debian's dataset-fashion-mnist (bash scripts/setup.sh does).", f);
        var (img, imgDims) = ReadIdx(images);
        var (lab, labDims) = ReadIdx(labels);
        if (imgDims.Length != 3 || labDims.Length != 1 || imgDims[0] != labDims[0])
            throw new InvalidDataException($"Fashion-MNIST: '{images}' has dims [{string.Join(", ", imgDims)}] and '{labels}' [{string.Join(", ", labDims)}]; expected [N, rows, cols] and [N].");
        return new Split(img, lab, imgDims[0], imgDims[1], imgDims[2]);
    }

    /// <summary>Reads a gzip-compressed (or plain) IDX file of unsigned bytes: (data, dimensions).</summary>
    public static (byte[] Data, int[] Dims) ReadIdx(string path)
    {
        using var file = File.OpenRead(path);
        Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using (s)
        {
            Span<byte> head = stackalloc byte[4];
            s.ReadExactly(head);
            if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
                throw new InvalidDataException($"'{path}' is not an IDX file of unsigned bytes (magic {head[0]:X2} {head[1]:X2} {head[2]:X2} {head[3]:X2}, expected 00 00 08 nd).");
            int nd = head[3];
            if (nd is < 1 or > 4) throw new InvalidDataException($"'{path}': IDX with {nd} dimensions is not supported.");
            var dims = new int[nd];
            long total = 1;
            Span<byte> b4 = stackalloc byte[4];
            for (int i = 0; i < nd; i++)
            {
                s.ReadExactly(b4);
                uint d = BinaryPrimitives.ReadUInt32BigEndian(b4);
                if (d > int.MaxValue) throw new InvalidDataException($"'{path}': dimension {i} is {d}.");
                dims[i] = (int)d;
                total *= d;
            }
            if (total > Array.MaxLength) throw new InvalidDataException($"'{path}' declares {total} values.");
            var data = new byte[total];
            try
            {
                s.ReadExactly(data);
            }
            catch (EndOfStreamException e)
            {
                throw new InvalidDataException($"'{path}' is truncated: it declares {total} values.", e);
            }
            return (data, dims);
        }
    }

    /// <summary>Images [count, 784] scaled to [0, 1] (x/255), from <paramref name="start"/>.</summary>
    public static Tensor ImagesAsTensor(Split split, int start, int count)
    {
        int d = split.Rows * split.Cols;
        var t = Tensor.Empty(count, d);
        var dst = t.Span;
        var src = split.Pixels.AsSpan(start * d, count * d);
        for (int i = 0; i < src.Length; i++) dst[i] = src[i] * (1f / 255f);
        return t;
    }
}
