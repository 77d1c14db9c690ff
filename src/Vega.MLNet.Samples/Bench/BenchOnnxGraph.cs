using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Onnx;
using Vega.MLNet.Runtime;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench onnx-graph</c>: the composed ONNX models (what ML.NET's ApplyOnnxModel runs after a save), one image per
/// run as ApplyOnnxModel calls them. (a) the exact preprocessing graph alone on ONNX Runtime vs the C#
/// <see cref="ImagePreprocessor"/>, from decoded RGB bytes, for a ~112 kpixel JPEG and a 12 MP image; (b) the whole
/// composed model (preprocessing + ViT-B/32-sized tower + L2 norm + zero-shot head) vs the C# preprocessor followed by
/// the tower session, and the largest embedding difference between the two.
/// </summary>
internal static class BenchOnnxGraph
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: found beside the repository)." };
        var repeats = new Option<int>("--repeats") { Description = "Timed rounds (median reported).", DefaultValueFactory = _ => 5 };
        var noModel = new Option<bool>("--no-model") { Description = "Only part (a)." };
        var log = new Option<string?>("--log") { Description = "Append the figures to this file instead of docs/benchmarks.md." };
        var command = new Command("onnx-graph", "Composed ONNX models, one image per run: preprocessing graph vs the C# preprocessor; full composed model vs C# preprocessing + tower.")
            { shared, repeats, noModel, log };
        command.SetAction(parse =>
        {
            string sharedDir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            int rounds = Math.Max(1, parse.GetValue(repeats));
            var report = new BenchmarkReport("Composed ONNX models (one image per run)", Environment.GetCommandLineArgs()[1..]);
            var small = ImageDecoder.Decode(Path.Combine(sharedDir, "images", "china_progressive.jpg"));
            var large = TwelveMegapixels(ImageDecoder.Decode(Path.Combine(sharedDir, "images", "grace_hopper.jpg")));
            Preprocessing(report, [("china_progressive.jpg", small, 200), ("12 MP (grace_hopper.jpg resized to 4000×3000)", large, 4)], rounds);
            if (!parse.GetValue(noModel))
            {
                using var model = ClipModel.Load(BenchInputs.BenchModel(sharedDir, "hf-vit-b32"));
                Composed(report, model, small, large, rounds);
            }
            report.Publish(parse.GetValue(log));
            return 0;
        });
        return command;
    }

    /// <summary>A 4000 × 3000 photo-like image: a real photo resized up (bicubic) with a little deterministic noise.</summary>
    private static RgbImage TwelveMegapixels(RgbImage photo)
    {
        const int w = 4000, h = 3000;
        var pixels = new byte[w * h * 3];
        Resampler.Resize(photo.Span, photo.Width, photo.Height, pixels, w, h, ResamplingFilter.Bicubic);
        var rng = new Random(12);
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)Math.Clamp(pixels[i] + rng.Next(-6, 7), 0, 255);
        return RgbImage.FromRgb(pixels, w, h);
    }

    private static OnnxInput[] Inputs(RgbImage image) =>
    [
        OnnxInput.Create(ClipPreprocessGraph.RgbInput, image.Pixels.AsMemory(0, image.ByteCount), 1, image.ByteCount),
        OnnxInput.Create(ClipPreprocessGraph.HeightInput, new long[] { image.Height }, 1, 1),
        OnnxInput.Create(ClipPreprocessGraph.WidthInput, new long[] { image.Width }, 1, 1),
    ];

    private static void Preprocessing(BenchmarkReport report, (string Name, RgbImage Image, int Count)[] inputs, int rounds)
    {
        var pre = new ImagePreprocessor();
        byte[] bytes = ClipPreprocessGraph.Build(PreprocessSettings.Clip).ToByteArray();
        using var ortAll = OnnxSession.FromBytes(bytes, name: "preprocess");
        using var ortOne = OnnxSession.FromBytes(bytes, new OnnxSessionOptions { IntraOpThreads = 1 }, "preprocess-1");
        var tensor = new float[pre.OutputLength];
        foreach (var (name, image, count) in inputs)
        {
            // Exactness on this input, before timing.
            pre.Process(image, tensor);
            using (var r = ortAll.Run(Inputs(image)))
                if (!r.GetFloats(ClipPreprocessGraph.PixelOutput).SequenceEqual(tensor))
                    throw new InvalidOperationException($"The preprocessing graph and ImagePreprocessor disagree on {name}.");
            var feeds = Inputs(image);
            void Ort(OnnxSession s)
            {
                for (int i = 0; i < count; i++) using (s.Run(feeds)) { }
            }
            var t = BenchmarkReport.Interleaved(rounds,
            [
                ("C#", () => { for (int i = 0; i < count; i++) pre.Process(image, tensor); }),
                ("ORT all cores", () => Ort(ortAll)),
                ("ORT 1 thread", () => Ort(ortOne)),
            ]);
            string input = string.Create(CultureInfo.InvariantCulture, $"{name}, {image.Width}×{image.Height} ({image.Width * (long)image.Height / 1000} kpixel) → 224×224, {count} runs per round, decoded bytes in");
            report.Add($"(a) C# ImagePreprocessor, 1 thread — {name}", 1000 * t[0] / count, "ms/image", input);
            report.Add($"(a) preprocessing graph on ONNX Runtime, {Environment.ProcessorCount} threads — {name}", 1000 * t[1] / count, "ms/image", input + " (outputs bit-identical to C#)");
            report.Add($"(a) preprocessing graph on ONNX Runtime, 1 thread — {name}", 1000 * t[2] / count, "ms/image", input);
            report.Add($"(a) graph / C# — {name}", t[1] / t[0], "×", $"{Environment.ProcessorCount} threads vs 1; 1 thread vs 1: {(t[2] / t[0]).ToString("F2", CultureInfo.InvariantCulture)}×");
        }
    }

    private static void Composed(BenchmarkReport report, ClipModel model, RgbImage small, RgbImage large, int rounds)
    {
        var head = ZeroShotHead.ForClassNames(model, ["cat", "dog", "person", "car", "tree", "building", "flower", "boat", "bird", "food"]);
        using var composed = OnnxSession.FromBytes(ClipGraphComposer.ToBytes(ClipGraphComposer.ComposeImageModel(model, head)), name: "composed");
        var pre = new ImagePreprocessor(model.Preprocessing);
        var tensor = new float[pre.OutputLength];
        foreach (var (name, image, count) in new[] { ("china_progressive.jpg", small, 8), ("12 MP", large, 4) })
        {
            pre.Process(image, tensor);
            var expected = model.EmbedPixels(tensor, 1).Data;
            double diff = 0;
            using (var r = composed.Run(Inputs(image)))
            {
                var got = r.GetFloats(ClipGraphComposer.EmbeddingOutput);
                for (int i = 0; i < expected.Length; i++) diff = Math.Max(diff, Math.Abs(expected[i] - got[i]));
            }
            var feeds = Inputs(image);
            var t = BenchmarkReport.Interleaved(Math.Max(1, rounds / 2),
            [
                ("C# + tower", () => { for (int i = 0; i < count; i++) { pre.Process(image, tensor); model.EmbedPixels(tensor, 1); } }),
                ("composed", () => { for (int i = 0; i < count; i++) using (composed.Run(feeds)) { } }),
            ]);
            string input = string.Create(CultureInfo.InvariantCulture, $"{model.Name} (ViT-B/32 shape), {name} {image.Width}×{image.Height}, 10 classes, one image per run, {Environment.ProcessorCount} threads");
            report.Add($"(b) C# preprocessing + tower session (ClipModel.EmbedPixels) — {name}", 1000 * t[0] / count, "ms/image", input);
            report.Add($"(b) composed model (preprocessing + tower + L2 + head) — {name}", 1000 * t[1] / count, "ms/image", input);
            report.Add($"(b) composed / C# + tower — {name}", t[1] / t[0], "×", input);
            report.Add($"(b) max abs embedding difference — {name}", diff, "", "composed model vs ClipModel's path, same ONNX Runtime");
        }
    }
}
