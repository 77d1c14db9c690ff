using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Experiments;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega experiment candidate-labels</c>: the candidate-label experiment on Fashion-MNIST (zero-shot, linear
/// probe, CoOp, CoOp + alignment; every loss; several q and seeds), written as markdown.</summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var command = new Command("experiment", "Reproducible experiments behind docs/experiments/.");
        var models = new Option<string[]>("--models") { Description = "Model folders (e.g. demo zoo models).", Required = true, AllowMultipleArgumentsPerToken = true };
        var idx = new Option<string>("--idx-dir") { Description = "Fashion-MNIST IDX folder.", DefaultValueFactory = _ => "/usr/share/datasets/fashion-mnist" };
        var q = new Option<double[]>("--q") { Description = "Flipping probabilities.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [0.1, 0.3, 0.5] };
        var seeds = new Option<ulong[]>("--seeds") { Description = "Seeds (shots, candidate sets, initialisation, batch order).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1UL, 2UL, 3UL] };
        var shots = new Option<int>("--shots") { Description = "Training images per class.", DefaultValueFactory = _ => 16 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 50 };
        var lr = new Option<double>("--coop-lr") { Description = "CoOp learning rate.", DefaultValueFactory = _ => 0.002 };
        var pool = new Option<int>("--pool") { Description = "Training images the shots are drawn from (the first N of the training split).", DefaultValueFactory = _ => 10000 };
        var testCount = new Option<int>("--test-count") { Description = "Test images (the first N of the test split).", DefaultValueFactory = _ => 10000 };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder.", DefaultValueFactory = _ => ".vega-cache" };
        var views = new Option<int>("--views") { Description = "Augmented views per training image for PiCO and PLCR (their strong views), embedded once and cached; 0 = none.", DefaultValueFactory = _ => 2 };
        var viewScale = new Option<double>("--view-scale") { Description = "Smallest crop of an augmented view, as a fraction of the image area.", DefaultValueFactory = _ => 0.5 };
        var losses = new Option<string[]>("--pll") { Description = "Partial-label losses (cc rc lws cavl naive pico plcr).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["cc", "rc", "lws", "cavl", "naive", "pico", "plcr"] };
        var fixedWeight = new Option<double>("--fixed-align-weight") { Description = "λ of the fixed-weight alignment runs.", DefaultValueFactory = _ => 1.0 };
        var route = new Option<string>("--route") { Description = "mlnet: through ml.MulticlassClassification.Trainers.PromptTuning/ZeroShot and Evaluate, with ML.NET's own maximum-entropy classifiers as baselines; core: the core trainer on the matrices.", DefaultValueFactory = _ => "mlnet" };
        var output = new Option<string?>("--out") { Description = "Append the markdown tables to this file." };
        var candidate = new Command("candidate-labels", "Zero-shot / linear probe / CoOp / CoOp + alignment with candidate labels on Fashion-MNIST, for every loss, q and seed.")
            { models, idx, q, seeds, shots, epochs, lr, pool, testCount, cache, views, viewScale, losses, fixedWeight, route, output };
        candidate.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            int viewCount = CliChecks.Range("--views", parse.GetValue(views), 0, 1000, "augmented views per image");
            double minScale = TuneCommand.ParseViewScale(parse.GetValue(viewScale));
            var lossKinds = parse.GetValue(losses)!.Select(TuneCommand.ParseLoss).Distinct().ToArray();
            double lambda = CliChecks.NonNegative("--fixed-align-weight", parse.GetValue(fixedWeight));
            var routeKind = parse.GetValue(route) switch
            {
                "mlnet" => ExperimentRoute.MLNet,
                "core" => ExperimentRoute.Core,
                var other => throw new CliUsageException($"--route {other}: use mlnet or core."),
            };
            string dir = CliChecks.InputFolder("--idx-dir", parse.GetValue(idx)!);
            string? outFile = parse.GetValue(output) is { } of ? CliChecks.OutputFile("--out", of) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            var modelPaths = parse.GetValue(models)!;
            foreach (var m in modelPaths) CliChecks.Model("--models", m);
            foreach (double v in parse.GetValue(q)!) CliChecks.Probability("--q", v);
            if (parse.GetValue(seeds)!.Length == 0) throw new CliUsageException("--seeds: give at least one seed.");
            if (parse.GetValue(q)!.Length == 0) throw new CliUsageException("--q: give at least one flipping probability.");
            CliChecks.Range("--shots", parse.GetValue(shots), 1, 1_000_000);
            CliChecks.Range("--epochs", parse.GetValue(epochs), 1, 1_000_000);
            CliChecks.Positive("--coop-lr", parse.GetValue(lr));
            CliChecks.Range("--pool", parse.GetValue(pool), 1, 60_000, "training images");
            CliChecks.Range("--test-count", parse.GetValue(testCount), 1, 10_000, "test images");
            string F(string name) => CliChecks.InputFile("--idx-dir", Path.Combine(dir, name));
            // This experiment is defined on Fashion-MNIST: its label names are the dataset's (not taken from the files).
            var classNames = ImageSource.FashionMnistClassNames;
            var trainSource = ImageSource.FromIdx(F("train-images-idx3-ubyte.gz"), F("train-labels-idx1-ubyte.gz"), classNames).Subset(Enumerable.Range(0, parse.GetValue(pool)).ToArray());
            var testSource = ImageSource.FromIdx(F("t10k-images-idx3-ubyte.gz"), F("t10k-labels-idx1-ubyte.gz"), classNames).Subset(Enumerable.Range(0, parse.GetValue(testCount)).ToArray());
            var settings = new CandidateLabelExperimentSettings
            {
                FlipProbabilities = parse.GetValue(q)!,
                Seeds = parse.GetValue(seeds)!,
                Shots = parse.GetValue(shots),
                Epochs = parse.GetValue(epochs),
                CoopLearningRate = parse.GetValue(lr),
                Losses = lossKinds,
                FixedAlignmentWeight = lambda,
                Route = routeKind,
                Log = line => AnsiConsole.MarkupLine(Markup.Escape(line)),
            };
            var doc = new StringBuilder();
            foreach (var path in modelPaths)
            {
                using var model = CliInputs.LoadModel(path, cacheDir, option: "--models");
                var embedOptions = new ImageEmbeddingOptions { CacheDirectory = cacheDir };
                var train = CliInputs.EmbedWithProgress(model, trainSource, embedOptions, ct);
                var test = CliInputs.EmbedWithProgress(model, testSource, embedOptions, ct);
                int[] Labels(ImageEmbeddings e) => TuneCommand.LabelsOf(e.Items, classNames)!;
                var trainLabels = Labels(train);
                Func<int[], IReadOnlyList<EmbeddingMatrix>>? viewsOf = null;
                if (viewCount > 0 && lossKinds.Any(l => l is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR))
                {
                    // Views of every image any seed draws as a shot, embedded once (and cached) through the engine.
                    var union = settings.Seeds.SelectMany(s => CandidateLabels.SampleShots(trainLabels, classNames.Count, settings.Shots, s)).Distinct().Order().ToArray();
                    var position = new Dictionary<int, int>();
                    for (int p = 0; p < union.Length; p++) position[union[p]] = p;
                    var viewSource = trainSource.Subset(union.Select(r => train.Items[r].Index).ToArray()).AugmentedViews(viewCount, 1, minScale);
                    var all = AugmentedViews.Matrices(CliInputs.EmbedWithProgress(model, viewSource, embedOptions, ct), union.Length, viewCount);
                    viewsOf = rows => all.Select(m =>
                    {
                        var v = new EmbeddingMatrix(rows.Length, m.Dimension);
                        for (int r = 0; r < rows.Length; r++) m.Row(position[rows[r]]).CopyTo(v.Row(r));
                        return v;
                    }).ToArray();
                }
                var cells = CandidateLabelExperiment.Run(model, train.Embeddings, trainLabels, test.Embeddings, Labels(test), classNames, settings with { ModelPath = path }, ct, viewsOf);
                doc.Append(CultureInfo.InvariantCulture, $"\n### {model.Name}\n\nAccuracy (%) on the first {test.Embeddings.Count} test images, mean ± sd over seeds {string.Join(", ", settings.Seeds)}; {settings.Shots} shots per class, {settings.Epochs} epochs, CoOp lr {settings.CoopLearningRate}");
                doc.Append(viewsOf is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; PiCO and PLCR with {viewCount} augmented views per image (crops of {100 * minScale:F0}–100 % of the area)"));
                doc.Append(routeKind == ExperimentRoute.MLNet ? "; trained with ml.MulticlassClassification.Trainers.PromptTuning, accuracy from ml.MulticlassClassification.Evaluate.\n\n" : "; core trainer (PromptTuner).\n\n");
                doc.Append(CandidateLabelExperiment.Markdown(cells));
                doc.Append("\nPrompt alignment against plain CoOp (dynamic weighting, and a fixed weight λ):\n\n").Append(CandidateLabelExperiment.AlignmentSummary(cells));
            }
            Console.WriteLine(doc.ToString());
            if (outFile is { } file)
            {
                File.AppendAllText(file, $"\n## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC — `vega {string.Join(' ', Environment.GetCommandLineArgs()[1..])}`\n" + doc);
                AnsiConsole.MarkupLine(Markup.Escape($"appended to {file}"));
            }
            return 0;
        })));
        command.Subcommands.Add(candidate);
        return command;
    }
}
