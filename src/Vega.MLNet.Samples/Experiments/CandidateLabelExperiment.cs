using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Trainers;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;

using Vega.MLNet.Prompting.PartialLabel;

namespace Vega.MLNet.Samples.Experiments;

/// <summary>Settings of the candidate-label experiment (docs/experiments/candidate-labels.md).</summary>
internal sealed record CandidateLabelExperimentSettings
{
    public IReadOnlyList<double> FlipProbabilities { get; init; } = [0.1, 0.3, 0.5];
    public IReadOnlyList<ulong> Seeds { get; init; } = [1, 2, 3];
    public int Shots { get; init; } = 16;
    public int Epochs { get; init; } = 50;
    public int ContextTokens { get; init; } = 16;
    public double CoopLearningRate { get; init; } = 0.002;
    public IReadOnlyList<PartialLabelLossKind> Losses { get; init; } =
        [PartialLabelLossKind.CC, PartialLabelLossKind.RC, PartialLabelLossKind.LWS, PartialLabelLossKind.CAVL, PartialLabelLossKind.Naive, PartialLabelLossKind.PiCO, PartialLabelLossKind.PLCR];
    /// <summary>λ of the "CoOp + alignment (fixed λ)" runs, beside the dynamic weighting of "CoOp + alignment".</summary>
    public double FixedAlignmentWeight { get; init; } = 1.0;
    /// <summary>Train and evaluate through the ML.NET trainers (default) or call the core trainer directly.</summary>
    public ExperimentRoute Route { get; init; } = ExperimentRoute.MLNet;
    /// <summary>The model folder or clip.json the ML.NET estimators load (the model passed to Run).</summary>
    public string? ModelPath { get; init; }
    /// <summary>ML.NET route: add ML.NET's own linear classifiers (L-BFGS and SDCA maximum entropy) as baselines.</summary>
    public bool MLNetBaselines { get; init; } = true;
    public Action<string>? Log { get; init; }
}

/// <summary>How the candidate-label experiment trains and evaluates.</summary>
internal enum ExperimentRoute
{
    /// <summary>IDataViews through ml.MulticlassClassification.Trainers.ZeroShot/PromptTuning, accuracy from
    /// ml.MulticlassClassification.Evaluate.</summary>
    MLNet,
    /// <summary>PromptTuner.Tune and TunedClassifier.Accuracy on the embedding matrices.</summary>
    Core,
}

/// <summary>
/// Zero-shot, linear probe and CoOp (without prompt alignment, with dynamically weighted alignment and with a fixed
/// alignment weight), for every partial-label loss, flipping probability q and seed: k-shot training images with
/// generated candidate sets, accuracy on a labelled test set. PiCO and PLCR get the training images' cached augmented
/// views (their strong views) when <c>viewsOf</c> is given; the other objectives train on the originals.
/// </summary>
internal static class CandidateLabelExperiment
{
    public sealed record Cell(string Method, double Q, ulong Seed, double Accuracy, double MeanSetSize);

    /// <summary>Every run of the grid; <paramref name="viewsOf"/> gives the augmented views of the given pool rows (one
    /// matrix per view, rows in the given order), or is null.</summary>
    public static IReadOnlyList<Cell> Run(ClipModel model, EmbeddingMatrix trainPool, int[] trainLabels, EmbeddingMatrix test, int[] testLabels,
        IReadOnlyList<string> classNames, CandidateLabelExperimentSettings s, CancellationToken ct = default, Func<int[], IReadOnlyList<EmbeddingMatrix>>? viewsOf = null)
    {
        var route = s.Route == ExperimentRoute.MLNet
            ? (IRoute)new MLNetRoute(s.ModelPath ?? throw new ArgumentException("The ML.NET route needs the model path.", nameof(s)), classNames, test, testLabels, ct)
            : new CoreRoute(model, classNames, test, testLabels, ct);
        var cells = new List<Cell>();
        double zs = route.ZeroShot();
        foreach (double q in s.FlipProbabilities)
            foreach (ulong seed in s.Seeds)
            {
                ct.ThrowIfCancellationRequested();
                var rows = CandidateLabels.SampleShots(trainLabels, classNames.Count, s.Shots, seed);
                var train = new EmbeddingMatrix(rows.Length, trainPool.Dimension);
                for (int r = 0; r < rows.Length; r++) trainPool.Row(rows[r]).CopyTo(train.Row(r));
                var labels = rows.Select(r => trainLabels[r]).ToArray();
                var candidates = CandidateLabels.Generate(labels, classNames.Count, q, seed * 7919 + (ulong)(q * 1000));
                double size = candidates.MeanSetSize();
                var views = viewsOf?.Invoke(rows);
                cells.Add(new Cell("zero-shot", q, seed, zs, size));
                if (route is MLNetRoute mlnet && s.MLNetBaselines)
                    foreach (var (name, acc) in mlnet.Baselines(train, candidates))
                    {
                        cells.Add(new Cell(name, q, seed, acc, size));
                        s.Log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"q={q} seed={seed} {name}: {acc:P2}"));
                    }
                foreach (var loss in s.Losses)
                {
                    var baseOptions = new PromptTuningOptions { Loss = loss, Epochs = s.Epochs, Seed = seed, ContextTokens = s.ContextTokens };
                    var runs = new (string Name, PromptTuningOptions Options)[]
                    {
                        ($"linear probe · {Name(loss)}", baseOptions with { Method = TuningMethod.LinearProbe, Align = false }),
                        ($"CoOp · {Name(loss)}", baseOptions with { Method = TuningMethod.CoOp, Align = false, LearningRate = s.CoopLearningRate }),
                        ($"CoOp + alignment · {Name(loss)}", baseOptions with { Method = TuningMethod.CoOp, Align = true, LearningRate = s.CoopLearningRate }),
                        ($"{FixedName(s)} · {Name(loss)}", baseOptions with
                        {
                            Method = TuningMethod.CoOp, Align = true, LearningRate = s.CoopLearningRate,
                            AlignmentWeighting = AlignmentWeighting.Fixed, AlignmentWeight = s.FixedAlignmentWeight,
                        }),
                    };
                    bool strongViews = loss is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR;
                    foreach (var (name, options) in runs)
                    {
                        double acc = route.Train(train, candidates, labels, options, strongViews ? views : null);
                        cells.Add(new Cell(name, q, seed, acc, size));
                        s.Log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"q={q} seed={seed} {name}: {acc:P2}"));
                    }
                }
            }
        return cells;
    }

    /// <summary>Zero-shot accuracy and one training run's test accuracy.</summary>
    private interface IRoute
    {
        double ZeroShot();

        double Train(EmbeddingMatrix train, CandidateLabels candidates, int[] labels, PromptTuningOptions options, IReadOnlyList<EmbeddingMatrix>? views);
    }

    private sealed class CoreRoute(ClipModel model, IReadOnlyList<string> classNames, EmbeddingMatrix test, int[] testLabels, CancellationToken ct) : IRoute
    {
        public double ZeroShot() =>
            PromptTuner.Tune(model, new EmbeddingMatrix(0, model.EmbeddingDimension), CandidateLabels.FromLabels([], classNames.Count), classNames,
                new PromptTuningOptions { Method = TuningMethod.ZeroShot }).Classifier.Accuracy(test, testLabels);

        public double Train(EmbeddingMatrix train, CandidateLabels candidates, int[] labels, PromptTuningOptions options, IReadOnlyList<EmbeddingMatrix>? views) =>
            PromptTuner.Tune(model, train, candidates, classNames, options, labels, ct, views).Classifier.Accuracy(test, testLabels);
    }

    /// <summary>
    /// The same runs through ML.NET: training rows as an IDataView (ImageEmbedding, CandidateLabels as a Boolean mask, the
    /// augmented views as View0…), <c>PromptTuning</c> with the core options carried over, and the test set scored by the
    /// fitted transformer and measured by <c>MulticlassClassification.Evaluate</c> (micro-accuracy).
    /// </summary>
    private sealed class MLNetRoute : IRoute
    {
        private readonly MLContext _ml = new(seed: 1);
        private readonly string _modelPath;
        private readonly IReadOnlyList<string> _classNames;
        private readonly IDataView _test;
        private readonly CancellationToken _ct;

        public MLNetRoute(string modelPath, IReadOnlyList<string> classNames, EmbeddingMatrix test, int[] testLabels, CancellationToken ct)
        {
            _modelPath = modelPath;
            _classNames = classNames;
            _test = MatrixData.Create(_ml, classNames, test, labels: testLabels);
            _ct = ct;
        }

        private double Accuracy(ITransformer model) =>
            _ml.MulticlassClassification.Evaluate(model.Transform(_test), labelColumnName: VegaColumnNames.Label).MicroAccuracy;

        public double ZeroShot() => Accuracy(_ml.MulticlassClassification.Trainers.ZeroShot(_modelPath, _classNames).Fit(_test));

        public double Train(EmbeddingMatrix train, CandidateLabels candidates, int[] labels, PromptTuningOptions options, IReadOnlyList<EmbeddingMatrix>? views)
        {
            var o = PromptTuningEstimator.Options.FromCore(options, _modelPath, _classNames);
            o.ViewColumnNames = views?.Select((_, v) => MatrixData.ViewColumn(v)).ToArray();
            o.CancellationToken = _ct;
            var data = MatrixData.Create(_ml, _classNames, train, candidates, views: views);
            return Accuracy(_ml.MulticlassClassification.Trainers.PromptTuning(o).Fit(data));
        }

        /// <summary>
        /// ML.NET's own linear classifiers on the embeddings. They take one key label per row, so each image becomes one
        /// row per candidate with example weight 1/|S|: the weighted cross-entropy is then exactly the NAIVE partial-label
        /// objective (plus the trainers' own L2/L1 regularisation). Single-threaded, so the runs are reproducible.
        /// </summary>
        public IEnumerable<(string Name, double Accuracy)> Baselines(EmbeddingMatrix train, CandidateLabels candidates)
        {
            int c = _classNames.Count, d = train.Dimension, total = 0;
            for (int i = 0; i < candidates.Count; i++) total += candidates.SetSize(i);
            var features = new EmbeddingMatrix(total, d);
            var labels = new int[total];
            var weights = new float[total];
            int r = 0;
            for (int i = 0; i < candidates.Count; i++)
            {
                float w = 1f / candidates.SetSize(i);
                for (int k = 0; k < c; k++)
                {
                    if (!candidates.Contains(i, k)) continue;
                    train.Row(i).CopyTo(features.Row(r));
                    labels[r] = k;
                    weights[r++] = w;
                }
            }
            var data = _ml.Data.Cache(MatrixData.Create(_ml, _classNames, features, labels: labels, weights: weights));
            var lbfgs = _ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = VegaColumnNames.Label, FeatureColumnName = VegaColumnNames.ImageEmbedding, ExampleWeightColumnName = "Weight", NumberOfThreads = 1,
            });
            yield return (LbfgsName, Accuracy(lbfgs.Fit(data)));
            var sdca = _ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(new SdcaMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = VegaColumnNames.Label, FeatureColumnName = VegaColumnNames.ImageEmbedding, ExampleWeightColumnName = "Weight", NumberOfThreads = 1,
            });
            yield return (SdcaName, Accuracy(sdca.Fit(data)));
        }
    }

    public const string LbfgsName = "ML.NET LbfgsMaximumEntropy · NAIVE weights";
    public const string SdcaName = "ML.NET SdcaMaximumEntropy · NAIVE weights";

    private static string FixedName(CandidateLabelExperimentSettings s) =>
        string.Create(CultureInfo.InvariantCulture, $"CoOp + alignment (fixed λ = {s.FixedAlignmentWeight})");

    public static string Name(PartialLabelLossKind k) => k switch
    {
        PartialLabelLossKind.CrossEntropy => "CE",
        PartialLabelLossKind.Naive => "NAIVE",
        _ => k.ToString(),
    };

    /// <summary>A markdown table: methods × q, mean ± standard deviation over seeds (accuracy in %).</summary>
    public static string Markdown(IReadOnlyList<Cell> cells)
    {
        var qs = cells.Select(c => c.Q).Distinct().Order().ToArray();
        var methods = cells.Select(c => c.Method).Distinct().ToArray();
        var sb = new StringBuilder();
        sb.Append("| method |");
        foreach (var q in qs) sb.Append(CultureInfo.InvariantCulture, $" q = {q} |");
        sb.Append("\n| --- |");
        foreach (var _ in qs) sb.Append(" --- |");
        sb.Append('\n');
        foreach (var m in methods)
        {
            sb.Append("| ").Append(m).Append(" |");
            foreach (var q in qs)
            {
                var v = cells.Where(c => c.Method == m && c.Q == q).Select(c => 100 * c.Accuracy).ToArray();
                double mean = v.Average(), sd = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
                sb.Append(CultureInfo.InvariantCulture, $" {mean:F1} ± {sd:F1} |");
            }
            sb.Append('\n');
        }
        sb.Append("| mean candidate-set size |");
        foreach (var q in qs) sb.Append(CultureInfo.InvariantCulture, $" {cells.Where(c => c.Q == q).Average(c => c.MeanSetSize):F2} |");
        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>For each (loss, q): the mean gain in points of dynamically weighted and of fixed-weight alignment over
    /// plain CoOp, and how many seeds the dynamic weighting won.</summary>
    public static string AlignmentSummary(IReadOnlyList<Cell> cells)
    {
        var sb = new StringBuilder("| loss | q | CoOp | + alignment (dynamic) | + alignment (fixed λ) | gain dynamic | gain fixed | seeds won (dynamic) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
        foreach (var group in cells.Where(c => c.Method.StartsWith("CoOp · ", StringComparison.Ordinal)).GroupBy(c => (c.Method, c.Q)))
        {
            string loss = group.Key.Method["CoOp · ".Length..];
            var plain = group.OrderBy(c => c.Seed).ToArray();
            var aligned = cells.Where(c => c.Method == $"CoOp + alignment · {loss}" && c.Q == group.Key.Q).OrderBy(c => c.Seed).ToArray();
            var fixedRuns = cells.Where(c => c.Method.StartsWith("CoOp + alignment (fixed", StringComparison.Ordinal) && c.Method.EndsWith($" · {loss}", StringComparison.Ordinal) && c.Q == group.Key.Q)
                .OrderBy(c => c.Seed).ToArray();
            double basis = 100 * plain.Average(c => c.Accuracy);
            double dynamic = aligned.Length > 0 ? 100 * aligned.Average(c => c.Accuracy) : double.NaN;
            double fixedAcc = fixedRuns.Length > 0 ? 100 * fixedRuns.Average(c => c.Accuracy) : double.NaN;
            int won = plain.Zip(aligned).Count(p => p.Second.Accuracy > p.First.Accuracy);
            sb.Append(CultureInfo.InvariantCulture,
                $"| {loss} | {group.Key.Q} | {basis:F1} | {dynamic:F1} | {fixedAcc:F1} | {Signed(dynamic - basis)} | {Signed(fixedAcc - basis)} | {won}/{plain.Length} |\n");
        }
        return sb.ToString();
    }

    /// <summary>A difference in points with its sign, one decimal ("+0.0" for anything that rounds to zero).</summary>
    internal static string Signed(double points)
    {
        double r = Math.Round(points, 1);
        if (r == 0) r = 0; // no "-0.0"
        return r.ToString("+0.0;-0.0;+0.0", CultureInfo.InvariantCulture);
    }
}
