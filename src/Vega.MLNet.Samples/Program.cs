using System.CommandLine;
using Vega.MLNet.Samples.Commands;

namespace Vega.MLNet.Samples;

/// <summary>The <c>vega</c> command-line tool. One file per command under Commands/.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("vega: pick, adapt and trust CLIP-style vision-language models from ONNX exports, offline.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        return root.Parse(args).Invoke();
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
