using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Orleans;
using Vega.MLNet.Reporting;
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
        var metric = new Option<string>("--metric") { Description = $"Metric that orders the models: {string.Join(", ", SelectionMetrics.All.Select(SelectionMetrics.Name))}.", DefaultValueFactory = _ => "dispersity" };
        var report = new Option<string?>("--report") { Description = "Write a self-contained HTML report here." };
        var json = new Option<string?>("--json") { Description = "Write every score (and the evaluation) as JSON here." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (re-runs reuse it).", DefaultValueFactory = _ => ".vega-cache" };
        var labels = new Option<string?>("--labels") { Description = "IDX label file for an IDX image file." };
        var folders = new Option<bool>("--labels-from-folders") { Description = "Labels are the names of the images' first sub-folder (root/class/file.jpg)." };
        var batch = new Option<int>("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        var threads = new Option<int>("--threads") { Description = "Decode threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var fast = new Option<bool>("--fast-identity") { Description = "Identify cached images by path + size + time instead of content." };
        var preset = new Option<string>("--vega-preset") { Description = "VEGA's settings to start from: default, or paper (the published definition: exact full covariance, Ledoit–Wolf with floor 0.1, exp(−D_B) edges; see docs/vega.md). The options below override it.", DefaultValueFactory = _ => "default" };
        var temperature = new Option<double?>("--temperature") { Description = "VEGA's softmax temperature on cosine similarities (default 0.05)." };
        var covariance = new Option<string?>("--covariance") { Description = "VEGA's class covariance: diagonal, isotropic, ledoit-wolf, fixed (default: diagonal; paper: ledoit-wolf)." };
        var edges = new Option<string?>("--edges") { Description = "VEGA's visual edge similarity: neg-bhattacharyya, exp-neg-bhattacharyya, mean-cosine (default: neg-bhattacharyya; paper: exp-neg-bhattacharyya)." };
        var fixedShrinkage = new Option<double?>("--fixed-shrinkage") { Description = "Shrinkage intensity of the diagonal and fixed covariances, in [0, 1] (default 0.1)." };
        var shrinkageFloor = new Option<double?>("--shrinkage-floor") { Description = "Lower bound on the Ledoit–Wolf intensity, in [0, 1] (default 0.01; paper 0.1)." };
        var varianceFloor = new Option<double?>("--variance-floor") { Description = "Added to every covariance's diagonal, relative to the pooled mean variance (default 1e-6; paper 0)." };
        var subspace = new Option<string?>("--subspace") { Description = "Full covariance: keep it exactly in the top-p pooled eigen-directions (a number) or everywhere (exact) (default 32; paper exact)." };
        var minImages = new Option<int?>("--min-class-images") { Description = "Classes with fewer pseudo-labelled images are left out of the edge term, ≥ 2 (default 2)." };
        var undefinedEdge = new Option<double?>("--undefined-edge-score") { Description = "s_e when the edge correlation is undefined, in [0, 1] (default 0.5; paper 0)." };
        var noEdgeMatrices = new Option<bool>("--no-edge-matrices") { Description = "Do not keep the C×C edge matrices (the report then has no heatmaps)." };
        var baseTemperature = new Option<double?>("--baseline-temperature") { Description = "Softmax temperature of msp, neg-entropy, margin and dispersity (default 0.01)." };
        var bootstrap = new Option<int?>("--bootstrap") { Description = "Bootstrap replicates for the intervals and P(best); 0 turns them off (default 200)." };
        var bootstrapLevel = new Option<double?>("--bootstrap-level") { Description = "Coverage of the bootstrap intervals (default 0.95)." };
        var bootstrapSeed = new Option<int?>("--bootstrap-seed") { Description = "Seed of the bootstrap (default 0)." };
        var scoringThreads = new Option<int?>("--scoring-threads") { Description = "Threads for scoring, 0 = all cores (results do not depend on it)." };
        var budget = new Option<string?>("--budget") { Description = "Budgeted search (successive halving): 'halving' (the finalists see every image), a number of image embeddings over all models, or a percentage of models × images (e.g. 40%)." };
        var timeBudget = new Option<double?>("--time-budget") { Description = "Budgeted search with a wall-time budget in seconds (no trial starts after it)." };
        var minSample = new Option<int?>("--min-sample") { Description = "Budgeted search: images in the first round's sample (default 256)." };
        var elimination = new Option<double?>("--elimination-rate") { Description = "Budgeted search: fraction of candidates dropped per round (default 0.5)." };
        var searchSeed = new Option<int?>("--search-seed") { Description = "Budgeted search: seed of the random image order (default 0)." };
        var exif = new Option<bool>("--exif") { Description = "Apply EXIF orientation (the reference CLIP preprocessing does not)." };
        var truncate = new Option<bool>("--truncate") { Description = "Cut prompts longer than a model's context (the last kept token becomes the end token) instead of stopping with an error." };
        var cluster = new Option<string?>("--cluster") { Description = "Embed on an Orleans cluster (vega silo): gateway endpoints host:port[,host:port…] or a JSON file {\"gateways\": [...], \"clusterId\": ..., \"serviceId\": ...}. Models and images must be at the same paths on every silo (docs/scale-out.md)." };
        var clusterId = new Option<string>("--cluster-id") { Description = "Orleans cluster id of the silos.", DefaultValueFactory = _ => "vega" };
        var serviceId = new Option<string>("--service-id") { Description = "Orleans service id of the silos.", DefaultValueFactory = _ => "vega" };
        var shardSize = new Option<int>("--shard-size") { Description = "Cluster: images per shard (one grain call).", DefaultValueFactory = _ => 256 };
        var connectTimeout = new Option<double>("--connect-timeout") { Description = "Cluster: seconds to keep trying to reach a gateway.", DefaultValueFactory = _ => 20 };
        var shardTimeout = new Option<double>("--shard-timeout") { Description = "Cluster: seconds one attempt at a shard may take before it is re-run on another silo.", DefaultValueFactory = _ => 600 };
        var command = new Command(evaluate ? "evaluate" : "rank", evaluate
            ? "Rank candidate models and, since the images are labelled, report true zero-shot accuracies and Kendall τ, Spearman ρ, top-k recall and regret of every metric."
            : "Rank candidate CLIP models by expected zero-shot accuracy on unlabeled images (VEGA and label-free baselines).");
        foreach (Option o in new Option[] { models, images, classes, templates, metric, report, json, cache, labels, folders, batch, threads, fast, preset, temperature, covariance, edges,
            fixedShrinkage, shrinkageFloor, varianceFloor, subspace, minImages, undefinedEdge, noEdgeMatrices, baseTemperature, bootstrap, bootstrapLevel, bootstrapSeed, scoringThreads, exif, truncate,
            cluster, clusterId, serviceId, shardSize, shardTimeout, connectTimeout })
            command.Options.Add(o);
        if (!evaluate) foreach (Option o in new Option[] { budget, timeBudget, minSample, elimination, searchSeed }) command.Options.Add(o);
        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            // Every argument and output is checked before the work starts.
            var paths = parse.GetValue(models)!;
            var classNames = PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", parse.GetValue(classes)!));
            var prompts = parse.GetValue(templates) is { } t ? PromptTemplates.FromFile(CliChecks.InputFile("--templates", t)) : PromptTemplates.Default;
            string? html = parse.GetValue(report) is { } r ? CliChecks.OutputFile("--report", r) : null;
            string? js = parse.GetValue(json) is { } j ? CliChecks.OutputFile("--json", j) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            int batchSize = CliChecks.ImageBatch("--batch", parse.GetValue(batch));
            int decodeThreads = CliChecks.Threads("--threads", parse.GetValue(threads));
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), parse.GetValue(exif), parse.GetValue(folders), classNames);
            if (evaluate && source.Items.Any(i => i.Label is null))
                throw new CliUsageException($"vega evaluate needs a label for every image: use a CSV with a label column, --labels for IDX, or --labels-from-folders (some items of {source.Description} have none).");
            var vega = VegaOptions.Preset(parse.GetValue(preset)!);
            if (parse.GetValue(temperature) is double tv) vega = vega with { Temperature = tv };
            if (parse.GetValue(covariance) is { } cv) vega = vega with { Covariance = ParseCovariance(cv) };
            if (parse.GetValue(edges) is { } ev) vega = vega with { EdgeKind = ParseEdges(ev) };
            if (parse.GetValue(fixedShrinkage) is double fs) vega = vega with { FixedShrinkage = fs };
            if (parse.GetValue(shrinkageFloor) is double sf) vega = vega with { ShrinkageFloor = sf };
            if (parse.GetValue(varianceFloor) is double vf) vega = vega with { VarianceFloor = vf };
            if (parse.GetValue(subspace) is { } sp) vega = vega with { FullSubspaceDimension = ParseSubspace(sp) };
            if (parse.GetValue(minImages) is int mi) vega = vega with { MinImagesPerClass = mi };
            if (parse.GetValue(undefinedEdge) is double ue) vega = vega with { UndefinedEdgeScore = ue };
            if (parse.GetValue(noEdgeMatrices)) vega = vega with { KeepEdgeMatrices = false };
            var boot = new BootstrapOptions();
            if (parse.GetValue(bootstrap) is int br) boot = boot with { Replicates = br };
            if (parse.GetValue(bootstrapLevel) is double bl) boot = boot with { Level = bl };
            if (parse.GetValue(bootstrapSeed) is int bs) boot = boot with { Seed = bs };
            var selection = new SelectionOptions { Metric = ParseMetric(parse.GetValue(metric)!), Vega = vega, Bootstrap = boot };
            if (parse.GetValue(baseTemperature) is double bt) selection = selection with { BaselineTemperature = bt };
            if (parse.GetValue(scoringThreads) is int st) selection = selection with { MaxDegreeOfParallelism = st };
            var search = evaluate ? null : Search(parse.GetValue(budget), parse.GetValue(timeBudget), parse.GetValue(minSample), parse.GetValue(elimination), parse.GetValue(searchSeed), paths.Length, source.Count);
            // A full ranking needs every model; in a budgeted search a model that cannot be loaded is a failed trial.
            if (search is null) foreach (var m in paths) CliChecks.Model("--models", m);
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
                BudgetedSearch = search,
            };
            VlmSelectionResult result;
            if (parse.GetValue(cluster) is { } clusterValue)
            {
                // The embedding work runs on the cluster; the class texts are embedded here, once per candidate.
                var connection = ClusterConnection.Parse(clusterValue, parse.GetValue(clusterId)!, parse.GetValue(serviceId)!);
                double connectSeconds = parse.GetValue(connectTimeout);
                if (!(connectSeconds > 0)) throw new ArgumentException($"--connect-timeout {connectSeconds}: give a positive number of seconds.");
                using var host = await connection.ConnectAsync(ct, TimeSpan.FromSeconds(connectSeconds));
                var worker = ClusterWorker(host, parse.GetValue(shardSize), parse.GetValue(shardTimeout));
                AnsiConsole.MarkupLine(Markup.Escape($"cluster: {connection.Gateways.Count} gateway(s) ({string.Join(", ", connection.Gateways)}), shards of {worker.Options.ShardSize} images"));
                options = options with { Worker = worker, OnModelStarting = (k, m) => AnsiConsole.MarkupLine(Markup.Escape($"{m.Name}: embedding {source.Count} images on the cluster …")) };
                result = await Task.Run(() => VisionLanguageModelSelection.SelectVisionLanguageModel([.. paths.Select(m => ModelCandidate.FromPath(m, CliInputs.ModelOptions(cacheDir)))], source, classNames, options, ct), ct);
                await host.StopAsync(CancellationToken.None);
            }
            else if (search is not null)
                // Candidates load on first use: one that fails to load is a failed trial and the search goes on.
                result = VisionLanguageModelSelection.SelectVisionLanguageModel([.. paths.Select(m => ModelCandidate.FromPath(m, CliInputs.ModelOptions(cacheDir)))], source, classNames, options, ct);
            else
            {
                var loaded = new List<ClipModel>();
                try
                {
                    foreach (var m in paths) loaded.Add(CliInputs.LoadModel(m, cacheDir, option: "--models"));
                    result = VisionLanguageModelSelection.SelectVisionLanguageModel(loaded, source, classNames, options, ct);
                }
                finally
                {
                    foreach (var m in loaded) m.Dispose();
                }
            }
            Print(result);
            var reportOptions = new ReportOptions { TaskName = source.Description, ClassNames = classNames };
            if (html is not null) { HtmlReport.Write(html, result.Ranking, result.Evaluation, reportOptions); AnsiConsole.MarkupLine($"report: {Markup.Escape(html)}"); }
            if (js is not null) { JsonReport.Write(js, result.Ranking, result.Evaluation); AnsiConsole.MarkupLine($"json: {Markup.Escape(js)}"); }
            return 0;
        }));
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

    /// <summary>The cluster worker of <c>--cluster</c>: retries are warnings, progress a line per 10 % of a model's images.</summary>
    private static OrleansSelectionWorker ClusterWorker(Microsoft.Extensions.Hosting.IHost host, int shardSize, double timeoutSeconds)
    {
        if (shardSize < 1) throw new ArgumentException($"--shard-size {shardSize}: give at least 1 image per shard.");
        if (!(timeoutSeconds > 0)) throw new ArgumentException($"--shard-timeout {timeoutSeconds}: give a positive number of seconds.");
        int lastDecile = -1;
        var progress = new SynchronousProgress(p =>
        {
            int decile = p.Total == 0 ? 10 : 10 * p.Done / p.Total;
            if (p.Done < p.Total && decile == lastDecile) return;
            lastDecile = p.Done >= p.Total ? -1 : decile;
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"  {p.Done}/{p.Total} images ({p.ImagesPerSecond:F1} images/s, {p.FromCache} cached, {p.Skipped} skipped)")));
        });
        var client = host.Services.GetRequiredService<global::Orleans.IClusterClient>();
        return new OrleansSelectionWorker(client, new ClusterWorkerOptions
        {
            ShardSize = shardSize,
            ShardTimeout = TimeSpan.FromSeconds(timeoutSeconds),
            Log = CliErrors.Warn,
            Progress = progress,
        });
    }

    private sealed class SynchronousProgress(Action<EmbeddingProgress> report) : IProgress<EmbeddingProgress>
    {
        public void Report(EmbeddingProgress value) => report(value);
    }

    /// <summary>The budgeted-search options from the CLI, or null when none of --budget / --time-budget is given.</summary>
    internal static BudgetedSearchOptions? Search(string? budget, double? seconds, int? minSample, double? rate, int? seed, int models, int images)
    {
        if (budget is null && seconds is null)
        {
            if (minSample is not null || rate is not null || seed is not null)
                throw new ArgumentException("--min-sample, --elimination-rate and --search-seed configure the budgeted search: add --budget (e.g. --budget halving or --budget 40%) or --time-budget.");
            return null;
        }
        long? imageBudget = null;
        if (budget is not null && !budget.Equals("halving", StringComparison.OrdinalIgnoreCase))
        {
            string b = budget.Trim();
            if (b.EndsWith('%') && double.TryParse(b[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out double pct) && pct > 0 && pct <= 100)
                imageBudget = Math.Max(1, (long)Math.Floor(pct / 100 * models * images));
            else if (long.TryParse(b, NumberStyles.Integer, CultureInfo.InvariantCulture, out long count) && count > 0)
                imageBudget = count;
            else throw new ArgumentException($"--budget '{budget}': use 'halving', a number of image embeddings (e.g. 20000) or a percentage of models × images (e.g. 40%).");
        }
        if (seconds is double s && !(s > 0)) throw new ArgumentException($"--time-budget {s}: give a positive number of seconds.");
        var o = new BudgetedSearchOptions
        {
            ImageBudget = imageBudget,
            TimeBudget = seconds is double t ? TimeSpan.FromSeconds(t) : null,
            Monitor = new ConsoleMonitor(),
        };
        if (minSample is int m) o = o with { MinimumSample = m };
        if (rate is double r) o = o with { EliminationRate = r };
        if (seed is int sd) o = o with { Seed = sd };
        return o;
    }

    internal static int? ParseSubspace(string s) =>
        s.Equals("exact", StringComparison.OrdinalIgnoreCase) ? null
        : int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int p) && p >= 1 ? p
        : throw new ArgumentException($"--subspace '{s}': give a number of directions ≥ 1 or 'exact'.");

    /// <summary>Prints the trials of a budgeted search as they happen.</summary>
    private sealed class ConsoleMonitor : ISelectionMonitor
    {
        public void ReportRunningTrial(SelectionTrialSettings settings) =>
            AnsiConsole.MarkupLine($"[grey]trial {settings.TrialId}: round {settings.Round}, {Markup.Escape(settings.ModelName)} on {settings.SampleSize:N0} images …[/]");

        public void ReportCompletedTrial(SelectionTrial result) =>
            AnsiConsole.MarkupLine(Markup.Escape($"trial {result.Settings.TrialId}: {result.Settings.ModelName} = {result.Metric.ToString("F4", CultureInfo.InvariantCulture)}{(result.Interval is { } iv ? $" [{iv.Lower.ToString("F4", CultureInfo.InvariantCulture)}, {iv.Upper.ToString("F4", CultureInfo.InvariantCulture)}]" : "")} ({result.DurationInMilliseconds / 1000:F1} s, {result.ImagesEmbedded} new images)"));

        public void ReportBestTrial(SelectionTrial result) =>
            AnsiConsole.MarkupLine($"  [green]round {result.Settings.Round} leader: {Markup.Escape(result.Settings.ModelName)}[/]");

        public void ReportFailTrial(SelectionTrialSettings settings, Exception exception) =>
            CliErrors.Warn($"trial {settings.TrialId}: {settings.ModelName} failed and leaves the search: {exception.Message}");
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
        string name = SelectionMetrics.Name(ranking.Metric);
        bool boot = ranking.Models.Any(m => m.Intervals is not null);
        var table = new Table().Title($"Ranking by {name} ({result.ClassNames.Count} classes, {ranking.Models[0].ImageCount} images)");
        table.AddColumn("#");
        table.AddColumn("model");
        if (result.Evaluation is not null) table.AddColumn("accuracy");
        foreach (var m in metrics) table.AddColumn(new TableColumn(SelectionMetrics.Name(m)).RightAligned());
        if (boot)
        {
            table.AddColumn(new TableColumn($"{name} {100 * ranking.Options.Bootstrap.Level:F0} % interval").RightAligned());
            table.AddColumn(new TableColumn("P(best)").RightAligned());
        }
        foreach (var s in ranking.Models)
        {
            var row = new List<string> { s.Rank.ToString(CultureInfo.InvariantCulture), Markup.Escape(s.ModelName) };
            if (result.Evaluation is { } ev) row.Add(ev.Accuracies[s.ModelName].ToString("P1", CultureInfo.InvariantCulture));
            foreach (var m in metrics) row.Add(s.Metric(m).ToString("F4", CultureInfo.InvariantCulture));
            if (boot)
            {
                row.Add(s.Interval(ranking.Metric) is { } iv ? Markup.Escape($"[{iv.Lower.ToString("F4", CultureInfo.InvariantCulture)}, {iv.Upper.ToString("F4", CultureInfo.InvariantCulture)}]") : "—");
                row.Add(s.TopProbability is double p ? p.ToString("P0", CultureInfo.InvariantCulture) : "—");
            }
            table.AddRow(row.ToArray());
        }
        AnsiConsole.Write(table);
        if (ranking.Trials is { Count: > 0 } trials)
        {
            var tt = new Table().Title("Budgeted search (successive halving): trials").AddColumns("trial", "round", "model", "sample", name, "interval", "new images", "time", "status");
            foreach (var t in trials)
                tt.AddRow(t.Settings.TrialId.ToString(CultureInfo.InvariantCulture), t.Settings.Round.ToString(CultureInfo.InvariantCulture), Markup.Escape(t.Settings.ModelName),
                    t.Settings.SampleSize.ToString("N0", CultureInfo.InvariantCulture), t.Metric.ToString("F4", CultureInfo.InvariantCulture),
                    t.Interval is { } iv ? Markup.Escape($"[{iv.Lower.ToString("F4", CultureInfo.InvariantCulture)}, {iv.Upper.ToString("F4", CultureInfo.InvariantCulture)}]") : "—",
                    t.ImagesEmbedded.ToString("N0", CultureInfo.InvariantCulture), $"{t.DurationInMilliseconds / 1000:F1} s",
                    Markup.Escape(t.Status == SelectionTrialStatus.Failed ? $"failed: {t.Error}" : t.Eliminated ? "eliminated" : "kept"));
            AnsiConsole.Write(tt);
        }
        AnsiConsole.MarkupLine($"chosen: [bold]{Markup.Escape(result.ChosenModel)}[/]   ({result.Elapsed.TotalSeconds:F1} s, scoring {ranking.TotalTime.TotalMilliseconds:F0} ms)");
        if (ranking.ChosenProbability is double cp)
            AnsiConsole.MarkupLine(ranking.TooCloseToCall
                ? $"[yellow]too close to call[/]: the {100 * ranking.Options.Bootstrap.Level:F0} % intervals of the first two models overlap; compared on the same resampled images, the chosen model is ahead in {cp.ToString("P0", CultureInfo.InvariantCulture)} of {ranking.Options.Bootstrap.Replicates} replicates (P(best))"
                : $"P(best) of the chosen model = {cp.ToString("P0", CultureInfo.InvariantCulture)} ({ranking.Options.Bootstrap.Replicates} bootstrap replicates); its interval does not overlap the runner-up's");
        foreach (var w in ranking.Warnings) CliErrors.Warn(w);
        foreach (var s in ranking.Models)
            foreach (var w in s.Vega.Warnings) CliErrors.Warn($"{s.ModelName}: {w}");
        if (result.Evaluation is { } e)
        {
            var et = new Table().Title($"How well each metric predicts the true ranking (top-k with k = {e.TopK}; best model: {Markup.Escape(e.BestModel)})")
                .AddColumns("metric", "Kendall τ-b", "Spearman ρ", "top-1 recall", $"top-{e.TopK} recall", "regret (points)", "chooses");
            foreach (var m in e.Metrics)
                et.AddRow(SelectionMetrics.Name(m.Metric) + (m.Expected ? " (expected)" : ""), F(m.KendallTau), F(m.SpearmanRho), F(m.Top1Recall), F(m.TopKRecall),
                    (100 * m.Regret).ToString("F1", CultureInfo.InvariantCulture), m.ChosenModel is { } c ? Markup.Escape(c) : "(uniform random choice)");
            AnsiConsole.Write(et);
        }
        CliInputs.PrintSkipped(result.Skipped);
    }

    private static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F3", CultureInfo.InvariantCulture);
}
