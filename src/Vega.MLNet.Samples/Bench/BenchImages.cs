using System.CommandLine;
using System.Globalization;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench images</c>: image pipeline throughput.
/// (a) decode + CLIP preprocess (Pillow-exact bicubic, centre crop, normalise), images/s, one thread and all cores.
/// Further parts (ONNX Runtime alone, full pipeline) are added as separate sections of the same report.
/// </summary>
internal static class BenchImages
{
    public static Command Create()
    {
        var folder = new Option<string?>("--folder") { Description = "Folder of JPEG/PNG files to use (default: the JPEGs of ../shared/images)." };
        var count = new Option<int>("--count") { Description = "Images per measured run (the input files are cycled).", DefaultValueFactory = _ => 600 };
        var repeats = new Option<int>("--repeats") { Description = "Measured runs; the median is reported.", DefaultValueFactory = _ => 5 };
        var log = new Option<string?>("--log") { Description = "Append the figures to this file instead of docs/benchmarks.md." };
        var model = new Option<string?>("--model") { Description = "Model for parts (b) and (c) (default: the ViT-B/32-sized hf-vit-b32 towers of ../shared/bench)." };
        var modelCount = new Option<int>("--model-count") { Description = "Images per measured run in (b) and (c).", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch") { Description = "Batch size in (b) and (c).", DefaultValueFactory = _ => 32 };
        var noModel = new Option<bool>("--no-model") { Description = "Only part (a)." };
        var command = new Command("images", "Image pipeline speed: (a) decode + preprocess alone, (b) ONNX Runtime alone on preprocessed tensors, (c) the full embedding pipeline; images/s.");
        command.Options.Add(folder);
        command.Options.Add(count);
        command.Options.Add(repeats);
        command.Options.Add(log);
        command.Options.Add(model);
        command.Options.Add(modelCount);
        command.Options.Add(batch);
        command.Options.Add(noModel);
        command.SetAction(parse =>
        {
            var files = InputFiles(parse.GetValue(folder));
            var report = new BenchmarkReport("images", Environment.GetCommandLineArgs()[1..]);
            DecodeAndPreprocess(report, files, Math.Max(1, parse.GetValue(count)), Math.Max(1, parse.GetValue(repeats)));
            if (!parse.GetValue(noModel))
            {
                string dir = parse.GetValue(model) ?? BenchInputs.BenchModel(BenchInputs.SharedDirectory(null), "hf-vit-b32");
                using var clip = ClipModel.Load(dir);
                OnnxAndPipeline(report, clip, files, Math.Max(1, parse.GetValue(modelCount)), Math.Max(1, parse.GetValue(batch)), Math.Max(1, parse.GetValue(repeats) / 2));
            }
            report.Publish(parse.GetValue(log));
            return 0;
        });
        return command;
    }

    private static string[] InputFiles(string? folder)
    {
        if (folder is not null)
            return ImageSource.FromFolder(folder).Items.Select(i => i.Path!).ToArray() is { Length: > 0 } f
                ? f : throw new InvalidOperationException($"No .jpg/.jpeg/.png files under '{folder}'.");
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            string images = Path.Combine(dir.FullName, "..", "shared", "images");
            if (File.Exists(Path.Combine(dir.FullName, "Vega.MLNet.sln")) && Directory.Exists(images))
                return ImageSource.FromFolder(images, recursive: false, extensions: [".jpg"]).Items.Select(i => i.Path!).ToArray();
        }
        throw new InvalidOperationException("Cannot find ../shared/images beside the repository; pass --folder DIR.");
    }

    /// <summary>Part (a): decode + preprocess throughput.</summary>
    internal static void DecodeAndPreprocess(BenchmarkReport report, string[] files, int count, int repeats)
    {
        var pre = new ImagePreprocessor();
        long pixels = 0;
        var decoded = files.Select(f => ImageDecoder.Decode(f)).ToArray();
        foreach (var d in decoded) pixels += (long)d.Width * d.Height;
        string where = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(files[0]))) ?? "";
        string input = string.Create(CultureInfo.InvariantCulture,
            $"{files.Length} files of {where}/ (mean {pixels / (double)files.Length / 1000:F0} kpixel) cycled to {count} images");

        // Single thread: decode only, preprocess only, both.
        var buffer = new RgbImage();
        var tensor = new float[pre.OutputLength];
        double decode = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            for (int i = 0; i < count; i++) ImageDecoder.Decode(files[i % files.Length], reuse: buffer);
        });
        double preprocess = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            for (int i = 0; i < count; i++) pre.Process(decoded[i % decoded.Length], tensor);
        });
        double both = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            for (int i = 0; i < count; i++) pre.Process(ImageDecoder.Decode(files[i % files.Length], reuse: buffer), tensor);
        });

        // All cores: one buffer and one output slot per worker, as the embedding engine does.
        int threads = Environment.ProcessorCount;
        double parallel = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads },
                () => (new RgbImage(), new float[pre.OutputLength]),
                (i, _, local) =>
                {
                    pre.Process(ImageDecoder.Decode(files[i % files.Length], reuse: local.Item1), local.Item2);
                    return local;
                }, _ => { });
        });

        report.AddText("(a) inputs", string.Join(", ", decoded.Zip(files, (d, f) => $"{Path.GetFileName(f)} {d.Width}×{d.Height}")), input);
        report.Add("(a) decode only, 1 thread", count / decode, "images/s", input);
        report.Add("(a) preprocess only (resize 224 + crop + normalise), 1 thread", count / preprocess, "images/s", input);
        report.Add("(a) decode + preprocess, 1 thread", count / both, "images/s", input);
        report.Add($"(a) decode + preprocess, {threads} threads", count / parallel, "images/s", input);
        report.Add($"(a) parallel speed-up ({threads} threads)", both / parallel, "×", input);
    }

    /// <summary>
    /// Parts (b) ONNX Runtime alone on preprocessed tensors — a bare <c>InferenceSession.Run</c> with ONNX Runtime's default
    /// threads, the same with one thread per core (the library's default), and the library's tower call
    /// (<c>ClipModel.EmbedPixels</c>: run + L2 norm) — and (c) the full pipeline (ImageEmbedder: read + decode + preprocess
    /// + run + normalise, no cache). All interleaved in one run so that machine noise hits them alike.
    /// </summary>
    internal static void OnnxAndPipeline(BenchmarkReport report, ClipModel clip, string[] files, int count, int batch, int repeats)
    {
        var pre = new ImagePreprocessor(clip.Preprocessing);
        int length = pre.OutputLength, size = clip.Preprocessing.ImageSize, dim = clip.EmbeddingDimension;
        var pixels = new float[(long)count * length];
        for (int i = 0; i < count; i++) pre.Process(ImageDecoder.Decode(files[i % files.Length]), pixels.AsSpan(i * length, length));
        var output = new float[batch * dim];
        var paths = Enumerable.Range(0, count).Select(i => files[i % files.Length]).ToArray();
        string tower = clip.ImageTower.Session.Source;
        using var bareDefault = new BareOrt(tower, threads: null);
        using var bareAll = new BareOrt(tower, Environment.ProcessorCount);
        string input = string.Create(CultureInfo.InvariantCulture, $"{clip.Name}, {count} images cycled from {files.Length} files, batch {batch}, {Environment.ProcessorCount} cores");

        void Batches(Action<int, int> run)
        {
            for (int s = 0; s < count; s += batch) run(s, Math.Min(batch, count - s));
        }
        var runs = new (string Name, Action Body)[]
        {
            ("bare default", () => Batches((s, n) => bareDefault.Run(clip.ImageTower.InputName, pixels, s * length, n * length, [n, 3, size, size], clip.ImageTower.OutputName))),
            ("bare all cores", () => Batches((s, n) => bareAll.Run(clip.ImageTower.InputName, pixels, s * length, n * length, [n, 3, size, size], clip.ImageTower.OutputName))),
            ("library", () => Batches((s, n) => clip.EmbedPixelsInto(pixels.AsMemory(s * length, n * length), n, output.AsMemory(0, n * dim), CancellationToken.None))),
            ("pipeline", () => ImageEmbedder.Embed(clip, ImageSource.FromPaths(paths), new ImageEmbeddingOptions { BatchSize = batch })),
        };
        var t = BenchmarkReport.Interleaved(repeats, runs);
        report.Add("(b) bare InferenceSession.Run, ONNX Runtime's default threads", count / t[0], "images/s", input + " (IntraOpNumThreads = 0: ONNX Runtime counts physical cores)");
        report.Add("(b) bare InferenceSession.Run, one thread per core", count / t[1], "images/s", input);
        report.Add("(b) library tower call (ClipModel.EmbedPixels: run + L2 norm)", count / t[2], "images/s", input);
        report.Add("(b) library / bare (same threads)", t[1] / t[2], "×", "goal ≥ 0.95");
        report.Add("(b) library default threads / ONNX Runtime default threads", t[0] / t[2], "×", "the thread-count fix");
        report.Add("(c) full pipeline (read + decode + preprocess + ORT + normalise)", count / t[3], "images/s", input);
        report.Add("(c) / bare (b)", t[1] / t[3], "×", "decode and preprocess overlap the tower runs");
    }
}
