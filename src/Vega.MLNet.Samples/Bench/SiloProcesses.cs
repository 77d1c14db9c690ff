using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega silo</c> child processes on loopback with development clustering (the first one started is the primary),
/// for the cluster benchmark and tests; killed when disposed.
/// </summary>
internal sealed class SiloProcesses : IDisposable
{
    /// <summary>One silo process, its ports and everything it printed.</summary>
    public sealed record Silo(Process Process, int SiloPort, int GatewayPort, List<string> Output);

    private readonly string _arguments;
    private readonly string? _workingDirectory;

    /// <summary>Silos started with <paramref name="arguments"/> added, in <paramref name="workingDirectory"/> (their default caches are .vega-cache/silo-PORT there).</summary>
    public SiloProcesses(string arguments = "", string? workingDirectory = null)
    {
        _arguments = arguments;
        _workingDirectory = workingDirectory;
    }

    public List<Silo> Silos { get; } = [];

    /// <summary>The gateways of the running silos.</summary>
    public IReadOnlyList<IPEndPoint> Gateways => [.. Silos.Where(s => !s.Process.HasExited).Select(s => new IPEndPoint(IPAddress.Loopback, s.GatewayPort))];

    /// <summary>Starts <paramref name="count"/> more silos (the first of all is the primary) and waits until each says it is ready.</summary>
    public async Task AddAsync(int count, TimeSpan timeout)
    {
        var ports = FreePorts(2 * count);
        int first = 0;
        if (Silos.Count == 0)
        {
            Silos.Add(Start(ports[0], ports[1], null));
            await Ready(Silos[^1], timeout);
            first = 1;
        }
        var started = new List<Silo>();
        for (int i = first; i < count; i++) started.Add(Start(ports[2 * i], ports[2 * i + 1], Silos[0].SiloPort));
        Silos.AddRange(started);
        foreach (var s in started) await Ready(s, timeout);
    }

    private Silo Start(int port, int gateway, int? primary)
    {
        string args = string.Create(CultureInfo.InvariantCulture, $"silo --port {port} --gateway-port {gateway} {_arguments}")
            + (primary is int p ? string.Create(CultureInfo.InvariantCulture, $" --primary 127.0.0.1:{p}") : "");
        string exe = Path.Combine(AppContext.BaseDirectory, "vega");
        var start = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (_workingDirectory is not null) start.WorkingDirectory = _workingDirectory;
        var process = Process.Start(start)
            ?? throw new InvalidOperationException($"Cannot start '{exe} {args}'.");
        var output = new List<string>();
        void Add(string? line)
        {
            if (line is not null) lock (output) output.Add(line);
        }
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Silo(process, port, gateway, output);
    }

    private static async Task Ready(Silo silo, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            lock (silo.Output)
                if (silo.Output.Any(l => l.StartsWith("vega silo ready", StringComparison.Ordinal))) return;
            if (silo.Process.HasExited) break;
            await Task.Delay(100);
        }
        lock (silo.Output)
            throw new InvalidOperationException($"vega silo on port {silo.SiloPort} did not start within {timeout.TotalSeconds:F0} s:\n{string.Join('\n', silo.Output)}");
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
        // The others first: without the primary (which holds the membership table) they would wait for it on the way out.
        foreach (var s in Enumerable.Reverse(Silos))
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
        Silos.Clear();
    }
}
