using System.CommandLine;
using Vega.MLNet.Models;

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

            // The bare loop: the same token batches, prepared outside the timing, through Microsoft.ML.OnnxRuntime directly.
            var tower = clip.TextTower;
            int th = parse.GetValue(threads) is > 0 and var given ? given : Environment.ProcessorCount;
            using var bare = new BareOrt(tower.Session.Source, th);
            using var bareDefault = new BareOrt(tower.Session.Source, threads: null);

            var prepared = new List<List<(string, long[], long[])>>();
            for (int s = 0; s < texts.Count; s += b)
            {
                var tokens = clip.Tokenizer.EncodeBatch(texts.GetRange(s, Math.Min(b, texts.Count - s)), clip.ContextLength, truncate: true, (int)clip.PadId);
                int width = tower.FixedLength ?? tokens.MaxLength;
                long[] shape = [tokens.Count, width];
                var inputs = new List<(string, long[], long[])> { (tower.IdsName, tokens.IdsWithWidth(width, clip.PadId), shape) };
                if (tower.MaskName is not null) inputs.Add((tower.MaskName, tokens.AttentionMask(width), shape));
                prepared.Add(inputs);
            }
            var options = new TextEmbeddingOptions { BatchSize = b, Truncate = true };
            var batches = Enumerable.Range(0, (texts.Count + b - 1) / b)
                .Select(i => clip.Tokenizer.EncodeBatch(texts.GetRange(i * b, Math.Min(b, texts.Count - i * b)), clip.ContextLength, truncate: true, (int)clip.PadId)).ToList();
            var towerOut = new float[b * clip.EmbeddingDimension];
            var t = BenchmarkReport.Interleaved(n,
            [
                ("bare default", () => { foreach (var inputs in prepared) bareDefault.Run(inputs, tower.OutputName); }),
                ("bare", () => { foreach (var inputs in prepared) bare.Run(inputs, tower.OutputName); }),
                ("tokenize only", () => { for (int i = 0; i < texts.Count; i += b) clip.Tokenizer.EncodeBatch(texts.GetRange(i, Math.Min(b, texts.Count - i)), clip.ContextLength, truncate: true, (int)clip.PadId); }),
                ("library tower only", () => { foreach (var tb in batches) clip.EmbedTokensInto(tb, towerOut.AsMemory(0, tb.Count * clip.EmbeddingDimension), CancellationToken.None); }),
                ("library", () => clip.EmbedTexts(texts, options)),
            ]);
            var report = new BenchmarkReport("Text embedding vs bare ONNX Runtime", Environment.GetCommandLineArgs()[1..]);
            string input = $"{clip.Name} ({clip.Layout}, context {clip.ContextLength}{(clip.DynamicTextLength ? " dynamic" : "")}), {texts.Count} texts, batch {b}, intra-op threads {th}";
            report.Add("bare InferenceSession.Run, ONNX Runtime's default threads", texts.Count / t[0], "texts/s", input + " (token ids prepared outside the timing)");
            report.Add("bare InferenceSession.Run loop", texts.Count / t[1], "texts/s", input + " (token ids prepared outside the timing)");
            report.Add("ClipModel.EmbedTexts (tokenize + run + normalise)", texts.Count / t[4], "texts/s", input);
            report.Add("tokenize only (ClipTokenizer.EncodeBatch)", texts.Count / t[2], "texts/s", input);
            report.Add("library tower call on the same token batches (run + normalise)", texts.Count / t[3], "texts/s", input);
            report.Add("EmbedTexts / bare", t[1] / t[4], "×", "goal ≥ 0.95");
            report.Publish();
            return 0;
        });
        return command;
    }
}
