using System.IO.Compression;
using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

public sealed class IdxImagesTests
{
    private const string FashionDir = "/usr/share/datasets/fashion-mnist";

    private static string Fashion(string file)
    {
        string p = Path.Combine(FashionDir, file);
        if (!File.Exists(p))
            throw new InvalidOperationException($"Fashion-MNIST is missing at {p}: run `bash scripts/setup.sh` (Debian package dataset-fashion-mnist).");
        return p;
    }

    [Fact]
    public void FashionMnistTestSetHasItsCountsLabelsAndPixels()
    {
        var source = ImageSource.FromIdx(Fashion("t10k-images-idx3-ubyte.gz"), Fashion("t10k-labels-idx1-ubyte.gz"));
        Assert.Equal(10000, source.Count);
        Assert.Equal(["9", "2", "1", "1", "6", "1", "4", "6", "5", "7"], source.Items.Take(10).Select(i => i.Label));
        Assert.Equal("idx:t10k-images-idx3-ubyte.gz#17", source.Items[17].Id);
        Assert.All(source.Items.GroupBy(i => i.Label), g => Assert.Equal(1000, g.Count()));

        // Image 1234 against a reading of the file that does not use the library: gunzip, skip the 16-byte header.
        using var gz = new GZipStream(File.OpenRead(Fashion("t10k-images-idx3-ubyte.gz")), CompressionMode.Decompress);
        var all = new MemoryStream();
        gz.CopyTo(all);
        var raw = all.ToArray().AsSpan(16 + 1234 * 784, 784).ToArray();
        Assert.True(source.TryLoad(source.Items[1234], out var image));
        Assert.Equal((28, 28), (image.Width, image.Height));
        Assert.Equal(raw.SelectMany(v => new[] { v, v, v }).ToArray(), image.Span.ToArray());
        Assert.Contains(raw, v => v > 0); // not a blank image
    }

    [Fact]
    public void FashionMnistTrainingSetHasSixtyThousandBalancedLabelsWithClassNames()
    {
        var source = ImageSource.FromIdx(Fashion("train-images-idx3-ubyte.gz"), Fashion("train-labels-idx1-ubyte.gz"), ImageSource.FashionMnistClassNames);
        Assert.Equal(60000, source.Count);
        Assert.Equal(10, source.Items.Select(i => i.Label).Distinct().Count());
        Assert.All(source.Items.GroupBy(i => i.Label), g => Assert.Equal(6000, g.Count()));
        Assert.Contains(source.Items, i => i.Label == "Ankle boot");
        var labels = IdxImages.ReadLabels(Fashion("train-labels-idx1-ubyte.gz"));
        Assert.Equal(ImageSource.FashionMnistClassNames[labels[59999]], source.Items[59999].Label);
    }

    [Fact]
    public void RawIdxFilesAreReadAndBadOnesAreClearErrors()
    {
        string dir = Fixtures.TempDir();
        // 2 images of 3 rows × 2 columns, uncompressed.
        byte[] pixels = [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60];
        string images = Path.Combine(dir, "img.idx");
        File.WriteAllBytes(images, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2, .. pixels]);
        string labels = Path.Combine(dir, "lab.idx");
        File.WriteAllBytes(labels, [0, 0, 8, 1, 0, 0, 0, 2, 7, 3]);
        var source = ImageSource.FromIdx(images, labels);
        Assert.Equal(["7", "3"], source.Items.Select(i => i.Label));
        var image = source.Load(source.Items[1]);
        Assert.Equal((2, 3), (image.Width, image.Height));
        Assert.Equal(new byte[] { 10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40, 50, 50, 50, 60, 60, 60 }, image.Span.ToArray());

        string shortLabels = Path.Combine(dir, "short.idx");
        File.WriteAllBytes(shortLabels, [0, 0, 8, 1, 0, 0, 0, 1, 7]);
        var e = Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(images, shortLabels));
        Assert.Contains("has 1 labels but", e.Message);

        string truncated = Path.Combine(dir, "trunc.idx");
        File.WriteAllBytes(truncated, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2, 1, 2, 3]);
        e = Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(truncated));
        Assert.Contains("is truncated", e.Message);
        Assert.Contains("trunc.idx", e.Message);

        string floats = Path.Combine(dir, "float.idx");
        File.WriteAllBytes(floats, [0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        e = Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(floats));
        Assert.Contains("only unsigned bytes", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(labels));
        Assert.Contains("an image file has 3", e.Message);

        string notIdx = Path.Combine(dir, "text.idx");
        File.WriteAllText(notIdx, "hello world");
        Assert.Contains("not an IDX file", Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(notIdx)).Message);

        var missing = Assert.Throws<FileNotFoundException>(() => ImageSource.FromIdx(Path.Combine(dir, "none.gz")));
        Assert.Contains("bash scripts/setup.sh", missing.Message);
    }
}
