using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Vega.MLNet.Models;
using Vega.MLNet.Orleans;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// <c>vega silo</c>: starts an Orleans silo that runs the embedding shards of <c>vega rank --cluster</c>. Clustering is
/// Orleans' development clustering (the primary silo keeps the membership table in memory): fine on one machine or a
/// trusted LAN for a run; docs/scale-out.md explains how to host silos with a real clustering provider.
/// </summary>
internal static class SiloCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Silo-to-silo port.", DefaultValueFactory = _ => 11111 };
        var gatewayPort = new Option<int>("--gateway-port") { Description = "Gateway port that clients (vega rank --cluster) connect to.", DefaultValueFactory = _ => 30000 };
        var address = new Option<string>("--address") { Description = "IP address this silo advertises to the others (and listens on).", DefaultValueFactory = _ => "127.0.0.1" };
        var primary = new Option<string?>("--primary") { Description = "host:port (silo port) of the primary silo, which keeps the membership table; omit it on the primary itself." };
        var clusterId = new Option<string>("--cluster-id") { Description = "Orleans cluster id (clients must use the same).", DefaultValueFactory = _ => "vega" };
        var serviceId = new Option<string>("--service-id") { Description = "Orleans service id (clients must use the same).", DefaultValueFactory = _ => "vega" };
        var cache = new Option<string?>("--cache") { Description = "This silo's embedding cache folder (default .vega-cache/silo-PORT; one folder per silo)." };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not cache embeddings on this silo." };
        var maxModels = new Option<int>("--max-models") { Description = "Candidate models kept loaded between shards.", DefaultValueFactory = _ => 2 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads per tower run (0 = its default).", DefaultValueFactory = _ => 0 };
        var probe = new Option<double?>("--probe-timeout") { Description = "Seconds between liveness probes of the other silos (Orleans' default 5); lower finds a crashed silo sooner." };
        var command = new Command("silo", "Start an Orleans silo that embeds image shards for `vega rank --cluster` (development clustering; see docs/scale-out.md).");
        foreach (Option o in new Option[] { port, gatewayPort, address, primary, clusterId, serviceId, cache, noCache, maxModels, threads, probe }) command.Options.Add(o);
        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            int siloPort = parse.GetValue(port), gwPort = parse.GetValue(gatewayPort);
            if (siloPort is < 1 or > 65535 || gwPort is < 1 or > 65535 || siloPort == gwPort)
                throw new ArgumentException($"--port {siloPort} and --gateway-port {gwPort}: give two different ports in 1..65535.");
            if (!IPAddress.TryParse(parse.GetValue(address), out var ip))
                throw new ArgumentException($"--address '{parse.GetValue(address)}': give an IP address (e.g. 127.0.0.1, or this host's LAN address).");
            var own = new IPEndPoint(ip, siloPort);
            var primaryEndpoint = parse.GetValue(primary) is { } p ? ClusterConnection.ParseEndpoint(p, "--primary") : own;
            string? cacheDir = parse.GetValue(noCache) ? null : parse.GetValue(cache) ?? Path.Combine(".vega-cache", $"silo-{siloPort}");
            int models = parse.GetValue(maxModels);
            if (models < 1) throw new ArgumentException($"--max-models {models}: keep at least 1 model loaded.");
            var probeTimeout = parse.GetValue(probe);
            if (probeTimeout is double pt && !(pt > 0)) throw new ArgumentException($"--probe-timeout {pt}: give a positive number of seconds.");

            var builder = Host.CreateApplicationBuilder([]);
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.Logging.AddFilter("Vega", LogLevel.Information);
            // Start-up notes (server GC, the watchdog's first tick) and a dead peer's connection errors with their stacks are noise here.
            builder.Logging.AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
            builder.Logging.AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error);
            builder.Logging.AddFilter("Orleans.Runtime.Messaging", LogLevel.Error);
            builder.UseOrleans(silo =>
            {
                silo.UseDevelopmentClustering(primaryEndpoint);
                silo.ConfigureEndpoints(ip, siloPort, gwPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(ip));
                silo.Configure<ClusterOptions>(o => { o.ClusterId = parse.GetValue(clusterId)!; o.ServiceId = parse.GetValue(serviceId)!; });
                if (probeTimeout is double seconds)
                    silo.Configure<ClusterMembershipOptions>(o =>
                    {
                        o.ProbeTimeout = TimeSpan.FromSeconds(seconds);
                        o.NumMissedProbesLimit = 2;
                        o.NumVotesForDeathDeclaration = 1;
                    });
                silo.AddVegaSelection(o =>
                {
                    o.CacheDirectory = cacheDir;
                    o.MaxLoadedModels = models;
                    o.ModelOptions = new ClipModelOptions { IntraOpThreads = parse.GetValue(threads) };
                });
            });
            using var host = builder.Build();
            await host.StartAsync(ct);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"vega silo ready: silo {own}, gateway {ip}:{gwPort}, primary {primaryEndpoint}, cluster '{parse.GetValue(clusterId)}', cache {cacheDir ?? "none"} (Ctrl+C stops it)"));
            try
            {
                await host.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException)
            {
            }
            await host.StopAsync(CancellationToken.None);
            return 0;
        }));
        return command;
    }
}
