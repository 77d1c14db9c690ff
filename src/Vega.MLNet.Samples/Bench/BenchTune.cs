using System.CommandLine;
using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Bench;

/// <summary><c>vega bench tune</c>: training time per epoch of CoOp with candidate labels (16 shots × 10 classes) on the
/// benchmark-sized text tower, next to the linear probe.</summary>
internal static class BenchTune
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: beside the repository)." };
        var bench = new Option<string>("--bench-model") { Description = "Which ../shared/bench towers: openai-vit-b32 or hf-vit-b32.", DefaultValueFactory = _ => "openai-vit-b32" };
        var shots = new Option<int>("--shots") { Description = "Images per class.", DefaultValueFactory = _ => 16 };
        var classes = new Option<int>("--classes") { Description = "Classes.", DefaultValueFactory = _ => 10 };
        var epochs = new Option<int>("--epochs") { Description = "Timed epochs (median reported; the first, warm-up, is not timed).", DefaultValueFactory = _ => 3 };
        var command = new Command("tune", "Seconds per training epoch of CoOp (with and without prompt alignment, and with PiCO and PLCR on two views) and of the linear probe, 16 shots × 10 classes, benchmark-sized text tower.")
            { shared, bench, shots, classes, epochs };
        command.SetAction(parse =>
        {
            string dir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            using var model = ClipModel.Load(BenchInputs.BenchModel(dir, parse.GetValue(bench)!));
            int c = parse.GetValue(classes), n = c * parse.GetValue(shots), e = parse.GetValue(epochs) + 1;
            var rng = new Rng(5);
            var images = new EmbeddingMatrix(n, model.EmbeddingDimension);
            rng.FillNormal(images.Data);
            images.NormalizeRows();
            var labels = Enumerable.Range(0, n).Select(i => i % c).ToArray();
            var candidates = CandidateLabels.Generate(labels, c, 0.3, 7);
            var names = Enumerable.Range(0, c).Select(i => $"class number {i}").ToArray();
            var report = new BenchmarkReport("Prompt tuning with candidate labels: time per epoch", Environment.GetCommandLineArgs()[1..]);
            string input = $"{model.Name} text tower (context {model.ContextLength}{(model.DynamicTextLength ? " dynamic" : "")}), {n} images = {parse.GetValue(shots)} shots × {c} classes, batch 32, q = 0.3, CC unless named, GEMM {Gemm.Effective}";
            // Two stand-in views (noisy copies) for the objectives that use strong views.
            var views = Enumerable.Range(0, 2).Select(_ =>
            {
                var v = new EmbeddingMatrix((float[])images.Data.Clone(), n, model.EmbeddingDimension);
                for (int k = 0; k < v.Data.Length; k++) v.Data[k] += (float)(0.1 * rng.NextNormal());
                v.NormalizeRows();
                return v;
            }).ToArray();
            foreach (var (label, method, align, loss) in new[]
            {
                ("CoOp (M = 16)", TuningMethod.CoOp, false, PartialLabelLossKind.CC), ("CoOp + alignment", TuningMethod.CoOp, true, PartialLabelLossKind.CC),
                ("CoOp · PiCO (2 views)", TuningMethod.CoOp, false, PartialLabelLossKind.PiCO), ("CoOp · PLCR (2 strong views)", TuningMethod.CoOp, false, PartialLabelLossKind.PLCR),
                ("linear probe", TuningMethod.LinearProbe, false, PartialLabelLossKind.CC),
            })
            {
                var times = new List<double>();
                long t0 = Stopwatch.GetTimestamp();
                bool multiView = loss is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR;
                PromptTuner.Tune(model, images, candidates, names, new PromptTuningOptions
                {
                    Method = method, Align = align, Epochs = e, Loss = loss,
                    Progress = _ => { times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds); t0 = Stopwatch.GetTimestamp(); },
                }, augmentedViews: multiView ? views : null);
                var timed = times.Skip(1).Order().ToArray();
                report.Add($"{label}: s/epoch", timed[timed.Length / 2], "s", input);
            }
            report.Publish();
            return 0;
        });
        return command;
    }
}
