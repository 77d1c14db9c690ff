using System.CommandLine;
using Vega.MLNet.Samples.Commands;

namespace Vega.MLNet.Samples;

/// <summary>The <c>vega</c> command-line tool. One file per command under Commands/.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        // Ctrl-C / SIGTERM: the first one cancels the command (it stops at the next batch or step, keeps what is
        // cached and exits with 130), a second one ends the process at once; the cursor is shown again either way.
        using var stop = new CancellationTokenSource();
        using var signals = Terminal.CancelOnSignals(stop);
        // Exceptions that escape a command (e.g. a benchmark) reach CliErrors too: one line, never a stack trace.
        var configuration = new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false };
        return CliErrors.Run(() => Root().Parse(args).InvokeAsync(configuration, stop.Token).GetAwaiter().GetResult());
    }

    /// <summary>The command tree (also read by the tests that check every option an error message names).</summary>
    internal static RootCommand Root()
    {
        var root = new RootCommand("vega: pick, adapt and trust CLIP-style vision-language models from ONNX exports, offline.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        return root;
    }

    private static IEnumerable<Command> Commands()
    {
        yield return DemoCommand.Create();
        yield return InfoCommand.Create();
        yield return EmbedCommand.Create();
        yield return RankCommand.Create(evaluate: false);
        yield return RankCommand.Create(evaluate: true);
        yield return SiloCommand.Create();
        yield return TuneCommand.Create();
        yield return PredictCommand.Create(evaluate: false);
        yield return PredictCommand.Create(evaluate: true);
        yield return ExperimentCommand.Create();
        yield return SampleCommand.Create();
        yield return AapeCommand.Create();
        yield return BenchCommand.Create();
    }
}
