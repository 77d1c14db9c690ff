using System.CommandLine;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench aape</c>: AAPE training time per epoch (aggregator step and generator epoch) and head inference
/// images/s (C# kernel and ONNX Runtime on the exported head), on synthetic embeddings of CLIP's size. The timing
/// does not depend on what the embeddings mean, only on N, C, D and the number of descriptions.
/// </summary>
internal static class BenchAape
{
    public static Command Create()
    {
        var dims = new Option<int>("--dim") { Description = "Embedding width D.", DefaultValueFactory = _ => 512 };
        var classes = new Option<string>("--classes") { Description = "Class counts C, comma-separated.", DefaultValueFactory = _ => "10,100" };
        var shots = new Option<int>("--shots") { Description = "Training images per class (N = shots·C).", DefaultValueFactory = _ => 16 };
        var descriptions = new Option<int>("--descriptions") { Description = "Descriptions per class.", DefaultValueFactory = _ => 20 };
        var images = new Option<int>("--images") { Description = "Images for the inference measurement.", DefaultValueFactory = _ => 10000 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats (median reported).", DefaultValueFactory = _ => 3 };
        var command = new Command("aape", "AAPE: training time per epoch (aggregator, generator) and head inference images/s (C# and ONNX Runtime).")
            { dims, classes, shots, descriptions, images, repeats };
        command.SetAction(parse =>
        {
            int d = parse.GetValue(dims), k = parse.GetValue(shots), m = parse.GetValue(descriptions), n = parse.GetValue(images), r = parse.GetValue(repeats);
            var report = new BenchmarkReport("AAPE training and inference", Environment.GetCommandLineArgs()[1..]);
            string machine = $"{Parallelism.ThreadCount} threads, GEMM {Gemm.Effective}";
            foreach (int c in parse.GetValue(classes)!.Split(',').Select(int.Parse))
            {
                var task = SyntheticTask.Create(c, d, k, (n + c - 1) / c, m, seed: 1);
                string input = $"N = {k * c} ({k}-shot), C = {c}, D = {d}, {m} descriptions/class, batch 32; {machine}";
                // Aggregator: one full-batch step per epoch; time E steps and divide.
                const int aggSteps = 10, genEpochs = 10;
                var aggOptions = new AapeOptions { AggregatorEpochs = aggSteps, Epochs = 2, Temperature = 0.01 };
                double agg = BenchmarkReport.MedianSeconds(r, () => PromptAggregator.Train(task.Descriptions, Normalized(task.TrainImages.Data, d), task.TrainLabels, aggOptions, new Rng(1), CancellationToken.None));
                var genOptions = new AapeOptions { Lambda = 0, Epochs = genEpochs, Temperature = 0.01 };
                AapeHead? head = null;
                double gen = BenchmarkReport.MedianSeconds(r, () => head = AapeTrainer.Train(task.TrainingSet, genOptions));
                report.Add($"aggregator step (= epoch), C = {c}", 1000 * agg / aggSteps, "ms", input);
                report.Add($"generator epoch, C = {c}", 1000 * gen / genEpochs, "ms", input + $"; {Math.Max(1, k * c / 32)} steps/epoch");
                report.Add($"  generator per image, C = {c}", 1e6 * gen / genEpochs / (k * c), "µs", "forward + backward + SGD");

                var test = task.TestImages;
                var logits = new float[test.Count * c];
                double cs = BenchmarkReport.MedianSeconds(r, () => head!.Predict(test.Data, test.Count, logits));
                report.Add($"head inference C#, C = {c}", test.Count / cs, "images/s", $"{test.Count} embeddings, D = {d}; {machine}");
                string onnx = Path.Combine(Path.GetTempPath(), $"vega-bench-aape-{c}.onnx");
                head!.ExportOnnx(onnx);
                using var session = OnnxSession.Open(onnx);
                const int chunk = 256;
                double ort = BenchmarkReport.MedianSeconds(r, () =>
                {
                    for (int s = 0; s < test.Count; s += chunk)
                    {
                        int rows = Math.Min(chunk, test.Count - s);
                        using var res = session.Run([OnnxInput.Create(AapeOnnxExport.InputName, test.Data.AsMemory(s * d, rows * d), rows, d)], [AapeOnnxExport.LogitsName]);
                    }
                });
                report.Add($"head inference ONNX Runtime, C = {c}", test.Count / ort, "images/s", $"{test.Count} embeddings in runs of {chunk}, exported head");
            }
            report.Publish();
            return 0;
        });
        return command;
    }

    private static float[] Normalized(float[] x, int d)
    {
        var r = (float[])x.Clone();
        for (int i = 0; i < r.Length / d; i++) Vega.MLNet.Embedding.EmbeddingMatrix.NormalizeInPlace(r.AsSpan(i * d, d));
        return r;
    }
}
