using System.CommandLine;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Bench;

/// <summary><c>vega bench tokenizer</c>: CLIP tokenizer throughput on one thread over mixed text.</summary>
internal static class BenchTokenizer
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: beside the repository)." };
        var captions = new Option<int>("--captions") { Description = "Generated captions added to the golden texts.", DefaultValueFactory = _ => 20000 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats (median reported).", DefaultValueFactory = _ => 5 };
        var command = new Command("tokenizer", "CLIP tokenizer tokens/s on one thread over mixed text (cold and warm word cache).") { shared, captions, repeats };
        command.SetAction(parse =>
        {
            string dir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            var texts = BenchInputs.MixedCorpus(dir, parse.GetValue(captions));
            var tok = ClipTokenizer.FromVocabAndMerges(Path.Combine(dir, "clip-tokenizer", "vocab.json"), Path.Combine(dir, "clip-tokenizer", "merges.txt"));
            long tokens = 0, chars = 0;
            var ids = new List<int>(256);
            foreach (var t in texts) { ids.Clear(); tok.EncodeInto(t, ids); tokens += ids.Count; chars += t.Length; }
            int n = parse.GetValue(repeats);
            double cold = BenchmarkReport.MedianSeconds(n, () =>
            {
                tok.ClearWordCache();
                foreach (var t in texts) { ids.Clear(); tok.EncodeInto(t, ids); }
            }, warmup: 1);
            double warm = BenchmarkReport.MedianSeconds(n, () =>
            {
                foreach (var t in texts) { ids.Clear(); tok.EncodeInto(t, ids); }
            });
            var report = new BenchmarkReport("CLIP tokenizer, one thread", Environment.GetCommandLineArgs()[1..]);
            string input = $"{texts.Count} texts ({chars} chars, {tokens} tokens): golden.jsonl + golden_classnames.jsonl + {parse.GetValue(captions)} captions";
            report.Add("tokens/s, cold word cache", tokens / cold, "tokens/s", input);
            report.Add("tokens/s, warm word cache", tokens / warm, "tokens/s", input);
            report.Add("texts/s, warm", texts.Count / warm, "texts/s", input);
            report.Publish();
            return 0;
        });
        return command;
    }
}
