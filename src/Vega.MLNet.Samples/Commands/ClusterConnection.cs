using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Vega.MLNet.Orleans;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// The <c>--cluster</c> argument of <c>vega rank</c>: gateway endpoints ("host:port,host:port") or a JSON file
/// (<c>{"gateways": ["10.0.0.5:30000"], "clusterId": "vega", "serviceId": "vega"}</c>), and the Orleans client built from it.
/// </summary>
internal sealed record ClusterConnection(IReadOnlyList<IPEndPoint> Gateways, string ClusterId, string ServiceId)
{
    /// <summary>Reads <paramref name="value"/>: a JSON file when one exists at that path, else a comma-separated endpoint list.</summary>
    public static ClusterConnection Parse(string value, string clusterId, string serviceId)
    {
        if (File.Exists(value))
        {
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(File.ReadAllText(value));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"--cluster '{value}' is not valid JSON ({e.Message}); expected {{\"gateways\": [\"host:port\", ...], \"clusterId\": \"vega\", \"serviceId\": \"vega\"}}.");
            }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("gateways", out var g) || g.ValueKind != JsonValueKind.Array || g.GetArrayLength() == 0)
                    throw new InvalidDataException($"--cluster '{value}' needs a non-empty \"gateways\" array of \"host:port\" strings.");
                var gateways = g.EnumerateArray().Select(e => ParseEndpoint(e.GetString() ?? "", $"--cluster '{value}'")).ToList();
                string Text(string key, string fallback) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : fallback;
                return new ClusterConnection(gateways, Text("clusterId", clusterId), Text("serviceId", serviceId));
            }
        }
        var parts = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new ArgumentException($"--cluster '{value}': give gateway endpoints (host:port,host:port) or a JSON file.");
        return new ClusterConnection([.. parts.Select(p => ParseEndpoint(p, "--cluster"))], clusterId, serviceId);
    }

    /// <summary>host:port with an IP address or a resolvable host name.</summary>
    public static IPEndPoint ParseEndpoint(string text, string what)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new ArgumentException($"{what}: '{text}' is not host:port (e.g. 127.0.0.1:30000).");
        string host = text[..colon].Trim('[', ']');
        if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, port);
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
                ?? throw new ArgumentException($"{what}: host '{host}' has no address.");
            return new IPEndPoint(chosen, port);
        }
        catch (SocketException e)
        {
            throw new ArgumentException($"{what}: cannot resolve host '{host}' ({e.Message}).");
        }
    }

    /// <summary>How long the client keeps trying to reach a gateway before the command fails (default).</summary>
    public static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Starts an Orleans client on the gateways (static clustering); dispose the host to disconnect.</summary>
    /// <exception cref="IOException">No gateway answered within <paramref name="timeout"/> (default 20 s).</exception>
    public async Task<IHost> ConnectAsync(CancellationToken ct, TimeSpan? timeout = null)
    {
        var connectTimeout = timeout ?? DefaultConnectTimeout;
        var builder = Host.CreateApplicationBuilder([]);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None); // a failed start is reported below, once
        var deadline = DateTime.UtcNow + connectTimeout;
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering([.. Gateways]);
            // Orleans retries the first connection forever by default: retry for a while, then fail with the cause.
            client.UseConnectionRetryFilter(async (_, token) =>
            {
                if (DateTime.UtcNow >= deadline) return false;
                await Task.Delay(TimeSpan.FromSeconds(1), token);
                return true;
            });
            client.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
            client.AddVegaSelection();
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            host.Dispose();
            throw new IOException($"Cannot connect to the cluster at {string.Join(", ", Gateways)} (cluster '{ClusterId}') within {connectTimeout.TotalSeconds:F0} s: {e.Message} Start the silos first (vega silo) and check the gateway ports and the cluster id.", e);
        }
        return host;
    }
}
