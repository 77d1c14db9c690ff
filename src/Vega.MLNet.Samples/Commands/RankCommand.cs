using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Reporting;
using Vega.MLNet.Runtime;
using Vega.MLNet.Selection;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// <c>vega rank</c> (no labels needed) and <c>vega evaluate</c> (the same, plus labels: true accuracies and how well
/// every metric predicts them).
/// </summary>
internal static class RankCommand
{
    public static Command Create(bool evaluate)
    {
        var models = new Option<string[]>("--models") { Description = "Candidate model folders (or clip.json files).", Required = true, AllowMultipleArgumentsPerToken = true };
        var images = new Option<string>("--images") { Description = "Folder of images, CSV manifest (path[,label]) or IDX image file.", Required = true };
        var classes = new Option<string>("--classes") { Description = "Text file with one class name per line.", Required = true };
        var templates = new Option<string?>("--templates") { Description = "Prompt templates file, one per line with {} for the class name (default \"a photo of a {}.\")." };
        var metric = new Option<string>("--metric") { Description = $"Metric that orders the models: {string.Join(", ", SelectionMetrics.All.Select(SelectionMetrics.Name))}.", DefaultValueFactory = _ => "vega" };
        var report = new Option<string?>("--report") { Description = "Write a self-contained HTML report here." };
        var json = new Option<string?>("--json") { Description = "Write every score (and the evaluation) as JSON here." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (re-runs reuse it).", DefaultValueFactory = _ => ".vega-cache" };
        var labels = new Option<string?>("--labels") { Description = "IDX label file for an IDX image file." };
        var folders = new Option<bool>("--labels-from-folders") { Description = "Labels are the names of the images' first sub-folder (root/class/file.jpg)." };
        var batch = new Option<int>("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        var threads = new Option<int>("--threads") { Description = "Decode threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var fast = new Option<bool>("--fast-identity") { Description = "Identify cached images by path + size + time instead of content." };
        var temperature = new Option<double>("--temperature") { Description = "VEGA's softmax temperature on cosine similarities.", DefaultValueFactory = _ => 0.05 };
        var covariance = new Option<string>("--covariance") { Description = "VEGA's class covariance: diagonal, isotropic, ledoit-wolf, fixed.", DefaultValueFactory = _ => "diagonal" };
        var edges = new Option<string>("--edges") { Description = "VEGA's visual edge similarity: neg-bhattacharyya, exp-neg-bhattacharyya, mean-cosine.", DefaultValueFactory = _ => "neg-bhattacharyya" };
        var exif = new Option<bool>("--exif") { Description = "Apply EXIF orientation (the reference CLIP preprocessing does not)." };
        var truncate = new Option<bool>("--truncate") { Description = "Cut prompts longer than a model's context (the last kept token becomes the end token) instead of stopping with an error." };
        var command = new Command(evaluate ? "evaluate" : "rank", evaluate
            ? "Rank candidate models and, since the images are labelled, report true zero-shot accuracies and Kendall τ, Spearman ρ, top-k recall and regret of every metric."
            : "Rank candidate CLIP models by expected zero-shot accuracy on unlabeled images (VEGA and label-free baselines).")
            { models, images, classes, templates, metric, report, json, cache, labels, folders, batch, threads, fast, temperature, covariance, edges, exif, truncate };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            var modelPaths = parse.GetValue(models)!;
            foreach (var m in modelPaths) CliChecks.Model("--models", m);
            var classNames = PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", parse.GetValue(classes)!));
            var prompts = parse.GetValue(templates) is { } t ? PromptTemplates.FromFile(CliChecks.InputFile("--templates", t)) : PromptTemplates.Default;
            string? html = parse.GetValue(report) is { } r ? CliChecks.OutputFile("--report", r) : null;
            string? js = parse.GetValue(json) is { } j ? CliChecks.OutputFile("--json", j) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            int batchSize = CliChecks.ImageBatch("--batch", parse.GetValue(batch));
            int decodeThreads = CliChecks.Threads("--threads", parse.GetValue(threads));
            var selection = new SelectionOptions
            {
                Metric = ParseMetric(parse.GetValue(metric)!),
                Vega = new VegaOptions
                {
                    Temperature = CliChecks.Positive("--temperature", parse.GetValue(temperature)),
                    Covariance = ParseCovariance(parse.GetValue(covariance)!),
                    EdgeKind = ParseEdges(parse.GetValue(edges)!),
                },
            };
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), parse.GetValue(exif), parse.GetValue(folders), classNames);
            if (evaluate && source.Items.Any(i => i.Label is null))
                throw new CliUsageException($"vega evaluate needs a label for every image: use a CSV with a label column, --labels for IDX, or --labels-from-folders (some items of {source.Description} have none).");
            var loaded = new List<ClipModel>();
            try
            {
                foreach (var m in modelPaths) loaded.Add(CliInputs.LoadModel(m, cacheDir, option: "--models"));
                var options = new VlmSelectionOptions
                {
                    Templates = prompts,
                    Selection = selection,
                    Text = new TextEmbeddingOptions { Truncate = parse.GetValue(truncate) },
                    Images = new ImageEmbeddingOptions
                    {
                        BatchSize = batchSize,
                        DecodeThreads = decodeThreads,
                        CacheDirectory = cacheDir,
                        Identity = parse.GetValue(fast) ? ImageIdentity.PathSizeTime : ImageIdentity.Content,
                    },
                    EmbedImages = CliInputs.EmbedWithProgress,
                };
                var result = VisionLanguageModelSelection.SelectVisionLanguageModel(loaded, source, classNames, options, ct);
                Print(result);
                var reportOptions = new ReportOptions { TaskName = source.Description, ClassNames = classNames };
                if (html is not null) { HtmlReport.Write(html, result.Ranking, result.Evaluation, reportOptions); AnsiConsole.MarkupLine($"report: {Markup.Escape(html)}"); }
                if (js is not null) { JsonReport.Write(js, result.Ranking, result.Evaluation); AnsiConsole.MarkupLine($"json: {Markup.Escape(js)}"); }
                return 0;
            }
            finally
            {
                foreach (var m in loaded) m.Dispose();
            }
        })));
        return command;
    }

    internal static SelectionMetric ParseMetric(string s)
    {
        try
        {
            return SelectionMetrics.Parse(s);
        }
        catch (ArgumentException)
        {
            throw new CliUsageException($"--metric '{s}': use one of {string.Join(", ", SelectionMetrics.All.Select(SelectionMetrics.Name))}.");
        }
    }

    internal static CovarianceMode ParseCovariance(string s) => s.ToLowerInvariant() switch
    {
        "diagonal" => CovarianceMode.Diagonal,
        "isotropic" => CovarianceMode.Isotropic,
        "ledoit-wolf" or "full" => CovarianceMode.FullLedoitWolf,
        "fixed" => CovarianceMode.FullFixedShrinkage,
        _ => throw new CliUsageException($"--covariance '{s}': use diagonal, isotropic, ledoit-wolf or fixed."),
    };

    internal static VisualEdgeKind ParseEdges(string s) => s.ToLowerInvariant() switch
    {
        "neg-bhattacharyya" => VisualEdgeKind.NegativeBhattacharyya,
        "exp-neg-bhattacharyya" => VisualEdgeKind.ExpNegativeBhattacharyya,
        "mean-cosine" => VisualEdgeKind.MeanCosine,
        _ => throw new CliUsageException($"--edges '{s}': use neg-bhattacharyya, exp-neg-bhattacharyya or mean-cosine."),
    };

    /// <summary>The ranking (and evaluation) as terminal tables.</summary>
    internal static void Print(VlmSelectionResult result)
    {
        var ranking = result.Ranking;
        var metrics = SelectionMetrics.All;
        var table = new Table().Title($"Ranking by {SelectionMetrics.Name(ranking.Metric)} ({result.ClassNames.Count} classes, {ranking.Models[0].ImageCount} images)");
        table.AddColumn("#");
        table.AddColumn("model");
        if (result.Evaluation is not null) table.AddColumn("accuracy");
        foreach (var m in metrics) table.AddColumn(new TableColumn(SelectionMetrics.Name(m)).RightAligned());
        foreach (var s in ranking.Models)
        {
            var row = new List<string> { s.Rank.ToString(CultureInfo.InvariantCulture), Markup.Escape(s.ModelName) };
            if (result.Evaluation is { } ev) row.Add(ev.Accuracies[s.ModelName].ToString("P1", CultureInfo.InvariantCulture));
            foreach (var m in metrics) row.Add(s.Metric(m).ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow(row.ToArray());
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"chosen: [bold]{Markup.Escape(result.ChosenModel)}[/]   ({result.Elapsed.TotalSeconds:F1} s, scoring {ranking.TotalTime.TotalMilliseconds:F0} ms)");
        foreach (var s in ranking.Models)
            foreach (var w in s.Vega.Warnings) CliErrors.Warn($"{s.ModelName}: {w}");
        if (result.Evaluation is { } e)
        {
            var et = new Table().Title($"How well each metric predicts the true ranking (top-k with k = {e.TopK}; best model: {Markup.Escape(e.BestModel)})")
                .AddColumns("metric", "Kendall τ-b", "Spearman ρ", "top-1 recall", $"top-{e.TopK} recall", "regret (points)", "chooses");
            foreach (var m in e.Metrics)
                et.AddRow(SelectionMetrics.Name(m.Metric), F(m.KendallTau), F(m.SpearmanRho), F(m.Top1Recall), F(m.TopKRecall),
                    (100 * m.Regret).ToString("F1", CultureInfo.InvariantCulture), Markup.Escape(m.ChosenModel));
            AnsiConsole.Write(et);
        }
        CliInputs.PrintSkipped(result.Skipped);
    }

    private static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F3", CultureInfo.InvariantCulture);
}
