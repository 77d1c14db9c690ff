using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>
/// PiCO (Wang et al., "PiCO: Contrastive Label Disambiguation for Partial Label Learning", ICLR 2022) on a frozen image
/// encoder. The trainable part is the classifier head H [C, D] (CoOp's text features or the probe's weights), so the
/// contrastive embedding of an image x is its L2-normalised class-score vector q = x·Hᵀ / max(‖x·Hᵀ‖, ε) ∈ R^C (the head plays
/// PiCO's projection head), the key encoder is an exponential moving average H̄ of H (MoCo's momentum encoder, updated
/// before the keys are computed), and the two augmentations are the step's main view (query) and another cached view
/// (key). Per step:
/// <list type="bullet">
/// <item>pseudo-label ŷ = argmax over the candidates of the classifier's logits;</item>
/// <item>prototype label ẑ = argmax over the candidates of q·μ_c with the class prototypes μ before this step's update;</item>
/// <item>from <see cref="PicoSettings.StartEpoch"/> on, pseudo-target s ← φ·s + (1 − φ)·onehot(ẑ), φ decaying linearly
/// over the run (s starts uniform over the candidates); the classification loss is −Σ_j s_j log p_j with the updated s;</item>
/// <item>contrastive loss: from the start epoch on, supervised contrastive over q (anchors) against [q; k; queue]
/// without the anchor itself, positives = the entries whose pseudo-label equals ŷ; before it, MoCo's InfoNCE with the
/// own key as the only positive and the queue as negatives; temperature τ;</item>
/// <item>L = L_cls + λ·L_cont;</item>
/// <item>after the optimiser step: μ_ŷ ← γ·μ_ŷ + (1 − γ)·q sample by sample, then every prototype L2-normalised; the keys
/// and their pseudo-labels enter the queue; s and H̄ are committed.</item>
/// </list>
/// <see cref="Loss"/> does not change the state (it stashes what <see cref="Update"/> commits), so evaluating it twice
/// gives the same value.
/// </summary>
internal sealed class PicoState
{
    private readonly CandidateLabels _candidates;
    private readonly int _c;
    private float[] _targets;       // [N, C] pseudo-targets s
    private float[] _prototypes;    // [C, C] prototypes μ (rows, L2-normalised or zero)
    private float[] _queue;         // [Q, C] keys
    private float[] _queueLabels;   // [Q] their pseudo-labels
    private int _queueCount, _queuePointer;
    private float[]? _keyHead;      // [C, D] H̄, null before the first step
    private int _width;
    private Pending? _pending;

    private sealed record Pending(int[] Samples, float[] Queries, float[] Keys, int[] PseudoLabels, float[] Targets, bool TargetsUpdated, float[] KeyHead, int Width);

    public PicoState(PicoSettings settings, CandidateLabels candidates)
    {
        Validate(settings);
        Settings = settings;
        _candidates = candidates;
        _c = candidates.ClassCount;
        _targets = new float[candidates.Count * _c];
        for (int i = 0; i < candidates.Count; i++)
        {
            float w = 1f / candidates.SetSize(i);
            for (int j = 0; j < _c; j++) _targets[i * _c + j] = candidates.Contains(i, j) ? w : 0f;
        }
        _prototypes = new float[_c * _c];
        _queue = new float[settings.QueueSize * _c];
        _queueLabels = new float[settings.QueueSize];
    }

    public PicoSettings Settings { get; }

    private static void Validate(PicoSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        static bool Fraction(double v) => v >= 0 && v <= 1;
        if (!(s.ContrastiveWeight >= 0) || double.IsInfinity(s.ContrastiveWeight)) throw new ArgumentOutOfRangeException(nameof(s), s.ContrastiveWeight, "PiCO's contrastive weight must be a finite number ≥ 0.");
        if (!(s.Temperature > 0) || double.IsInfinity(s.Temperature)) throw new ArgumentOutOfRangeException(nameof(s), s.Temperature, "PiCO's temperature must be positive.");
        if (s.QueueSize < 0) throw new ArgumentOutOfRangeException(nameof(s), s.QueueSize, "PiCO's queue size must be ≥ 0.");
        if (!Fraction(s.KeyMomentum) || !Fraction(s.PrototypeMomentum) || !Fraction(s.TargetMomentumStart) || !Fraction(s.TargetMomentumEnd))
            throw new ArgumentOutOfRangeException(nameof(s), "PiCO's momenta must be in [0, 1].");
        if (!(s.NormFloor > 0) || double.IsInfinity(s.NormFloor)) throw new ArgumentOutOfRangeException(nameof(s), s.NormFloor, "PiCO's norm floor must be positive.");
        if (s.StartEpoch < 0) throw new ArgumentOutOfRangeException(nameof(s), s.StartEpoch, "PiCO's start epoch must be ≥ 0.");
    }

    /// <summary>The pseudo-target of sample <paramref name="i"/>.</summary>
    public ReadOnlySpan<float> Target(int i) => _targets.AsSpan(i * _c, _c);

    /// <summary>The class prototypes [C, C] (row c = μ_c).</summary>
    public ReadOnlySpan<float> Prototypes => _prototypes;

    /// <summary>The filled part of the queue, oldest first, and the keys' pseudo-labels.</summary>
    public (float[] Keys, int[] Labels) QueueContents()
    {
        int q = Settings.QueueSize, n = _queueCount;
        var keys = new float[n * _c];
        var labels = new int[n];
        int first = n < q ? 0 : _queuePointer;
        for (int r = 0; r < n; r++)
        {
            int slot = (first + r) % q;
            _queue.AsSpan(slot * _c, _c).CopyTo(keys.AsSpan(r * _c, _c));
            labels[r] = (int)_queueLabels[slot];
        }
        return (keys, labels);
    }

    /// <summary>H̄, the key head [C, D], or null before the first step.</summary>
    public float[]? KeyHead => _keyHead;

    /// <summary>φ of <paramref name="epoch"/>: linear from the start to the end value over the run (PiCO's conf_ema_range).</summary>
    public double TargetMomentum(int epoch, int epochs) =>
        Settings.TargetMomentumStart + (Settings.TargetMomentumEnd - Settings.TargetMomentumStart) * epoch / Math.Max(1, epochs);

    public Tensor Loss(PllStep step)
    {
        var samples = step.Samples;
        int b = samples.Length, c = _c;
        var logits = step.Logits;
        var h = step.ClassWeights;
        if (h.Rank != 2 || h.Shape[0] != c) throw new ArgumentException($"PiCO: the class weights must be [{c}, D], got {h.ShapeString}.");
        int d = h.Shape[1];
        if (_keyHead is not null && d != _width) throw new ArgumentException($"PiCO: the class weights changed width from {_width} to {d}.");

        // Pseudo-labels: the classifier's prediction restricted to the candidates.
        var z = logits.ToArray();
        var pseudo = new int[b];
        for (int k = 0; k < b; k++) pseudo[k] = ArgmaxOverCandidates(z.AsSpan(k * c, c), samples[k]);

        // Query embeddings q = norm(x·Hᵀ) (on the tape) and, detached, their prototype labels.
        var q = Ops.L2Normalize(Ops.MatMul(step.Images, Ops.Transpose(h, 1, 0)), -1, (float)Settings.NormFloor);
        var qValues = q.ToArray();
        bool supervised = step.Epoch >= Settings.StartEpoch;
        var targets = new float[b * c];
        for (int k = 0; k < b; k++) Target(samples[k]).CopyTo(targets.AsSpan(k * c, c));
        if (supervised)
        {
            double phi = TargetMomentum(step.Epoch, step.Epochs);
            for (int k = 0; k < b; k++)
            {
                int z2 = PrototypeLabel(qValues.AsSpan(k * c, c), samples[k]);
                for (int j = 0; j < c; j++)
                    targets[k * c + j] = (float)(phi * targets[k * c + j] + (1 - phi) * (j == z2 ? 1 : 0));
            }
        }
        var cls = PartialLabelLoss.WeightedNll(Ops.LogSoftmax(logits, 1), Tensor.FromArray(targets, b, c));

        // Keys: the other view through the key head H̄ (updated from H before use, as MoCo does), no gradient.
        var hValues = h.ToArray();
        var keyHead = new float[c * d];
        double m = Settings.KeyMomentum;
        for (int e = 0; e < keyHead.Length; e++) keyHead[e] = _keyHead is null ? hValues[e] : (float)(m * _keyHead[e] + (1 - m) * hValues[e]);
        var keys = Keys(step.ViewImages(ViewRole.Key, 0), keyHead, d);

        var (queue, queueLabels) = QueueContents();
        int mq = queueLabels.Length;
        var kTensor = Tensor.FromArray(keys, b, c);
        Tensor contrast;
        float invT = (float)(1.0 / Settings.Temperature);
        if (supervised)
        {
            // Supervised contrastive: anchors q against [q; k; queue] without the anchor; positives share its pseudo-label.
            var parts = new List<Tensor> { q, kTensor };
            if (mq > 0) parts.Add(Tensor.FromArray(queue, mq, c));
            var features = Ops.Concat(parts, 0);
            int width = 2 * b + mq;
            var scores = Ops.MulScalar(Ops.MatMul(q, Ops.Transpose(features, 1, 0)), invT);
            var self = new float[b * width];
            for (int k = 0; k < b; k++) self[k * width + k] = 1f;
            var logp = Ops.LogSoftmax(Ops.MaskedFill(scores, Tensor.FromArray(self, b, width), -1e30f), 1);
            var weights = new float[b * width];
            for (int k = 0; k < b; k++)
            {
                int positives = 0;
                for (int j = 0; j < width; j++)
                    if (j != k && LabelOf(j) == pseudo[k]) positives++;
                for (int j = 0; j < width; j++)
                    if (j != k && LabelOf(j) == pseudo[k]) weights[k * width + j] = 1f / positives;
            }
            contrast = PartialLabelLoss.WeightedNll(logp, Tensor.FromArray(weights, b, width));

            int LabelOf(int j) => j < b ? pseudo[j] : j < 2 * b ? pseudo[j - b] : queueLabels[j - 2 * b];
        }
        else
        {
            // MoCo: the own key is the positive, the queue the negatives.
            var positive = Ops.Sum(Ops.Mul(q, kTensor), [1], keepDims: true);
            var all = mq > 0 ? Ops.Concat([positive, Ops.MatMul(q, Ops.Transpose(Tensor.FromArray(queue, mq, c), 1, 0))], 1) : positive;
            var logp = Ops.LogSoftmax(Ops.MulScalar(all, invT), 1);
            var first = new float[b * (1 + mq)];
            for (int k = 0; k < b; k++) first[k * (1 + mq)] = 1f;
            contrast = PartialLabelLoss.WeightedNll(logp, Tensor.FromArray(first, b, 1 + mq));
        }
        _pending = new Pending(samples, qValues, keys, pseudo, targets, supervised, keyHead, d);
        return Ops.Add(cls, Ops.MulScalar(contrast, (float)Settings.ContrastiveWeight));
    }

    /// <summary>Commits what the last <see cref="Loss"/> of <paramref name="samples"/> computed.</summary>
    public void Update(ReadOnlySpan<int> samples, int epoch)
    {
        var p = _pending ?? throw new InvalidOperationException("PiCO: Update without a preceding Loss of the same samples.");
        if (!samples.SequenceEqual(p.Samples)) throw new InvalidOperationException("PiCO: Update must follow the Loss of the same samples.");
        _pending = null;
        int c = _c, b = p.Samples.Length;
        _keyHead = p.KeyHead;
        _width = p.Width;
        // Prototypes: moving averages of the queries of each pseudo-label, sample by sample, then normalised.
        double g = Settings.PrototypeMomentum;
        for (int k = 0; k < b; k++)
        {
            var row = _prototypes.AsSpan(p.PseudoLabels[k] * c, c);
            for (int j = 0; j < c; j++) row[j] = (float)(g * row[j] + (1 - g) * p.Queries[k * c + j]);
        }
        for (int r = 0; r < c; r++) NormalizeInPlace(_prototypes.AsSpan(r * c, c));
        // Queue: the keys and their pseudo-labels, oldest entries overwritten.
        int capacity = Settings.QueueSize;
        if (capacity > 0)
            for (int k = 0; k < b; k++)
            {
                p.Keys.AsSpan(k * c, c).CopyTo(_queue.AsSpan(_queuePointer * c, c));
                _queueLabels[_queuePointer] = p.PseudoLabels[k];
                _queuePointer = (_queuePointer + 1) % capacity;
                _queueCount = Math.Min(_queueCount + 1, capacity);
            }
        if (p.TargetsUpdated)
            for (int k = 0; k < b; k++) p.Targets.AsSpan(k * c, c).CopyTo(_targets.AsSpan(p.Samples[k] * c, c));
    }

    public void Export(Dictionary<string, float[]> state)
    {
        state["pico.targets"] = (float[])_targets.Clone();
        state["pico.prototypes"] = (float[])_prototypes.Clone();
        state["pico.queue"] = (float[])_queue.Clone();
        state["pico.queue_labels"] = (float[])_queueLabels.Clone();
        state["pico.queue_state"] = [_queueCount, _queuePointer, _width];
        if (_keyHead is not null) state["pico.key_head"] = (float[])_keyHead.Clone();
    }

    public void Import(Func<string, int, float[]> get)
    {
        _targets = get("pico.targets", _targets.Length);
        _prototypes = get("pico.prototypes", _prototypes.Length);
        _queue = get("pico.queue", _queue.Length);
        _queueLabels = get("pico.queue_labels", _queueLabels.Length);
        var s = get("pico.queue_state", 3);
        _queueCount = (int)s[0];
        _queuePointer = (int)s[1];
        _width = (int)s[2];
        if (_queueCount < 0 || _queueCount > Settings.QueueSize || _queuePointer < 0 || (Settings.QueueSize > 0 && _queuePointer >= Settings.QueueSize) || _width < 0)
            throw new InvalidDataException("The checkpoint's PiCO queue state is out of range.");
        _keyHead = _width > 0 ? get("pico.key_head", _c * _width) : null;
        _pending = null;
    }

    private int ArgmaxOverCandidates(ReadOnlySpan<float> values, int sample)
    {
        int best = -1;
        for (int j = 0; j < values.Length; j++)
            if (_candidates.Contains(sample, j) && (best < 0 || values[j] > values[best])) best = j;
        return best;
    }

    private int PrototypeLabel(ReadOnlySpan<float> query, int sample)
    {
        int best = -1;
        double bestScore = double.NegativeInfinity;
        for (int j = 0; j < _c; j++)
        {
            if (!_candidates.Contains(sample, j)) continue;
            double s = 0;
            for (int t = 0; t < _c; t++) s += (double)query[t] * _prototypes[j * _c + t];
            if (s > bestScore) { bestScore = s; best = j; }
        }
        return best;
    }

    /// <summary>norm(X·H̄ᵀ) for the key images [B, D] (float64 sums).</summary>
    private float[] Keys(Tensor images, float[] keyHead, int d)
    {
        var x = images.ToArray();
        int b = images.Shape[0], c = _c;
        if (images.Rank != 2 || images.Shape[1] != d) throw new ArgumentException($"PiCO: key images {images.ShapeString} do not match class weights of width {d}.");
        var keys = new float[b * c];
        var row = new double[c];
        for (int k = 0; k < b; k++)
        {
            double norm = 0;
            for (int j = 0; j < c; j++)
            {
                double s = 0;
                for (int t = 0; t < d; t++) s += (double)x[k * d + t] * keyHead[j * d + t];
                row[j] = s;
                norm += s * s;
            }
            norm = Math.Max(Math.Sqrt(norm), Settings.NormFloor);
            for (int j = 0; j < c; j++) keys[k * c + j] = (float)(row[j] / norm);
        }
        return keys;
    }

    private static void NormalizeInPlace(Span<float> v)
    {
        double norm = 0;
        foreach (float a in v) norm += (double)a * a;
        norm = Math.Max(Math.Sqrt(norm), 1e-12);
        for (int i = 0; i < v.Length; i++) v[i] = (float)(v[i] / norm);
    }
}
