using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>Objectives for learning from candidate-label sets (docs/partial-labels.md has the formulas).</summary>
public enum PartialLabelLossKind
{
    /// <summary>Plain cross-entropy; every sample must have exactly one candidate (q = 0).</summary>
    CrossEntropy,
    /// <summary>Mean −log p over the candidates.</summary>
    Naive,
    /// <summary>Classifier-consistent: −log Σ_{j∈S} p_j (Feng et al. 2020).</summary>
    CC,
    /// <summary>Risk-consistent: confidence-weighted cross-entropy, confidences re-estimated from the model after every
    /// step (PRODEN-style; Feng et al. 2020).</summary>
    RC,
    /// <summary>Leveraged weighted loss (Wen et al. 2021): weighted −log p on candidates plus β·weighted −log(1 − p) on
    /// non-candidates, confidences re-estimated per group after every step.</summary>
    LWS,
    /// <summary>Class activation value (Zhang et al. 2022): cross-entropy to the candidate with the largest z·|1 − z|.</summary>
    CAVL,
    /// <summary>PiCO (Wang et al. 2022): cross-entropy to per-sample pseudo-targets disambiguated by class prototypes,
    /// plus a supervised contrastive term on the L2-normalised class-score embeddings of two views
    /// (<see cref="PicoSettings"/>, docs/partial-labels.md).</summary>
    PiCO,
    /// <summary>PLCR (Wu et al. 2022): supervised learning on the non-candidates plus consistency of a weak and strong views
    /// with a conformal label distribution over the candidates (<see cref="PlcrSettings"/>, docs/partial-labels.md).</summary>
    PLCR,
}

/// <summary>Hyper-parameters of the PiCO objective. Defaults follow PiCO's paper and code except where the short
/// prompt-learning schedule needs otherwise (docs/partial-labels.md explains each).</summary>
public sealed record PicoSettings
{
    /// <summary>λ, the weight of the contrastive term (PiCO: 0.5).</summary>
    public double ContrastiveWeight { get; init; } = 0.5;

    /// <summary>τ, the temperature of the contrastive term (PiCO: 0.07).</summary>
    public double Temperature { get; init; } = 0.07;

    /// <summary>Length of the queue of past keys (PiCO: 8192 for 50 000 images; here about six epochs of 16-shot data).</summary>
    public int QueueSize { get; init; } = 1024;

    /// <summary>Momentum of the key head, an exponential moving average of the class weights (MoCo's key encoder; PiCO
    /// 0.999 over about 10⁵ steps, 0.9 here for runs of a few hundred steps).</summary>
    public double KeyMomentum { get; init; } = 0.9;

    /// <summary>γ, the moving-average momentum of the class prototypes (PiCO: 0.99).</summary>
    public double PrototypeMomentum { get; init; } = 0.99;

    /// <summary>φ at the first epoch: the pseudo-target's moving-average momentum, decaying linearly (PiCO: 0.95 → 0.8).</summary>
    public double TargetMomentumStart { get; init; } = 0.95;

    /// <summary>φ at the last epoch.</summary>
    public double TargetMomentumEnd { get; init; } = 0.8;

    /// <summary>ε in q = u / max(‖u‖, ε), the normalisation of the class-score embeddings u = x·Hᵀ (PyTorch's normalize
    /// uses 10⁻¹²): a zero-initialised linear probe starts with u ≈ 0, whose unit-length normalisation has a 1/‖u‖
    /// gradient; CoOp's cosine embeddings have norms far above this floor.</summary>
    public double NormFloor { get; init; } = 0.05;

    /// <summary>First epoch of prototype-based disambiguation and of the supervised contrastive term (PiCO's prot_start: 1;
    /// before it the contrastive term is MoCo's, with the own key as the only positive).</summary>
    public int StartEpoch { get; init; } = 1;
}

/// <summary>Hyper-parameters of the PLCR objective (docs/partial-labels.md).</summary>
public sealed record PlcrSettings
{
    /// <summary>λ, the final weight of the consistency term (PLCR: 1).</summary>
    public double ConsistencyWeight { get; init; } = 1.0;

    /// <summary>Epochs over which the consistency weight ramps linearly from 0 to λ (PLCR: 100 of 200 epochs); null = half
    /// of the run's epochs.</summary>
    public int? RampEpochs { get; init; }

    /// <summary>Strong views per image and step (PLCR: 2), drawn from the cached augmented views.</summary>
    public int StrongViews { get; init; } = 2;
}

/// <summary>
/// A partial-label objective over a fixed training set (state is per sample, indexed by the sample's position in the
/// training set). <see cref="Loss(PllStep)"/> records on the tape and does not change the state; <see cref="Update"/>
/// re-estimates it (RC and LWS confidences, PiCO's pseudo-targets, prototypes, queue and key head, PLCR's conformal
/// distributions) and must be called after each optimiser step with the same samples.
/// </summary>
internal sealed class PartialLabelLoss
{
    private readonly CandidateLabels _candidates;
    private float[]? _confidence; // [N, C] for RC, LWS and PLCR; PiCO keeps its pseudo-targets in _pico
    private readonly PicoState? _pico;
    private readonly PlcrState? _plcr;

    public PartialLabelLoss(PartialLabelLossKind kind, CandidateLabels candidates, float lwsBeta = 1f, PicoSettings? pico = null, PlcrSettings? plcr = null)
    {
        Kind = kind;
        _candidates = candidates;
        LwsBeta = lwsBeta;
        int c = candidates.ClassCount;
        if (kind == PartialLabelLossKind.CrossEntropy && !candidates.IsSingleLabel)
            throw new ArgumentException("Plain cross-entropy needs exactly one label per sample (q = 0); use cc, rc, lws, cavl, naive, pico or plcr for candidate sets.");
        if (kind is PartialLabelLossKind.RC or PartialLabelLossKind.PLCR)
        {
            _confidence = new float[candidates.Count * c];
            for (int i = 0; i < candidates.Count; i++)
            {
                var row = candidates.Row(i);
                float w = 1f / candidates.SetSize(i);
                for (int j = 0; j < c; j++) _confidence[i * c + j] = row[j] * w;
            }
        }
        else if (kind == PartialLabelLossKind.LWS)
        {
            _confidence = new float[candidates.Count * c];
            Array.Fill(_confidence, 1f / c);
        }
        if (kind == PartialLabelLossKind.PiCO) _pico = new PicoState(pico ?? new PicoSettings(), candidates);
        if (kind == PartialLabelLossKind.PLCR) _plcr = new PlcrState(plcr ?? new PlcrSettings(), candidates);
    }

    public PartialLabelLossKind Kind { get; }

    /// <summary>PiCO and PLCR take the original image as their weak view (PiCO's query, PLCR's supervised view) every
    /// epoch; their strong views are the cached augmented views.</summary>
    public bool MainViewIsOriginal => Kind is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR;

    /// <summary>PiCO's state (prototypes, queue, key head), when the objective is PiCO.</summary>
    internal PicoState? Pico => _pico;

    /// <summary>PLCR's schedule, when the objective is PLCR.</summary>
    internal PlcrState? Plcr => _plcr;

    /// <summary>Everything <see cref="Update"/> changes, by name, for checkpoints (empty for stateless objectives).</summary>
    public Dictionary<string, float[]> ExportState()
    {
        var state = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (_confidence is not null) state["confidence"] = (float[])_confidence.Clone();
        _pico?.Export(state);
        return state;
    }

    /// <summary>Restores a state written by <see cref="ExportState"/> for the same objective and training set.</summary>
    public void ImportState(IReadOnlyDictionary<string, float[]> state)
    {
        float[] Get(string name, int length)
        {
            if (!state.TryGetValue(name, out var v) || v.Length != length)
                throw new InvalidDataException($"The {Kind} objective expects '{name}' with {length} values, the checkpoint has {(state.TryGetValue(name, out var w) ? w.Length : 0)}.");
            return (float[])v.Clone();
        }
        if (_confidence is not null) _confidence = Get("confidence", _confidence.Length);
        _pico?.Import(Get);
    }

    /// <summary>The confidences (RC, LWS, PLCR) as one array; null for objectives without them.</summary>
    public float[]? ConfidenceState
    {
        get => _confidence;
        set
        {
            if (_confidence is null || value is null || value.Length != _confidence.Length)
                throw new InvalidDataException($"The {Kind} objective expects {(_confidence?.Length ?? 0)} confidences, the checkpoint has {value?.Length ?? 0}.");
            _confidence = (float[])value.Clone();
        }
    }

    public float LwsBeta { get; }

    /// <summary>The current confidences of sample <paramref name="i"/> (RC, LWS, PLCR; PiCO's pseudo-targets), for tests and diagnostics.</summary>
    public ReadOnlySpan<float> Confidence(int i) =>
        _pico is not null ? _pico.Target(i)
        : _confidence is null ? throw new InvalidOperationException($"{Kind} keeps no confidences.") : _confidence.AsSpan(i * _candidates.ClassCount, _candidates.ClassCount);

    /// <summary>The mean loss of one training step.</summary>
    public Tensor Loss(PllStep step) => Kind switch
    {
        PartialLabelLossKind.PiCO => _pico!.Loss(step),
        PartialLabelLossKind.PLCR => _plcr!.Loss(step, _confidence!),
        _ => Loss(step.Logits, step.Samples),
    };

    /// <summary>The mean loss of a batch: <paramref name="logits"/> [B, C] for the samples <paramref name="samples"/>
    /// (the single-view objectives; PiCO and PLCR need a whole <see cref="PllStep"/>).</summary>
    public Tensor Loss(Tensor logits, ReadOnlySpan<int> samples)
    {
        if (Kind is PartialLabelLossKind.PiCO or PartialLabelLossKind.PLCR)
            throw new InvalidOperationException($"The {Kind} objective needs the views and class weights of the step (Loss(PllStep)).");
        int b = samples.Length, c = _candidates.ClassCount;
        if (logits.Rank != 2 || logits.Shape[0] != b || logits.Shape[1] != c)
            throw new ArgumentException($"Logits of shape {logits.ShapeString} do not match {b} samples × {c} classes.");
        var logp = Ops.LogSoftmax(logits, 1);
        switch (Kind)
        {
            case PartialLabelLossKind.CrossEntropy:
            case PartialLabelLossKind.Naive:
                return WeightedNll(logp, Weights(samples, (i, j) => _candidates.Contains(i, j) ? 1f / _candidates.SetSize(i) : 0f));
            case PartialLabelLossKind.RC:
                return WeightedNll(logp, Weights(samples, (i, j) => _confidence![i * c + j]));
            case PartialLabelLossKind.CC:
            {
                // −log Σ_{j∈S} exp(log p_j), a log-sum-exp over the candidates shifted by their (constant) maximum.
                var notCandidate = Weights(samples, (i, j) => _candidates.Contains(i, j) ? 0f : 1f);
                var masked = Ops.MaskedFill(logp, notCandidate, -1e30f);
                var shift = Tensor.FromArray(RowMax(masked), b, 1);
                var lse = Ops.Add(Ops.Log(Ops.Sum(Ops.Exp(Ops.Sub(masked, shift)), [1])), Ops.Reshape(shift, b));
                return Ops.Neg(Ops.Mean(lse));
            }
            case PartialLabelLossKind.LWS:
            {
                var wIn = Weights(samples, (i, j) => _candidates.Contains(i, j) ? _confidence![i * c + j] : 0f);
                var wOut = Weights(samples, (i, j) => _candidates.Contains(i, j) ? 0f : _confidence![i * c + j] * LwsBeta);
                var p = Ops.Exp(logp);
                var logNotP = Ops.Log(Ops.AddScalar(Ops.Neg(p), 1f + 1e-8f));
                return Ops.Add(WeightedNll(logp, wIn), WeightedNll(logNotP, wOut));
            }
            case PartialLabelLossKind.CAVL:
            {
                var z = logits.ToArray();
                var target = new float[b * c];
                for (int k = 0; k < b; k++)
                {
                    int best = -1;
                    double bestValue = double.NegativeInfinity;
                    for (int j = 0; j < c; j++)
                    {
                        if (!_candidates.Contains(samples[k], j)) continue; // argmax over candidates only
                        double v = z[k * c + j] * Math.Abs(1.0 - z[k * c + j]);
                        if (v > bestValue) { bestValue = v; best = j; }
                    }
                    target[k * c + best] = 1f;
                }
                return WeightedNll(logp, Tensor.FromArray(target, b, c));
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(Kind), Kind, null);
        }
    }

    /// <summary>
    /// Re-estimates the state of <paramref name="samples"/> after the optimiser step: RC and LWS from the step's
    /// <paramref name="logits"/> (no gradient), PiCO and PLCR from what their last <see cref="Loss(PllStep)"/> of these
    /// samples computed.
    /// </summary>
    public void Update(Tensor logits, ReadOnlySpan<int> samples, int epoch = 0)
    {
        if (_pico is not null) { _pico.Update(samples, epoch); return; }
        if (_plcr is not null) { _plcr.Update(samples, _confidence!); return; }
        if (_confidence is null) return;
        int b = samples.Length, c = _candidates.ClassCount;
        var z = logits.ToArray();
        var p = new double[c];
        for (int k = 0; k < b; k++)
        {
            int i = samples[k];
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < c; j++) max = Math.Max(max, z[k * c + j]);
            for (int j = 0; j < c; j++) { p[j] = Math.Exp(z[k * c + j] - max); sum += p[j]; }
            double inSum = 0, outSum = 0;
            for (int j = 0; j < c; j++)
            {
                p[j] /= sum;
                if (_candidates.Contains(i, j)) inSum += p[j]; else outSum += p[j];
            }
            for (int j = 0; j < c; j++)
            {
                bool candidate = _candidates.Contains(i, j);
                _confidence[i * c + j] = Kind switch
                {
                    PartialLabelLossKind.RC => candidate ? (float)(p[j] / inSum) : 0f,
                    _ => (float)(candidate ? p[j] / (inSum + 1e-8) : p[j] / (outSum + 1e-8)),
                };
            }
        }
    }

    /// <summary>Mean over rows of −Σ_j w_ij · v_ij.</summary>
    internal static Tensor WeightedNll(Tensor values, Tensor weights) =>
        Ops.DivScalar(Ops.Neg(Ops.Sum(Ops.Mul(values, weights))), values.Shape[0]);

    private Tensor Weights(ReadOnlySpan<int> samples, Func<int, int, float> f)
    {
        int b = samples.Length, c = _candidates.ClassCount;
        var w = new float[b * c];
        for (int k = 0; k < b; k++)
            for (int j = 0; j < c; j++) w[k * c + j] = f(samples[k], j);
        return Tensor.FromArray(w, b, c);
    }

    private static float[] RowMax(Tensor t)
    {
        var v = t.ToArray();
        int b = t.Shape[0], c = t.Shape[1];
        var m = new float[b];
        for (int k = 0; k < b; k++)
        {
            float best = float.NegativeInfinity;
            for (int j = 0; j < c; j++) best = Math.Max(best, v[k * c + j]);
            m[k] = best;
        }
        return m;
    }
}

/// <summary>
/// Alignment of the learnable prompt's prediction to the handcrafted prompt's posterior restricted to the candidates
/// (Zhang et al., "Tuning Vision-Language Models with Candidate Labels by Prompt Alignment"):
/// π_j = q_j·1[j∈S] / Σ_{k∈S} q_k with q the teacher's softmax; L_align = mean −Σ_j π_j log p_j; and the total
/// L = L_PLL + λ·(sg(L_PLL) / sg(L_align))·L_align (dynamic weighting, sg = stop-gradient: the alignment term always
/// carries λ times the weight of the partial-label term) or L = L_PLL + λ·L_align (fixed weighting).
/// </summary>
internal static class PromptAlignment
{
    /// <summary>π for a batch: the teacher logits' softmax restricted to each sample's candidates and renormalised.</summary>
    public static float[] RestrictedTeacher(ReadOnlySpan<float> teacherLogits, CandidateLabels candidates, ReadOnlySpan<int> samples)
    {
        int c = candidates.ClassCount;
        var pi = new float[samples.Length * c];
        var q = new double[c];
        for (int k = 0; k < samples.Length; k++)
        {
            var z = teacherLogits.Slice(k * c, c);
            double max = double.NegativeInfinity;
            foreach (float v in z) max = Math.Max(max, v);
            double sum = 0;
            for (int j = 0; j < c; j++)
            {
                q[j] = candidates.Contains(samples[k], j) ? Math.Exp(z[j] - max) : 0;
                sum += q[j];
            }
            for (int j = 0; j < c; j++) pi[k * c + j] = (float)(q[j] / sum);
        }
        return pi;
    }

    /// <summary>L_align = mean over the batch of the cross-entropy of softmax(<paramref name="logits"/>) to π.</summary>
    public static Tensor AlignmentLoss(Tensor logits, float[] pi) =>
        PartialLabelLoss.WeightedNll(Ops.LogSoftmax(logits, 1), Tensor.FromArray(pi, logits.Shape[0], logits.Shape[1]));

    /// <summary>
    /// Dynamic: L_PLL + λ·(sg(L_PLL)/sg(L_align))·L_align, the ratio a constant of the step (no gradient flows through
    /// it) and 0 when L_align vanishes; fixed: L_PLL + λ·L_align.
    /// </summary>
    public static Tensor Combine(Tensor pllLoss, Tensor alignLoss, AlignmentWeighting weighting = AlignmentWeighting.Dynamic, double weight = 1.0)
    {
        double factor = weight;
        if (weighting == AlignmentWeighting.Dynamic)
        {
            double pll = pllLoss.Item(), align = alignLoss.Item();
            factor = align > 1e-12 ? weight * pll / align : 0;
        }
        return Ops.Add(pllLoss, Ops.MulScalar(alignLoss, (float)factor));
    }
}
