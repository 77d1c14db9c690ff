using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Vega.MLNet.Imaging;
using Vega.MLNet.Orleans;
using Vega.MLNet.Samples.Bench;
using Vega.MLNet.Samples.Commands;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Orleans;

/// <summary>
/// <c>vega silo</c> processes on loopback: the CLI's <c>vega rank --cluster</c> against <c>vega rank</c>, and a silo
/// killed with SIGKILL in the middle of a run (a real crash, not a graceful stop).
/// </summary>
[Collection("Orleans")]
public sealed class OutOfProcessClusterTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task SiloProcessesRankLikeOneMachineAndSurviveAKilledSilo()
    {
        string manifest = ClusterTestData.Manifest(160), classes = ClusterTestData.ClassFile();
        var models = ClusterTestData.Models();
        // No silo at the gateway: a clear error once the connection timeout has passed, not a hang.
        var (code, output, error) = Vega("rank", "--models", models[0], "--images", manifest, "--classes", classes, "--cluster", "127.0.0.1:9", "--connect-timeout", "2");
        Assert.Equal(2, code);
        Assert.Contains("Cannot connect to the cluster at 127.0.0.1:9", error);

        using var silos = new SiloProcesses("--probe-timeout 1", Fixtures.TempDir("vega-silos")); // a cache per silo in .vega-cache/silo-PORT
        await silos.AddAsync(3, Bound);
        string gateways = string.Join(",", silos.Silos.Select(s => $"127.0.0.1:{s.GatewayPort}"));

        // 1. The CLI: the same JSON as a single-machine run.
        string dir = Fixtures.TempDir();
        string[] common = ["rank", "--models", .. models, "--images", manifest, "--classes", classes, "--bootstrap", "50"];
        (code, output, error) = Vega([.. common, "--json", Path.Combine(dir, "local.json"), "--cache", Path.Combine(dir, "cache")]);
        Assert.True(code == 0, error + output);
        (code, output, error) = Vega([.. common, "--json", Path.Combine(dir, "cluster.json"), "--cluster", gateways, "--shard-size", "16"]);
        Assert.True(code == 0, error + output);
        Assert.Contains("cluster: 3 gateway(s)", output);
        SameJsonScores(Path.Combine(dir, "local.json"), Path.Combine(dir, "cluster.json"), 1e-9);

        // 2. Kill -9 one silo (not the primary, which holds the development membership table) after a few shards.
        var images = ImageSource.FromCsv(manifest);
        var local = await Task.Run(() => VisionLanguageModelSelection.SelectVisionLanguageModel([.. models.Select(m => ModelCandidate.FromPath(m))], images, ClusterTestData.Classes));
        var connection = new ClusterConnection(silos.Gateways, "vega", "vega");
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
            Log = line => log.WriteLine($"{(killedAt is { } k ? (DateTime.UtcNow - k).TotalSeconds : 0):F1} s after the kill: {line}"),
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
        var run = TinyClip.Vega(args, Bound);
        Assert.False(run.TimedOut, $"vega {string.Join(' ', args)} did not end in time:\n{run}");
        return (run.ExitCode, run.StdOut, run.StdErr);
    }
}
