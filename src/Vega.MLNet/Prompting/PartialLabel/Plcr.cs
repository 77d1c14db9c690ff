using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>
/// PLCR (Wu, Wang and Zhang, "Revisiting Consistency Regularization for Deep Partial Label Learning", ICML 2022) on a
/// frozen image encoder. The weak view is the original image (the centre crop the model sees at test time); the strong
/// views are cached augmented views (<see cref="PlcrSettings.StrongViews"/> per step, drawn from the seed, the epoch and
/// the image). With p_v the softmax of view v, per sample:
/// <list type="bullet">
/// <item>supervised term on the non-candidates of the weak view: −Σ_{j∉S} log(1 − p_weak,j) (1 − p floored at 1e-7);</item>
/// <item>consistency term: Σ_v KL(r ‖ p_v) over the weak and strong views, with r the conformal label distribution
/// (state, uniform over the candidates at the start);</item>
/// <item>L = L_sup + λ(e)·L_cons with λ(e) = λ·min(e / ramp, 1) per epoch;</item>
/// <item>after the optimiser step: r_j ∝ 1[j∈S]·(Π_v p_v,j)^{1/V} from the step's detached predictions (the closed-form
/// minimiser of Σ_v KL(r ‖ p_v) over distributions supported on S).</item>
/// </list>
/// </summary>
internal sealed class PlcrState
{
    private readonly CandidateLabels _candidates;
    private readonly int _c;
    private (int[] Samples, double[] LogProbabilitySums, int Views)? _pending;

    public PlcrState(PlcrSettings settings, CandidateLabels candidates)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!(settings.ConsistencyWeight >= 0) || double.IsInfinity(settings.ConsistencyWeight))
            throw new ArgumentOutOfRangeException(nameof(settings), settings.ConsistencyWeight, "PLCR's consistency weight must be a finite number ≥ 0.");
        if (settings.RampEpochs is < 0) throw new ArgumentOutOfRangeException(nameof(settings), settings.RampEpochs, "PLCR's ramp must be ≥ 0 epochs.");
        if (settings.StrongViews < 0) throw new ArgumentOutOfRangeException(nameof(settings), settings.StrongViews, "PLCR needs ≥ 0 strong views.");
        Settings = settings;
        _candidates = candidates;
        _c = candidates.ClassCount;
    }

    public PlcrSettings Settings { get; }

    /// <summary>λ(e) = λ·min(e / ramp, 1), ramp = <see cref="PlcrSettings.RampEpochs"/> or half the run.</summary>
    public double ConsistencyWeight(int epoch, int epochs)
    {
        int ramp = Settings.RampEpochs ?? epochs / 2;
        return ramp <= 0 ? Settings.ConsistencyWeight : Settings.ConsistencyWeight * Math.Min((double)epoch / ramp, 1.0);
    }

    public Tensor Loss(PllStep step, float[] confidence)
    {
        var samples = step.Samples;
        int b = samples.Length, c = _c;
        var views = new List<Tensor> { step.Logits };
        for (int s = 0; s < Settings.StrongViews; s++) views.Add(step.LogitsOf(step.ViewImages(ViewRole.Strong, s)));

        // Supervised term on the weak view's non-candidates.
        var p = Ops.Softmax(step.Logits, 1);
        var logNot = Ops.Log(Ops.Clamp(Ops.AddScalar(Ops.Neg(p), 1f), 1e-7f, 1f));
        var nonCandidates = new float[b * c];
        for (int k = 0; k < b; k++)
            for (int j = 0; j < c; j++) nonCandidates[k * c + j] = _candidates.Contains(samples[k], j) ? 0f : 1f;
        var supervised = PartialLabelLoss.WeightedNll(logNot, Tensor.FromArray(nonCandidates, b, c));

        // Consistency: Σ_v KL(r ‖ p_v) = Σ_v Σ_j r_j (log r_j − log p_v,j).
        var r = new float[b * c];
        double entropyTerm = 0;
        for (int k = 0; k < b; k++)
            for (int j = 0; j < c; j++)
            {
                float v = confidence[samples[k] * c + j];
                r[k * c + j] = v;
                if (v > 0) entropyTerm += v * Math.Log(v);
            }
        var target = Tensor.FromArray(r, b, c);
        var sums = new double[b * c];
        Tensor? cross = null;
        foreach (var logits in views)
        {
            var logp = Ops.LogSoftmax(logits, 1);
            var lp = logp.ToArray();
            for (int e = 0; e < sums.Length; e++) sums[e] += lp[e];
            var term = PartialLabelLoss.WeightedNll(logp, target); // (1/B) Σ −r log p_v
            cross = cross is null ? term : Ops.Add(cross, term);
        }
        var consistency = Ops.AddScalar(cross!, (float)(views.Count * entropyTerm / b));
        _pending = (samples, sums, views.Count);
        return Ops.Add(supervised, Ops.MulScalar(consistency, (float)ConsistencyWeight(step.Epoch, step.Epochs)));
    }

    /// <summary>The conformal distributions of <paramref name="samples"/> from the last <see cref="Loss"/>'s predictions.</summary>
    public void Update(ReadOnlySpan<int> samples, float[] confidence)
    {
        var (pendingSamples, sums, views) = _pending ?? throw new InvalidOperationException("PLCR: Update without a preceding Loss of the same samples.");
        if (!samples.SequenceEqual(pendingSamples)) throw new InvalidOperationException("PLCR: Update must follow the Loss of the same samples.");
        _pending = null;
        int c = _c;
        for (int k = 0; k < samples.Length; k++)
        {
            int i = samples[k];
            // log r_j = mean_v log p_v,j over the candidates, normalised in the log domain.
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++)
                if (_candidates.Contains(i, j)) max = Math.Max(max, sums[k * c + j] / views);
            double total = 0;
            for (int j = 0; j < c; j++)
                if (_candidates.Contains(i, j)) total += Math.Exp(sums[k * c + j] / views - max);
            for (int j = 0; j < c; j++)
                confidence[i * c + j] = _candidates.Contains(i, j) ? (float)(Math.Exp(sums[k * c + j] / views - max) / total) : 0f;
        }
    }
}
