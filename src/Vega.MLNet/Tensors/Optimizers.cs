using VF = System.Numerics.Vector<float>;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Base of the optimisers: holds the parameters (persistent leaves with RequiresGrad), the learning rate and the step
/// count. <see cref="Step"/> updates every parameter that has a gradient, in place, outside the tape.
/// </summary>
internal abstract class Optimizer
{
    protected Optimizer(IEnumerable<Tensor> parameters, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Parameters = parameters.ToArray();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (!p.RequiresGrad) throw new ArgumentException($"Parameter {i} ({p.Name ?? p.ShapeString}) does not require a gradient.", nameof(parameters));
            if (!p.IsContiguous) throw new ArgumentException($"Parameter {i} ({p.Name ?? p.ShapeString}) is a strided view; optimise its base tensor.", nameof(parameters));
        }
        if (!(learningRate >= 0) || double.IsInfinity(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and ≥ 0.");
        LearningRate = learningRate;
    }

    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>The learning rate of the next step (a schedule sets it before each step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Number of steps taken.</summary>
    public int StepCount { get; private set; }

    /// <summary>Applies one update using the current gradients.</summary>
    public void Step()
    {
        StepCount++;
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (p.Grad is null) continue;
            var g = Kernels.Contiguous(p.Grad);
            Update(i, p.Span, g.Span);
        }
    }

    /// <summary>Updates parameter <paramref name="index"/> (values <paramref name="p"/>) with gradient <paramref name="g"/>.</summary>
    protected abstract void Update(int index, Span<float> p, ReadOnlySpan<float> g);

    /// <summary>Zeroes the gradients (keeping the buffers).</summary>
    public void ZeroGrad() => Tape.ZeroGrad(Parameters);

    /// <summary>The per-parameter state arrays by kind (e.g. SGD's momentum, AdamW's m and v), for checkpoints.</summary>
    protected abstract IEnumerable<(string Kind, float[]?[] Buffers)> StateArrays();

    /// <summary>The optimiser's state as named copies (<c>kind.index</c>) plus the step count, for a checkpoint.</summary>
    public (Dictionary<string, float[]> Buffers, int StepCount) ExportState()
    {
        var state = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (kind, buffers) in StateArrays())
            for (int i = 0; i < buffers.Length; i++)
                if (buffers[i] is { } b) state[$"{kind}.{i}"] = (float[])b.Clone();
        return (state, StepCount);
    }

    /// <summary>Restores a state written by <see cref="ExportState"/> for the same parameters.</summary>
    public void ImportState(IReadOnlyDictionary<string, float[]> state, int stepCount)
    {
        foreach (var (kind, buffers) in StateArrays())
            for (int i = 0; i < buffers.Length; i++)
            {
                if (!state.TryGetValue($"{kind}.{i}", out var b)) { buffers[i] = null; continue; }
                if (b.Length != Parameters[i].Length)
                    throw new InvalidDataException($"Optimiser state {kind}.{i} has {b.Length} values, parameter {i} ({Parameters[i].Name ?? Parameters[i].ShapeString}) has {Parameters[i].Length}.");
                buffers[i] = (float[])b.Clone();
            }
        StepCount = stepCount;
    }
}

/// <summary>SGD settings (PyTorch semantics).</summary>
/// <param name="LearningRate">Step size.</param>
/// <param name="Momentum">Momentum factor μ (0 = plain SGD).</param>
/// <param name="WeightDecay">L2 penalty λ added to the gradient (g + λp).</param>
/// <param name="Nesterov">Nesterov momentum (needs μ &gt; 0 and no dampening).</param>
/// <param name="Dampening">Dampening of the momentum accumulation.</param>
internal sealed record SgdOptions(double LearningRate, double Momentum = 0, double WeightDecay = 0, bool Nesterov = false, double Dampening = 0);

/// <summary>
/// Stochastic gradient descent as in <c>torch.optim.SGD</c>: d = g + λp; with momentum b ← d on the first step, then
/// b ← μb + (1 − dampening)d; d ← d + μb (Nesterov) or d ← b; p ← p − lr·d.
/// </summary>
internal sealed class Sgd : Optimizer
{
    private readonly SgdOptions _o;
    private readonly float[]?[] _buffers;

    public Sgd(IEnumerable<Tensor> parameters, SgdOptions options) : base(parameters, options.LearningRate)
    {
        _o = options;
        if (options.Momentum < 0) throw new ArgumentOutOfRangeException(nameof(options), options.Momentum, "Momentum must be ≥ 0.");
        if (options.WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(options), options.WeightDecay, "Weight decay must be ≥ 0.");
        if (options.Nesterov && (options.Momentum <= 0 || options.Dampening != 0))
            throw new ArgumentException("Nesterov momentum needs a momentum > 0 and zero dampening.", nameof(options));
        _buffers = new float[]?[Parameters.Count];
    }

    protected override IEnumerable<(string Kind, float[]?[] Buffers)> StateArrays() { yield return ("momentum", _buffers); }

    protected override void Update(int index, Span<float> p, ReadOnlySpan<float> g)
    {
        float lr = (float)LearningRate, wd = (float)_o.WeightDecay, mu = (float)_o.Momentum, damp = (float)(1 - _o.Dampening);
        if (mu == 0)
        {
            for (int i = 0; i < p.Length; i++) p[i] -= lr * (g[i] + wd * p[i]);
            return;
        }
        var buf = _buffers[index];
        bool first = buf is null;
        buf ??= _buffers[index] = new float[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            float d = g[i] + wd * p[i];
            float b = first ? d : mu * buf[i] + damp * d;
            buf[i] = b;
            p[i] -= lr * (_o.Nesterov ? d + mu * b : b);
        }
    }
}

/// <summary>AdamW settings (PyTorch defaults).</summary>
/// <param name="LearningRate">Step size.</param>
/// <param name="Beta1">Decay of the first moment.</param>
/// <param name="Beta2">Decay of the second moment.</param>
/// <param name="Epsilon">Added to √v̂.</param>
/// <param name="WeightDecay">Decoupled weight decay λ (p ← p·(1 − lr·λ)).</param>
internal sealed record AdamWOptions(double LearningRate = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Epsilon = 1e-8, double WeightDecay = 0.01);

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) as in <c>torch.optim.AdamW</c>: p ← p(1 − lr·λ); m ← β₁m + (1 − β₁)g;
/// v ← β₂v + (1 − β₂)g²; p ← p − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε).
/// </summary>
internal sealed class AdamW : Optimizer
{
    private readonly AdamWOptions _o;
    private readonly float[]?[] _m;
    private readonly float[]?[] _v;

    public AdamW(IEnumerable<Tensor> parameters, AdamWOptions options) : base(parameters, options.LearningRate)
    {
        _o = options;
        if (options.Beta1 is < 0 or >= 1 || options.Beta2 is < 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(options), "AdamW betas must be in [0, 1).");
        if (options.Epsilon <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Epsilon, "AdamW epsilon must be > 0.");
        if (options.WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(options), options.WeightDecay, "Weight decay must be ≥ 0.");
        _m = new float[]?[Parameters.Count];
        _v = new float[]?[Parameters.Count];
    }

    protected override IEnumerable<(string Kind, float[]?[] Buffers)> StateArrays()
    {
        yield return ("m", _m);
        yield return ("v", _v);
    }

    protected override void Update(int index, Span<float> p, ReadOnlySpan<float> g)
    {
        var m = _m[index] ??= new float[p.Length];
        var v = _v[index] ??= new float[p.Length];
        int t = StepCount;
        double lr = LearningRate;
        float decay = (float)(1 - lr * _o.WeightDecay);
        float b1 = (float)_o.Beta1, b2 = (float)_o.Beta2;
        float stepSize = (float)(lr / (1 - Math.Pow(_o.Beta1, t)));
        float bc2Sqrt = (float)Math.Sqrt(1 - Math.Pow(_o.Beta2, t));
        float eps = (float)_o.Epsilon;
        int i = 0;
        {
            // Vectorised body (same operations and rounding as the scalar tail).
            VF vDecay = new(decay), vB1 = new(b1), vB2 = new(b2), v1B1 = new(1 - b1), v1B2 = new(1 - b2);
            VF vStep = new(stepSize), vBc2 = new(bc2Sqrt), vEps = new(eps);
            for (; i <= p.Length - VF.Count; i += VF.Count)
            {
                var gi = new VF(g[i..]);
                var pi = new VF(p[i..]) * vDecay;
                var mi = vB1 * new VF(m, i) + v1B1 * gi;
                var vi = vB2 * new VF(v, i) + v1B2 * gi * gi;
                mi.CopyTo(m, i);
                vi.CopyTo(v, i);
                (pi - vStep * mi / (System.Numerics.Vector.SquareRoot(vi) / vBc2 + vEps)).CopyTo(p[i..]);
            }
        }
        for (; i < p.Length; i++)
        {
            float gi = g[i];
            p[i] *= decay;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= stepSize * m[i] / (MathF.Sqrt(v[i]) / bc2Sqrt + eps);
        }
    }
}

/// <summary>Learning rate as a function of the step index (0-based).</summary>
internal abstract class LearningRateSchedule
{
    /// <summary>The learning rate for step <paramref name="step"/>.</summary>
    public abstract double At(int step);

    /// <summary>Sets <paramref name="optimizer"/>'s rate for its next step (index = steps taken so far).</summary>
    public void Apply(Optimizer optimizer) => optimizer.LearningRate = At(optimizer.StepCount);
}

/// <summary>A constant learning rate.</summary>
internal sealed class ConstantSchedule(double learningRate) : LearningRateSchedule
{
    public override double At(int step) => learningRate;
}

/// <summary>
/// Linear warm-up from peak/warmup to the peak over <c>warmupSteps</c> steps (step s &lt; W: peak·(s+1)/W), then
/// cosine decay to <c>minLearningRate</c> at <c>totalSteps</c>: min + ½(peak − min)(1 + cos(π·(s − W)/(T − W))),
/// constant at the minimum afterwards.
/// </summary>
internal sealed class CosineWithWarmupSchedule : LearningRateSchedule
{
    public CosineWithWarmupSchedule(double peakLearningRate, int warmupSteps, int totalSteps, double minLearningRate = 0)
    {
        if (warmupSteps < 0 || totalSteps < 1 || warmupSteps > totalSteps)
            throw new ArgumentException($"Cosine schedule: need 0 ≤ warm-up ({warmupSteps}) ≤ total ({totalSteps}) and total ≥ 1.");
        Peak = peakLearningRate;
        Warmup = warmupSteps;
        Total = totalSteps;
        Min = minLearningRate;
    }

    public double Peak { get; }
    public int Warmup { get; }
    public int Total { get; }
    public double Min { get; }

    public override double At(int step)
    {
        if (step < Warmup) return Peak * (step + 1) / Warmup;
        double progress = Total == Warmup ? 1 : Math.Clamp((double)(step - Warmup) / (Total - Warmup), 0, 1);
        return Min + 0.5 * (Peak - Min) * (1 + Math.Cos(Math.PI * progress));
    }
}

/// <summary>Gradient clipping.</summary>
internal static class GradClip
{
    /// <summary>
    /// Scales all gradients so that their global L2 norm is at most <paramref name="maxNorm"/> (factor
    /// maxNorm/(norm + 1e-6) when the norm exceeds it, as in torch.nn.utils.clip_grad_norm_). Returns the norm before
    /// clipping (float64 accumulation).
    /// </summary>
    public static double ClipNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "maxNorm must be > 0.");
        var grads = parameters.Select(p => p.Grad).Where(g => g is not null).Select(g => g!).ToArray();
        double ss = 0;
        foreach (var g in grads)
        {
            var c = Kernels.Contiguous(g);
            ss += Kernels.DotDouble(c.Span, c.Span);
        }
        double norm = Math.Sqrt(ss);
        if (norm > maxNorm)
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var g in grads)
            {
                if (!g.IsContiguous) throw new InvalidOperationException("Internal error: parameter gradients are contiguous.");
                System.Numerics.Tensors.TensorPrimitives.Multiply(g.Span, scale, g.Span);
            }
        }
        return norm;
    }

    /// <summary>Clamps every gradient element to [−<paramref name="clip"/>, <paramref name="clip"/>].</summary>
    public static void ClipValue(IEnumerable<Tensor> parameters, float clip)
    {
        if (!(clip > 0)) throw new ArgumentOutOfRangeException(nameof(clip), clip, "The clip value must be > 0.");
        foreach (var p in parameters)
        {
            if (p.Grad is not { } g) continue;
            var s = g.Span;
            System.Numerics.Tensors.TensorPrimitives.Max(s, -clip, s);
            System.Numerics.Tensors.TensorPrimitives.Min(s, clip, s);
        }
    }
}
