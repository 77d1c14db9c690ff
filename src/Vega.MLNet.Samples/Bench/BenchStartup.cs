using System.CommandLine;
using System.Diagnostics;
using Vega.MLNet.Models;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench startup</c>: how long <c>ClipModel.Load</c> takes (both ONNX Runtime sessions plus tokenizer), without
/// and with the optimised-model folder (first load writes it, later loads read it).
/// </summary>
internal static class BenchStartup
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: found beside the repository)." };
        var bench = new Option<string>("--bench-model") { Description = "Which ../shared/bench towers: openai-vit-b32 or hf-vit-b32.", DefaultValueFactory = _ => "hf-vit-b32" };
        var model = new Option<string?>("--model") { Description = "Model folder (default: the --bench-model towers)." };
        var repeats = new Option<int>("--repeats") { Description = "Timed loads of each kind (median reported).", DefaultValueFactory = _ => 3 };
        var command = new Command("startup", "Model load time: plain, and with the optimised-model folder (first load writes it, later loads read it).") { shared, bench, model, repeats };
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(model) ?? BenchInputs.BenchModel(BenchInputs.SharedDirectory(parse.GetValue(shared)), parse.GetValue(bench)!);
            int n = Math.Max(1, parse.GetValue(repeats));
            string cache = Path.Combine(Path.GetTempPath(), "vega-bench-optimized-" + Environment.ProcessId);
            try
            {
                double Load(ClipModelOptions o)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    using var m = ClipModel.Load(dir, o);
                    return Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
                var plain = new ClipModelOptions();
                var cached = new ClipModelOptions { OptimizedModelDirectory = cache };
                Load(plain); // warm the file cache and the runtime
                double first = Load(cached);
                var times = BenchmarkReport.Interleaved(n, [("plain", () => Load(plain)), ("cached", () => Load(cached))]);
                long bytes = Directory.GetFiles(cache).Sum(f => new FileInfo(f).Length);
                var report = new BenchmarkReport("Model load time", Environment.GetCommandLineArgs()[1..]);
                string input = $"{Path.GetFileName(dir)}: both towers + tokenizer, {Environment.ProcessorCount} cores";
                report.Add("ClipModel.Load, no optimised-model folder", times[0], "s", input);
                report.Add("ClipModel.Load, first load with the folder (optimises and writes)", first, "s", input + $", writes {bytes / 1e6:F0} MB");
                report.Add("ClipModel.Load from the optimised-model folder", times[1], "s", input);
                report.Add("speed-up", times[0] / times[1], "×", "plain / from the folder");
                report.Publish();
            }
            finally
            {
                try { Directory.Delete(cache, recursive: true); } catch (IOException) { }
            }
            return 0;
        });
        return command;
    }
}
