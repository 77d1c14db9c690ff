using System.CommandLine;
using Vega.MLNet.Models;
using Vega.MLNet.Runtime;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Bench;

/// <summary><c>vega bench text</c>: text embedding through ClipModel against a bare ONNX Runtime Run loop over the
/// same token batches.</summary>
internal static class BenchText
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: beside the repository)." };
        var model = new Option<string?>("--model") { Description = "Model folder (default: the ViT-B/32-sized towers in ../shared/bench)." };
        var bench = new Option<string>("--bench-model") { Description = "Which ../shared/bench towers: openai-vit-b32 or hf-vit-b32.", DefaultValueFactory = _ => "openai-vit-b32" };
        var count = new Option<int>("--texts") { Description = "Number of texts.", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch") { Description = "Texts per run.", DefaultValueFactory = _ => 16 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats (median reported).", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0 = all cores).", DefaultValueFactory = _ => 0 };
        var command = new Command("text", "Text-tower texts/s: ClipModel.EmbedTexts vs a bare ONNX Runtime Run loop over the same batches.") { shared, model, bench, count, batch, repeats, threads };
        command.SetAction(parse =>
        {
            string dir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            string modelDir = parse.GetValue(model) ?? BenchInputs.BenchModel(dir, parse.GetValue(bench)!);
            using var clip = ClipModel.Load(modelDir, new ClipModelOptions { IntraOpThreads = parse.GetValue(threads) });
            var texts = BenchInputs.MixedCorpus(dir, 0).Take(parse.GetValue(count)).ToList();
            int b = parse.GetValue(batch), n = parse.GetValue(repeats);

            // The bare loop: the same token batches, prepared outside the timing, run through the same session.
            var tower = clip.TextTower;
            var prepared = new List<List<OnnxInput>>();
            for (int s = 0; s < texts.Count; s += b)
            {
                var tokens = clip.Tokenizer.EncodeBatch(texts.GetRange(s, Math.Min(b, texts.Count - s)), clip.ContextLength, truncate: true, (int)clip.PadId);
                int width = tower.FixedLength ?? tokens.MaxLength;
                var ids = tokens.IdsWithWidth(width, clip.PadId);
                var inputs = new List<OnnxInput> { OnnxInput.Create(tower.IdsName, ids, tokens.Count, width) };
                if (tower.MaskName is not null) inputs.Add(OnnxInput.Create(tower.MaskName, tokens.AttentionMask(width), tokens.Count, width));
                prepared.Add(inputs);
            }
            var options = new TextEmbeddingOptions { BatchSize = b, Truncate = true };
            double bare = 0, full = 0;
            // Interleave the two so that machine noise hits both alike; medians of each.
            var bareTimes = new List<double>();
            var fullTimes = new List<double>();
            for (int r = 0; r < n; r++)
            {
                bareTimes.Add(BenchmarkReport.MedianSeconds(1, () => { foreach (var inputs in prepared) { using var _ = tower.Session.Run(inputs, [tower.OutputName]); } }, warmup: r == 0 ? 1 : 0));
                fullTimes.Add(BenchmarkReport.MedianSeconds(1, () => clip.EmbedTexts(texts, options), warmup: r == 0 ? 1 : 0));
            }
            bareTimes.Sort(); fullTimes.Sort();
            bare = bareTimes[n / 2]; full = fullTimes[n / 2];
            var report = new BenchmarkReport("Text embedding vs bare ONNX Runtime", Environment.GetCommandLineArgs()[1..]);
            string input = $"{clip.Name} ({clip.Layout}, context {clip.ContextLength}{(clip.DynamicTextLength ? " dynamic" : "")}), {texts.Count} texts, batch {b}, intra-op threads {(parse.GetValue(threads) is > 0 and var th ? th : Environment.ProcessorCount)}";
            report.Add("bare ORT Run loop", texts.Count / bare, "texts/s", input);
            report.Add("ClipModel.EmbedTexts (tokenize + run + normalise)", texts.Count / full, "texts/s", input);
            report.Add("EmbedTexts / bare", 100 * bare / full, "%", "goal ≥ 95 %");
            report.Publish();
            return 0;
        });
        return command;
    }
}
