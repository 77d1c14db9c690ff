using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// <c>vega bench tensor</c>: speed of the tensor core. GEMM GFLOP/s of both kernels (OpenBLAS, managed) at 512³ and
/// M×K×N = 4096×512×2048 next to the machine's peak (estimated from /proc/cpuinfo and the vector ISA, and measured with
/// an FMA loop), the train step time of a 784-256-10 MLP at batch 256, and a forward+backward step of a CLIP-text-tower
/// proxy (12 layers, width 512, 8 heads, 10 prompts × 77 tokens, gradient to the input embeddings only).
/// </summary>
internal static class BenchTensor
{
    public static Command Create()
    {
        var repeats = new Option<int>("--repeats") { Description = "Measured runs; the median is reported.", DefaultValueFactory = _ => 7 };
        var log = new Option<string?>("--log") { Description = "Append the figures to this file instead of docs/benchmarks.md." };
        var noTower = new Option<bool>("--no-tower") { Description = "Skip the CLIP text tower proxy." };
        var profile = new Option<bool>("--profile") { Description = "Only profile the text tower proxy step per op (printed, not logged)." };
        var command = new Command("tensor", "Tensor core speed: GEMM GFLOP/s (OpenBLAS and managed) vs peak, MLP train step, CLIP text tower fwd+bwd proxy.");
        command.Options.Add(repeats);
        command.Options.Add(log);
        command.Options.Add(noTower);
        command.Options.Add(profile);
        command.SetAction(parse =>
        {
            int r = Math.Max(1, parse.GetValue(repeats));
            if (parse.GetValue(profile))
            {
                ProfileTower(r);
                return 0;
            }
            var report = new BenchmarkReport("tensor", Environment.GetCommandLineArgs()[1..]);
            Run(report, r, !parse.GetValue(noTower));
            report.Publish(parse.GetValue(log));
            return 0;
        });
        return command;
    }

    internal static void Run(BenchmarkReport report, int repeats, bool tower)
    {
        int threads = Parallelism.ThreadCount;
        var kernels = new List<GemmBackend>();
        if (Vector512.IsHardwareAccelerated) kernels.Add(GemmBackend.Avx512);
        if (Vector256.IsHardwareAccelerated) kernels.Add(GemmBackend.Avx2);
        kernels.Add(GemmBackend.Portable);
        report.AddText("configuration", $"{threads} threads; auto kernel {Gemm.Effective} (tile {ManagedGemm.Tile.MR}×{ManagedGemm.Tile.NR}); measured: {string.Join(", ", kernels)}", "Parallelism.ThreadCount, Gemm.Effective");

        var (mhz, flopsPerCycle, isa) = PeakParameters();
        double peak = threads * mhz * 1e6 * flopsPerCycle / 1e9;
        report.Add("peak estimate", peak, "GFLOP/s",
            $"{threads} cores × {mhz:F0} MHz (/proc/cpuinfo) × {flopsPerCycle} FLOP/cycle ({isa}: 2 FMA pipes × lanes × 2)");
        double fma = MeasuredFmaPeak(threads);
        report.Add("measured FMA peak", fma, "GFLOP/s",
            $"{threads} threads × 12 independent {(Vector512.IsHardwareAccelerated ? 512 : 256)}-bit FMA chains, no memory traffic (implies {fma * 1e3 / (threads * flopsPerCycle):F0} MHz effective clock)");

        foreach (var (m, k, n) in new[] { (512, 512, 512), (4096, 512, 2048), (770, 512, 2048) })
        {
            double flops = 2.0 * m * n * k;
            var a = new float[m * k];
            var b = new float[k * n];
            var c = new float[m * n];
            var rng = new Rng(1);
            rng.FillUniform(a, -1, 1);
            rng.FillUniform(b, -1, 1);
            int reps = Math.Max(repeats, (int)Math.Min(200, 3e10 / flops));
            string shape = $"M×K×N = {m}×{k}×{n}, C = A·B row-major, {reps} runs";
            foreach (var backend in kernels)
            {
                var saved = Gemm.Backend;
                Gemm.Backend = backend;
                try
                {
                    double t = BenchmarkReport.MedianSeconds(reps, () => Gemm.Sgemm(false, false, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n), warmup: 2);
                    double gf = flops / t / 1e9;
                    report.Add($"GEMM {backend} {m}×{k}×{n}", gf, "GFLOP/s", $"{shape}; {gf / peak:P0} of the peak estimate, {gf / fma:P0} of the measured FMA peak");
                }
                finally { Gemm.Backend = saved; }
            }
        }

        foreach (var backend in new[] { Gemm.Effective })
        {
            var saved = Gemm.Backend;
            Gemm.Backend = backend;
            try
            {
                double ms = MlpStep(repeats) * 1e3;
                report.Add($"MLP train step ({backend})", ms, "ms", "784-256-10, batch 256, ReLU, cross-entropy, forward + backward + AdamW, median of runs of 20 steps");
                if (tower)
                {
                    var (fwd, step) = TowerStep(Math.Max(3, repeats / 2));
                    report.Add($"text tower proxy forward ({backend})", fwd * 1e3, "ms", "12 layers, width 512, 8 heads, 10 prompts × 77 tokens, causal, QuickGELU, no tape");
                    report.Add($"text tower proxy fwd+bwd ({backend})", step * 1e3, "ms", "same, forward on a tape + backward to the input embeddings (weights frozen)");
                }
            }
            finally { Gemm.Backend = saved; }
        }
    }

    private static (double Mhz, int FlopsPerCycle, string Isa) PeakParameters()
    {
        double mhz = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("cpu MHz", StringComparison.Ordinal) &&
                    double.TryParse(line[(line.IndexOf(':') + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                    mhz = Math.Max(mhz, v);
        }
        catch (IOException) { }
        if (mhz == 0) mhz = 2000;
        if (Avx512F.IsSupported) return (mhz, 2 * 16 * 2, "AVX-512 FMA");
        if (Fma.IsSupported) return (mhz, 2 * 8 * 2, "AVX2 FMA");
        return (mhz, 2 * 4 * 2, "128-bit");
    }

    private static double MeasuredFmaPeak(int threads)
    {
        const long iterations = 20_000_000;
        double best = 0;
        for (int rep = 0; rep < 3; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => FmaLoop(iterations));
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            int lanes = Vector512.IsHardwareAccelerated ? 16 : 8;
            best = Math.Max(best, threads * iterations * 12.0 * lanes * 2 / s / 1e9);
        }
        return best;
    }

    private static float FmaLoop(long iterations)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(0.999f);
            var a = Vector512.Create(1e-3f);
            Vector512<float> x0 = Vector512.Create(1f), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0, x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
            for (long i = 0; i < iterations; i++)
            {
                x0 = Vector512.FusedMultiplyAdd(x0, m, a); x1 = Vector512.FusedMultiplyAdd(x1, m, a); x2 = Vector512.FusedMultiplyAdd(x2, m, a);
                x3 = Vector512.FusedMultiplyAdd(x3, m, a); x4 = Vector512.FusedMultiplyAdd(x4, m, a); x5 = Vector512.FusedMultiplyAdd(x5, m, a);
                x6 = Vector512.FusedMultiplyAdd(x6, m, a); x7 = Vector512.FusedMultiplyAdd(x7, m, a); x8 = Vector512.FusedMultiplyAdd(x8, m, a);
                x9 = Vector512.FusedMultiplyAdd(x9, m, a); x10 = Vector512.FusedMultiplyAdd(x10, m, a); x11 = Vector512.FusedMultiplyAdd(x11, m, a);
            }
            return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
        }
        else
        {
            var m = Vector256.Create(0.999f);
            var a = Vector256.Create(1e-3f);
            Vector256<float> x0 = Vector256.Create(1f), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0, x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
            for (long i = 0; i < iterations; i++)
            {
                x0 = Vector256.FusedMultiplyAdd(x0, m, a); x1 = Vector256.FusedMultiplyAdd(x1, m, a); x2 = Vector256.FusedMultiplyAdd(x2, m, a);
                x3 = Vector256.FusedMultiplyAdd(x3, m, a); x4 = Vector256.FusedMultiplyAdd(x4, m, a); x5 = Vector256.FusedMultiplyAdd(x5, m, a);
                x6 = Vector256.FusedMultiplyAdd(x6, m, a); x7 = Vector256.FusedMultiplyAdd(x7, m, a); x8 = Vector256.FusedMultiplyAdd(x8, m, a);
                x9 = Vector256.FusedMultiplyAdd(x9, m, a); x10 = Vector256.FusedMultiplyAdd(x10, m, a); x11 = Vector256.FusedMultiplyAdd(x11, m, a);
            }
            return Vector256.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
        }
    }

    /// <summary>Seconds per MLP train step (median over runs of 20 steps).</summary>
    internal static double MlpStep(int repeats)
    {
        var rng = new Rng(7);
        var w1 = Init.KaimingUniform(Tensor.Parameter([256, 784], "w1"), rng);
        var b1 = Tensor.Parameter([256], "b1");
        var w2 = Init.XavierUniform(Tensor.Parameter([10, 256], "w2"), rng);
        var b2 = Tensor.Parameter([10], "b2");
        var opt = new AdamW([w1, b1, w2, b2], new AdamWOptions(1e-3));
        var x = new float[256 * 784];
        rng.FillUniform(x, 0, 1);
        var y = Enumerable.Range(0, 256).Select(i => i % 10).ToArray();
        void Step()
        {
            using var tape = new Tape();
            var h = Ops.Relu(Ops.Linear(Tensor.FromArray(x, 256, 784), w1, b1));
            var loss = Ops.CrossEntropy(Ops.Linear(h, w2, b2), y);
            opt.ZeroGrad();
            tape.Backward(loss);
            opt.Step();
        }
        return BenchmarkReport.MedianSeconds(repeats, () => { for (int i = 0; i < 20; i++) Step(); }, warmup: 1) / 20;
    }

    /// <summary>A CLIP text tower built from the ops (random frozen weights): forward seconds and forward+backward seconds.</summary>
    internal static (double Forward, double Step) TowerStep(int repeats)
    {
        var tower = new TowerProxy(layers: 12, width: 512, heads: 8, context: 77, seed: 11);
        var input = new float[10 * 77 * 512];
        new Rng(3).FillNormal(input, 0, 0.02);
        double fwd = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            using var scope = new TensorScope();
            using var _ = Tape.NoGrad();
            tower.Forward(Tensor.FromArray(input, 10, 77, 512));
        });
        double step = BenchmarkReport.MedianSeconds(repeats, () =>
        {
            using var tape = new Tape();
            var x = Tensor.FromArray(input, 10, 77, 512);
            x.RequiresGrad = true;
            var y = tower.Forward(x);
            tape.Backward(Ops.Sum(y));
        });
        return (fwd, step);
    }

    private static void ProfileTower(int repeats)
    {
        var tower = new TowerProxy(layers: 12, width: 512, heads: 8, context: 77, seed: 11);
        var input = new float[10 * 77 * 512];
        new Rng(3).FillNormal(input, 0, 0.02);
        for (int i = 0; i <= repeats; i++)
        {
            if (i == 1) Tape.Profile = [];
            long t0 = Stopwatch.GetTimestamp();
            using var tape = new Tape();
            var x = Tensor.FromArray(input, 10, 77, 512);
            x.RequiresGrad = true;
            var y = tower.Forward(x);
            double fwd = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            tape.Backward(Ops.Sum(y));
            Console.WriteLine($"step {i}: forward {fwd:F0} ms, total {Stopwatch.GetElapsedTime(t0).TotalMilliseconds:F0} ms (backend {Gemm.Effective})");
        }
        Console.WriteLine($"tensor pool after the steps: {TensorPool.RetainedBytes / 1e6:F0} MB retained");
        var prof = Tape.Profile!;
        Tape.Profile = null;
        Console.WriteLine($"{"op",-14}{"count",8}{"fwd ms/step",14}{"bwd ms/step",14}");
        foreach (var (op, p) in prof.OrderByDescending(kv => kv.Value.ForwardSeconds + kv.Value.BackwardSeconds))
            Console.WriteLine($"{op,-14}{p.Count / repeats,8}{p.ForwardSeconds * 1e3 / repeats,14:F1}{p.BackwardSeconds * 1e3 / repeats,14:F1}");
    }

    /// <summary>Pre-LN causal transformer like CLIP's text tower (QuickGELU MLP, fused QKV projection).</summary>
    internal sealed class TowerProxy
    {
        private readonly int _width, _heads, _context;
        private readonly Tensor _mask;
        private readonly (Tensor Ln1G, Tensor Ln1B, Tensor Wqkv, Tensor Bqkv, Tensor Wo, Tensor Bo, Tensor Ln2G, Tensor Ln2B, Tensor W1, Tensor B1, Tensor W2, Tensor B2)[] _layers;

        public TowerProxy(int layers, int width, int heads, int context, ulong seed)
        {
            _width = width;
            _heads = heads;
            _context = context;
            var rng = new Rng(seed);
            Tensor P(params int[] shape) => Init.Normal(Tensor.Create(shape, zero: false, persistent: true), rng, 0, 0.02);
            Tensor Ones(int n) { var t = Tensor.Create([n], false, true); t.Span.Fill(1f); return t; }
            _layers = Enumerable.Range(0, layers).Select(_ => (Ones(width), P(width), P(3 * width, width), P(3 * width), P(width, width), P(width),
                Ones(width), P(width), P(4 * width, width), P(4 * width), P(width, 4 * width), P(width))).ToArray();
            _mask = Tensor.Create([context, context], zero: true, persistent: true);
            for (int i = 0; i < context; i++) for (int j = i + 1; j < context; j++) _mask[i, j] = 1f;
        }

        public Tensor Forward(Tensor x)
        {
            int b = x.Shape[0], t = x.Shape[1], d = _width, h = _heads, dh = d / h;
            foreach (var l in _layers)
            {
                var a = Ops.LayerNorm(x, l.Ln1G, l.Ln1B);
                var qkv = Ops.Linear(a, l.Wqkv, l.Bqkv);                                   // [b, t, 3d]
                var heads = Ops.Transpose(Ops.Reshape(qkv, b, t, 3, h, dh), 2, 0, 3, 1, 4); // [3, b, h, t, dh]
                var q = Ops.Squeeze(Ops.Slice(heads, 0, 0, 1), 0);
                var k = Ops.Squeeze(Ops.Slice(heads, 0, 1, 2), 0);
                var v = Ops.Squeeze(Ops.Slice(heads, 0, 2, 3), 0);
                var s = Ops.MulScalar(Ops.MatMul(q, Ops.SwapAxes(k, -1, -2)), 1f / MathF.Sqrt(dh));
                s = Ops.MaskedFill(s, _mask, float.NegativeInfinity);
                var o = Ops.MatMul(Ops.Softmax(s), v);                                    // [b, h, t, dh]
                o = Ops.Reshape(Ops.Transpose(o, 0, 2, 1, 3), b, t, d);
                x = Ops.Add(x, Ops.Linear(o, l.Wo, l.Bo));
                var m = Ops.LayerNorm(x, l.Ln2G, l.Ln2B);
                x = Ops.Add(x, Ops.Linear(Ops.QuickGelu(Ops.Linear(m, l.W1, l.B1)), l.W2, l.B2));
            }
            return x;
        }
    }
}
