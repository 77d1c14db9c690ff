using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using Vega.MLNet.Prompting;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench prompt-step</c>: one CoOp training step (prompt embeddings → frozen text tower on the ONNX interpreter
/// → normalised features → cross-entropy against image features → backward to the context vectors) on the
/// benchmark-sized towers of ../shared/bench, for C classes; seconds per step and GFLOP/s from the matmul sizes.
/// </summary>
internal static class BenchPromptStep
{
    public static Command Create()
    {
        var shared = new Option<string?>("--shared") { Description = "The ../shared fixtures folder (default: beside the repository)." };
        var towers = new Option<string[]>("--bench-model") { Description = "Benchmark towers: openai-vit-b32, hf-vit-b32 (default both).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["openai-vit-b32", "hf-vit-b32"] };
        var classes = new Option<int[]>("--classes") { Description = "Class counts C (default 10 and 100).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [10, 100] };
        var context = new Option<int>("--context") { Description = "Learnable context vectors M per prompt (CoOp default 16).", DefaultValueFactory = _ => 16 };
        var repeats = new Option<int>("--repeats") { Description = "Timed steps per configuration (median reported).", DefaultValueFactory = _ => 3 };
        var profile = new Option<bool>("--profile") { Description = "Print the forward time per op type and the backward time (not recorded)." };
        var gemm = new Option<string[]>("--gemm") { Description = "GEMM kernels to measure: auto (the widest the CPU accelerates), avx512, avx2, portable (default: auto).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["auto"] };
        var poolGb = new Option<int>("--pool-gb") { Description = "Bytes the tensor pool keeps between steps, in GiB (default: the library's 4).", DefaultValueFactory = _ => 0 };
        var chunk = new Option<int>("--chunk") { Description = "Also measure the chunked step (PromptTextEncoder.Step with this many classes per chunk) when C is larger (0 = never).", DefaultValueFactory = _ => 25 };
        var threads = new Option<int>("--threads") { Description = "Threads of the tensor core (0 = all cores).", DefaultValueFactory = _ => 0 };
        var command = new Command("prompt-step", "CoOp prompt-learning step (forward + backward through the frozen text tower on the ONNX interpreter): s/step and GFLOP/s.")
            { shared, towers, classes, context, repeats, threads, profile, gemm, poolGb, chunk };
        command.SetAction(parse =>
        {
            string dir = BenchInputs.SharedDirectory(parse.GetValue(shared));
            int t = parse.GetValue(threads);
            if (t > 0) Parallelism.ThreadCount = t;
            var backends = parse.GetValue(gemm)!.Select(g => g switch
            {
                "auto" => GemmBackend.Auto,
                "avx512" => GemmBackend.Avx512,
                "avx2" => GemmBackend.Avx2,
                "portable" => GemmBackend.Portable,
                _ => throw new ArgumentException($"Unknown --gemm '{g}' (auto, avx512, avx2 or portable)."),
            }).ToArray();
            bool prof = parse.GetValue(profile);
            if (parse.GetValue(poolGb) is int gb and > 0) TensorPool.MaxRetainedBytes = (long)gb << 30;
            int chunkClasses = parse.GetValue(chunk);
            int m = parse.GetValue(context), n = parse.GetValue(repeats);
            var tokenizer = ClipTokenizer.Load(Path.Combine(dir, "clip-tokenizer"));
            var names = File.ReadLines(Path.Combine(dir, "clip-tokenizer", "golden_classnames.jsonl"))
                .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)
                .Where(s => tokenizer.Encode(s).Length <= 6).ToList();
            var report = new BenchmarkReport("CoOp prompt step on the ONNX interpreter", Environment.GetCommandLineArgs()[1..]);
            foreach (var tower in parse.GetValue(towers)!)
            {
                string file = tower switch
                {
                    "openai-vit-b32" => Path.Combine(dir, "bench", tower, "textual.onnx"),
                    "hf-vit-b32" => Path.Combine(dir, "bench", tower, "text_model.onnx"),
                    _ => throw new ArgumentException($"Unknown --bench-model '{tower}' (openai-vit-b32 or hf-vit-b32)."),
                };
                long t0 = Stopwatch.GetTimestamp();
                var encoder = PromptTextEncoder.Load(file);
                double load = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                var stats = encoder.Interpreter.Statistics;
                report.Add($"{tower}: session compile (load + fold + fuse)", load, "s",
                    $"{stats.GraphNodes} nodes → {stats.RuntimeSteps} steps ({stats.FoldedNodes} folded, {stats.DeadNodes} dead, {stats.FusedNodes} fused)");
                var lengths = encoder.FixedLength is null ? new int?[] { null, 77 } : [null];
                foreach (var backend in backends)
                foreach (int c in parse.GetValue(classes)!)
                    foreach (var forced in lengths)
                    {
                        Gemm.Backend = backend;
                        Measure(report, tower, encoder, tokenizer, names.Take(c).ToList(), m, forced, n, prof, 0);
                        if (chunkClasses > 0 && c > chunkClasses) Measure(report, tower, encoder, tokenizer, names.Take(c).ToList(), m, forced, n, false, chunkClasses);
                    }
            }
            report.Publish();
            return 0;
        });
        return command;
    }

    private static void Measure(BenchmarkReport report, string tower, PromptTextEncoder encoder, ClipTokenizer tokenizer,
        List<string> names, int m, int? forcedLength, int repeats, bool profile, int chunk)
    {
        var layout = forcedLength is int f
            ? PromptLayout.Create(tokenizer, names, m, ClassTokenPosition.End, f, f, encoder.PadId(tokenizer))
            : encoder.Layout(tokenizer, names, m, ClassTokenPosition.End);
        var prompts = encoder.Prepare(layout);
        var ctx = encoder.InitialContext(layout, classSpecific: false, seed: 1);
        int c = layout.ClassCount, l = layout.SequenceLength;

        // Image side of a CoOp step: a batch of 32 fixed normalised image features and labels.
        const int batch = 32;
        int dim;
        using (Tape.NoGrad()) dim = encoder.Encode(encoder.Slice(prompts, 0, 1), ctx).Shape[1];
        var imageValues = new float[batch * dim];
        new Rng(5).FillNormal(imageValues);
        Tensor images;
        using (Tape.NoGrad()) images = Ops.L2Normalize(Tensor.FromArray(imageValues, batch, dim)).Keep();
        int[] labels = Enumerable.Range(0, batch).Select(i => i % c).ToArray();

        double stepSeconds = 0;
        long allocated = 0;
        (long Rented, long Reused) poolBefore = default, poolAfter = default;
        var times = new List<double>();
        double forwardSeconds = 0, backwardSeconds = 0;
        var cpu = new List<double>();
        for (int r = 0; r < repeats + 1; r++)
        {
            if (r == 1)
            {
                poolBefore = TensorPool.ThreadStatistics;
                allocated = GC.GetAllocatedBytesForCurrentThread();
                if (profile) encoder.Interpreter.Profile = [];
            }
            long t0 = Stopwatch.GetTimestamp();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            if (chunk > 0)
                encoder.Step(prompts, ctx, features => Ops.CrossEntropy(Ops.MulScalar(Ops.MatMul(images!, Ops.Transpose(features, 1, 0)), 100f), labels), chunk);
            else
            using (var tape = new Tape())
            {
                var features = encoder.Forward(prompts, ctx);
                if (r > 0) forwardSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                var logits = Ops.MulScalar(Ops.MatMul(images!, Ops.Transpose(features, 1, 0)), 100f);
                var loss = Ops.CrossEntropy(logits, labels);
                long tb = Stopwatch.GetTimestamp();
                tape.Backward(loss);
                if (r > 0) backwardSeconds += Stopwatch.GetElapsedTime(tb).TotalSeconds;
            }
            ctx.Grad!.Span.Clear();
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (r > 0)
            {
                times.Add(s);
                cpu.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds);
            }
        }
        poolAfter = TensorPool.ThreadStatistics;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        times.Sort();
        stepSeconds = times[times.Count / 2];
        cpu.Sort();
        double cpuSeconds = cpu[cpu.Count / 2];

        int layers = encoder.Interpreter.Steps.Count(s => s.OpType == "Softmax");
        double flops = StepFlops(c, l, encoder.Width, layers, dim, 1.0);
        double realRows = (double)layout.Lengths.Sum() / (c * l);
        double executed = StepFlops(c, l, encoder.Width, layers, dim, realRows);
        string chunked = chunk > 0 ? $", chunks of {chunk} classes" : "";
        string mode = chunked + $", {Gemm.Effective}";
        string input = $"{Path.GetFileName(Path.GetDirectoryName(encoder.Source))}, C={c}{chunked}, M={m}, length {l}{(encoder.FixedLength is null ? forcedLength is null ? " (longest prompt)" : " (padded)" : " (fixed)")}, {Parallelism.ThreadCount} threads, GEMM {Gemm.Effective}";
        report.Add($"{tower}: step time C={c}, L={l}{mode}", stepSeconds, "s/step", input + $", median of {repeats}");
        report.Add($"{tower}: CPU time C={c}, L={l}{mode}", cpuSeconds, "CPU s/step", "user + system time of the process, all threads (median); wall ≈ CPU / threads on an idle machine");
        report.Add($"{tower}: throughput C={c}, L={l}{mode}", flops / stepSeconds / 1e9, "GFLOP/s",
            $"dense-equivalent: {flops / 1e9:F1} GFLOP per step (matmuls of the forward + input-gradient backward{(chunk > 0 ? ", recomputed forward not counted" : "")})");
        report.Add($"{tower}: executed throughput C={c}, L={l}{mode}", executed / stepSeconds / 1e9, "GFLOP/s",
            $"{executed / 1e9:F1} GFLOP actually multiplied: the backward projections skip the {100 * (1 - realRows):F0} % rows after the end tokens");
        long rents = poolAfter.Rented - poolBefore.Rented, reused = poolAfter.Reused - poolBefore.Reused;
        report.AddText($"{tower}: buffers C={c}, L={l}{mode}", $"{100.0 * reused / Math.Max(rents, 1):F1} % pooled, {allocated / repeats / 1048576.0:F1} MiB managed/step",
            $"{rents / repeats} buffer rents per step; managed allocation includes tape nodes and shape arrays");
        AnsiConsole.MarkupLine($"[grey]{Markup.Escape(tower)} C={c} L={l}{mode}: {stepSeconds:F3} s/step, {cpuSeconds:F3} CPU s/step (mean forward {forwardSeconds / repeats:F3} s, backward {backwardSeconds / repeats:F3} s)[/]");
        if (encoder.Interpreter.Profile is { } p)
        {
            foreach (var (op, (calls, seconds)) in p.OrderByDescending(kv => kv.Value.Seconds))
                AnsiConsole.MarkupLine($"[grey]  {Markup.Escape(op),-22} {calls / repeats,5} calls {seconds / repeats * 1000,9:F1} ms/step[/]");
            encoder.Interpreter.Profile = null;
        }
    }

    /// <summary>
    /// Matmul FLOPs of one step (2 per multiply-add): per layer and token the projections 3W² (QKV), W² (out) and 8W²
    /// (MLP with ratio 4), attention 2·L·W per token (scores and weighted sum); backward computes only input gradients
    /// (frozen weights): the projections once more, attention twice (both operands depend on the input).
    /// <paramref name="backwardRowFraction"/> scales the backward projections (1 = dense; the row-sparse backward
    /// multiplies only the rows up to each prompt's end token).
    /// </summary>
    internal static double StepFlops(int classes, int length, int width, int layers, int dim, double backwardRowFraction)
    {
        double tokens = (double)classes * length;
        double proj = 2 * tokens * 12.0 * width * width;
        double attn = 2 * 2.0 * classes * (double)length * length * width;
        double forward = layers * (proj + attn) + 2.0 * classes * width * dim;
        double backward = layers * (proj * backwardRowFraction + 2 * attn) + 2.0 * classes * width * dim;
        return forward + backward;
    }
}
