using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Reporting;
using Vega.MLNet.Selection;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Demo;

/// <summary>Options of <see cref="DemoRunner.Run"/> (the options of <c>vega demo</c>).</summary>
internal sealed record DemoOptions
{
    /// <summary>Output folder (zoo cache, downstream images, embedding cache, reports).</summary>
    public string OutputDirectory { get; init; } = ".vega-demo";

    /// <summary>The reduced demo: two small models, a few hundred images, few epochs.</summary>
    public bool Quick { get; init; }

    /// <summary>How many test images to write and rank on (null: all 10000, or 500 with <see cref="Quick"/>).</summary>
    public int? TestCount { get; init; }

    /// <summary>Folder with the four Fashion-MNIST IDX files.</summary>
    public string IdxDirectory { get; init; } = FashionMnistData.DefaultDirectory;

    public ulong Seed { get; init; } = 2024;

    /// <summary>The shift of the second downstream set.</summary>
    public ImageShiftKind Shift { get; init; } = ImageShiftKind.LowContrast;

    /// <summary>Zoo cache root (default &lt;out&gt;/zoo).</summary>
    public string? ZooDirectory { get; init; }

    /// <summary>Models trained at once (0 = one per core).</summary>
    public int Workers { get; init; }

    /// <summary>Progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Replaces the plain embedding call (the CLI shows progress bars).</summary>
    public Func<ClipModel, ImageSource, ImageEmbeddingOptions, CancellationToken, ImageEmbeddings>? EmbedImages { get; init; }

    /// <summary>Overrides the zoo (tests); null uses <see cref="ZooDefinition.Default"/> or <see cref="ZooDefinition.Quick"/>.</summary>
    public ZooDefinition? Zoo { get; init; }
}

/// <summary>What the ML.NET pipeline did on one set: SelectVisionLanguageModel's choice and ranking, and
/// MulticlassClassification.Evaluate of the chosen model against the labels.</summary>
internal sealed record DemoMLNet(string ChosenModel, IReadOnlyList<RankedModel> Ranking, bool TooCloseToCall, MulticlassClassificationMetrics Metrics, TimeSpan Elapsed);

/// <summary>One downstream set and its ranking.</summary>
internal sealed record DemoSet(string Name, string Description, string Directory, string ImagesDirectory, string LabelsCsv, int Count,
    VlmSelectionResult Selection, DemoMLNet MLNet, string ReportHtml, string ReportJson);

/// <summary>A row of a downstream set's labels.csv, as ML.NET's text loader reads it.</summary>
internal sealed class DemoImage
{
    [LoadColumn(0)] public string ImagePath = "";
    [LoadColumn(1)] public string Label = "";
}

/// <summary>What the demo did.</summary>
internal sealed record DemoResult(ZooBuild Zoo, IReadOnlyList<DemoSet> Sets, string OutputDirectory, string ClassesFile, string SummaryJson, TimeSpan Elapsed);

/// <summary>
/// The demo behind <c>vega demo</c>: builds (or loads from its cache) a zoo of small CLIP models trained on
/// Fashion-MNIST and exported as ordinary CLIP packages, writes the test split as an unlabeled downstream set of PNG
/// files (plus one shifted copy), and on both sets: chooses a model with ML.NET's
/// <c>ml.Transforms.SelectVisionLanguageModel</c> (no labels) and scores the choice with
/// <c>ml.MulticlassClassification.Evaluate</c>, then — since the demo knows the labels — evaluates every label-free metric
/// against the true accuracies through <see cref="VisionLanguageModelSelection"/> (from the same embedding cache, so
/// nothing is embedded twice), and writes an HTML and a JSON report per set.
/// </summary>
internal static class DemoRunner
{
    public static DemoResult Run(DemoOptions options, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var log = options.Log ?? (_ => { });
        string outDir = Path.GetFullPath(options.OutputDirectory);
        Directory.CreateDirectory(outDir);
        var data = FashionMnistData.Load(options.IdxDirectory);
        var zoo = options.Zoo ?? (options.Quick ? ZooDefinition.Quick(options.Seed) : ZooDefinition.Default(options.Seed));
        int count = options.TestCount ?? (options.Quick ? 500 : data.Test.Count);
        if (count < 10 || count > data.Test.Count)
            throw new ArgumentOutOfRangeException(nameof(options), count, $"--test-count must be between 10 and {data.Test.Count}.");

        var build = ZooBuilder.BuildOrLoad(zoo, data, options.ZooDirectory ?? Path.Combine(outDir, "zoo"), log, options.Workers, cancellationToken);
        log(build.ModelsTrained > 0
            ? $"zoo built in {build.Elapsed.TotalSeconds:F1} s ({build.ModelsTrained} models trained) → {build.Directory}"
            : $"zoo loaded from {build.Directory} ({build.Elapsed.TotalSeconds:F1} s)");

        string downstream = Path.Combine(outDir, "downstream");
        Directory.CreateDirectory(downstream);
        string classesFile = Path.Combine(downstream, "classes.txt");
        File.WriteAllText(classesFile, string.Join("\n", DemoCaptions.ClassNames) + "\n");
        long t0 = Stopwatch.GetTimestamp();
        var clean = WriteSet(Path.Combine(downstream, "clean"), data, count, null);
        var shifted = WriteSet(Path.Combine(downstream, options.Shift.ToString().ToLowerInvariant()), data, count, options.Shift);
        log($"downstream sets: {count} test images as PNG, clean and {ImageShift.Describe(options.Shift)}, in {downstream} ({Stopwatch.GetElapsedTime(t0).TotalSeconds:F1} s)");

        var models = new List<ClipModel>();
        var sets = new List<DemoSet>();
        try
        {
            foreach (var m in build.Models) models.Add(ClipModel.Load(m.Directory, new ClipModelOptions { Name = m.Spec.Name }));
            foreach (var (name, description, dir) in new[] { ("clean", "Fashion-MNIST test split", clean), (options.Shift.ToString().ToLowerInvariant(), $"Fashion-MNIST test split, {ImageShift.Describe(options.Shift)}", shifted) })
            {
                cancellationToken.ThrowIfCancellationRequested();
                string csv = Path.Combine(dir, "labels.csv");
                log($"ML.NET: SelectVisionLanguageModel over {models.Count} models on {count} {name} images, then MulticlassClassification.Evaluate");
                var mlnet = RunMLNet(build, csv, dir, Path.Combine(outDir, "cache"), log);
                log($"ranking {models.Count} models on {count} {name} images with every label-free metric, against the labels");
                var source = ImageSource.FromCsv(csv);
                var selectionOptions = new VlmSelectionOptions
                {
                    Templates = PromptTemplates.Create([DemoCaptions.EvaluationTemplate]),
                    Images = new ImageEmbeddingOptions { CacheDirectory = Path.Combine(outDir, "cache"), BatchSize = 256 },
                    EmbedImages = options.EmbedImages,
                };
                var result = VisionLanguageModelSelection.SelectVisionLanguageModel(models, source, DemoCaptions.ClassNames, selectionOptions, cancellationToken);
                string html = Path.Combine(outDir, $"report-{name}.html"), json = Path.Combine(outDir, $"report-{name}.json");
                HtmlReport.Write(html, result.Ranking, result.Evaluation, new ReportOptions
                {
                    Title = $"Vega.MLNet demo: {zoo.Models.Count} CLIP models on {description}",
                    TaskName = $"{description}, {count} images, zero-shot with \"{DemoCaptions.EvaluationTemplate}\"",
                    ClassNames = DemoCaptions.ClassNames,
                });
                JsonReport.Write(json, result.Ranking, result.Evaluation);
                sets.Add(new DemoSet(name, description, dir, Path.Combine(dir, "images"), csv, count, result, mlnet, html, json));
            }
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
        string summary = Path.Combine(outDir, "demo-summary.json");
        File.WriteAllText(summary, Summary(build, sets, options, count));
        return new DemoResult(build, sets, outDir, classesFile, summary, clock.Elapsed);
    }

    /// <summary>
    /// The ML.NET path a user of the package takes: load the images (the label column is only read by Evaluate), let
    /// SelectVisionLanguageModel choose among the zoo's models without labels, classify with the chosen model, map the
    /// true labels to keys in class order and evaluate.
    /// </summary>
    internal static DemoMLNet RunMLNet(ZooBuild build, string labelsCsv, string setDirectory, string cacheDirectory, Action<string> log)
    {
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromTextFile<DemoImage>(labelsCsv, separatorChar: ',', hasHeader: true, allowQuoting: true);
        using var selection = ml.Transforms.SelectVisionLanguageModel(new VisionLanguageModelSelectingEstimator.Options
        {
            CandidateModelPaths = [.. build.Models.Select(m => m.Directory)],
            ClassNames = DemoCaptions.ClassNames,
            ImageColumnName = nameof(DemoImage.ImagePath),
            ImageFolder = setDirectory,
            Templates = [DemoCaptions.EvaluationTemplate],
            CacheDirectory = cacheDirectory,
            BatchSize = 256,
        }).Fit(data);
        var scored = selection.Transform(data);
        var classes = ml.Data.LoadFromEnumerable(DemoCaptions.ClassNames.Select(c => new DemoImage { Label = c }), SchemaDefinition.Create(typeof(DemoImage)));
        var keyed = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(DemoImage.Label), keyData: ml.Transforms.SelectColumns(nameof(DemoImage.Label)).Fit(classes).Transform(classes))
            .Fit(scored).Transform(scored);
        var metrics = ml.MulticlassClassification.Evaluate(keyed, labelColumnName: "LabelKey");
        log($"ML.NET: chose {Path.GetFileName(selection.ChosenModel)}; its accuracy {metrics.MicroAccuracy:P1} ({clock.Elapsed.TotalSeconds:F1} s)");
        return new DemoMLNet(selection.ChosenModel, selection.Ranking, selection.TooCloseToCall, metrics, clock.Elapsed);
    }

    /// <summary>
    /// Writes the first <paramref name="count"/> test images (optionally shifted) as 28 × 28 RGB PNG files (gray
    /// replicated) into <c>dir/images/</c> and the labels into <c>dir/labels.csv</c> (path,label). Skipped when the
    /// folder already holds exactly this set.
    /// </summary>
    internal static string WriteSet(string dir, FashionMnistData data, int count, ImageShiftKind? shift)
    {
        string marker = Path.Combine(dir, "set.json");
        string identity = JsonSerializer.Serialize(new { count, shift = shift?.ToString(), data = data.Files.Select(f => new FileInfo(f)).Select(f => $"{f.FullName}:{f.Length}").ToArray(), format = 1 });
        if (File.Exists(marker) && File.ReadAllText(marker) == identity) return dir;
        string images = Path.Combine(dir, "images");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(images);
        var csv = new StringBuilder("path,label\n");
        for (int i = 0; i < count; i++)
            csv.Append(CultureInfo.InvariantCulture, $"images/{i:D5}.png,{Quote(DemoCaptions.ClassNames[data.TestLabels[i]])}\n");
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, () => (new byte[784], new byte[784 * 3]), (i, _, buffers) =>
        {
            var (gray, rgb) = buffers;
            var src = data.Test.Gray(i);
            if (shift is { } s) ImageShift.Apply(s, src, gray, 28, 28);
            else src.CopyTo(gray);
            RgbImage.GrayToRgb(gray, rgb);
            File.WriteAllBytes(Path.Combine(images, $"{i:D5}.png"), PngEncoder.EncodeRgb(28, 28, rgb));
            return buffers;
        }, _ => { });
        File.WriteAllText(Path.Combine(dir, "labels.csv"), csv.ToString());
        File.WriteAllText(marker, identity);
        return dir;
    }

    private static string Quote(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static string Summary(ZooBuild build, IReadOnlyList<DemoSet> sets, DemoOptions options, int count)
    {
        var doc = new
        {
            generated = DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture),
            quick = options.Quick,
            seed = options.Seed,
            testImages = count,
            zoo = new
            {
                name = build.Definition.Name,
                key = build.Key,
                directory = build.Directory,
                modelsTrained = build.ModelsTrained,
                seconds = build.Elapsed.TotalSeconds,
                models = build.Models.Select(m => new
                {
                    name = m.Spec.Name,
                    architecture = m.Spec.Architecture.Describe(),
                    trainImages = m.Spec.Training.TrainImages,
                    epochs = m.Spec.Training.Epochs,
                    noise = m.Spec.Training.CaptionNoise,
                    coverage = m.Spec.CoverageText,
                    imageParameters = m.ImageParameters,
                    textParameters = m.TextParameters,
                    trainSeconds = m.TrainSeconds,
                    trainerAccuracy = m.TrainerAccuracy,
                    accuracies = sets.ToDictionary(s => s.Name, s => s.Selection.Evaluation?.Accuracies[m.Spec.Name]),
                }),
            },
            sets = sets.Select(s => new
            {
                name = s.Name,
                description = s.Description,
                chosen = s.Selection.ChosenModel,
                mlnet = new
                {
                    chosen = Path.GetFileName(s.MLNet.ChosenModel),
                    ranking = s.MLNet.Ranking.Select(r => new { model = r.Name, score = Finite(r.Score) }),
                    accuracy = s.MLNet.Metrics.MicroAccuracy,
                    macroAccuracy = s.MLNet.Metrics.MacroAccuracy,
                    logLoss = Finite(s.MLNet.Metrics.LogLoss),
                    seconds = s.MLNet.Elapsed.TotalSeconds,
                },
                best = s.Selection.Evaluation?.BestModel,
                metrics = s.Selection.Evaluation?.Metrics.Select(e => new
                {
                    metric = SelectionMetrics.Name(e.Metric),
                    kendallTau = Finite(e.KendallTau),
                    spearmanRho = Finite(e.SpearmanRho),
                    top1 = Finite(e.Top1Recall),
                    regret = Finite(e.Regret),
                    chooses = e.ChosenModel,
                }),
                report = s.ReportHtml,
            }),
        };
        return JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;
}
