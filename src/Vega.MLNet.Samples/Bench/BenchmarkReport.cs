using System.Diagnostics;
using System.Globalization;
using System.Text;
using Spectre.Console;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// Collects benchmark figures, prints them as a table and appends them to docs/benchmarks.md (date, command, input,
/// figure). The machine is shared and noisy: every figure is a median over repeats, and comparisons are ratios
/// measured in the same run.
/// </summary>
internal sealed class BenchmarkReport
{
    private readonly string _title;
    private readonly string _command;
    private readonly List<(string Metric, string Value, string Input)> _rows = [];
    private readonly StringBuilder _markdown = new();

    public BenchmarkReport(string title, string[] args)
    {
        _title = title;
        _command = "vega " + string.Join(' ', args);
    }

    public void Add(string metric, double value, string unit, string input) =>
        _rows.Add((metric, value.ToString(value >= 100 ? "F0" : value >= 1 ? "F2" : "G3", CultureInfo.InvariantCulture) + " " + unit, input));

    public void AddText(string metric, string value, string input) => _rows.Add((metric, value, input));

    /// <summary>Markdown (e.g. a table) appended to the log after the figures, and printed as it is.</summary>
    public void AddMarkdown(string markdown) => _markdown.Append('\n').Append(markdown.TrimEnd()).Append('\n');

    /// <summary>Prints the table and appends it to the log (docs/benchmarks.md of the repository, or <paramref name="logPath"/>).</summary>
    public void Publish(string? logPath = null)
    {
        var table = new Table().Title(_title).AddColumns("metric", "figure", "input");
        foreach (var r in _rows) table.AddRow(Markup.Escape(r.Metric), Markup.Escape(r.Value), Markup.Escape(r.Input));
        AnsiConsole.Write(table);
        if (_markdown.Length > 0) Console.WriteLine(_markdown.ToString());
        string? path = logPath ?? DefaultLog();
        if (path is null)
        {
            AnsiConsole.MarkupLine("[yellow]No docs/benchmarks.md found above the current folder; pass --log FILE to record these figures.[/]");
            return;
        }
        var sb = new StringBuilder();
        if (!File.Exists(path)) sb.Append("# Benchmarks\n\nAppended by `vega bench ...`. Medians of repeated runs on a shared, noisy machine; compare ratios within one run.\n");
        sb.Append(CultureInfo.InvariantCulture, $"\n## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC — {_title}\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"Command: `{_command}`  \nMachine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}\n\n");
        sb.Append("| metric | figure | input |\n| --- | --- | --- |\n");
        foreach (var r in _rows) sb.Append(CultureInfo.InvariantCulture, $"| {r.Metric} | {r.Value} | {r.Input} |\n");
        sb.Append(_markdown);
        File.AppendAllText(path, sb.ToString());
        AnsiConsole.MarkupLine($"[grey]appended to {Markup.Escape(path)}[/]");
    }

    private static string? DefaultLog()
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Vega.MLNet.sln"))) return Path.Combine(dir.FullName, "docs", "benchmarks.md");
        return null;
    }

    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times, then <paramref name="repeats"/> times, and returns the median seconds.</summary>
    public static double MedianSeconds(int repeats, Action action, int warmup = 1)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(times);
        return repeats % 2 == 1 ? times[repeats / 2] : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
    }

    /// <summary>
    /// Runs every body once per round, <paramref name="rounds"/> rounds (plus one warm-up round), interleaved so that
    /// machine noise hits them alike; returns the median seconds of each, in order. Before each timed run the machine
    /// idles for a moment: ONNX Runtime's pool threads spin after a run, and on a machine with few cores they would
    /// otherwise slow down whatever runs next (a different session) rather than the run that caused them.
    /// </summary>
    public static double[] Interleaved(int rounds, IReadOnlyList<(string Name, Action Body)> runs)
    {
        foreach (var r in runs) r.Body();
        var times = runs.Select(_ => new double[rounds]).ToArray();
        for (int round = 0; round < rounds; round++)
            for (int i = 0; i < runs.Count; i++)
            {
                Thread.Sleep(200);
                long t0 = Stopwatch.GetTimestamp();
                runs[i].Body();
                times[i][round] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
        return times.Select(t =>
        {
            Array.Sort(t);
            return rounds % 2 == 1 ? t[rounds / 2] : 0.5 * (t[rounds / 2 - 1] + t[rounds / 2]);
        }).ToArray();
    }
}
