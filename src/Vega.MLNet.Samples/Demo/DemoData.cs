using System.Security.Cryptography;
using Vega.MLNet.Imaging;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Demo;

/// <summary>
/// Fashion-MNIST as the demo reads it: the four IDX files (gzip or raw) from a folder, default the one Debian's
/// <c>dataset-fashion-mnist</c> installs. Missing files are an error naming the path and the set-up command.
/// </summary>
internal sealed class FashionMnistData
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    private static readonly string[] Stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    private FashionMnistData(string directory, string[] files, IdxImages train, byte[] trainLabels, IdxImages test, byte[] testLabels)
    {
        Directory = directory;
        Files = files;
        Train = train;
        TrainLabels = trainLabels;
        Test = test;
        TestLabels = testLabels;
    }

    public string Directory { get; }

    /// <summary>The four files in the order train images, train labels, test images, test labels.</summary>
    public IReadOnlyList<string> Files { get; }

    public IdxImages Train { get; }
    public byte[] TrainLabels { get; }
    public IdxImages Test { get; }
    public byte[] TestLabels { get; }

    /// <summary>The path of one of the four files (".gz" or raw), or throws naming what is missing and how to get it.</summary>
    public static string Locate(string directory, string stem)
    {
        string gz = Path.Combine(directory, stem + ".gz"), raw = Path.Combine(directory, stem);
        if (File.Exists(gz)) return gz;
        if (File.Exists(raw)) return raw;
        throw new FileNotFoundException(
            $"Fashion-MNIST file '{gz}' not found (nor '{raw}'). Run `bash scripts/setup.sh` (it installs Debian's dataset-fashion-mnist into {DefaultDirectory}), " +
            "or point --idx-dir at a folder with the four IDX files.", gz);
    }

    public static FashionMnistData Load(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var files = Stems.Select(s => Locate(directory, s)).ToArray();
        var train = IdxImages.Open(files[0]);
        var trainLabels = IdxImages.ReadLabels(files[1]);
        var test = IdxImages.Open(files[2]);
        var testLabels = IdxImages.ReadLabels(files[3]);
        if (train.Count != trainLabels.Length || test.Count != testLabels.Length)
            throw new InvalidDataException($"Fashion-MNIST in '{directory}': {train.Count} training images but {trainLabels.Length} labels, {test.Count} test images but {testLabels.Length} labels.");
        if (train.Rows != 28 || train.Columns != 28 || test.Rows != 28 || test.Columns != 28)
            throw new InvalidDataException($"Fashion-MNIST in '{directory}' must hold 28 × 28 images; found {train.Columns} × {train.Rows} and {test.Columns} × {test.Rows}.");
        foreach (var l in trainLabels.Concat(testLabels))
            if (l > 9) throw new InvalidDataException($"Fashion-MNIST in '{directory}' has the label {l}; labels are 0..9.");
        return new FashionMnistData(Path.GetFullPath(directory), files, train, trainLabels, test, testLabels);
    }

    /// <summary>SHA-256 (hex) of the four files' bytes, in order: part of the zoo cache key.</summary>
    public string ContentHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in Files)
        {
            sha.AppendData(SHA256.HashData(File.ReadAllBytes(f)));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

/// <summary>
/// The preprocessing shared by training and deployment: 28 × 28 inputs (no resize, crop 28), Fashion-MNIST's mean and
/// standard deviation on every channel. The exported <c>preprocessor_config.json</c> describes exactly these settings,
/// so <see cref="ImagePreprocessor"/> with <c>ClipModel.Preprocessing</c> reproduces the trainer's input tensors.
/// </summary>
internal static class DemoPreprocessing
{
    /// <summary>Mean of Fashion-MNIST's training pixels (÷255).</summary>
    public const float Mean = 0.2860f;

    /// <summary>Standard deviation of Fashion-MNIST's training pixels (÷255).</summary>
    public const float Std = 0.3530f;

    public static PreprocessSettings Settings { get; } = new()
    {
        ImageSize = 28,
        ResizeShortestEdge = 28,
        Mean = [Mean, Mean, Mean],
        Std = [Std, Std, Std],
    };

    /// <summary>
    /// The gray model inputs of images <paramref name="indices"/> of <paramref name="images"/>: each image goes through
    /// <see cref="RgbImage.FromGray"/> and <see cref="ImagePreprocessor"/> (exactly what a deployed model gets from the
    /// PNG files), then through <see cref="ClipNetwork.ToGray"/>, the first step of every image tower. Returns
    /// count × 784 floats.
    /// </summary>
    public static float[] GrayInputs(IdxImages images, IReadOnlyList<int> indices) => Process(images, indices, gray: true);

    /// <summary>The preprocessed RGB tensors (count × 3 × 28 × 28) of images <paramref name="indices"/>: what a deployed model receives.</summary>
    public static float[] Pixels(IdxImages images, IReadOnlyList<int> indices) => Process(images, indices, gray: false);

    private static float[] Process(IdxImages images, IReadOnlyList<int> indices, bool gray)
    {
        var pre = new ImagePreprocessor(Settings);
        int plane = 28 * 28, n = indices.Count;
        var result = new float[(long)n * plane * (gray ? 1 : 3)];
        const int chunk = 512;
        int chunks = (n + chunk - 1) / chunk;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, c =>
        {
            int start = c * chunk, count = Math.Min(chunk, n - start);
            var pixels = new float[count * 3 * plane];
            for (int i = 0; i < count; i++)
                pre.Process(RgbImage.FromGray(images.Gray(indices[start + i]), 28, 28), pixels.AsSpan(i * 3 * plane, 3 * plane));
            if (!gray)
            {
                pixels.CopyTo(result.AsSpan(start * 3 * plane, count * 3 * plane));
                return;
            }
            using var scope = new TensorScope();
            using var noGrad = Tape.NoGrad();
            ClipNetwork.ToGray(Tensor.Wrap(pixels, count, 3, 28, 28)).Span.CopyTo(result.AsSpan(start * plane, count * plane));
        });
        return result;
    }
}
