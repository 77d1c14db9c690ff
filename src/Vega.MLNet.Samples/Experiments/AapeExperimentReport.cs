using System.Globalization;
using System.Text;

namespace Vega.MLNet.Samples.Experiments;

/// <summary>Markdown tables of an <see cref="ExperimentResult"/>: mean ± standard deviation over seeds, in %.</summary>
internal static class AapeExperimentReport
{
    /// <summary>The CoOp row printed while no CoOp method is registered (see <see cref="AapeExperiment.ExtraMethods"/>).</summary>
    public const string CoOpPlaceholder = "CoOp";

    public static string ToMarkdown(ExperimentResult r, string? command = null)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var data = r.Data;
        var o = r.Settings.Options;
        sb.Append(inv, $"### Model `{data.ModelName}`\n\n");
        if (data.Provenance.Length > 0) sb.Append(data.Provenance).Append("\n\n");
        sb.Append(inv, $"{data.ClassNames.Count} classes, D = {data.ClassWeights.Dimension}, training pool {data.PoolLabels.Length} images, test {data.TestLabels.Length} images, ");
        sb.Append(inv, $"{Enumerable.Range(0, data.Descriptions.ClassNames.Count).Sum(i => data.Descriptions.For(i).Count)} descriptions; seeds {string.Join(", ", r.Settings.Seeds)}; ");
        sb.Append(inv, $"λ = {o.Lambda}, τ = {(o.Temperature is { } t ? t.ToString("G4", inv) : $"1/{data.LogitScale.ToString("G4", inv)}")}, SGD lr {o.LearningRate} (momentum {o.Momentum}, wd {o.WeightDecay}, warm-up {o.WarmupEpochs} epoch at {o.WarmupLearningRate}), batch {o.BatchSize}, ");
        sb.Append(inv, $"epochs per shots {string.Join(", ", r.Settings.Shots.Select(k => $"{k}→{r.Settings.EpochsForShots(k)}"))}; aggregator {o.AggregatorEpochs} AdamW steps at {o.AggregatorLearningRate}, {o.Heads} heads, s = {o.ClipScoreWeight}; linear probe: AdamW from zero weights, cross-entropy, the same epochs. ");
        sb.Append(inv, $"Wall time {r.Elapsed.TotalMinutes:F1} min.\n\n");
        if (command is not null) sb.Append(inv, $"Reproduce: `{command}`\n\n");
        bool coopPresent = r.Methods.Any(m => m.Contains(CoOpPlaceholder, StringComparison.Ordinal));
        string placeholderNote = "CoOp row: no CoOp method was registered in this run (AapeExperiment.ExtraMethods / `vega aape eval` registers it when the model supports it).";

        if (r.KShot.Count > 0)
        {
            var shots = r.Settings.Shots;
            sb.Append("#### k-shot accuracy (%, all classes)\n\n| method | ").Append(string.Join(" | ", shots.Select(k => $"{k}-shot"))).Append(" | train s (16-shot) |\n");
            sb.Append("| --- |").Append(string.Concat(shots.Select(_ => " ---: |"))).Append(" ---: |\n");
            foreach (var m in r.Methods)
            {
                sb.Append("| ").Append(m).Append(" | ");
                foreach (int k in shots) sb.Append(MeanStd(r.KShot.Where(x => x.Method == m && x.Shots == k).Select(x => x.Accuracy))).Append(" | ");
                int kmax = shots.Max();
                var secs = r.KShot.Where(x => x.Method == m && x.Shots == kmax).Select(x => x.Seconds).ToArray();
                sb.Append(secs.Length == 0 ? "" : secs.Average().ToString("F2", inv)).Append(" |\n");
            }
            if (!coopPresent) sb.Append("| ").Append(CoOpPlaceholder).Append(" | ").Append(string.Concat(shots.Select(_ => "n/a | "))).Append("n/a |\n");
            sb.Append('\n');
        }

        if (r.BaseToNew.Count > 0)
        {
            sb.Append(inv, $"#### Base-to-new ({r.Settings.BaseToNewShots} shots per base class; base = {string.Join(", ", r.BaseClasses.Select(i => data.ClassNames[i]))}; new = {string.Join(", ", r.NewClasses.Select(i => data.ClassNames[i]))})\n\n");
            sb.Append("Base accuracy among the base classes, new accuracy among the new classes (through their handcrafted prompts), H = harmonic mean; %.\n\n");
            sb.Append("| method | base | new | H |\n| --- | ---: | ---: | ---: |\n");
            foreach (var m in r.Methods)
            {
                var rows = r.BaseToNew.Where(x => x.Method == m).ToArray();
                sb.Append(inv, $"| {m} | {MeanStd(rows.Select(x => x.Base))} | {MeanStd(rows.Select(x => x.New))} | {MeanStd(rows.Select(x => x.Harmonic))} |\n");
            }
            if (!coopPresent) sb.Append("| ").Append(CoOpPlaceholder).Append(" | n/a | n/a | n/a |\n");
            sb.Append('\n');
            if (!coopPresent) sb.Append(placeholderNote).Append("\n\n");
        }

        foreach (var (method, text) in r.Notes) sb.Append(inv, $"Note ({method}): {text}\n\n");

        if (r.Summaries.Count > 0)
        {
            sb.Append("#### Aggregator diagnostics (mean over seeds)\n\n");
            sb.Append("CLIP-S = s·max(cos(x, pᵃ_y), 0) averaged per class; held-out = on the test images. ");
            sb.Append("\"mean p̄\" is the normalised mean description embedding (the aggregator's starting point and the ablation).\n\n");
            sb.Append("| shots | train CLIP-S (attention) | held-out CLIP-S (attention) | held-out CLIP-S (mean p̄) | cos(pᵃ, mean p̄) |\n| ---: | ---: | ---: | ---: | ---: |\n");
            foreach (var g in r.Summaries.GroupBy(s => s.Shots).OrderBy(g => g.Key))
                sb.Append(inv, $"| {g.Key} | {g.Average(s => s.TrainClipScore):F3} | {g.Average(s => s.HeldOutClipScore):F3} | {g.Average(s => s.HeldOutMeanClipScore):F3} | {g.Average(s => s.SummaryToMeanCosine):F3} |\n");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string MeanStd(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length == 0) return "n/a";
        double mean = v.Average();
        if (v.Length == 1) return (100 * mean).ToString("F1", CultureInfo.InvariantCulture);
        double sd = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return string.Create(CultureInfo.InvariantCulture, $"{100 * mean:F1} ± {100 * sd:F1}");
    }
}
