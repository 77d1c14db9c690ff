using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Orleans;
using Vega.MLNet.Samples.Commands;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench cluster</c>: the embedding work of one candidate on N images, in this process (the local worker) and on
/// 1, 2, 3 … <c>vega silo</c> processes over loopback (the Orleans worker): throughput and what the coordinator costs.
/// </summary>
internal static class BenchCluster
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Candidate model (default: the ViT-B/32-sized hf-vit-b32 towers of ../shared/bench)." };
        var count = new Option<int>("--images") { Description = "Images per run (the JPEGs of ../shared/images, cycled).", DefaultValueFactory = _ => 384 };
        var shard = new Option<int>("--shard-size") { Description = "Images per shard.", DefaultValueFactory = _ => 32 };
        var silos = new Option<int>("--max-silos") { Description = "Silo processes in the last configuration (1, 2, … this many).", DefaultValueFactory = _ => 3 };
        var repeats = new Option<int>("--repeats") { Description = "Measured runs per configuration (after one warm-up run); the median is reported.", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--silo-threads") { Description = "ONNX Runtime and decode threads of every silo and of the local run (0 = one per core each).", DefaultValueFactory = _ => 0 };
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder." };
        var log = new Option<string?>("--log") { Description = "Append the figures to this file instead of docs/benchmarks.md." };
        var command = new Command("cluster", "Selection embedding work in this process and on 1…N vega silo processes over loopback: images/s, speed-up, the coordinator's overhead and CPU.");
        foreach (Option o in new Option[] { model, count, shard, silos, repeats, threads, shared, log }) command.Options.Add(o);
        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            string sharedDir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            string modelDir = parse.GetValue(model) ?? BenchInputs.BenchModel(sharedDir, "hf-vit-b32");
            int n = Math.Max(1, parse.GetValue(count)), shardSize = Math.Max(1, parse.GetValue(shard)), maxSilos = Math.Max(1, parse.GetValue(silos)), runs = Math.Max(1, parse.GetValue(repeats));
            var files = ImageSource.FromFolder(Path.Combine(sharedDir, "images"), recursive: false, extensions: [".jpg"]).Items.Select(i => i.Path!).ToArray();
            var images = ImageSource.FromPaths(Enumerable.Range(0, n).Select(i => files[i % files.Length]));
            int perSilo = Math.Max(0, parse.GetValue(threads));
            using var clip = ClipModel.Load(modelDir, new ClipModelOptions { IntraOpThreads = perSilo });
            var work = new SelectionWork
            {
                Candidate = ModelCandidate.FromPath(modelDir, clip.Name),
                Model = clip,
                ClassTexts = clip.EmbedClassNames(ImageSource.FashionMnistClassNames),
                Images = images,
                ImageIndices = [.. Enumerable.Range(0, n)],
                Selection = new SelectionOptions { Bootstrap = new BootstrapOptions { Replicates = 0 } },
                Embedding = new ImageEmbeddingOptions { DecodeThreads = perSilo },
            };
            string input = string.Create(CultureInfo.InvariantCulture,
                $"{clip.Name}, {n} images cycled from {files.Length} JPEGs of ../shared/images, 10 classes, shards of {shardSize}, no embedding cache, {(perSilo == 0 ? "threads: one per core in each process" : $"{perSilo} ORT + {perSilo} decode thread(s) per process")}, {Environment.ProcessorCount} cores");
            var report = new BenchmarkReport("cluster (Orleans, loopback)", Environment.GetCommandLineArgs()[1..]);
            var rows = new List<Row>();

            // This process: the reference (no cluster, no cache).
            var local = Measure(runs, () => { new LocalSelectionWorker().ComputeAsync(work, ct).GetAwaiter().GetResult(); return null; });
            rows.Add(new Row("local (this process)", 0, local.Wall, double.NaN, double.NaN, local.Cpu, 0, 0, 0, 0));

            string workDir = Path.Combine(Path.GetTempPath(), $"vega-bench-cluster-{Environment.ProcessId}");
            Directory.CreateDirectory(workDir);
            using var processes = new SiloProcesses(string.Create(CultureInfo.InvariantCulture, $"--no-cache --threads {perSilo}"), workDir);
            for (int k = 1; k <= maxSilos; k++)
            {
                await processes.AddAsync(1, TimeSpan.FromSeconds(120));
                var connection = new ClusterConnection(processes.Gateways, "vega", "vega");
                using var host = await connection.ConnectAsync(ct);
                var client = host.Services.GetRequiredService<global::Orleans.IClusterClient>();
                ClusterRunReport? last = null;
                var worker = new OrleansSelectionWorker(client, new ClusterWorkerOptions { ShardSize = shardSize, OnReport = r => last = r });
                var m = Measure(runs, () =>
                {
                    worker.ComputeAsync(work, ct).GetAwaiter().GetResult();
                    return last;
                });
                var r = m.Report!;
                // The busiest silo's compute time bounds the run from below; the rest is the coordinator and the cluster:
                // dispatch, serialisation, loopback transfer, the merge, and silos idle at the end.
                double busiest = r.ShardRuns.GroupBy(s => s.Silo).Max(g => g.Sum(s => s.Seconds));
                rows.Add(new Row($"{k} silo(s)", k, m.Wall, busiest, m.Wall - busiest, m.Cpu, r.Merge.TotalSeconds, r.BytesReceived, r.Shards, r.Attempts - r.Shards));
                await host.StopAsync(CancellationToken.None);
            }

            double oneSilo = rows.First(x => x.Silos == 1).Wall;
            foreach (var row in rows)
            {
                report.Add($"{row.Name}: throughput", n / row.Wall, "images/s", input);
                if (row.Silos > 0)
                {
                    report.Add($"{row.Name}: speed-up over 1 silo", oneSilo / row.Wall, "×", "median wall times of the same run");
                    report.Add($"{row.Name}: coordinator overhead (wall − busiest silo's compute)", 1000 * row.Overhead, "ms", $"median run; {row.Shards} shards, {row.Retries} retries");
                    report.Add($"{row.Name}: coordinator CPU per run", 1000 * row.Cpu, "ms", "this process: client, deserialisation, merge");
                }
            }
            var md = new StringBuilder();
            md.Append("| configuration | wall (median) | images/s | speed-up vs 1 silo | busiest silo compute | coordinator overhead | coordinator CPU | merge | bytes received |\n");
            md.Append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
            foreach (var row in rows)
                md.Append(string.Create(CultureInfo.InvariantCulture,
                    $"| {row.Name} | {row.Wall:F2} s | {n / row.Wall:F1} | {(row.Silos > 0 ? $"{oneSilo / row.Wall:F2}×" : "—")} | {(row.Silos > 0 ? $"{row.Busiest:F2} s" : "—")} | {(row.Silos > 0 ? $"{1000 * row.Overhead:F0} ms" : "—")} | {1000 * row.Cpu:F0} ms | {(row.Silos > 0 ? $"{1000 * row.Merge:F1} ms" : "—")} | {(row.Silos > 0 ? $"{row.Bytes / 1024.0:F0} KiB" : "—")} |\n"));
            report.AddMarkdown(md.ToString());
            report.Publish(parse.GetValue(log));
            return 0;
        }));
        return command;
    }

    private sealed record Row(string Name, int Silos, double Wall, double Busiest, double Overhead, double Cpu, double Merge, long Bytes, int Shards, int Retries);

    // One warm-up run (model loads on the silos, JIT), then the median of the measured runs by wall time, with that
    // run's CPU time of this process and its report.
    private static (double Wall, double Cpu, ClusterRunReport? Report) Measure(int runs, Func<ClusterRunReport?> run)
    {
        run();
        var results = new List<(double Wall, double Cpu, ClusterRunReport? Report)>();
        var self = Process.GetCurrentProcess();
        for (int i = 0; i < runs; i++)
        {
            Thread.Sleep(200);
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            long t0 = Stopwatch.GetTimestamp();
            var report = run();
            double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            self.Refresh();
            results.Add((wall, (self.TotalProcessorTime - cpu0).TotalSeconds, report));
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"  run {i + 1}: {wall:F2} s")));
        }
        results.Sort((a, b) => a.Wall.CompareTo(b.Wall));
        return results[results.Count / 2];
    }
}
