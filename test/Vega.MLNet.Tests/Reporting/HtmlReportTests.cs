using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using Vega.MLNet.Reporting;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Selection;

namespace Vega.MLNet.Tests.Reporting;

public sealed class HtmlReportTests
{
    private const int Classes = 8;

    private static readonly Lazy<(RankingResult Ranking, EvaluationResult Evaluation, string[] Names)> Zoo = new(() =>
    {
        const int n = 400, d = 32;
        var rng = new Random(31);
        var protos = Synthetic.Prototypes(rng, Classes, d);
        var labels = Synthetic.Labels(rng, n, Classes);
        double[] noise = [1.0, 1.6, 2.2, 2.8, 3.4];
        var candidates = noise.Select((level, i) =>
        {
            var r = new Random(500 + i);
            return ($"clip-{i} <noise {level}> & co", Synthetic.Around(r, protos, d, labels, level), Synthetic.Around(r, protos, d, Enumerable.Range(0, Classes).ToArray(), 0.3));
        }).ToArray();
        var (ranking, evaluation) = SelectionEvaluation.RankAndEvaluate(candidates, labels, new SelectionOptions { Metric = SelectionMetric.Vega, Vega = new VegaOptions { MinImagesPerClass = 2 } });
        return (ranking, evaluation, Enumerable.Range(0, Classes).Select(k => $"class \"{k}\" <b>").ToArray());
    });

    private static ReportOptions Options => new() { TaskName = "synthetic zoo", ClassNames = Zoo.Value.Names, GeneratedAt = new DateTimeOffset(2025, 1, 2, 3, 4, 0, TimeSpan.Zero) };

    [Fact]
    public void ReportIsSelfContainedAndEscapesNames()
    {
        var (ranking, evaluation, _) = Zoo.Value;
        string html = HtmlReport.Render(ranking, evaluation, Options);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotMatch(new Regex("(src|href)\\s*=\\s*\"(https?:)?//", RegexOptions.IgnoreCase), html);
        Assert.DoesNotContain("url(http", html);
        Assert.Contains("Content-Security-Policy", html);
        Assert.Contains("clip-0 &lt;noise 1&gt; &amp; co", html);
        Assert.DoesNotContain("<noise", html);
        Assert.DoesNotContain("<b>", html);
        Assert.Equal(html, HtmlReport.Render(ranking, evaluation, Options)); // deterministic
    }

    [Fact]
    public void TheReportShowsIntervalsTheChoicesProbabilityTheRandomExpectationAndTrials()
    {
        var (ranking, evaluation, _) = Zoo.Value;
        string html = HtmlReport.Render(ranking, evaluation, Options);
        Assert.Matches("<p id=\"confidence\" class=\"(close|clear)\">", html);
        Assert.Contains(Pct(ranking.ChosenProbability!.Value), Regex.Match(html, "<p id=\"confidence\".*?</p>", RegexOptions.Singleline).Value);
        Assert.Equal(ranking.Models.Count, Regex.Matches(html, "<td class=\"num interval\">\\[").Count);
        Assert.Equal(ranking.Models.Count, Regex.Matches(html, "<td class=\"num probability\">").Count);
        var random = Regex.Match(html, "<tr class=\"metric-row expected\" data-metric=\"random\">.*?</tr>", RegexOptions.Singleline).Value;
        Assert.Contains("(expected)", random);
        Assert.Contains("uniform random choice", random);
        Assert.DoesNotContain("id=\"trials\"", html);

        // After a budgeted search the trials are listed, a failed one with its error.
        var settings = new SelectionTrialSettings(0, "broken <model>", 0, 64);
        var trials = new[]
        {
            new SelectionTrial { Settings = settings, Status = SelectionTrialStatus.Failed, Metric = double.NaN, DurationInMilliseconds = 3, ImagesEmbedded = 0, Error = "no ONNX file" },
            new SelectionTrial { Settings = settings with { TrialId = 1, ModelName = ranking.Models[0].ModelName }, Status = SelectionTrialStatus.Completed, Metric = 0.5, DurationInMilliseconds = 40, ImagesEmbedded = 64, Interval = new ScoreInterval(0.4, 0.6) },
        };
        string searched = HtmlReport.Render(ranking with { Trials = trials }, evaluation, Options);
        var table = Regex.Match(searched, "<table id=\"trials\">.*?</table>", RegexOptions.Singleline).Value;
        Assert.Equal(2, Regex.Matches(table, "<tr class=\"trial-row").Count);
        Assert.Contains("failed: no ONNX file", table);
        Assert.Contains("broken &lt;model&gt;", table);
        Assert.Contains("[0.4000, 0.6000]", table);
    }

    private static string Pct(double v) => (100 * v).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " %";

    [Fact]
    public void LargeClassCountsBecomeAnInlinePngThatDecodesToOnePixelPerCell()
    {
        var (images, texts, _) = Synthetic.Task(seed: 3, n: 3000, c: 100, d: 48, imageNoise: 1.0);
        var ranking = ModelSelector.RankModels([("big", images, texts)]);
        string html = HtmlReport.Render(ranking);
        Assert.DoesNotContain("class=\"cell\"", html);
        foreach (string id in new[] { "heatmap-textual", "heatmap-visual" })
        {
            var m = Regex.Match(html, $"id=\"{id}\"[^>]*src=\"data:image/png;base64,([^\"]+)\"");
            Assert.True(m.Success, id);
            var (w, h, channels, pixels) = PngDecoder.Decode(Convert.FromBase64String(m.Groups[1].Value));
            Assert.Equal((100, 100), (w, h));
            for (int i = 0; i < 100; i++) // the unused diagonal is grey
                Assert.Equal((0xd9, 0xd9, 0xd9), (pixels[(i * 100 + i) * channels], pixels[(i * 100 + i) * channels + 1], pixels[(i * 100 + i) * channels + 2]));
            var colours = new HashSet<int>();
            for (int i = 0; i < w * h; i++) colours.Add(pixels[i * channels] << 16 | pixels[i * channels + 1] << 8 | pixels[i * channels + 2]);
            Assert.True(colours.Count > 50, $"{id}: {colours.Count} colours");
        }
    }

    [Fact]
    public void WritingIntoAMissingFolderNamesIt()
    {
        var (ranking, _, _) = Zoo.Value;
        var e = Assert.Throws<DirectoryNotFoundException>(() => HtmlReport.Write("/nonexistent-vega-dir/report.html", ranking));
        Assert.Contains("/nonexistent-vega-dir", e.Message);
    }

    [Fact]
    public void ChromiumRendersEveryElementAndANonBlankScreenshot()
    {
        var (ranking, evaluation, _) = Zoo.Value;
        string dir = Fixtures.TempDir("vega-report");
        try
        {
            string path = Path.Combine(dir, "report.html");
            HtmlReport.Write(path, ranking, evaluation, Options);
            string url = new Uri(path).AbsoluteUri;

            // The DOM as Chromium parsed it.
            string dom = Chromium(dir, "--dump-dom", url);
            var rows = Regex.Matches(dom, "<tr class=\"model-row[^\"]*\" data-model=\"([^\"]*)\">").Select(m => System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)).ToArray();
            Assert.Equal(ranking.Models.Select(m => m.ModelName), rows);
            foreach (var m in ranking.Models) Assert.Contains($"<td class=\"model\">{System.Net.WebUtility.HtmlEncode(m.ModelName)}</td>", dom);
            Assert.Contains(System.Net.WebUtility.HtmlEncode(ranking.Chosen.ModelName), Regex.Match(dom, "<p id=\"summary\">.*?</p>", RegexOptions.Singleline).Value);
            foreach (string id in new[] { "heatmap-textual", "heatmap-visual" })
            {
                var svg = Regex.Match(dom, $"<svg id=\"{id}\".*?</svg>", RegexOptions.Singleline);
                Assert.True(svg.Success, id);
                Assert.Equal(Classes * Classes, Regex.Matches(svg.Value, "<rect class=\"cell\"").Count);
            }
            Assert.Equal(SelectionMetrics.All.Count, Regex.Matches(dom, "<figure class=\"scatter\"").Count);
            Assert.Equal(SelectionMetrics.All.Count, Regex.Matches(dom, "<tr class=\"metric-row\"").Count);
            Assert.Equal(ranking.Models.Count * SelectionMetrics.All.Count, Regex.Matches(Regex.Match(dom, "<div id=\"scatter\".*?</section>", RegexOptions.Singleline).Value, "<circle class=\"point").Count);
            Assert.Equal(ranking.Models.Count, Regex.Matches(dom, "<rect class=\"bar bar-node\"").Count);
            Assert.Equal(ranking.Models.Count, Regex.Matches(dom, "<rect class=\"bar bar-edge\"").Count);
            Assert.Equal(Classes, Regex.Matches(Regex.Match(dom, "<table id=\"classes\">.*?</table>", RegexOptions.Singleline).Value, "<tr><td").Count);

            // The screenshot: decodes, has the requested size, many colours, and the score bars are painted.
            string png = Path.Combine(dir, "shot.png");
            Chromium(dir, $"--screenshot={png}", "--window-size=1200,1600", url);
            Assert.True(File.Exists(png), "Chromium wrote no screenshot");
            var (w, h, channels, pixels) = PngDecoder.Decode(File.ReadAllBytes(png));
            Assert.Equal((1200, 1600), (w, h));
            var colours = new HashSet<int>();
            int nodeBar = 0, edgeBar = 0, nonBackground = 0;
            for (int i = 0; i < w * h; i++)
            {
                int r = pixels[i * channels], g = pixels[i * channels + 1], b = pixels[i * channels + 2];
                colours.Add(r << 16 | g << 8 | b);
                if (Near(r, g, b, 0x4c, 0x78, 0xa8)) nodeBar++;
                if (Near(r, g, b, 0xf5, 0x85, 0x18)) edgeBar++;
                if (!Near(r, g, b, 0xf6, 0xf7, 0xf9) && !Near(r, g, b, 255, 255, 255)) nonBackground++;
            }
            Assert.True(colours.Count >= 100, $"only {colours.Count} distinct colours");
            Assert.True(nodeBar > 2000, $"node-score bars: {nodeBar} pixels");
            Assert.True(edgeBar > 2000, $"edge-score bars: {edgeBar} pixels");
            Assert.True(nonBackground > w * h / 20, $"only {nonBackground} non-background pixels");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool Near(int r, int g, int b, int r0, int g0, int b0) => Math.Abs(r - r0) <= 3 && Math.Abs(g - g0) <= 3 && Math.Abs(b - b0) <= 3;

    /// <summary>Runs headless Chromium (Debian package chromium) on its own profile folder; returns stdout.</summary>
    private static string Chromium(string dir, params string[] args)
    {
        string exe = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("Headless Chromium is missing: install it with `bash scripts/setup.sh --test` (Debian packages chromium, chromium-driver).");
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1", $"--user-data-dir={Path.Combine(dir, "profile")}" }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("Chromium did not finish within 120 s.");
        }
        Assert.True(p.ExitCode == 0, $"Chromium exited with {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }
}

/// <summary>A small independent PNG decoder for the tests (8-bit RGB/RGBA, non-interlaced, all five filter types).</summary>
internal static class PngDecoder
{
    public static (int Width, int Height, int Channels, byte[] Pixels) Decode(byte[] file)
    {
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, file[..8]);
        int width = 0, height = 0, channels = 0;
        using var idat = new MemoryStream();
        for (int at = 8; at < file.Length;)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
            string type = System.Text.Encoding.ASCII.GetString(file, at + 4, 4);
            var data = file.AsSpan(at + 8, len);
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                Assert.Equal(8, data[8]);
                channels = data[9] switch { 2 => 3, 6 => 4, _ => throw new NotSupportedException($"PNG colour type {data[9]}") };
                Assert.Equal(0, data[12]);
            }
            else if (type == "IDAT") idat.Write(data);
            else if (type == "IEND") break;
            at += 12 + len;
        }
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        byte[] src = raw.ToArray();
        int stride = width * channels;
        var pixels = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            int filter = src[y * (stride + 1)];
            for (int x = 0; x < stride; x++)
            {
                int v = src[y * (stride + 1) + 1 + x];
                int a = x >= channels ? pixels[y * stride + x - channels] : 0;
                int b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
                int c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
                int pred = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"PNG filter {filter}"),
                };
                pixels[y * stride + x] = (byte)(v + pred);
            }
        }
        return (width, height, channels, pixels);
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
