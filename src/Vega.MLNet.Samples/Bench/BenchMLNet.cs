using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Imaging;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench mlnet</c>: iterating the embedding column of an IDataView of image paths (EmbedImages) against a bare
/// loop over the same files — decode + Pillow-exact preprocessing + <c>InferenceSession.Run</c> per batch — and against
/// ML.NET's own image pipeline (LoadImages → ResizeImages → ExtractPixels → ApplyOnnxModel, one row per run).
/// </summary>
internal static class BenchMLNet
{
    private sealed class PathRow
    {
        public string ImagePath = "";
    }

    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: found beside the repository)." };
        var bench = new Option<string>("--bench-model") { Description = "Which ../shared/bench towers: hf-vit-b32 or openai-vit-b32.", DefaultValueFactory = _ => "hf-vit-b32" };
        var count = new Option<int>("--count") { Description = "Images per measured run (the JPEGs of ../shared/images, cycled).", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch") { Description = "Images per ONNX Runtime run (both sides).", DefaultValueFactory = _ => 32 };
        var repeats = new Option<int>("--repeats") { Description = "Measured rounds; medians are reported.", DefaultValueFactory = _ => 5 };
        var mlnet = new Option<bool>("--with-applyonnxmodel") { Description = "Also time ML.NET's own LoadImages → ResizeImages → ExtractPixels → ApplyOnnxModel pipeline." };
        var command = new Command("mlnet", "EmbedImages over an IDataView vs a bare decode + InferenceSession.Run loop on the same files (images/s).")
            { shared, bench, count, batch, repeats, mlnet };
        command.SetAction(parse =>
        {
            string dir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            string modelDir = BenchInputs.BenchModel(dir, parse.GetValue(bench)!);
            var files = Directory.GetFiles(Path.Combine(dir, "images"), "*.jpg").Order(StringComparer.Ordinal).ToArray();
            int n = Math.Max(1, parse.GetValue(count)), b = Math.Max(1, parse.GetValue(batch)), rounds = Math.Max(1, parse.GetValue(repeats));
            var paths = Enumerable.Range(0, n).Select(i => files[i % files.Length]).ToArray();
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromEnumerable(paths.Select(p => new PathRow { ImagePath = p }));
            using var embed = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options { ModelPath = modelDir, InputColumnName = "ImagePath", BatchSize = b }).Fit(data);
            var view = embed.Transform(data);
            var model = embed.Model;
            var tower = model.ImageTower;
            var pre = new ImagePreprocessor(model.Preprocessing);
            int per = pre.OutputLength, size = model.Preprocessing.ImageSize;
            using var bare = new BareOrt(tower.Session.Source, Environment.ProcessorCount);
            var pixels = new float[b * per];
            var buffer = new RgbImage();
            var prepared = new float[n * per];
            for (int i = 0; i < n; i++) pre.Process(ImageDecoder.Decode(paths[i]), prepared.AsSpan(i * per, per));

            var runs = new List<(string, Action)>
            {
                ("bare decode + run", () =>
                {
                    for (int s = 0; s < n; s += b)
                    {
                        int k = Math.Min(b, n - s);
                        for (int i = 0; i < k; i++) pre.Process(ImageDecoder.Decode(paths[s + i], reuse: buffer), pixels.AsSpan(i * per, per));
                        bare.Run(tower.InputName, pixels, 0, k * per, [k, 3, size, size], tower.OutputName);
                    }
                }),
                ("bare run only", () =>
                {
                    for (int s = 0; s < n; s += b)
                    {
                        int k = Math.Min(b, n - s);
                        bare.Run(tower.InputName, prepared, s * per, k * per, [k, 3, size, size], tower.OutputName);
                    }
                }),
                ("EmbedImages cursor", () =>
                {
                    using var cursor = view.GetRowCursor([view.Schema["ImageEmbedding"]]);
                    var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["ImageEmbedding"]);
                    VBuffer<float> v = default;
                    while (cursor.MoveNext()) getter(ref v);
                }),
            };
            // The same transform after ml.Model.Save / ml.Model.Load: ML.NET's ApplyOnnxModel over the project's one graph
            // (exact preprocessing + tower + L2), one row per run.
            string zip = Path.Combine(Path.GetTempPath(), $"vega-bench-saved-{Environment.ProcessId}.zip");
            ml.Model.Save(embed, data.Schema, zip);
            var loadContext = new MLContext(seed: 1);
            loadContext.ComponentCatalog.RegisterAssembly(typeof(VegaCatalog).Assembly);
            var loaded = loadContext.Model.Load(zip, out _);
            File.Delete(zip);
            var loadedView = loaded.Transform(data);
            var fitted = view.GetColumn<float[]>("ImageEmbedding").ToArray();
            var reloaded = loadedView.GetColumn<float[]>("ImageEmbedding").ToArray();
            double maxDiff = 0;
            for (int i = 0; i < fitted.Length; i++)
                for (int d = 0; d < fitted[i].Length; d++) maxDiff = Math.Max(maxDiff, Math.Abs(fitted[i][d] - reloaded[i][d]));
            runs.Add(("saved model", () =>
            {
                using var cursor = loadedView.GetRowCursor([loadedView.Schema["ImageEmbedding"]]);
                var getter = cursor.GetGetter<VBuffer<float>>(loadedView.Schema["ImageEmbedding"]);
                VBuffer<float> v = default;
                while (cursor.MoveNext()) getter(ref v);
            }));
            OnnxCheck? onnx = null;
            if (parse.GetValue(mlnet))
            {
                onnx = new OnnxCheck(ml, data, tower.Session.Source, tower.InputName, tower.OutputName, size);
                runs.Add(("ML.NET ApplyOnnxModel", onnx.Run));
            }
            var t = BenchmarkReport.Interleaved(rounds, runs);
            var report = new BenchmarkReport("EmbedImages over an IDataView vs bare ONNX Runtime", Environment.GetCommandLineArgs()[1..]);
            string input = string.Create(CultureInfo.InvariantCulture, $"{model.Name}, {n} images cycled from {files.Length} JPEGs of ../shared/images, batch {b}, {Environment.ProcessorCount} cores");
            report.Add("bare loop: decode + preprocess + InferenceSession.Run per batch", n / t[0], "images/s", input);
            report.Add("bare InferenceSession.Run on preprocessed tensors (upper bound)", n / t[1], "images/s", input);
            report.Add("EmbedImages: iterating the embedding column of the IDataView", n / t[2], "images/s", input);
            report.Add("EmbedImages / bare loop with decoding", t[0] / t[2], "×", "goal ≥ 0.90");
            report.Add("EmbedImages / bare run only", t[1] / t[2], "×", "decoding overlaps the tower runs");
            report.Add("saved + loaded EmbedImages (ApplyOnnxModel over the one graph, one row per run)", n / t[3], "images/s", input);
            report.Add("saved model / fitted transformer", t[2] / t[3], "×", string.Create(CultureInfo.InvariantCulture, $"max |embedding difference| {maxDiff:G3} over {n} images"));
            if (onnx is not null)
            {
                report.Add("ML.NET LoadImages → ResizeImages → ExtractPixels → ApplyOnnxModel (one row per run)", n / t[4], "images/s", input);
                report.Add("ML.NET pipeline / bare loop with decoding", t[0] / t[4], "×", "ML.NET issues #5293, #5928");
            }
            report.Publish();
            onnx?.Dispose();
            return 0;
        });
        return command;
    }

    /// <summary>ML.NET's own route to an ONNX image tower, for comparison.</summary>
    private sealed class OnnxCheck : IDisposable
    {
        private readonly ITransformer _model;
        private readonly IDataView _view;

        public OnnxCheck(MLContext ml, IDataView data, string onnxFile, string input, string output, int size)
        {
            var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", size, size, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.IsoCrop))
                .Append(ml.Transforms.ExtractPixels(input, "Image", scaleImage: 1f / 255))
                .Append(ml.Transforms.ApplyOnnxModel([output], [input], onnxFile, shapeDictionary: new Dictionary<string, int[]> { [input] = [1, 3, size, size] }, gpuDeviceId: null, fallbackToCpu: false));
            _model = pipeline.Fit(data);
            _view = _model.Transform(data);
        }

        public void Run()
        {
            using var cursor = _view.GetRowCursor([_view.Schema[_view.Schema.Count - 1]]);
            var getter = cursor.GetGetter<VBuffer<float>>(_view.Schema[_view.Schema.Count - 1]);
            VBuffer<float> v = default;
            while (cursor.MoveNext()) getter(ref v);
        }

        public void Dispose() => (_model as IDisposable)?.Dispose();
    }
}
