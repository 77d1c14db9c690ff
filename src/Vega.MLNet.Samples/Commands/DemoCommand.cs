using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// <c>vega demo</c>: README's main command. Trains (or loads from the cache) a zoo of small CLIP models on
/// Fashion-MNIST, exports them as CLIP packages, ranks them on the unlabeled test split and on a shifted copy with
/// VEGA and the baselines, and — since the demo knows the labels — prints the true accuracies and Kendall τ.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder: zoo cache, downstream images, embedding cache, reports.", DefaultValueFactory = _ => ".vega-demo" };
        var quick = new Option<bool>("--quick") { Description = "Reduced demo: two small models, a few hundred images, few epochs (seconds)." };
        var testCount = new Option<int?>("--test-count") { Description = "Test images to write and rank on (default all 10000; 500 with --quick)." };
        var idxDir = new Option<string>("--idx-dir") { Description = "Folder with the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist).", DefaultValueFactory = _ => FashionMnistData.DefaultDirectory };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the zoo (training pool, initialisation, batches, captions).", DefaultValueFactory = _ => 2024UL };
        var shift = new Option<string>("--shift") { Description = "Shift of the second set: low-contrast (default), rotate, blur, translate, invert.", DefaultValueFactory = _ => "low-contrast" };
        var workers = new Option<int>("--workers") { Description = "Models trained at once, one thread each (0 = one per core).", DefaultValueFactory = _ => 0 };
        var command = new Command("demo", "The main job on a built-in default: train a zoo of small CLIP models on Fashion-MNIST (cached), export them to ONNX, rank them with VEGA and the baselines on the unlabeled test split and a shifted copy, and check the ranking against the true accuracies.")
            { output, quick, testCount, idxDir, seed, shift, workers };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            var options = new DemoOptions
            {
                OutputDirectory = CliChecks.OutputFolder("--out", parse.GetValue(output)!),
                Quick = parse.GetValue(quick),
                TestCount = CliChecks.Range("--test-count", parse.GetValue(testCount), 1, 10_000, "test images"),
                IdxDirectory = CliChecks.InputFolder("--idx-dir", parse.GetValue(idxDir)!),
                Seed = parse.GetValue(seed),
                Shift = ImageShift.Parse(parse.GetValue(shift)!),
                Workers = CliChecks.Threads("--workers", parse.GetValue(workers)),
                Log = line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]"),
                EmbedImages = CliInputs.EmbedWithProgress,
            };
            var result = DemoRunner.Run(options, ct);
            Print(result);
            return 0;
        })));
        return command;
    }

    private static string Shorten(string path)
    {
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, path);
        return relative.StartsWith("..", StringComparison.Ordinal) ? path : relative;
    }

    private static string FormatCount(long n) => n >= 1_000_000 ? $"{n / 1e6:F1}M" : $"{n / 1e3:F0}k";

    internal static void Print(DemoResult result)
    {
        var zoo = result.Zoo;
        AnsiConsole.WriteLine();
        AnsiConsole.MarkupLine(zoo.ModelsTrained > 0
            ? $"[bold]Zoo[/] built in {zoo.Elapsed.TotalSeconds:F1} s ({zoo.ModelsTrained} of {zoo.Models.Count} models trained; cached in {Markup.Escape(zoo.Directory)})"
            : $"[bold]Zoo[/] loaded from the cache in {zoo.Elapsed.TotalSeconds:F1} s ({Markup.Escape(zoo.Directory)})");
        var texts = zoo.Models.Select(m => $"{m.Spec.Architecture.DescribeText()}, D{m.Spec.Architecture.EmbedDim}").Distinct().ToList();
        var table = new Table().Title("The zoo and its true zero-shot accuracies (\"a photo of a {class}.\")")
            .Caption(texts.Count == 1 ? $"every model: {texts[0]}" : "");
        table.AddColumns("model", "image tower", "images×epochs", "noise", "classes", "params", "train s");
        foreach (var s in result.Sets) table.AddColumn(new TableColumn(Markup.Escape(s.Name)).RightAligned());
        foreach (var m in zoo.Models)
        {
            var row = new List<string>
            {
                Markup.Escape(m.Spec.Name), Markup.Escape(texts.Count == 1 ? m.Spec.Architecture.DescribeImage() : m.Spec.Architecture.Describe()),
                $"{m.ImagesUsed}×{m.Spec.Training.Epochs}", m.Spec.Training.CaptionNoise.ToString("0.0#", CultureInfo.InvariantCulture),
                Markup.Escape(m.Spec.CoverageText), FormatCount(m.ImageParameters + m.TextParameters),
                m.TrainSeconds.ToString("F1", CultureInfo.InvariantCulture),
            };
            foreach (var s in result.Sets) row.Add(s.Selection.Evaluation?.Accuracies[m.Spec.Name].ToString("P1", CultureInfo.InvariantCulture) ?? "n/a");
            table.AddRow(row.ToArray());
        }
        AnsiConsole.Write(table);
        foreach (var s in result.Sets)
        {
            var acc = s.Selection.Evaluation?.Accuracies.Values;
            AnsiConsole.WriteLine();
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(s.Description)}[/] ({s.Count} unlabeled PNG images in {Markup.Escape(s.ImagesDirectory)}" +
                (acc is null ? ")" : $"; true accuracies {acc.Min():P1} … {acc.Max():P1})"));
            var m = s.MLNet;
            AnsiConsole.MarkupLine($"[bold]ML.NET[/]: ml.Transforms.SelectVisionLanguageModel chose [green]{Markup.Escape(Path.GetFileName(m.ChosenModel))}[/]" +
                $"{(m.TooCloseToCall ? " (too close to call)" : "")}; ml.MulticlassClassification.Evaluate: micro-accuracy [bold]{m.Metrics.MicroAccuracy:P1}[/], " +
                $"macro-accuracy {m.Metrics.MacroAccuracy:P1}, log-loss {m.Metrics.LogLoss:F3}");
            AnsiConsole.WriteLine(m.Metrics.ConfusionMatrix.GetFormattedConfusionTable());
            AnsiConsole.MarkupLine("Every label-free metric against the true accuracies (the demo knows the labels):");
            RankCommand.Print(s.Selection);
            AnsiConsole.MarkupLine($"report: {Markup.Escape(s.ReportHtml)}   json: {Markup.Escape(s.ReportJson)}");
        }
        if (result.Sets.All(s => s.Selection.Evaluation is not null))
        {
            AnsiConsole.WriteLine();
            var tau = new Table().Title("Kendall τ-b between each metric and the true accuracies");
            tau.AddColumn("metric");
            foreach (var s in result.Sets) tau.AddColumn(new TableColumn(Markup.Escape(s.Name)).RightAligned());
            foreach (var metric in SelectionMetrics.All)
            {
                var row = new List<string> { SelectionMetrics.Name(metric) };
                foreach (var s in result.Sets)
                {
                    double t = s.Selection.Evaluation!.For(metric).KendallTau;
                    row.Add(double.IsNaN(t) ? "n/a" : t.ToString("+0.000;-0.000;0.000", CultureInfo.InvariantCulture));
                }
                tau.AddRow(row.ToArray());
            }
            AnsiConsole.Write(tau);
        }
        var clean = result.Sets[0];
        AnsiConsole.MarkupLine($"summary: {Markup.Escape(result.SummaryJson)}   ({result.Elapsed.TotalSeconds:F1} s in all)");
        AnsiConsole.MarkupLine("Rank the same models on your own images with:");
        AnsiConsole.MarkupLine(Markup.Escape($"  vega rank --models {string.Join(" ", zoo.Models.Select(m => Shorten(m.Directory)))} " +
            $"--images {Shorten(clean.ImagesDirectory)} --classes {Shorten(result.ClassesFile)}"));
    }
}
