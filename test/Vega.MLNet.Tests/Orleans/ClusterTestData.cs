using Vega.MLNet.Imaging;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Tests.Demo;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Orleans;

/// <summary>
/// Inputs of the cluster tests: Fashion-MNIST test images written as PNG files with a labelled CSV manifest (a cluster
/// reads images from files), one broken file among them, and the two tiny fixture towers as candidates.
/// </summary>
internal static class ClusterTestData
{
    public static readonly string[] Classes = [.. ImageSource.FashionMnistClassNames];

    /// <summary>The hf fixture (HF combined) and the openai fixture (OpenAI split, linked into a folder): both D = 32.</summary>
    public static string[] FixtureModels() => [Path.Combine(Fixtures.Onnx, "hf"), ClipModelTests.OpenAiFolder()];

    private static readonly Lazy<string[]> Trained = new(() =>
    {
        // The random-weight fixture towers pseudo-label nearly every image alike, so their prediction matrices have
        // singular values at rounding level, which dispersity's Gram matrix resolves only to ~1e-8 (docs/vega.md §2).
        // Two small demo networks trained for a few steps spread their predictions: every score is then exact to 1e-9.
        string root = Fixtures.TempDir("vega-cluster-models");
        var models = new List<string>();
        foreach (var (kind, seed) in new[] { ("mlp", 1UL), ("cnn", 3UL) })
        {
            var (net, _) = DemoTestData.Train(DemoTestData.Architecture(kind), new TrainingSpec { TrainImages = 256, Epochs = 2, BatchSize = 64, LearningRate = 3e-3 }, networkSeed: seed);
            string dir = Path.Combine(root, kind);
            ClipExporter.Export(net, DemoTestData.TokenizerDirectory, dir, kind);
            models.Add(dir);
        }
        return [.. models];
    });

    /// <summary>Two small CLIP networks trained here (MLP and CNN image towers) and exported as HF split packages.</summary>
    public static string[] Models() => Trained.Value;

    /// <summary>A folder with <paramref name="count"/> labelled PNGs, a broken JPEG at position 5 and manifest.csv; returns the manifest.</summary>
    public static string Manifest(int count)
    {
        string dir = Fixtures.TempDir("vega-cluster-images");
        var idx = IdxImages.Open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
        var labels = IdxImages.ReadLabels("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
        var lines = new List<string> { "path,label" };
        var image = new RgbImage();
        for (int i = 0; i < count; i++)
        {
            if (i == 5)
            {
                File.Copy(Path.Combine(Fixtures.Images, "bad", "truncated_60pct.jpg"), Path.Combine(dir, "broken.jpg"));
                lines.Add($"broken.jpg,{Classes[0]}");
            }
            idx.Image(i, image);
            string name = $"img{i:D4}.png";
            File.WriteAllBytes(Path.Combine(dir, name), PngEncoder.EncodeRgb(image.Width, image.Height, image.Span));
            lines.Add($"{name},\"{Classes[labels[i]]}\"");
        }
        string csv = Path.Combine(dir, "manifest.csv");
        File.WriteAllLines(csv, lines);
        return csv;
    }

    public static string ClassFile()
    {
        string path = Path.Combine(Fixtures.TempDir("vega-cluster-classes"), "classes.txt");
        File.WriteAllLines(path, Classes);
        return path;
    }
}
