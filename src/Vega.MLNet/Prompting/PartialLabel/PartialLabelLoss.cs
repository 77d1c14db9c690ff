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
}

/// <summary>
/// A partial-label objective over a fixed training set (confidences are per sample, indexed by the sample's position
/// in the training set). <see cref="Loss"/> records on the tape; <see cref="Update"/> re-estimates the confidences
/// from the current logits (RC, LWS) and must be called after each optimiser step with the same samples.
/// </summary>
internal sealed class PartialLabelLoss
{
    private readonly CandidateLabels _candidates;
    private float[]? _confidence; // [N, C] for RC and LWS

    public PartialLabelLoss(PartialLabelLossKind kind, CandidateLabels candidates, float lwsBeta = 1f)
    {
        Kind = kind;
        _candidates = candidates;
        LwsBeta = lwsBeta;
        int c = candidates.ClassCount;
        if (kind == PartialLabelLossKind.CrossEntropy && !candidates.IsSingleLabel)
            throw new ArgumentException("Plain cross-entropy needs exactly one label per sample (q = 0); use cc, rc, lws, cavl or naive for candidate sets.");
        if (kind == PartialLabelLossKind.RC)
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
    }

    public PartialLabelLossKind Kind { get; }

    /// <summary>The confidences (RC, LWS) as one array, for checkpoints; null for stateless objectives.</summary>
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

    /// <summary>The current confidences of sample <paramref name="i"/> (RC, LWS), for tests and diagnostics.</summary>
    public ReadOnlySpan<float> Confidence(int i) =>
        _confidence is null ? throw new InvalidOperationException($"{Kind} keeps no confidences.") : _confidence.AsSpan(i * _candidates.ClassCount, _candidates.ClassCount);

    /// <summary>The mean loss of a batch: <paramref name="logits"/> [B, C] for the samples <paramref name="samples"/>.</summary>
    public Tensor Loss(Tensor logits, ReadOnlySpan<int> samples)
    {
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

    /// <summary>Re-estimates the confidences of <paramref name="samples"/> from <paramref name="logits"/> (no gradient).</summary>
    public void Update(Tensor logits, ReadOnlySpan<int> samples)
    {
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
/// L = L_PLL + (sg(L_PLL) / sg(L_align))·L_align (sg = stop-gradient), so the alignment term always carries the same
/// weight as the partial-label term.
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

    /// <summary>L_PLL + (sg(L_PLL)/sg(L_align))·L_align; the weight is 0 when L_align vanishes.</summary>
    public static Tensor Combine(Tensor pllLoss, Tensor alignLoss)
    {
        double pll = pllLoss.Item(), align = alignLoss.Item();
        float weight = align > 1e-12 ? (float)(pll / align) : 0f;
        return Ops.Add(pllLoss, Ops.MulScalar(alignLoss, weight));
    }
}
