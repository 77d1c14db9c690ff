using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Prompting;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega tune</c>: adapt a frozen CLIP model to images with candidate labels (zero-shot, linear probe or CoOp,
/// with a partial-label loss and optional prompt alignment).</summary>
internal static class TuneCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model folder or clip.json.", Required = true };
        var train = new Option<string>("--train") { Description = "Training images: CSV (path,candidates \"a|b|c\" or path,label), IDX, or a folder.", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX label file for an IDX training set." };
        var folders = new Option<bool>("--labels-from-folders") { Description = "Labels are the images' sub-folder names." };
        var classes = new Option<string>("--classes") { Description = "Text file with one class name per line.", Required = true };
        var q = new Option<double?>("--q") { Description = "Generate candidate sets from the labels: every wrong label joins with probability q." };
        var shots = new Option<int?>("--shots") { Description = "Use k images per class (needs labels)." };
        var method = new Option<string>("--method") { Description = "zeroshot, lp (linear probe) or coop.", DefaultValueFactory = _ => "coop" };
        var pll = new Option<string>("--pll") { Description = "Partial-label loss: cc, rc, lws, cavl, naive, pico, plcr or ce (pico and plcr use --views as their strong views).", DefaultValueFactory = _ => "cc" };
        var align = new Option<string>("--align") { Description = "Prompt alignment to the handcrafted posterior: on or off.", DefaultValueFactory = _ => "on" };
        var alignWeighting = new Option<string>("--align-weighting") { Description = "dynamic (the alignment term is λ times the partial-label term, through a detached ratio) or fixed (λ·L_align).", DefaultValueFactory = _ => "dynamic" };
        var alignWeight = new Option<double>("--align-weight") { Description = "λ, the alignment weight.", DefaultValueFactory = _ => 1.0 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 50 };
        var batch = new Option<int>("--batch") { Description = "Images per step.", DefaultValueFactory = _ => 32 };
        var lr = new Option<double>("--lr") { Description = "Base learning rate (CoOp 0.002; the linear probe uses AdamW 1e-3 by default).", DefaultValueFactory = _ => 0.002 };
        var ctx = new Option<int>("--ctx") { Description = "CoOp: number of context tokens.", DefaultValueFactory = _ => 16 };
        var csc = new Option<bool>("--csc") { Description = "CoOp: class-specific context." };
        var position = new Option<string>("--position") { Description = "CoOp: class token position end, middle or front.", DefaultValueFactory = _ => "end" };
        var ctxInit = new Option<string?>("--ctx-init") { Description = "CoOp: initialise the context from a phrase, e.g. \"a photo of a\"." };
        var seed = new Option<ulong>("--seed") { Description = "Seed (candidate generation, shots, initialisation, batch order).", DefaultValueFactory = _ => 1UL };
        var templates = new Option<string?>("--templates") { Description = "Handcrafted prompt templates file (zero-shot and alignment teacher)." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder.", DefaultValueFactory = _ => ".vega-cache" };
        var views = new Option<int>("--views") { Description = "Augmented views per training image (random resized crop + flip), embedded once and cached; every epoch each image uses the original or one of its views (pico, plcr: the strong views).", DefaultValueFactory = _ => 0 };
        var viewScale = new Option<double>("--view-scale") { Description = "Smallest crop of an augmented view, as a fraction of the image area (CoOp: 0.08).", DefaultValueFactory = _ => 0.08 };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint folder: written every epoch; an interrupted run resumes from it." };
        var output = new Option<string>("--out") { Description = "Folder for the trained classifier.", Required = true };
        var command = new Command("tune", "Adapt a frozen CLIP model to training images with candidate-label sets.")
            { model, train, labels, folders, classes, q, shots, method, pll, align, alignWeighting, alignWeight, epochs, batch, lr, ctx, csc, position, ctxInit, seed, templates, cache, views, viewScale, checkpoint, output };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            var classNames = PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", parse.GetValue(classes)!));
            var prompts = parse.GetValue(templates) is { } t ? PromptTemplates.FromFile(CliChecks.InputFile("--templates", t)) : PromptTemplates.Default;
            string outDir = CliChecks.OutputFolder("--out", parse.GetValue(output)!);
            string? checkpointDir = parse.GetValue(checkpoint) is { } cp ? CliChecks.OutputFolder("--checkpoint", cp) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            double? flip = parse.GetValue(q) is double qv ? CliChecks.Probability("--q", qv) : null;
            int? shotCount = CliChecks.Range("--shots", parse.GetValue(shots), 1, 1_000_000, "images per class");
            int viewCount = CliChecks.Range("--views", parse.GetValue(views), 0, 1000, "augmented views per image");
            var lossKind = ParseLoss(parse.GetValue(pll)!);
            var weighting = ParseWeighting(parse.GetValue(alignWeighting)!);
            double lambda = CliChecks.NonNegative("--align-weight", parse.GetValue(alignWeight));
            double minScale = ParseViewScale(parse.GetValue(viewScale));
            if (lossKind is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR && viewCount < 1)
                AnsiConsole.MarkupLine(Markup.Escape($"note: --pll {parse.GetValue(pll)} without --views: its strong views are the original images (add --views 2)."));
            var options = new PromptTuningOptions
            {
                Method = ParseMethod(parse.GetValue(method)!),
                Loss = lossKind,
                Align = parse.GetValue(align) switch { "on" => true, "off" => false, var a => throw new CliUsageException($"--align '{a}': use on or off.") },
                AlignmentWeighting = weighting,
                AlignmentWeight = lambda,
                Epochs = CliChecks.Range("--epochs", parse.GetValue(epochs), 1, 1_000_000),
                BatchSize = CliChecks.Range("--batch", parse.GetValue(batch), 1, 1 << 24, "images per step"),
                LearningRate = CliChecks.Positive("--lr", parse.GetValue(lr)),
                ContextTokens = CliChecks.Range("--ctx", parse.GetValue(ctx), 1, 1000, "context tokens"),
                ClassSpecificContext = parse.GetValue(csc),
                ClassPosition = parse.GetValue(position)!.ToLowerInvariant() switch
                {
                    "end" => ClassTokenPosition.End,
                    "middle" => ClassTokenPosition.Middle,
                    "front" => ClassTokenPosition.Front,
                    var p => throw new CliUsageException($"--position '{p}': use end, middle or front."),
                },
                ContextInit = parse.GetValue(ctxInit),
                Seed = parse.GetValue(seed),
                Templates = prompts,
                CheckpointDirectory = checkpointDir,
                Progress = r => AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {r.Epoch + 1}/{r.Epochs}  loss {r.Loss:F4}  lr {r.LearningRate:G3}{(r.TrainAccuracy is { } a ? $"  train accuracy {a:P1}" : "")}"))),
            };
            var source = CliInputs.Images(parse.GetValue(train)!, parse.GetValue(labels), labelsFromFolders: parse.GetValue(folders), classNames: classNames, option: "--train");
            CheckTrainingItems(source.Items, classNames, flip, shotCount);
            using var clip = CliInputs.LoadModel(parse.GetValue(model)!, cacheDir);
            var embedOptions = new ImageEmbeddingOptions { CacheDirectory = cacheDir };
            var embedded = CliInputs.EmbedWithProgress(clip, source, embedOptions, ct);
            CliInputs.PrintSkipped(embedded.Skipped);
            var (images, candidates, trueLabels, rows) = TrainingSet(embedded, classNames, flip, shotCount, parse.GetValue(seed));
            IReadOnlyList<EmbeddingMatrix>? augmented = null;
            if (viewCount > 0)
            {
                // Only the chosen training images get views: their original items, k crops each.
                var chosen = source.Subset(rows.Select(r => embedded.Items[r].Index).ToArray());
                var viewEmbeddings = CliInputs.EmbedWithProgress(clip, chosen.AugmentedViews(viewCount, parse.GetValue(seed), minScale), embedOptions, ct);
                augmented = AugmentedViews.Matrices(viewEmbeddings, rows.Length, viewCount);
            }
            AnsiConsole.MarkupLine(Markup.Escape($"{images.Count} training images, {classNames.Count} classes, mean candidate-set size {candidates.MeanSetSize():F2}"));
            var result = PromptTuner.Tune(clip, images, candidates, classNames, options, trueLabels, ct, augmented);
            if (result.ResumedFromEpoch > 0) AnsiConsole.MarkupLine($"resumed from the checkpoint after epoch {result.ResumedFromEpoch}");
            result.Save(outDir);
            AnsiConsole.MarkupLine(Markup.Escape($"classifier ({result.Classifier.Method}) written to {outDir}"));
            return 0;
        })));
        return command;
    }

    /// <summary>
    /// What <see cref="TrainingSet"/> needs of the listed items, checked before any image is embedded: labels for
    /// --q and --shots, every label and candidate one of the classes.
    /// </summary>
    internal static void CheckTrainingItems(IReadOnlyList<ImageItem> items, IReadOnlyList<string> classNames, double? q, int? shots)
    {
        var labels = LabelsOf(items, classNames); // throws for a label that is not a class
        if (labels is null && shots is not null)
            throw new CliUsageException("--shots needs a label for every training image (CSV label column, IDX labels or --labels-from-folders).");
        if (labels is null && q is not null)
            throw new CliUsageException("--q generates candidate sets from labels; the training images have none.");
        if (q is null) CandidateLabels.FromItems(items, classNames); // throws for a missing or unknown candidate
    }

    /// <summary>The training embeddings, candidate sets and (when known) true labels, after k-shot sampling.</summary>
    internal static (EmbeddingMatrix Images, CandidateLabels Candidates, int[]? Labels, int[] Rows) TrainingSet(ImageEmbeddings embedded, IReadOnlyList<string> classNames, double? q, int? shots, ulong seed)
    {
        var items = embedded.Items;
        int[]? labels = LabelsOf(items, classNames);
        var rows = Enumerable.Range(0, items.Count).ToArray();
        if (shots is int k)
        {
            if (labels is null) throw new ArgumentException("--shots needs a label for every training image (CSV label column, IDX labels or --labels-from-folders).");
            rows = CandidateLabels.SampleShots(labels, classNames.Count, k, seed);
        }
        var images = new EmbeddingMatrix(rows.Length, embedded.Embeddings.Dimension);
        for (int r = 0; r < rows.Length; r++) embedded.Embeddings.Row(rows[r]).CopyTo(images.Row(r));
        int[]? subsetLabels = labels is null ? null : rows.Select(r => labels[r]).ToArray();
        CandidateLabels candidates;
        if (q is double flip)
        {
            if (subsetLabels is null) throw new ArgumentException("--q generates candidate sets from labels; the training images have none.");
            candidates = CandidateLabels.Generate(subsetLabels, classNames.Count, flip, seed);
        }
        else candidates = CandidateLabels.FromItems(rows.Select(r => items[r]).ToList(), classNames);
        return (images, candidates, subsetLabels, rows);
    }

    internal static int[]? LabelsOf(IReadOnlyList<ImageItem> items, IReadOnlyList<string> classNames)
    {
        var index = classNames.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => x.i, StringComparer.Ordinal);
        var labels = new int[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i].Label is not { } l) return null;
            if (!index.TryGetValue(l, out labels[i]))
                throw new ArgumentException($"{items[i].Path ?? items[i].Id}: the label \"{l}\" is not one of the classes.");
        }
        return labels;
    }

    internal static TuningMethod ParseMethod(string s) => s.ToLowerInvariant() switch
    {
        "zeroshot" or "zero-shot" => TuningMethod.ZeroShot,
        "lp" or "linear-probe" => TuningMethod.LinearProbe,
        "coop" => TuningMethod.CoOp,
        _ => throw new CliUsageException($"--method '{s}': use zeroshot, lp or coop."),
    };

    internal static PartialLabelLossKind ParseLoss(string s) => s.ToLowerInvariant() switch
    {
        "cc" => PartialLabelLossKind.CC,
        "rc" => PartialLabelLossKind.RC,
        "lws" => PartialLabelLossKind.LWS,
        "cavl" => PartialLabelLossKind.CAVL,
        "naive" => PartialLabelLossKind.Naive,
        "pico" => PartialLabelLossKind.PiCO,
        "plcr" => PartialLabelLossKind.PLCR,
        "ce" => PartialLabelLossKind.CrossEntropy,
        _ => throw new CliUsageException($"--pll '{s}': use cc, rc, lws, cavl, naive, pico, plcr or ce."),
    };

    internal static AlignmentWeighting ParseWeighting(string s) => s.ToLowerInvariant() switch
    {
        "dynamic" => AlignmentWeighting.Dynamic,
        "fixed" => AlignmentWeighting.Fixed,
        _ => throw new CliUsageException($"--align-weighting '{s}': use dynamic or fixed."),
    };

    internal static double ParseViewScale(double v) =>
        v > 0 && v <= 1 ? v : throw new CliUsageException($"--view-scale {v}: use a fraction of the image area in (0, 1].");
}
