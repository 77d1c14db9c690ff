using System.Globalization;
using System.Net;
using System.Text;
using Vega.MLNet.Imaging;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Reporting;

/// <summary>Options of <see cref="HtmlReport"/>.</summary>
internal sealed record ReportOptions
{
    /// <summary>Page title. Default "Model selection report".</summary>
    public string Title { get; init; } = "Model selection report";

    /// <summary>Name of the task (dataset), shown under the title; null to omit.</summary>
    public string? TaskName { get; init; }

    /// <summary>Class names in class order (tooltips of the heatmaps, per-class table); null to show indices.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Heatmaps with at most this many classes are drawn as SVG cells (with tooltips); larger ones as an inline PNG. Default 64.</summary>
    public int MaxSvgHeatmapClasses { get; init; } = 64;

    /// <summary>Time stamp printed in the footer; null for the current time.</summary>
    public DateTimeOffset? GeneratedAt { get; init; }
}

/// <summary>
/// Renders a ranking (and, when labels exist, its evaluation) as one self-contained HTML file: inline CSS and SVG, inline
/// PNG data URIs, no script and no network access (a Content-Security-Policy forbids any). Sections: summary, warnings,
/// ranking table, score bars, evaluation table and score-vs-accuracy scatter plots per metric, heatmaps of the textual
/// and visual edge matrices of the chosen model, per-class diagnostics. See docs/report.md.
/// </summary>
internal static class HtmlReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private const string NodeColour = "#4c78a8", EdgeColour = "#f58518", MetricColour = "#54a24b", Missing = "#d9d9d9";

    /// <summary>Writes the report to <paramref name="path"/> (UTF-8).</summary>
    public static void Write(string path, RankingResult ranking, EvaluationResult? evaluation = null, ReportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string html = Render(ranking, evaluation, options);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Cannot write the report to '{path}': the folder '{dir}' does not exist.");
        File.WriteAllText(path, html, new UTF8Encoding(false));
    }

    /// <summary>The report as an HTML string.</summary>
    /// <exception cref="ArgumentException">The evaluation does not cover every ranked model.</exception>
    public static string Render(RankingResult ranking, EvaluationResult? evaluation = null, ReportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ranking);
        options ??= new ReportOptions();
        if (ranking.Models.Count == 0) throw new ArgumentException("The ranking has no models.", nameof(ranking));
        if (evaluation is not null)
            foreach (var m in ranking.Models)
                if (!evaluation.Accuracies.ContainsKey(m.ModelName))
                    throw new ArgumentException($"The evaluation has no accuracy for model '{m.ModelName}'; evaluate the same ranking.", nameof(evaluation));

        var sb = new StringBuilder(64 * 1024);
        string title = Enc(options.Title);
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        sb.Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
        sb.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        sb.Append(Inv, $"<title>{title}</title>\n<style>{Css}</style>\n</head>\n<body>\n<main>\n");
        Summary(sb, ranking, evaluation, options);
        Warnings(sb, ranking);
        RankingTable(sb, ranking, evaluation);
        Trials(sb, ranking);
        ScoreBars(sb, ranking);
        if (evaluation is not null)
        {
            EvaluationTable(sb, evaluation);
            Scatter(sb, ranking, evaluation);
        }
        Heatmaps(sb, ranking.Chosen, options);
        ClassTable(sb, ranking.Chosen, options);
        Footer(sb, ranking, options);
        sb.Append("</main>\n</body>\n</html>\n");
        return sb.ToString();
    }

    private static void Summary(StringBuilder sb, RankingResult r, EvaluationResult? e, ReportOptions o)
    {
        var chosen = r.Chosen;
        string metric = SelectionMetrics.Name(r.Metric);
        sb.Append(Inv, $"<header>\n<h1>{Enc(o.Title)}</h1>\n");
        if (o.TaskName is not null) sb.Append(Inv, $"<p class=\"task\">Task: <strong>{Enc(o.TaskName)}</strong></p>\n");
        sb.Append(Inv, $"<p id=\"summary\">Chosen model: <strong class=\"chosen\">{Enc(chosen.ModelName)}</strong>, ranked first of {r.Models.Count} by <code>{metric}</code> = {F(chosen.Metric(r.Metric))}");
        sb.Append(Inv, $" on {chosen.ImageCount:N0} unlabelled images and {chosen.ClassCount} classes (D = {chosen.Dimension}). Scoring took {r.TotalTime.TotalSeconds:F2} s.</p>\n");
        if (r.ChosenProbability is double p)
        {
            string interval = chosen.Interval(r.Metric) is { } iv ? $"; {Pct(r.Options.Bootstrap.Level)} interval [{F(iv.Lower)}, {F(iv.Upper)}]" : "";
            sb.Append(Inv, $"<p id=\"confidence\" class=\"{(r.TooCloseToCall ? "close" : "clear")}\">{(r.TooCloseToCall ? "<strong>Too close to call:</strong> the bootstrap intervals of the first two models overlap. " : "")}Bootstrap probability that <strong>{Enc(chosen.ModelName)}</strong> is the best under <code>{metric}</code>, comparing the models on the same resampled images: {Pct(p)} ({r.Options.Bootstrap.Replicates} paired replicates{interval}).</p>\n");
        }
        if (e is not null)
        {
            double best = e.Accuracies[e.BestModel], got = e.Accuracies[chosen.ModelName];
            var ev = e.For(r.Metric);
            sb.Append(Inv, $"<p id=\"evaluation-summary\">With labels: best model <strong>{Enc(e.BestModel)}</strong> ({Pct(best)} zero-shot accuracy); the chosen model reaches {Pct(got)}, regret {Pct(best - got)}; Kendall τ-b of <code>{metric}</code> against accuracy = {F(ev.KendallTau, 3)}.</p>\n");
        }
        sb.Append("</header>\n");
    }

    private static void Warnings(StringBuilder sb, RankingResult r)
    {
        var items = r.Warnings.Select(w => (Model: (string?)null, Text: w))
            .Concat(r.Models.SelectMany(m => m.Vega.Warnings.Select(w => (Model: (string?)m.ModelName, Text: w)))).ToList();
        if (items.Count == 0) return;
        sb.Append("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        foreach (var (model, text) in items)
            sb.Append(Inv, $"<li>{(model is null ? "" : $"<strong>{Enc(model)}</strong>: ")}{Enc(text)}</li>\n");
        sb.Append("</ul>\n</section>\n");
    }

    private static void RankingTable(StringBuilder sb, RankingResult r, EvaluationResult? e)
    {
        sb.Append("<section>\n<h2>Ranking</h2>\n<div class=\"scroll\"><table id=\"ranking\">\n<thead><tr><th>rank</th><th>model</th>");
        if (e is not null) sb.Append("<th>accuracy</th>");
        foreach (var m in SelectionMetrics.All)
            sb.Append(Inv, $"<th class=\"{(m == r.Metric ? "sorted" : "")}\">{SelectionMetrics.Name(m)}</th>");
        bool boot = r.Models.Any(m => m.Intervals is not null);
        if (boot) sb.Append(Inv, $"<th>{SelectionMetrics.Name(r.Metric)} interval</th><th>P(best)</th>");
        sb.Append("<th>edge classes</th><th>scoring time</th></tr></thead>\n<tbody>\n");
        foreach (var m in r.Models)
        {
            sb.Append(Inv, $"<tr class=\"model-row{(m.Rank == 1 ? " chosen-row" : "")}\" data-model=\"{Enc(m.ModelName)}\"><td class=\"num\">{m.Rank}</td><td class=\"model\">{Enc(m.ModelName)}</td>");
            if (e is not null) sb.Append(Inv, $"<td class=\"num accuracy\">{Pct(e.Accuracies[m.ModelName])}</td>");
            foreach (var metric in SelectionMetrics.All)
                sb.Append(Inv, $"<td class=\"num{(metric == r.Metric ? " sorted" : "")}\">{F(m.Metric(metric))}</td>");
            if (boot)
                sb.Append(Inv, $"<td class=\"num interval\">{(m.Interval(r.Metric) is { } iv ? $"[{F(iv.Lower)}, {F(iv.Upper)}]" : "—")}</td><td class=\"num probability\">{(m.TopProbability is double tp ? Pct(tp) : "—")}</td>");
            sb.Append(Inv, $"<td class=\"num\">{m.Vega.EdgeClassCount}/{m.ClassCount}{(m.Vega.EdgeDegenerate ? " <span class=\"flag\" title=\"edge term degenerate\">!</span>" : "")}</td>");
            sb.Append(Inv, $"<td class=\"num\">{m.ScoringTime.TotalSeconds:F2} s</td></tr>\n");
        }
        sb.Append("</tbody>\n</table></div>\n</section>\n");
    }

    private static void Trials(StringBuilder sb, RankingResult r)
    {
        if (r.Trials is not { Count: > 0 } trials) return;
        string metric = SelectionMetrics.Name(r.Metric);
        sb.Append("<section>\n<h2>Budgeted search</h2>\n");
        sb.Append(Inv, $"<p class=\"note\">Successive halving: each round scores the remaining candidates on a larger sample of the images (merged with the earlier ones) and drops the weakest by <code>{metric}</code>.</p>\n");
        sb.Append(Inv, $"<div class=\"scroll\"><table id=\"trials\">\n<thead><tr><th>trial</th><th>round</th><th>model</th><th>sample</th><th>{metric}</th><th>interval</th><th>new images</th><th>time</th><th>status</th></tr></thead>\n<tbody>\n");
        foreach (var t in trials)
        {
            string status = t.Status == SelectionTrialStatus.Failed ? $"failed: {Enc(t.Error ?? "")}" : t.Eliminated ? "eliminated" : "kept";
            sb.Append(Inv, $"<tr class=\"trial-row {(t.Status == SelectionTrialStatus.Failed ? "failed" : t.Eliminated ? "eliminated" : "kept")}\" data-model=\"{Enc(t.Settings.ModelName)}\"><td class=\"num\">{t.Settings.TrialId}</td><td class=\"num\">{t.Settings.Round}</td><td>{Enc(t.Settings.ModelName)}</td><td class=\"num\">{t.Settings.SampleSize:N0}</td><td class=\"num\">{F(t.Metric)}</td><td class=\"num\">{(t.Interval is { } iv ? $"[{F(iv.Lower)}, {F(iv.Upper)}]" : "—")}</td><td class=\"num\">{t.ImagesEmbedded:N0}</td><td class=\"num\">{t.DurationInMilliseconds / 1000:F2} s</td><td>{status}</td></tr>\n");
        }
        sb.Append("</tbody>\n</table></div>\n</section>\n");
    }

    private static void ScoreBars(StringBuilder sb, RankingResult r)
    {
        const int labelWidth = 230, barWidth = 520, rowHeight = 28, valueWidth = 90;
        int width = labelWidth + barWidth + valueWidth, height = r.Models.Count * rowHeight + 30;
        bool vega = r.Metric == SelectionMetric.Vega;
        double min = 0, max;
        if (vega) max = 2;
        else
        {
            var values = r.Models.Select(m => m.Metric(r.Metric)).Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
            min = Math.Min(0, values.Min());
            max = Math.Max(values.Max(), min + 1e-12);
        }
        sb.Append("<section>\n<h2>Scores</h2>\n");
        sb.Append(vega
            ? $"<p class=\"note\">VEGA = s<sub>n</sub> (node score, <span class=\"swatch\" style=\"background:{NodeColour}\"></span>) + s<sub>e</sub> (edge score, <span class=\"swatch\" style=\"background:{EdgeColour}\"></span>); each part lies in [0, 1].</p>\n"
            : $"<p class=\"note\">Metric <code>{SelectionMetrics.Name(r.Metric)}</code>, axis from {F(min)} to {F(max)}.</p>\n");
        sb.Append(Inv, $"<svg id=\"score-bars\" class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"score bars\">\n");
        for (int i = 0; i < r.Models.Count; i++)
        {
            var m = r.Models[i];
            double y = 10 + i * rowHeight;
            sb.Append(Inv, $"<g class=\"bar-row\" data-model=\"{Enc(m.ModelName)}\"><text x=\"{labelWidth - 8}\" y=\"{y + 17}\" text-anchor=\"end\" class=\"label\">{Enc(Short(m.ModelName, 30))}</text>");
            if (vega)
            {
                double wn = Clamp01(m.Vega.NodeScore / 2) * barWidth, we = Clamp01(m.Vega.EdgeScore / 2) * barWidth;
                sb.Append(Inv, $"<rect class=\"bar bar-node\" x=\"{labelWidth}\" y=\"{y + 3}\" width=\"{wn:F1}\" height=\"{rowHeight - 8}\" fill=\"{NodeColour}\"><title>s_n = {F(m.Vega.NodeScore)}</title></rect>");
                sb.Append(Inv, $"<rect class=\"bar bar-edge\" x=\"{labelWidth + wn:F1}\" y=\"{y + 3}\" width=\"{we:F1}\" height=\"{rowHeight - 8}\" fill=\"{EdgeColour}\"><title>s_e = {F(m.Vega.EdgeScore)}</title></rect>");
                sb.Append(Inv, $"<text x=\"{labelWidth + wn + we + 6:F1}\" y=\"{y + 17}\" class=\"value\">{F(m.Vega.Score)}</text>");
            }
            else
            {
                double v = m.Metric(r.Metric);
                double w = double.IsFinite(v) ? Clamp01((v - min) / (max - min)) * barWidth : 0;
                sb.Append(Inv, $"<rect class=\"bar bar-metric\" x=\"{labelWidth}\" y=\"{y + 3}\" width=\"{w:F1}\" height=\"{rowHeight - 8}\" fill=\"{MetricColour}\"><title>{F(v)}</title></rect>");
                sb.Append(Inv, $"<text x=\"{labelWidth + w + 6:F1}\" y=\"{y + 17}\" class=\"value\">{F(v)}</text>");
            }
            sb.Append("</g>\n");
        }
        double axisY = 10 + r.Models.Count * rowHeight;
        sb.Append(Inv, $"<line x1=\"{labelWidth}\" y1=\"{axisY}\" x2=\"{labelWidth + barWidth}\" y2=\"{axisY}\" class=\"axis\"/>");
        sb.Append(Inv, $"<text x=\"{labelWidth}\" y=\"{axisY + 15}\" class=\"tick\">{F(min)}</text><text x=\"{labelWidth + barWidth}\" y=\"{axisY + 15}\" class=\"tick\" text-anchor=\"end\">{F(max)}</text>\n");
        sb.Append("</svg>\n</section>\n");
    }

    private static void EvaluationTable(StringBuilder sb, EvaluationResult e)
    {
        sb.Append("<section>\n<h2>Evaluation against labels</h2>\n");
        sb.Append(Inv, $"<p class=\"note\">Correlations are between each metric and the true zero-shot accuracy over the {e.Accuracies.Count} models; top-{e.TopK} recall counts the metric's top {e.TopK} among the true top {e.TopK}; regret = best accuracy − accuracy of the metric's first model.</p>\n");
        sb.Append(Inv, $"<table id=\"evaluation\">\n<thead><tr><th>metric</th><th>Kendall τ-b</th><th>Spearman ρ</th><th>top-1 recall</th><th>top-{e.TopK} recall</th><th>regret</th><th>chosen</th></tr></thead>\n<tbody>\n");
        foreach (var m in e.Metrics)
            sb.Append(Inv, $"<tr class=\"metric-row{(m.Expected ? " expected" : "")}\" data-metric=\"{SelectionMetrics.Name(m.Metric)}\"><td><code>{SelectionMetrics.Name(m.Metric)}</code>{(m.Expected ? " (expected)" : "")}</td><td class=\"num\">{F(m.KendallTau, 3)}</td><td class=\"num\">{F(m.SpearmanRho, 3)}</td><td class=\"num\">{F(m.Top1Recall, 2)}</td><td class=\"num\">{F(m.TopKRecall, 2)}</td><td class=\"num\">{Pct(m.Regret)}</td><td>{(m.ChosenModel is { } chosenName ? Enc(chosenName) : "— (uniform random choice)")}</td></tr>\n");
        sb.Append("</tbody>\n</table>\n</section>\n");
    }

    private static void Scatter(StringBuilder sb, RankingResult r, EvaluationResult e)
    {
        const int w = 250, h = 210, left = 44, right = 10, top = 12, bottom = 34;
        sb.Append("<section>\n<h2>Score vs. accuracy</h2>\n<div id=\"scatter\" class=\"grid\">\n");
        var acc = r.Models.Select(m => e.Accuracies[m.ModelName]).ToArray();
        var (ay0, ay1) = Range(acc);
        double accMin = acc.Min(), accMax = acc.Max();
        foreach (var metric in SelectionMetrics.All)
        {
            var x = r.Models.Select(m => m.Metric(metric)).ToArray();
            var (ax0, ax1) = Range(x);
            var finite = x.Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
            double xMin = finite.Min(), xMax = finite.Max();
            double X(double v) => left + (v - ax0) / (ax1 - ax0) * (w - left - right);
            double Y(double v) => h - bottom - (v - ay0) / (ay1 - ay0) * (h - top - bottom);
            var ev = e.For(metric);
            string name = SelectionMetrics.Name(metric);
            sb.Append(Inv, $"<figure class=\"scatter\" data-metric=\"{name}\"><svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{name} vs accuracy\">");
            sb.Append(Inv, $"<rect x=\"{left}\" y=\"{top}\" width=\"{w - left - right}\" height=\"{h - top - bottom}\" class=\"plot\"/>");
            sb.Append(Inv, $"<text x=\"{X(xMin):F1}\" y=\"{h - 18}\" class=\"tick\" text-anchor=\"middle\">{F(xMin, 3)}</text><text x=\"{X(xMax):F1}\" y=\"{h - 18}\" class=\"tick\" text-anchor=\"middle\">{F(xMax, 3)}</text>");
            sb.Append(Inv, $"<text x=\"{(left + w - right) / 2}\" y=\"{h - 4}\" class=\"axis-label\" text-anchor=\"middle\">{name}</text>");
            sb.Append(Inv, $"<text x=\"{left - 4}\" y=\"{Y(accMax) + 3:F1}\" class=\"tick\" text-anchor=\"end\">{Pct(accMax)}</text><text x=\"{left - 4}\" y=\"{Y(accMin) + 3:F1}\" class=\"tick\" text-anchor=\"end\">{Pct(accMin)}</text>");
            sb.Append(Inv, $"<text x=\"12\" y=\"{(top + h - bottom) / 2}\" class=\"axis-label\" text-anchor=\"middle\" transform=\"rotate(-90 12 {(top + h - bottom) / 2})\">accuracy</text>");
            for (int i = 0; i < x.Length; i++)
            {
                if (!double.IsFinite(x[i])) continue;
                double px = X(x[i]), py = Y(acc[i]);
                bool chosen = r.Models[i].ModelName == ev.ChosenModel;
                sb.Append(Inv, $"<circle class=\"point{(chosen ? " chosen" : "")}\" cx=\"{px:F1}\" cy=\"{py:F1}\" r=\"{(chosen ? 6 : 4.5)}\"><title>{Enc(r.Models[i].ModelName)}: {name} {F(x[i])}, accuracy {Pct(acc[i])}</title></circle>");
            }
            sb.Append(Inv, $"</svg><figcaption><code>{name}</code>: τ = {F(ev.KendallTau, 2)}, ρ = {F(ev.SpearmanRho, 2)}</figcaption></figure>\n");
        }
        sb.Append("</div>\n</section>\n");
    }

    private static void Heatmaps(StringBuilder sb, ModelScores model, ReportOptions o)
    {
        sb.Append(Inv, $"<section>\n<h2>Graphs of the chosen model: {Enc(model.ModelName)}</h2>\n");
        var edges = model.Vega.Edges;
        if (edges is null)
        {
            sb.Append("<p class=\"note\">The edge matrices were not kept (VegaOptions.KeepEdgeMatrices = false).</p>\n</section>\n");
            return;
        }
        string kind = model.Vega.EdgeKind switch
        {
            VisualEdgeKind.NegativeBhattacharyya => "−D<sub>B</sub> (negated Bhattacharyya distance)",
            VisualEdgeKind.ExpNegativeBhattacharyya => "exp(−D<sub>B</sub>), scaled by exp(min D<sub>B</sub>)",
            _ => "cosine of class means",
        };
        sb.Append(Inv, $"<p class=\"note\">E<sub>T</sub>: cosine similarities of the class texts. E<sub>V</sub>: {kind} between the Gaussians of the pseudo-classes ({model.Vega.Covariance} covariance). Colours span each matrix's off-diagonal range; grey cells are classes left out of the edge term and the unused diagonal. Edge correlation r = {(model.Vega.EdgeCorrelation is double rr ? F(rr, 3) : "— (degenerate)")}.</p>\n<div class=\"grid\">\n");
        Heatmap(sb, "heatmap-textual", "E_T (textual graph)", edges.Textual, edges.ClassCount, o);
        Heatmap(sb, "heatmap-visual", "E_V (visual graph)", edges.Visual, edges.ClassCount, o);
        sb.Append("</div>\n</section>\n");
    }

    private static void Heatmap(StringBuilder sb, string id, string caption, float[] m, int c, ReportOptions o)
    {
        double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++)
                if (i != j && float.IsFinite(m[i * c + j])) { lo = Math.Min(lo, m[i * c + j]); hi = Math.Max(hi, m[i * c + j]); }
        if (!(hi >= lo)) { lo = 0; hi = 1; }
        if (hi == lo) hi = lo + 1e-12;
        const int size = 380;
        sb.Append(Inv, $"<figure class=\"heatmap-figure\"><figcaption>{Enc(caption)}, {c}×{c}</figcaption>\n");
        if (c <= o.MaxSvgHeatmapClasses)
        {
            double cell = (double)size / c;
            sb.Append(Inv, $"<svg id=\"{id}\" class=\"heatmap\" data-classes=\"{c}\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">");
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++)
                {
                    float v = m[i * c + j];
                    string fill = i == j || !float.IsFinite(v) ? Missing : Hex(Viridis((v - lo) / (hi - lo)));
                    sb.Append(Inv, $"<rect class=\"cell\" x=\"{j * cell:F2}\" y=\"{i * cell:F2}\" width=\"{cell + 0.05:F2}\" height=\"{cell + 0.05:F2}\" fill=\"{fill}\"><title>{Enc(ClassName(o, i))} – {Enc(ClassName(o, j))}: {(float.IsFinite(v) ? F(v) : "not used")}</title></rect>");
                }
            sb.Append("</svg>\n");
        }
        else
        {
            var rgb = new byte[c * c * 3];
            for (int i = 0; i < c * c; i++)
            {
                float v = m[i];
                var (r, g, b) = i / c == i % c || !float.IsFinite(v) ? (0xd9, 0xd9, 0xd9) : Viridis((v - lo) / (hi - lo));
                rgb[3 * i] = (byte)r; rgb[3 * i + 1] = (byte)g; rgb[3 * i + 2] = (byte)b;
            }
            string data = Convert.ToBase64String(PngEncoder.EncodeRgb(c, c, rgb));
            sb.Append(Inv, $"<img id=\"{id}\" class=\"heatmap raster\" data-classes=\"{c}\" width=\"{size}\" height=\"{size}\" alt=\"{Enc(caption)}\" src=\"data:image/png;base64,{data}\">\n");
        }
        // Legend.
        sb.Append(Inv, $"<svg class=\"legend\" width=\"{size}\" height=\"34\" viewBox=\"0 0 {size} 34\"><defs><linearGradient id=\"{id}-scale\">");
        for (int s = 0; s <= 10; s++) sb.Append(Inv, $"<stop offset=\"{s * 10}%\" stop-color=\"{Hex(Viridis(s / 10.0))}\"/>");
        sb.Append(Inv, $"</linearGradient></defs><rect x=\"0\" y=\"2\" width=\"{size}\" height=\"12\" fill=\"url(#{id}-scale)\"/>");
        sb.Append(Inv, $"<text x=\"0\" y=\"28\" class=\"tick\">{F(lo)}</text><text x=\"{size}\" y=\"28\" class=\"tick\" text-anchor=\"end\">{F(hi)}</text></svg>\n</figure>\n");
    }

    private static void ClassTable(StringBuilder sb, ModelScores model, ReportOptions o)
    {
        sb.Append(Inv, $"<section>\n<details><summary>Per-class diagnostics of {Enc(model.ModelName)} ({model.ClassCount} classes)</summary>\n");
        sb.Append("<table id=\"classes\">\n<thead><tr><th>class</th><th>name</th><th>pseudo-labelled images</th><th>node similarity</th><th>in edge term</th><th>shrinkage</th></tr></thead>\n<tbody>\n");
        foreach (var c in model.Vega.Classes)
            sb.Append(Inv, $"<tr><td class=\"num\">{c.ClassIndex}</td><td>{Enc(ClassName(o, c.ClassIndex))}</td><td class=\"num\">{c.ImageCount:N0}</td><td class=\"num\">{(c.NodeSimilarity is double s ? F(s) : "—")}</td><td>{(c.InEdgeTerm ? "yes" : "no")}</td><td class=\"num\">{(c.Shrinkage is double a ? F(a, 3) : "—")}</td></tr>\n");
        sb.Append("</tbody>\n</table>\n</details>\n</section>\n");
    }

    private static void Footer(StringBuilder sb, RankingResult r, ReportOptions o)
    {
        var v = r.Options.Vega;
        var when = o.GeneratedAt ?? DateTimeOffset.UtcNow;
        sb.Append(Inv, $"<footer><p>VEGA: temperature {G(v.Temperature)}, edges {v.EdgeKind}, covariance {v.Covariance}, fixed shrinkage {G(v.FixedShrinkage)}, Ledoit–Wolf floor {G(v.ShrinkageFloor)}, variance floor {G(v.VarianceFloor)}, full subspace {(v.FullSubspaceDimension is int p ? p.ToString(Inv) : "exact")}, min images per class {v.MinImagesPerClass}. undefined edge score {G(v.UndefinedEdgeScore)}. Baselines: temperature {G(r.Options.BaselineTemperature)}. Bootstrap: {r.Options.Bootstrap.Replicates} replicates, level {G(r.Options.Bootstrap.Level)}, seed {r.Options.Bootstrap.Seed}.</p>");
        sb.Append(Inv, $"<p>Generated by Vega.MLNet on {when.ToString("yyyy-MM-dd HH:mm 'UTC'", Inv)}. This file is self-contained: it loads nothing.</p></footer>\n");
    }

    private static string ClassName(ReportOptions o, int k) => o.ClassNames is { } names && k < names.Count ? names[k] : $"class {k}";

    private static (double Lo, double Hi) Range(double[] v)
    {
        var f = v.Where(double.IsFinite).ToArray();
        if (f.Length == 0) return (0, 1);
        double lo = f.Min(), hi = f.Max(), pad = (hi - lo) * 0.08;
        if (pad == 0) pad = Math.Max(Math.Abs(lo) * 0.05, 1e-6);
        return (lo - pad, hi + pad);
    }

    // Viridis, interpolated between 9 anchor colours of the published colour map.
    private static readonly (int R, int G, int B)[] ViridisStops =
    [
        (0x44, 0x01, 0x54), (0x47, 0x2d, 0x7b), (0x3b, 0x52, 0x8b), (0x2c, 0x72, 0x8e), (0x21, 0x91, 0x8c),
        (0x28, 0xae, 0x80), (0x5e, 0xc9, 0x62), (0xad, 0xdc, 0x30), (0xfd, 0xe7, 0x25),
    ];

    internal static (int R, int G, int B) Viridis(double t)
    {
        if (!double.IsFinite(t)) t = 0;
        t = Math.Clamp(t, 0, 1) * (ViridisStops.Length - 1);
        int i = Math.Min((int)t, ViridisStops.Length - 2);
        double f = t - i;
        var (a, b) = (ViridisStops[i], ViridisStops[i + 1]);
        return ((int)Math.Round(a.R + f * (b.R - a.R)), (int)Math.Round(a.G + f * (b.G - a.G)), (int)Math.Round(a.B + f * (b.B - a.B)));
    }

    private static string Hex((int R, int G, int B) c) => $"#{c.R:x2}{c.G:x2}{c.B:x2}";
    private static double Clamp01(double v) => double.IsFinite(v) ? Math.Clamp(v, 0, 1) : 0;
    private static string Enc(string s) => WebUtility.HtmlEncode(s);
    private static string Short(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
    private static string F(double v, int digits = 4) => double.IsFinite(v) ? v.ToString("F" + digits, Inv) : "—";
    private static string G(double v) => v.ToString("G4", Inv);
    private static string Pct(double v) => double.IsFinite(v) ? (100 * v).ToString("F1", Inv) + " %" : "—";

    private const string Css = """
        :root { color-scheme: light; }
        body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; font-size: 14px; }
        main { max-width: 1140px; margin: 0 auto; padding: 20px 24px 40px; }
        h1 { font-size: 24px; margin: 8px 0 6px; } h2 { font-size: 18px; margin: 0 0 10px; }
        section, header { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 14px 18px; margin: 14px 0; }
        .chosen { color: #0b5cad; } .note { color: #555d6b; margin: 4px 0 10px; } code { font-size: 13px; }
        table { border-collapse: collapse; width: 100%; font-size: 13px; }
        th, td { padding: 4px 6px; border-bottom: 1px solid #eceef2; text-align: left; white-space: nowrap; }
        th { background: #f0f2f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
        th.sorted, td.sorted { background: #eaf2fb; font-weight: 600; } tr.chosen-row td { background: #fff7e0; }
        tr.chosen-row td.sorted { background: #f6ecc8; } .flag { color: #c0392b; font-weight: 700; }
        p.close { color: #8a4b00; } tr.expected td { color: #555d6b; font-style: italic; } tr.trial-row.failed td { color: #c0392b; } tr.trial-row.eliminated td { color: #777; }
        ul.warnings { margin: 0; padding-left: 20px; color: #8a4b00; } ul.warnings li { margin: 3px 0; }
        .grid { display: flex; flex-wrap: wrap; gap: 14px; } figure { margin: 0; }
        figcaption { font-size: 13px; color: #333; margin: 4px 0; text-align: center; }
        svg text { font-family: "DejaVu Sans", sans-serif; } .label { font-size: 12px; fill: #1d2330; } .value { font-size: 12px; fill: #333; }
        .tick { font-size: 10px; fill: #666; } .axis-label { font-size: 11px; fill: #333; } .axis { stroke: #999; }
        .plot { fill: #fafbfc; stroke: #ccd; } circle.point { fill: #4c78a8; fill-opacity: 0.85; stroke: #fff; }
        circle.point.chosen { fill: #e45756; stroke: #222; stroke-width: 1.5; }
        .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; vertical-align: baseline; }
        img.raster { image-rendering: pixelated; } .heatmap { border: 1px solid #ccd; } .heatmap-figure svg, .heatmap-figure img { display: block; }
        .scroll { overflow-x: auto; }
        footer { color: #666; font-size: 12px; margin-top: 20px; }
        """;
}
