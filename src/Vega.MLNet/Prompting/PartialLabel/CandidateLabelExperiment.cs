using System.Globalization;
using System.Text;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;

namespace Vega.MLNet.Prompting.PartialLabel;

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
    public Action<string>? Log { get; init; }
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
        var cells = new List<Cell>();
        var zeroShot = PromptTuner.Tune(model, new EmbeddingMatrix(0, model.EmbeddingDimension), CandidateLabels.FromLabels([], classNames.Count), classNames,
            new PromptTuningOptions { Method = TuningMethod.ZeroShot }).Classifier;
        double zs = zeroShot.Accuracy(test, testLabels);
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
                        var result = PromptTuner.Tune(model, train, candidates, classNames, options, labels, ct, strongViews ? views : null);
                        double acc = result.Classifier.Accuracy(test, testLabels);
                        cells.Add(new Cell(name, q, seed, acc, size));
                        s.Log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"q={q} seed={seed} {name}: {acc:P2}"));
                    }
                }
            }
        return cells;
    }

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
