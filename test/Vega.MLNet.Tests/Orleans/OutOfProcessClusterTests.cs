using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Vega.MLNet.Imaging;
using Vega.MLNet.Orleans;
using Vega.MLNet.Samples.Commands;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Orleans;

/// <summary>
/// <c>vega silo</c> processes on loopback: the CLI's <c>vega rank --cluster</c> against <c>vega rank</c>, and a silo
/// killed with SIGKILL in the middle of a run (a real crash, not a graceful stop).
/// </summary>
[Collection("Orleans")]
public sealed class OutOfProcessClusterTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task SiloProcessesRankLikeOneMachineAndSurviveAKilledSilo()
    {
        string manifest = ClusterTestData.Manifest(160), classes = ClusterTestData.ClassFile();
        var models = ClusterTestData.Models();
        using var silos = await SiloProcesses.StartAsync(3);
        string gateways = string.Join(",", silos.Silos.Select(s => $"127.0.0.1:{s.GatewayPort}"));

        // 1. The CLI: the same JSON as a single-machine run.
        string dir = Fixtures.TempDir();
        string[] common = ["rank", "--models", .. models, "--images", manifest, "--classes", classes, "--bootstrap", "50"];
        var (code, output, error) = Vega([.. common, "--json", Path.Combine(dir, "local.json"), "--cache", Path.Combine(dir, "cache")]);
        Assert.True(code == 0, error + output);
        (code, output, error) = Vega([.. common, "--json", Path.Combine(dir, "cluster.json"), "--cluster", gateways, "--shard-size", "16"]);
        Assert.True(code == 0, error + output);
        Assert.Contains("cluster: 3 gateway(s)", output);
        SameJsonScores(Path.Combine(dir, "local.json"), Path.Combine(dir, "cluster.json"), 1e-9);

        // 2. Kill -9 one silo (not the primary, which holds the development membership table) after a few shards.
        var images = ImageSource.FromCsv(manifest);
        var local = await Task.Run(() => VisionLanguageModelSelection.SelectVisionLanguageModel([.. models.Select(m => ModelCandidate.FromPath(m))], images, ClusterTestData.Classes));
        var connection = new ClusterConnection([.. silos.Silos.Select(s => new IPEndPoint(IPAddress.Loopback, s.GatewayPort))], "vega", "vega");
        using var host = await connection.ConnectAsync(CancellationToken.None).WaitAsync(Bound);
        var victim = silos.Silos[2];
        var reports = new List<ClusterRunReport>();
        int finished = 0;
        DateTime? killedAt = null;
        var worker = new OrleansSelectionWorker(host.Services.GetRequiredService<global::Orleans.IClusterClient>(), new ClusterWorkerOptions
        {
            ShardSize = 8,
            LivenessInterval = TimeSpan.FromSeconds(1),
            OnReport = reports.Add,
            Progress = new Inline(_ =>
            {
                if (++finished == 4)
                {
                    victim.Process.Kill(); // SIGKILL: the silo's shard in flight is lost
                    killedAt = DateTime.UtcNow;
                }
            }),
        });
        var cluster = await Task.Run(() => VisionLanguageModelSelection.SelectVisionLanguageModel([.. models.Select(m => ModelCandidate.FromPath(m))], images, ClusterTestData.Classes,
            new VlmSelectionOptions { Worker = worker })).WaitAsync(Bound);

        Assert.NotNull(killedAt);
        Assert.True(victim.Process.HasExited);
        InProcessClusterTests.SameRanking(local.Ranking, cluster.Ranking, 1e-9);
        Assert.Equal(local.Evaluation!.Accuracies, cluster.Evaluation!.Accuracies);
        string victimEndpoint = $"127.0.0.1:{victim.SiloPort}";
        var retries = reports.SelectMany(r => r.Retries).ToList();
        Assert.Contains(retries, r => r.Contains(victimEndpoint));
        // After the kill the victim ran nothing more: the second model's shards all ran on the two survivors.
        Assert.DoesNotContain(reports[1].ShardRuns, s => s.Silo.Contains(victimEndpoint));
        Assert.Equal((images.Count + 7) / 8, reports[1].ShardRuns.Count);
    }

    private sealed class Inline(Action<Vega.MLNet.Embedding.EmbeddingProgress> report) : IProgress<Vega.MLNet.Embedding.EmbeddingProgress>
    {
        public void Report(Vega.MLNet.Embedding.EmbeddingProgress value) => report(value);
    }

    private static void SameJsonScores(string expectedPath, string actualPath, double tolerance)
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(expectedPath));
        using var actual = JsonDocument.Parse(File.ReadAllText(actualPath));
        var e = expected.RootElement.GetProperty("models").EnumerateArray().ToArray();
        var a = actual.RootElement.GetProperty("models").EnumerateArray().ToArray();
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
        {
            Assert.Equal(e[i].GetProperty("name").GetString(), a[i].GetProperty("name").GetString());
            foreach (var metric in e[i].GetProperty("metrics").EnumerateObject())
            {
                double x = metric.Value.GetDouble(), y = a[i].GetProperty("metrics").GetProperty(metric.Name).GetDouble();
                Assert.True(Math.Abs(x - y) <= tolerance, $"{e[i].GetProperty("name").GetString()} {metric.Name}: {x} vs {y}");
            }
        }
    }

    /// <summary>Runs the vega CLI, killed if it does not end within the bound.</summary>
    internal static (int Code, string Output, string Error) Vega(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "vega"), args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["COLUMNS"] = "200" },
        };
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(Bound))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"vega {string.Join(' ', args)} did not end within {Bound.TotalSeconds} s");
        }
        p.WaitForExit();
        return (p.ExitCode, output.Result, error.Result);
    }
}

/// <summary><c>vega silo</c> processes on loopback with development clustering (the first is the primary); killed on dispose.</summary>
internal sealed class SiloProcesses : IDisposable
{
    public sealed record Silo(Process Process, int SiloPort, int GatewayPort, List<string> Output);

    public List<Silo> Silos { get; } = [];

    public static async Task<SiloProcesses> StartAsync(int count, string extraArgs = "")
    {
        var silos = new SiloProcesses();
        try
        {
            var ports = FreePorts(2 * count);
            string cache = Fixtures.TempDir("vega-silo-cache");
            silos.Silos.Add(Start(ports[0], ports[1], null, cache, extraArgs));
            await Ready(silos.Silos[0]);
            for (int i = 1; i < count; i++) silos.Silos.Add(Start(ports[2 * i], ports[2 * i + 1], ports[0], cache, extraArgs));
            foreach (var s in silos.Silos.Skip(1)) await Ready(s);
            return silos;
        }
        catch
        {
            silos.Dispose();
            throw;
        }
    }

    private static Silo Start(int port, int gateway, int? primary, string cache, string extraArgs)
    {
        string args = $"silo --port {port} --gateway-port {gateway} --cache {Path.Combine(cache, port.ToString(System.Globalization.CultureInfo.InvariantCulture))} --probe-timeout 1 {extraArgs}"
            + (primary is int p ? $" --primary 127.0.0.1:{p}" : "");
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "vega"), args) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(start)!;
        var output = new List<string>();
        void Add(string? line) { if (line is not null) lock (output) output.Add(line); }
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Silo(process, port, gateway, output);
    }

    private static async Task Ready(Silo silo)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            lock (silo.Output)
                if (silo.Output.Any(l => l.StartsWith("vega silo ready", StringComparison.Ordinal))) return;
            if (silo.Process.HasExited) break;
            await Task.Delay(100);
        }
        lock (silo.Output)
            Assert.Fail($"vega silo on port {silo.SiloPort} did not start:\n{string.Join('\n', silo.Output)}");
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        foreach (var l in listeners) l.Start();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var l in listeners) l.Stop();
        return ports;
    }

    public void Dispose()
    {
        foreach (var s in Silos)
        {
            try
            {
                if (!s.Process.HasExited) s.Process.Kill(entireProcessTree: true);
                s.Process.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
            }
            s.Process.Dispose();
        }
    }
}
