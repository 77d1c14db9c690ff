using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Vega.MLNet.Embedding;
using Vega.MLNet.Runtime;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench scoring</c>: label-free scoring (VEGA + baselines) of synthetic embeddings, N×D images and C×D class
/// texts, per covariance mode: median time, the split between statistics and graph, peak memory, and the share of
/// scoring in an end-to-end ranking whose embedding cost is measured on the ViT-B/32-sized bench towers.
/// </summary>
internal static class BenchScoring
{
    public static Command Create()
    {
        var images = new Option<int>("--images") { Description = "Number of image embeddings N.", DefaultValueFactory = _ => 100_000 };
        var classes = new Option<int>("--classes") { Description = "Number of classes C.", DefaultValueFactory = _ => 1000 };
        var dim = new Option<int>("--dim") { Description = "Embedding dimension D.", DefaultValueFactory = _ => 512 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats per mode (median reported).", DefaultValueFactory = _ => 3 };
        var modes = new Option<string>("--modes") { Description = "Comma-separated modes: diagonal, isotropic, full-lw, full-fixed, mean-cosine, paper (the exact paper preset), paper-pN (the paper preset in the top-N pooled subspace; its error against paper is reported when both run).", DefaultValueFactory = _ => "diagonal,isotropic,mean-cosine,full-lw" };
        var towers = new Option<string?>("--towers") { Description = "Folder with visual.onnx and textual.onnx (openai layout) for the end-to-end share; default ../shared/bench/openai-vit-b32." };
        var log = new Option<string?>("--log") { Description = "Benchmark log to append to (default docs/benchmarks.md)." };
        var kernels = new Option<bool>("--kernels") { Description = "Also time the float64 kernels alone (blocked Cholesky and rank-k update at D = --dim)." };
        var command = new Command("scoring", "Label-free scoring (VEGA + baselines) of N×D synthetic embeddings with C classes: time, memory, end-to-end share.");
        foreach (var o in new Option[] { images, classes, dim, repeats, modes, towers, log, kernels }) command.Options.Add(o);
        command.SetAction(parse => Run(parse.GetValue(images), parse.GetValue(classes), parse.GetValue(dim), parse.GetValue(repeats),
            parse.GetValue(modes)!, parse.GetValue(towers), parse.GetValue(log), parse.GetValue(kernels), Environment.GetCommandLineArgs().Skip(1).ToArray()));
        return command;
    }

    private static int Run(int n, int c, int d, int repeats, string modeList, string? towers, string? log, bool kernels, string[] args)
    {
        string input = $"N={n}, C={c}, D={d}";
        var report = new BenchmarkReport("Label-free scoring (VEGA + baselines)", args);
        if (kernels) Kernels(d, report);
        Console.WriteLine($"Generating synthetic embeddings ({input}) ...");
        var (imageEmbeddings, textEmbeddings) = Generate(n, c, d, seed: 1);
        double defaultSeconds = double.NaN;
        var firstRuns = new Dictionary<string, ModelScores>();
        foreach (string mode in modeList.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var vega = mode switch
            {
                "diagonal" => new VegaOptions { Covariance = CovarianceMode.Diagonal },
                "isotropic" => new VegaOptions { Covariance = CovarianceMode.Isotropic },
                "full-lw" => new VegaOptions { Covariance = CovarianceMode.FullLedoitWolf },
                "full-fixed" => new VegaOptions { Covariance = CovarianceMode.FullFixedShrinkage },
                "mean-cosine" => new VegaOptions { EdgeKind = VisualEdgeKind.MeanCosine },
                "paper" => VegaOptions.Paper,
                _ when mode.StartsWith("paper-p", StringComparison.Ordinal) && int.TryParse(mode.AsSpan(7), out int p) && p > 0 => VegaOptions.Paper with { FullSubspaceDimension = p },
                _ => throw new ArgumentException($"Unknown mode '{mode}'; use diagonal, isotropic, full-lw, full-fixed, mean-cosine, paper or paper-pN."),
            };
            var options = new SelectionOptions { Vega = vega with { KeepEdgeMatrices = false } };
            string label = mode is "full-lw" or "full-fixed" ? $"{mode} (subspace p={vega.FullSubspaceDimension})"
                : mode == "paper" ? "paper (exact full covariance)" : mode.StartsWith("paper-p", StringComparison.Ordinal) ? $"paper, subspace p={vega.FullSubspaceDimension}" : mode;

            // Peak memory of one run: reset the kernel's peak-RSS mark (Linux clear_refs 5), run, read VmHWM.
            GC.Collect(2, GCCollectionMode.Forced, true, true);
            GC.WaitForPendingFinalizers();
            long rssBefore = ReadStatusKb("VmRSS") * 1024;
            bool reset = ResetPeak();
            long allocated0 = GC.GetTotalAllocatedBytes(true);
            var acc = new ScoringAccumulator("bench", textEmbeddings, options);
            long t0 = Stopwatch.GetTimestamp();
            acc.Add(imageEmbeddings);
            var statsTime = Stopwatch.GetElapsedTime(t0);
            long stateBytes = acc.StateBytes;
            var first = ModelSelector.Finish(acc, statsTime);
            long allocated = GC.GetTotalAllocatedBytes(true) - allocated0;
            long peak = ReadStatusKb("VmHWM") * 1024;
            long b0 = Stopwatch.GetTimestamp();
            var boot = Bootstrap.Replicates(first.Material!, options.Bootstrap);
            double bootSeconds = Stopwatch.GetElapsedTime(b0).TotalSeconds;
            firstRuns[mode] = first;
            Console.WriteLine($"{label}: first run {first.ScoringTime.TotalSeconds:F2} s (statistics {first.StatisticsTime.TotalSeconds:F2} s, graph {first.GraphTime.TotalSeconds:F2} s), VEGA {first.Vega.Score:F6} (s_e {first.Vega.EdgeScore:F6}), bootstrap {bootSeconds:F2} s");

            var stats = new List<double>();
            var graph = new List<double>();
            double median = repeats <= 1 ? first.ScoringTime.TotalSeconds : BenchmarkReport.MedianSeconds(repeats, () =>
            {
                var s = ModelSelector.Score("bench", imageEmbeddings, textEmbeddings, options);
                stats.Add(s.StatisticsTime.TotalSeconds);
                graph.Add(s.GraphTime.TotalSeconds);
            }, warmup: 0);
            if (stats.Count == 0) { stats.Add(first.StatisticsTime.TotalSeconds); graph.Add(first.GraphTime.TotalSeconds); }
            stats.Sort(); graph.Sort();
            report.Add($"scoring time, {label}", median, "s", $"{input}, {Environment.ProcessorCount} threads, median of {Math.Max(repeats, 1)}");
            report.AddText($"  split (median of each part), {label}", $"statistics {stats[stats.Count / 2]:F2} s + graph {graph[graph.Count / 2]:F2} s", input);
            report.Add($"  throughput, {label}", n / median, "images/s", input);
            report.Add($"  statistics state, {label}", stateBytes / 1048576.0, "MiB", $"{input} (grows with C·D or C·D², not N)");
            report.Add($"  allocated during one run, {label}", allocated / 1048576.0, "MiB", input);
            if (reset) report.Add($"  peak RSS above baseline, {label}", (peak - rssBefore) / 1048576.0, "MiB", $"{input}; baseline (inputs loaded) {rssBefore / 1048576.0:F0} MiB");
            report.Add($"  bootstrap of one model ({options.Bootstrap.Replicates} replicates), {label}", bootSeconds, "s", input);
            if (mode == "diagonal") defaultSeconds = median;
        }
        // The subspace approximations against the exact paper preset on the same data.
        if (firstRuns.TryGetValue("paper", out var exact))
            foreach (var (mode, approx) in firstRuns)
            {
                if (!mode.StartsWith("paper-p", StringComparison.Ordinal)) continue;
                double dv = Math.Abs(approx.Vega.Score - exact.Vega.Score), de = Math.Abs(approx.Vega.EdgeScore - exact.Vega.EdgeScore);
                report.AddText($"  error of {mode} against the exact paper preset", $"abs. error: VEGA {dv:G3}, s_e {de:G3}, r {2 * de:G3} (exact s_e {exact.Vega.EdgeScore:F6}, approximate {approx.Vega.EdgeScore:F6})", input);
            }
        string folder = towers ?? FindTowers();
        if (!double.IsNaN(defaultSeconds) && File.Exists(Path.Combine(folder, "visual.onnx")))
        {
            double perImage = TowerSeconds(Path.Combine(folder, "visual.onnx"), "pixel_values", batch: 8, repeats: 3, image: true);
            double perText = TowerSeconds(Path.Combine(folder, "textual.onnx"), "input_ids", batch: 8, repeats: 3, image: false);
            double embed = perImage * n + perText * c;
            report.Add("image tower (ViT-B/32 bench), per image", perImage * 1000, "ms", $"{folder}/visual.onnx, batch 8, median of 3");
            report.Add("text tower (bench), per text", perText * 1000, "ms", $"{folder}/textual.onnx, batch 8, length 77, median of 3");
            report.Add("end-to-end estimate for one model", embed + defaultSeconds, "s", $"embed {n} images + {c} class texts, then score (default diagonal)");
            report.Add("share of scoring in end-to-end", 100 * defaultSeconds / (embed + defaultSeconds), "%", "goal < 2 %");
        }
        else if (!double.IsNaN(defaultSeconds))
            Console.WriteLine($"No bench towers at {folder}; skipping the end-to-end share (pass --towers).");
        report.Publish(log);
        return 0;
    }

    // One thread each: the blocked upper Cholesky of a D×D SPD matrix and the rank-64 update of a D×D triangle.
    private static unsafe void Kernels(int d, BenchmarkReport report)
    {
        var rng = new Random(3);
        int ld = Float64Kernels.Padded(d);
        var x = new double[64 * ld];
        for (int i = 0; i < x.Length; i++) x[i] = DenseMath.Gaussian(rng);
        var spd = new double[d * ld];
        var rowBase = new long[d];
        for (int i = 0; i < d; i++) rowBase[i] = (long)i * ld;
        fixed (double* px = x, ps = spd)
        fixed (long* pr = rowBase)
        {
            for (int rep = 0; rep < d / 64 + 2; rep++) Float64Kernels.SyrkUpper(px, ld, 64, d, 1, ps, pr);
            for (int i = 0; i < d; i++) spd[i * ld + i] += d;
            var work = new double[spd.Length];
            double chol = BenchmarkReport.MedianSeconds(9, () =>
            {
                spd.AsSpan().CopyTo(work);
                fixed (double* pw = work) Float64Kernels.CholeskyUpper(pw, ld, d);
            });
            report.Add($"kernel: blocked Cholesky, D={d}", d * (double)d * d / 3 / chol / 1e9, "GFLOP/s", $"{chol * 1000:F2} ms per factorisation, 1 thread, median of 9");
            var target = new double[d * ld];
            nint xp = (nint)px, rp = (nint)pr;
            double syrk = BenchmarkReport.MedianSeconds(9, () =>
            {
                fixed (double* pt = target) Float64Kernels.SyrkUpper((double*)xp, ld, 64, d, 1, pt, (long*)rp);
            });
            report.Add($"kernel: rank-64 update of the upper triangle, D={d}", 64.0 * d * (d + 1) / syrk / 1e9, "GFLOP/s", $"{syrk * 1000:F3} ms, 1 thread, median of 9");
        }
    }

    /// <summary>Class prototypes plus noise: C unit prototypes, texts = prototype + 0.2 noise, images = a random class's prototype + noise.</summary>
    internal static (EmbeddingMatrix Images, EmbeddingMatrix Texts) Generate(int n, int c, int d, int seed)
    {
        var rng = new Random(seed);
        var protos = new float[c * d];
        for (int i = 0; i < protos.Length; i++) protos[i] = (float)DenseMath.Gaussian(rng);
        for (int k = 0; k < c; k++) EmbeddingMatrix.NormalizeInPlace(protos.AsSpan(k * d, d));
        var texts = new EmbeddingMatrix(c, d);
        float s = (float)(0.2 / Math.Sqrt(d));
        for (int k = 0; k < c; k++)
            for (int j = 0; j < d; j++) texts.Row(k)[j] = protos[k * d + j] + s * (float)DenseMath.Gaussian(rng);
        var images = new EmbeddingMatrix(n, d);
        int chunks = Environment.ProcessorCount;
        Parallel.For(0, chunks, part =>
        {
            var r = new Random(seed * 7919 + part);
            int i0 = (int)((long)n * part / chunks), i1 = (int)((long)n * (part + 1) / chunks);
            float noise = (float)(1.5 / Math.Sqrt(d));
            for (int i = i0; i < i1; i++)
            {
                int k = i < c ? i : r.Next(c);
                Span<float> row = images.Row(i);
                for (int j = 0; j < d; j++) row[j] = protos[k * d + j] + noise * (float)DenseMath.Gaussian(r);
            }
        });
        return (images, texts);
    }

    private static double TowerSeconds(string path, string input, int batch, int repeats, bool image)
    {
        using var session = OnnxSession.Open(path, new OnnxSessionOptions { IntraOpThreads = Environment.ProcessorCount });
        OnnxInput x;
        if (image)
        {
            var pixels = new float[batch * 3 * 224 * 224];
            var rng = new Random(1);
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
            x = OnnxInput.Create(input, pixels, batch, 3, 224, 224);
        }
        else
        {
            var ids = new long[batch * 77];
            for (int b = 0; b < batch; b++) { ids[b * 77] = 49406; for (int t = 1; t < 6; t++) ids[b * 77 + t] = 320 + t; ids[b * 77 + 6] = 49407; }
            x = OnnxInput.Create(input, ids, batch, 77);
        }
        double seconds = BenchmarkReport.MedianSeconds(repeats, () => { using var r = session.Run([x]); });
        return seconds / batch;
    }

    private static string FindTowers()
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Vega.MLNet.sln")))
                return Path.Combine(dir.FullName, "..", "shared", "bench", "openai-vit-b32");
        return Path.Combine("..", "shared", "bench", "openai-vit-b32");
    }

    private static bool ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    private static long ReadStatusKb(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(key.Length + 1).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
        return 0;
    }
}
