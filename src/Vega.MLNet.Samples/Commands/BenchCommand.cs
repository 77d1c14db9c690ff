using System.CommandLine;
using Vega.MLNet.Samples.Bench;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega bench TARGET</c>: speed measurements; results are printed and appended to docs/benchmarks.md.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure speed; results are printed and appended to docs/benchmarks.md (median of repeated runs).");
        foreach (var target in Targets()) command.Subcommands.Add(target);
        return command;
    }

    // Each benchmark target lives in its own file under Bench/.
    private static IEnumerable<Command> Targets()
    {
        yield return BenchTokenizer.Create();
        yield return BenchText.Create();
        yield return BenchImages.Create();
        yield return BenchStartup.Create();
        yield return BenchMLNet.Create();
        yield return BenchScoring.Create();
        yield return BenchSelectors.Create();
        yield return BenchTensor.Create();
        yield return BenchAape.Create();
        yield return BenchPromptStep.Create();
        yield return BenchTune.Create();
        yield return BenchOnnxGraph.Create();
    }
}
