using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Selection;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench selectors</c>: every label-free selector on the demo zoo's tasks — the clean and shifted Fashion-MNIST
/// test sets, each with all ten classes and with random class subsets — against the true zero-shot accuracies
/// (Kendall τ, top-1 recall, regret), split into development tasks (which choose the default) and held-out tasks
/// (which check it); then the budgeted search on every full task against the full ranking's choice and work.
/// </summary>
internal static class BenchSelectors
{
    private sealed record Selector(string Label, int Config, SelectionMetric Metric);

    // Config 0: default VegaOptions (every baseline comes with it); 1: the paper preset; 2: mean-cosine edges;
    // 3 and 4: baseline temperature 0.02 and 0.05.
    private static readonly Selector[] Selectors =
    [
        new("vega (default: diagonal, −D_B)", 0, SelectionMetric.Vega),
        new("vega, paper preset", 1, SelectionMetric.Vega),
        new("vega, mean-cosine edges", 2, SelectionMetric.Vega),
        new("vega-node (s_n)", 0, SelectionMetric.VegaNode),
        new("vega-edge (default)", 0, SelectionMetric.VegaEdge),
        new("vega-edge, paper preset", 1, SelectionMetric.VegaEdge),
        new("msp", 0, SelectionMetric.MaxSoftmax),
        new("neg-entropy", 0, SelectionMetric.NegativeEntropy),
        new("margin", 0, SelectionMetric.Margin),
        new("max-cosine", 0, SelectionMetric.MaxCosine),
        new("dispersity", 0, SelectionMetric.Dispersity),
        new("dispersity, T = 0.02", 3, SelectionMetric.Dispersity),
        new("dispersity, T = 0.05", 4, SelectionMetric.Dispersity),
    ];

    public static Command Create()
    {
        var demo = new Option<string>("--demo") { Description = "Output folder of `vega demo` (its zoo, downstream sets and embedding cache).", DefaultValueFactory = _ => ".vega-demo" };
        var idx = new Option<string>("--idx-dir") { Description = "Fashion-MNIST IDX folder (to write missing shifted sets).", DefaultValueFactory = _ => FashionMnistData.DefaultDirectory };
        var shifts = new Option<string>("--shifts") { Description = "Shifted sets besides clean: low-contrast, rotate, blur, translate, invert.", DefaultValueFactory = _ => "low-contrast,rotate,blur,translate,invert" };
        var dev = new Option<string>("--dev") { Description = "Sets whose tasks choose the default (the others are held out).", DefaultValueFactory = _ => "clean,lowcontrast" };
        var subsets = new Option<int>("--subsets") { Description = "Random class subsets (3–7 classes) per set, besides all ten classes.", DefaultValueFactory = _ => 8 };
        var count = new Option<int>("--count") { Description = "Test images per set.", DefaultValueFactory = _ => 10000 };
        var searchMetric = new Option<string?>("--search-metric") { Description = "Metric of the budgeted search (default: the chosen default)." };
        var log = new Option<string?>("--log") { Description = "Benchmark log to append to (default docs/benchmarks.md)." };
        var command = new Command("selectors", "Every label-free selector on the demo zoo's tasks (development and held-out) and the budgeted search against the full ranking.");
        foreach (var o in new Option[] { demo, idx, shifts, dev, subsets, count, searchMetric, log }) command.Options.Add(o);
        command.SetAction(parse => Run(parse.GetValue(demo)!, parse.GetValue(idx)!, parse.GetValue(shifts)!, parse.GetValue(dev)!, parse.GetValue(subsets),
            parse.GetValue(count), parse.GetValue(searchMetric), parse.GetValue(log), Environment.GetCommandLineArgs().Skip(1).ToArray()));
        return command;
    }

    private sealed record ModelData(string Name, EmbeddingMatrix Images, EmbeddingMatrix Texts);

    private sealed record TaskResult(string Set, int[] ClassIndices, bool Dev, int Classes, IReadOnlyDictionary<string, MetricEvaluation> BySelector, MetricEvaluation Random, string Best);

    private static int Run(string demoDir, string idxDir, string shiftList, string devList, int subsetCount, int count, string? searchMetricName, string? log, string[] args)
    {
        var clock = Stopwatch.StartNew();
        string zooRoot = Path.Combine(demoDir, "zoo");
        var zoo = Directory.Exists(zooRoot) ? Directory.GetDirectories(zooRoot).Where(d => File.Exists(Path.Combine(d, "zoo.json"))).OrderBy(Directory.GetLastWriteTimeUtc).LastOrDefault() : null;
        if (zoo is null) throw new DirectoryNotFoundException($"No demo zoo in {zooRoot}; run `vega demo --out {demoDir}` first.");
        var modelDirs = Directory.GetDirectories(zoo).Where(d => File.Exists(Path.Combine(d, "training.json"))).OrderBy(d => d, StringComparer.Ordinal).ToArray();
        var data = FashionMnistData.Load(idxDir);
        var sets = new List<(string Name, ImageShiftKind? Shift)> { ("clean", null) };
        foreach (var s in shiftList.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var kind = Enum.Parse<ImageShiftKind>(s.Replace("-", ""), ignoreCase: true);
            sets.Add((kind.ToString().ToLowerInvariant(), kind));
        }
        var devSets = devList.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var classNames = DemoCaptions.ClassNames;
        var templates = PromptTemplates.Create([DemoCaptions.EvaluationTemplate]);
        var embedOptions = new ImageEmbeddingOptions { CacheDirectory = Path.Combine(demoDir, "cache"), BatchSize = 256 };
        var configs = new[]
        {
            new SelectionOptions { Vega = new VegaOptions { KeepEdgeMatrices = false }, Bootstrap = new BootstrapOptions { Replicates = 0 } },
            new SelectionOptions { Vega = VegaOptions.Paper with { KeepEdgeMatrices = false }, Bootstrap = new BootstrapOptions { Replicates = 0 } },
            new SelectionOptions { Vega = new VegaOptions { EdgeKind = VisualEdgeKind.MeanCosine, KeepEdgeMatrices = false }, Bootstrap = new BootstrapOptions { Replicates = 0 } },
            new SelectionOptions { Vega = new VegaOptions { KeepEdgeMatrices = false }, BaselineTemperature = 0.02, Bootstrap = new BootstrapOptions { Replicates = 0 } },
            new SelectionOptions { Vega = new VegaOptions { KeepEdgeMatrices = false }, BaselineTemperature = 0.05, Bootstrap = new BootstrapOptions { Replicates = 0 } },
        };

        var models = modelDirs.Select(d => ClipModel.Load(d, new ClipModelOptions { Name = Path.GetFileName(d) })).ToList();
        var tasks = new List<TaskResult>();
        var sources = new Dictionary<string, ImageSource>();
        try
        {
            foreach (var (setName, shift) in sets)
            {
                string dir = DemoRunner.WriteSet(Path.Combine(demoDir, "downstream", setName), data, count, shift);
                var source = ImageSource.FromCsv(Path.Combine(dir, "labels.csv"));
                sources[setName] = source;
                var perModel = new List<ModelData>();
                int[]? labels = null;
                foreach (var model in models)
                {
                    var texts = model.EmbedClassNames(classNames, templates);
                    var embedded = ImageEmbedder.Embed(model, source, embedOptions);
                    labels ??= embedded.Items.Select(i => IndexOf(classNames, i.Label!)).ToArray();
                    perModel.Add(new ModelData(model.Name, embedded.Embeddings, texts));
                }
                Console.WriteLine($"{setName}: {source.Count} images embedded by {models.Count} models ({clock.Elapsed.TotalSeconds:F0} s)");
                var rng = new Random(setName.Aggregate(2024, (h, ch) => unchecked(h * 31 + ch)) & 0x7fffffff);
                var subsetsOfSet = new List<int[]> { Enumerable.Range(0, classNames.Count).ToArray() };
                for (int t = 0; t < subsetCount; t++)
                {
                    int size = 3 + t % 5;
                    subsetsOfSet.Add([.. Enumerable.Range(0, classNames.Count).OrderBy(_ => rng.Next()).Take(size).Order()]);
                }
                foreach (var classes in subsetsOfSet)
                    tasks.Add(Evaluate(setName, devSets.Contains(setName), classes, perModel, labels!, configs));
            }

            // Aggregates.
            var report = new BenchmarkReport("Label-free selectors on the demo zoo (development and held-out tasks)", args);
            var dev = tasks.Where(t => t.Dev).ToList();
            var held = tasks.Where(t => !t.Dev).ToList();
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"Tasks: {tasks.Count} — per set all 10 classes and {subsetCount} random subsets of 3–7 classes; {models.Count} models; development sets: {string.Join(", ", devSets)} ({dev.Count} tasks), held out: {string.Join(", ", sets.Select(s => s.Name).Where(n => !devSets.Contains(n)))} ({held.Count} tasks). Means over tasks; τ over the tasks where it is defined; regret in accuracy points.\n\n");
            sb.Append("| selector | dev τ | dev top-1 | dev regret | held-out τ | held-out top-1 | held-out regret |\n| --- | --- | --- | --- | --- | --- | --- |\n");
            var rows = new List<(string Label, double DevRegret, double DevTau)>();
            foreach (var s in Selectors)
            {
                var (dt, d1, dr) = Mean(dev.Select(t => t.BySelector[s.Label]));
                var (ht, h1, hr) = Mean(held.Select(t => t.BySelector[s.Label]));
                rows.Add((s.Label, dr, dt));
                sb.Append(CultureInfo.InvariantCulture, $"| {s.Label} | {dt:F3} | {d1:F2} | {100 * dr:F1} | {ht:F3} | {h1:F2} | {100 * hr:F1} |\n");
            }
            {
                var (dt, d1, dr) = Mean(dev.Select(t => t.Random));
                var (ht, h1, hr) = Mean(held.Select(t => t.Random));
                sb.Append(CultureInfo.InvariantCulture, $"| random (expected) | {dt:F3} | {d1:F2} | {100 * dr:F1} | {ht:F3} | {h1:F2} | {100 * hr:F1} |\n");
            }
            var chosen = rows.OrderBy(r => r.DevRegret).ThenByDescending(r => r.DevTau).First();
            var chosenSelector = Selectors.First(s => s.Label == chosen.Label);
            sb.Append(CultureInfo.InvariantCulture, $"\nLowest mean development regret: **{chosen.Label}** ({100 * chosen.DevRegret:F1} points).\n\n");

            // The full (ten-class) task of every set: each selector's choice and regret.
            sb.Append("| set (all classes) | best model | " + string.Join(" | ", Selectors.Select(s => s.Label)) + " |\n| --- | --- |" + string.Concat(Selectors.Select(_ => " --- |")) + "\n");
            foreach (var t in tasks.Where(t => t.Classes == classNames.Count))
                sb.Append($"| {t.Set}{(t.Dev ? " (dev)" : "")} | {t.Best} | ").Append(string.Join(" | ", Selectors.Select(s => string.Create(CultureInfo.InvariantCulture, $"{t.BySelector[s.Label].ChosenModel} ({100 * t.BySelector[s.Label].Regret:F1})")))).Append(" |\n");

            // The budgeted search on every full task, against the full ranking's choice under the same selector.
            var searchSelectors = new List<Selector> { chosenSelector };
            if (searchMetricName is not null)
            {
                var m = SelectionMetrics.Parse(searchMetricName);
                searchSelectors = [Selectors.First(s => s.Metric == m && s.Config == 0)];
            }
            if (!searchSelectors.Any(s => s.Label == Selectors[1].Label)) searchSelectors.Add(Selectors[1]);
            sb.Append("\nBudgeted search (successive halving, defaults: first sample 256 images, half the candidates dropped per round, the finalists on every image of the task) on every task, against the full ranking's choice under the same selector. The embedding cache is warm, so the time is scoring plus cache reads:\n\n");
            sb.Append("| selector | tasks | same choice as the full run | image embeddings, share of the full ranking (median; max) | search time (median) |\n| --- | --- | --- | --- | --- |\n");
            var perSet = new StringBuilder("\n| selector | set (all classes) | full-run choice | search choice | image embeddings (share) | rounds: samples |\n| --- | --- | --- | --- | --- | --- |\n");
            foreach (var sel in searchSelectors)
            {
                int same = 0;
                var shares = new List<double>();
                var times = new List<double>();
                var misses = new List<string>();
                foreach (var task in tasks)
                {
                    var full = task.BySelector[sel.Label].ChosenModel;
                    var source = sources[task.Set];
                    var names = task.ClassIndices.Select(k => classNames[k]).ToArray();
                    var subset = task.Classes == classNames.Count ? source
                        : source.Subset([.. Enumerable.Range(0, source.Count).Where(i => names.Contains(source.Items[i].Label))]);
                    var options = new VlmSelectionOptions
                    {
                        Templates = templates,
                        Images = embedOptions,
                        Selection = configs[sel.Config] with { Metric = sel.Metric, Bootstrap = new BootstrapOptions() },
                        BudgetedSearch = new BudgetedSearchOptions(),
                    };
                    long t0 = Stopwatch.GetTimestamp();
                    var result = VisionLanguageModelSelection.SelectVisionLanguageModel(models, subset, names, options);
                    times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
                    long work = result.Runs.Sum(r => (long)r.ImagesEmbedded), all = (long)models.Count * subset.Count;
                    shares.Add(100.0 * work / all);
                    if (full == result.ChosenModel) same++;
                    else misses.Add($"{task.Set} {string.Join("+", task.ClassIndices)}: {full} → {result.ChosenModel}");
                    if (task.Classes == classNames.Count)
                    {
                        var samples = result.Ranking.Trials!.GroupBy(t => t.Settings.Round).Select(g => g.First().Settings.SampleSize);
                        perSet.Append(CultureInfo.InvariantCulture, $"| {sel.Label} | {task.Set} | {full} | {result.ChosenModel}{(full == result.ChosenModel ? "" : " (**differs**)")} | {work} ({100.0 * work / all:F1} %) | {string.Join(", ", samples)} |\n");
                    }
                }
                shares.Sort();
                times.Sort();
                sb.Append(CultureInfo.InvariantCulture, $"| {sel.Label} | {tasks.Count} | {same} of {tasks.Count}{(misses.Count > 0 ? " (differs: " + string.Join("; ", misses) + ")" : "")} | {shares[shares.Count / 2]:F1} %; {shares[^1]:F1} % | {times[times.Count / 2]:F2} s |\n");
                report.Add($"budgeted search: same choice as the full run, {sel.Label}", same, $"of {tasks.Count} tasks", $"median work {shares[shares.Count / 2]:F1} % of the full ranking (max {shares[^1]:F1} %)");
            }
            sb.Append(perSet);
            report.AddText("chosen default selector (lowest mean development regret)", chosen.Label, $"{dev.Count} development tasks");
            report.Add("bench wall time", clock.Elapsed.TotalSeconds, "s", "embedding from the demo's cache, scoring, searches");
            report.AddMarkdown(sb.ToString());
            report.Publish(log);
            return 0;
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        throw new ArgumentException($"Label '{name}' is not a Fashion-MNIST class.");
    }

    private static (double Tau, double Top1, double Regret) Mean(IEnumerable<MetricEvaluation> evaluations)
    {
        var e = evaluations.ToList();
        if (e.Count == 0) return (double.NaN, double.NaN, double.NaN);
        var taus = e.Select(x => x.KendallTau).Where(double.IsFinite).ToList();
        return (taus.Count > 0 ? taus.Average() : double.NaN, e.Average(x => x.Top1Recall), e.Average(x => x.Regret));
    }

    // One task: the images whose label is in `classes`, scored against those classes' texts only.
    private static TaskResult Evaluate(string set, bool dev, int[] classes, List<ModelData> models, int[] labels, SelectionOptions[] configs)
    {
        var keep = Enumerable.Range(0, labels.Length).Where(i => classes.Contains(labels[i])).ToArray();
        var remap = new Dictionary<int, int>();
        for (int k = 0; k < classes.Length; k++) remap[classes[k]] = k;
        int[] taskLabels = [.. keep.Select(i => remap[labels[i]])];
        var scores = new List<ModelScores>[configs.Length];
        for (int c = 0; c < configs.Length; c++) scores[c] = [];
        var accuracies = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var m in models)
        {
            int d = m.Images.Dimension;
            var images = new EmbeddingMatrix(keep.Length, d);
            for (int r = 0; r < keep.Length; r++) m.Images.Row(keep[r]).CopyTo(images.Row(r));
            var texts = new EmbeddingMatrix(classes.Length, d);
            for (int k = 0; k < classes.Length; k++) m.Texts.Row(classes[k]).CopyTo(texts.Row(k));
            accuracies[m.Name] = SelectionEvaluation.ZeroShotAccuracy(images, texts, taskLabels);
            for (int c = 0; c < configs.Length; c++) scores[c].Add(ModelSelector.Score(m.Name, images, texts, configs[c]));
        }
        var by = new Dictionary<string, MetricEvaluation>();
        MetricEvaluation? random = null;
        string best = "";
        foreach (var s in Selectors)
        {
            var ranking = ModelSelector.RankScores(scores[s.Config], configs[s.Config] with { Metric = s.Metric });
            var ev = SelectionEvaluation.Evaluate(ranking, accuracies, 3);
            by[s.Label] = ev.For(s.Metric);
            random ??= ev.For(SelectionMetric.Random);
            best = ev.BestModel;
        }
        return new TaskResult(set, classes, dev, classes.Length, by, random!, best);
    }
}
