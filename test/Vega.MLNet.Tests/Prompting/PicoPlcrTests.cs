using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Experiments;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Tensors;

namespace Vega.MLNet.Tests.Prompting;

/// <summary>
/// PiCO, PLCR and the alignment weighting on tiny inputs: each loss against a direct float64 computation written here
/// from the papers' definitions (not from the implementation), gradients against finite differences, the state
/// updates (prototypes, queue, pseudo-targets, key head, conformal distributions) against hand-computed values, and
/// training end to end with the linear probe (bit-for-bit resume included).
/// </summary>
public sealed class PicoPlcrTests
{
    // Four samples, three classes, four-dimensional embeddings.
    private static readonly CandidateLabels Sets = CandidateLabels.FromMask([1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1], 4, 3);
    private static readonly int[] Batch = [2, 0, 1];
    private const float Scale = 5f;

    // Class weights with clear structure (class j ≈ axis j), and images whose argmaxes have wide margins.
    private static readonly float[] H = [1.0f, 0.1f, -0.2f, 0.3f, 0.05f, 0.9f, 0.2f, -0.1f, -0.3f, 0.15f, 1.1f, 0.2f];
    private static readonly float[] Main = [0.9f, 0.1f, 0.3f, 0.2f, 0.2f, 1.0f, -0.1f, 0.4f, 0.1f, 0.3f, 0.95f, -0.2f];
    private static readonly float[] Key = [1.0f, 0.3f, 0.1f, -0.1f, 0.3f, 0.8f, 0.2f, 0.1f, -0.2f, 0.2f, 1.0f, 0.3f];
    private static readonly float[] Strong1 = [0.7f, 0.4f, 0.1f, 0.3f, 0.1f, 0.8f, 0.3f, -0.3f, 0.2f, 0.1f, 0.7f, 0.4f];

    private static PllStep Step(Tensor h, int epoch, int epochs, params float[][] strong)
    {
        Tensor Logits(Tensor x) => Ops.MulScalar(Ops.MatMul(x, Ops.Transpose(h, 1, 0)), Scale);
        var main = Tensor.FromArray(Main, 3, 4);
        return new PllStep
        {
            Samples = Batch,
            Epoch = epoch,
            Epochs = epochs,
            Logits = Logits(main),
            Images = main,
            ClassWeights = h,
            LogitsOf = Logits,
            ViewImages = (role, slot) => role == ViewRole.Key ? Tensor.FromArray(Key, 3, 4) : Tensor.FromArray(strong[slot], 3, 4),
        };
    }

    // ---------------------------------------------------------------- direct float64 helpers

    private static double[] Row(float[] m, int r, int n) => Enumerable.Range(0, n).Select(j => (double)m[r * n + j]).ToArray();
    private static double Dot(double[] a, double[] b) => a.Zip(b).Sum(p => p.First * p.Second);
    private static double[] Normalize(double[] v, double floor = 1e-12) { double n = Math.Max(Math.Sqrt(Dot(v, v)), floor); return v.Select(x => x / n).ToArray(); }
    private static double[] Scores(float[] x, int r, float[] h) => Enumerable.Range(0, 3).Select(j => Dot(Row(x, r, 4), Row(h, j, 4))).ToArray();
    private static double[] LogSoftmax(double[] z) { double m = z.Max(); double lse = m + Math.Log(z.Sum(v => Math.Exp(v - m))); return z.Select(v => v - lse).ToArray(); }
    private static int ArgmaxOver(double[] v, int sample) => Enumerable.Range(0, v.Length).Where(j => Sets.Contains(sample, j)).OrderByDescending(j => v[j]).ThenBy(j => j).First();

    /// <summary>A PiCO state: pseudo-targets, prototypes, two queued keys and a key head, set through the checkpoint route.</summary>
    private static (PartialLabelLoss Loss, float[] Targets, float[] Prototypes, float[] Queue, int[] QueueLabels, float[] KeyHead) PicoWithState(PicoSettings settings)
    {
        var loss = new PartialLabelLoss(PartialLabelLossKind.PiCO, Sets, pico: settings);
        var state = loss.ExportState();
        float[] targets = [0.7f, 0.3f, 0, 0, 0.4f, 0.6f, 0.2f, 0.5f, 0.3f, 0, 0, 1];
        var protos = new float[9];
        var p0 = Normalize([0.9, 0.2, -0.1]); var p2 = Normalize([-0.2, 0.1, 1.0]); // class 1 has no prototype yet (zero row)
        for (int j = 0; j < 3; j++) { protos[j] = (float)p0[j]; protos[6 + j] = (float)p2[j]; }
        var k0 = Normalize([0.2, 0.9, 0.3]); var k1 = Normalize([0.8, -0.1, 0.4]);
        var queue = new float[settings.QueueSize * 3];
        for (int j = 0; j < 3; j++) { queue[j] = (float)k0[j]; queue[3 + j] = (float)k1[j]; }
        var queueLabels = new float[settings.QueueSize];
        queueLabels[0] = 1; queueLabels[1] = 0;
        var keyHead = H.Select((v, i) => v + 0.05f * ((i % 5) - 2)).ToArray();
        state["pico.targets"] = targets;
        state["pico.prototypes"] = protos;
        state["pico.queue"] = queue;
        state["pico.queue_labels"] = queueLabels;
        state["pico.queue_state"] = [2, 2, 4];
        state["pico.key_head"] = keyHead;
        loss.ImportState(state);
        return (loss, targets, protos, queue[..6], [1, 0], keyHead);
    }

    /// <summary>PiCO's loss written from the paper: CE to the updated pseudo-target plus λ·(SupCon or MoCo).</summary>
    private static double DirectPico(PicoSettings s, int epoch, int epochs, float[] targets, float[] protos, float[] queue, int[] queueLabels, float[] keyHead, out int[] pseudoLabels, out double[][] newTargets)
    {
        int b = Batch.Length;
        var q = new double[b][];
        var k = new double[b][];
        var pseudo = pseudoLabels = new int[b];
        newTargets = new double[b][];
        double cls = 0;
        double phi = s.TargetMomentumStart + (s.TargetMomentumEnd - s.TargetMomentumStart) * epoch / epochs;
        var barH = H.Select((v, i) => s.KeyMomentum * keyHead[i] + (1 - s.KeyMomentum) * v).Select(v => (float)v).ToArray();
        for (int a = 0; a < b; a++)
        {
            int i = Batch[a];
            var z = Scores(Main, a, H).Select(v => Scale * v).ToArray();
            pseudo[a] = ArgmaxOver(z, i);
            q[a] = Normalize(Scores(Main, a, H), s.NormFloor);
            k[a] = Normalize(Scores(Key, a, barH), s.NormFloor);
            var t = Row(targets, i, 3);
            if (epoch >= s.StartEpoch)
            {
                var protoScores = Enumerable.Range(0, 3).Select(j => Dot(q[a], Row(protos, j, 3))).ToArray();
                int z2 = ArgmaxOver(protoScores, i);
                t = t.Select((v, j) => phi * v + (1 - phi) * (j == z2 ? 1 : 0)).ToArray();
            }
            newTargets[a] = t;
            var logp = LogSoftmax(z);
            cls -= Enumerable.Range(0, 3).Sum(j => t[j] * logp[j]);
        }
        cls /= b;
        double cont = 0;
        int m = queueLabels.Length;
        for (int a = 0; a < b; a++)
        {
            if (epoch >= s.StartEpoch)
            {
                var features = new List<(double[] F, int Label)>();
                for (int j = 0; j < b; j++) features.Add((q[j], pseudo[j]));
                for (int j = 0; j < b; j++) features.Add((k[j], pseudo[j]));
                for (int j = 0; j < m; j++) features.Add((Row(queue, j, 3), queueLabels[j]));
                var logits = features.Select((f, j) => j == a ? double.NaN : Dot(q[a], f.F) / s.Temperature).ToArray();
                double mx = logits.Where(v => !double.IsNaN(v)).Max();
                double lse = mx + Math.Log(logits.Where(v => !double.IsNaN(v)).Sum(v => Math.Exp(v - mx)));
                var positives = Enumerable.Range(0, features.Count).Where(j => j != a && features[j].Label == pseudo[a]).ToList();
                cont -= positives.Average(j => logits[j] - lse);
            }
            else
            {
                var logits = new List<double> { Dot(q[a], k[a]) / s.Temperature };
                for (int j = 0; j < m; j++) logits.Add(Dot(q[a], Row(queue, j, 3)) / s.Temperature);
                cont -= LogSoftmax([.. logits])[0];
            }
        }
        cont /= b;
        return cls + s.ContrastiveWeight * cont;
    }

    [Theory]
    [InlineData(3)] // supervised contrastive, prototype disambiguation on
    [InlineData(0)] // before the start epoch: MoCo, pseudo-targets unchanged
    public void PicoLossEqualsADirectComputation(int epoch)
    {
        var settings = new PicoSettings { QueueSize = 8, KeyMomentum = 0.7 };
        var (loss, targets, protos, queue, queueLabels, keyHead) = PicoWithState(settings);
        double expected = DirectPico(settings, epoch, 10, targets, protos, queue, queueLabels, keyHead, out _, out _);
        using var tape = new Tape();
        double ours = loss.Loss(Step(Tensor.FromArray(H, 3, 4), epoch, 10)).Item();
        Assert.Equal(expected, ours, 5);
        // Loss changes no state: a second evaluation gives the same value.
        Assert.Equal(ours, loss.Loss(Step(Tensor.FromArray(H, 3, 4), epoch, 10)).Item());
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    public void PicoGradientMatchesFiniteDifferences(int epoch)
    {
        // Key momentum 1: the keys come from the stored key head only (the stop-gradient path of H is then constant).
        var settings = new PicoSettings { QueueSize = 8, KeyMomentum = 1.0 };
        var (loss, _, _, _, _, _) = PicoWithState(settings);
        GradCheck.Check(t => loss.Loss(Step(t[0], epoch, 10)), [new GradCheck.Input(H, [3, 4])]);
    }

    [Fact]
    public void PicoUpdateMovesPrototypesQueueTargetsAndKeyHeadAsDefined()
    {
        var settings = new PicoSettings { QueueSize = 4, KeyMomentum = 0.7, PrototypeMomentum = 0.9 };
        var (loss, targets, protos, queue, queueLabels, keyHead) = PicoWithState(settings);
        DirectPico(settings, 3, 10, targets, protos, queue, queueLabels, keyHead, out var pseudo, out var newTargets);
        using (var tape = new Tape()) loss.Loss(Step(Tensor.FromArray(H, 3, 4), 3, 10));
        loss.Update(Tensor.Zeros(3, 3), Batch, 3);
        var pico = loss.Pico!;
        // Prototypes: sample by sample μ_ŷ ← γμ_ŷ + (1 − γ)q, then every row normalised.
        var expected = Enumerable.Range(0, 3).Select(j => Row(protos, j, 3)).ToArray();
        for (int a = 0; a < 3; a++)
        {
            var q = Normalize(Scores(Main, a, H));
            expected[pseudo[a]] = expected[pseudo[a]].Select((v, j) => 0.9 * v + 0.1 * q[j]).ToArray();
        }
        for (int j = 0; j < 3; j++)
        {
            var e = Normalize(expected[j]);
            for (int t = 0; t < 3; t++) Assert.Equal(e[t], pico.Prototypes[j * 3 + t], 5);
        }
        // Queue of 4: the two old keys, then three new ones overwrite the oldest: [old k1, new 0, new 1, new 2].
        var (keys, labels) = pico.QueueContents();
        Assert.Equal([queueLabels[1], pseudo[0], pseudo[1], pseudo[2]], labels);
        var barH = H.Select((v, i) => (float)(0.7 * keyHead[i] + 0.3 * v)).ToArray();
        for (int a = 0; a < 3; a++)
        {
            var k = Normalize(Scores(Key, a, barH));
            for (int t = 0; t < 3; t++) Assert.Equal(k[t], keys[(1 + a) * 3 + t], 5);
        }
        Assert.Equal(queue[3..6], keys[..3]);
        for (int i = 0; i < 12; i++) Assert.Equal(barH[i], pico.KeyHead![i], 6);
        for (int a = 0; a < 3; a++)
            for (int j = 0; j < 3; j++) Assert.Equal(newTargets[a][j], loss.Confidence(Batch[a])[j], 5);
        Assert.Equal(targets[9..12], loss.Confidence(3).ToArray()); // not in the batch
        Assert.Throws<InvalidOperationException>(() => loss.Update(Tensor.Zeros(3, 3), Batch, 3)); // no pending Loss
    }

    // ---------------------------------------------------------------- PLCR

    private static float[] PlcrConfidence => [0.6f, 0.4f, 0, 0, 0.3f, 0.7f, 0.2f, 0.5f, 0.3f, 0, 0, 1];

    private static PartialLabelLoss PlcrWithState(PlcrSettings settings)
    {
        var loss = new PartialLabelLoss(PartialLabelLossKind.PLCR, Sets, plcr: settings);
        loss.ImportState(new Dictionary<string, float[]> { ["confidence"] = PlcrConfidence });
        return loss;
    }

    private static double DirectPlcr(double lambda, float[][] viewImages, float[] h, out double[][] logProbSums)
    {
        int b = Batch.Length;
        double sup = 0, cons = 0;
        logProbSums = new double[b][];
        for (int a = 0; a < b; a++)
        {
            int i = Batch[a];
            var pWeak = LogSoftmax(Scores(viewImages[0], a, h).Select(v => Scale * v).ToArray()).Select(Math.Exp).ToArray();
            for (int j = 0; j < 3; j++) if (!Sets.Contains(i, j)) sup -= Math.Log(Math.Max(1 - pWeak[j], 1e-7));
            var r = Row(PlcrConfidence, i, 3);
            logProbSums[a] = new double[3];
            foreach (var x in viewImages)
            {
                var logp = LogSoftmax(Scores(x, a, h).Select(v => Scale * v).ToArray());
                for (int j = 0; j < 3; j++)
                {
                    logProbSums[a][j] += logp[j];
                    if (r[j] > 0) cons += r[j] * (Math.Log(r[j]) - logp[j]);
                }
            }
        }
        return sup / b + lambda * cons / b;
    }

    [Theory]
    [InlineData(3, 10, null, 0.6)]   // ramp over half the run: λ(3) = 3/5
    [InlineData(7, 10, null, 1.0)]   // ramp finished
    [InlineData(2, 10, 8, 0.25)]     // explicit ramp of 8 epochs
    public void PlcrLossEqualsADirectComputationAndItsGradientChecks(int epoch, int epochs, int? ramp, double lambdaFraction)
    {
        var settings = new PlcrSettings { StrongViews = 2, ConsistencyWeight = 2.0, RampEpochs = ramp };
        var loss = PlcrWithState(settings);
        Assert.Equal(2.0 * lambdaFraction, loss.Plcr!.ConsistencyWeight(epoch, epochs), 12);
        double expected = DirectPlcr(2.0 * lambdaFraction, [Main, Key, Strong1], H, out _);
        using (var tape = new Tape())
            Assert.Equal(expected, loss.Loss(Step(Tensor.FromArray(H, 3, 4), epoch, epochs, Key, Strong1)).Item(), 5);
        GradCheck.Check(t => loss.Loss(Step(t[0], epoch, epochs, Key, Strong1)), [new GradCheck.Input(H, [3, 4])]);
    }

    [Fact]
    public void PlcrUpdateSetsTheNormalisedGeometricMeanOverTheCandidates()
    {
        var loss = PlcrWithState(new PlcrSettings { StrongViews = 2 });
        DirectPlcr(1, [Main, Key, Strong1], H, out var sums);
        using (var tape = new Tape()) loss.Loss(Step(Tensor.FromArray(H, 3, 4), 4, 10, Key, Strong1));
        loss.Update(Tensor.Zeros(3, 3), Batch, 4);
        for (int a = 0; a < 3; a++)
        {
            int i = Batch[a];
            var g = Enumerable.Range(0, 3).Select(j => Sets.Contains(i, j) ? Math.Exp(sums[a][j] / 3) : 0).ToArray();
            double total = g.Sum();
            for (int j = 0; j < 3; j++) Assert.Equal(g[j] / total, loss.Confidence(i)[j], 5);
        }
        Assert.Equal(PlcrConfidence[9..12], loss.Confidence(3).ToArray());
    }

    // ---------------------------------------------------------------- alignment weighting

    [Fact]
    public void DynamicWeightingScalesAlignmentToLambdaTimesThePllTermWithNoGradientThroughTheRatio()
    {
        var sets = CandidateLabels.FromMask([1, 1, 0, 0, 1, 1], 2, 3);
        float[] z = [1f, 2f, 0f, 0.5f, -1f, 3f];
        var pi = PromptAlignment.RestrictedTeacher([2f, 0f, 1f, 0f, 0f, 0f], sets, [0, 1]);
        var pllLoss = new PartialLabelLoss(PartialLabelLossKind.CC, sets);
        float[] Grad(Func<Tensor, Tensor> f, out double value)
        {
            using var tape = new Tape();
            var leaf = Tensor.Parameter(z, [2, 3]);
            var y = f(leaf);
            value = y.Item();
            tape.Backward(y);
            return leaf.Grad!.ToArray();
        }
        var gPll = Grad(t => pllLoss.Loss(t, [0, 1]), out double pll);
        var gAlign = Grad(t => PromptAlignment.AlignmentLoss(t, pi), out double align);
        foreach (double lambda in new[] { 1.0, 0.3 })
        {
            var gDynamic = Grad(t => PromptAlignment.Combine(pllLoss.Loss(t, [0, 1]), PromptAlignment.AlignmentLoss(t, pi), AlignmentWeighting.Dynamic, lambda), out double dynamic);
            Assert.Equal((1 + lambda) * pll, dynamic, 5);
            double ratio = lambda * pll / align;
            for (int i = 0; i < 6; i++) Assert.Equal(gPll[i] + ratio * gAlign[i], gDynamic[i], 5);
            // Differentiating through the ratio would give the gradient of (1 + λ)·L_PLL instead.
            Assert.Contains(Enumerable.Range(0, 6), i => Math.Abs(gDynamic[i] - (1 + lambda) * gPll[i]) > 1e-3);

            var gFixed = Grad(t => PromptAlignment.Combine(pllLoss.Loss(t, [0, 1]), PromptAlignment.AlignmentLoss(t, pi), AlignmentWeighting.Fixed, lambda), out double fixedValue);
            Assert.Equal(pll + lambda * align, fixedValue, 5);
            for (int i = 0; i < 6; i++) Assert.Equal(gPll[i] + lambda * gAlign[i], gFixed[i], 5);
        }
        // A vanishing alignment loss gets weight 0 (no division by zero).
        using (var tape = new Tape())
        {
            var t = Tensor.FromArray(z, 2, 3);
            Assert.Equal(pllLoss.Loss(t, [0, 1]).Item(), PromptAlignment.Combine(pllLoss.Loss(t, [0, 1]), Tensor.Scalar(0f)).Item(), 6);
        }
    }

    // ---------------------------------------------------------------- training

    private static IReadOnlyList<EmbeddingMatrix> NoisyViews(EmbeddingMatrix x, int count, ulong seed)
    {
        // Stand-ins for cached crops: the embedding plus noise, renormalised.
        var rng = new Rng(seed);
        var views = new List<EmbeddingMatrix>();
        for (int v = 0; v < count; v++)
        {
            var m = new EmbeddingMatrix((float[])x.Data.Clone(), x.Count, x.Dimension);
            for (int e = 0; e < m.Data.Length; e++) m.Data[e] += (float)(0.4 * rng.NextNormal() / Math.Sqrt(x.Dimension));
            m.NormalizeRows();
            views.Add(m);
        }
        return views;
    }

    private static TuningResult Probe(EmbeddingMatrix x, IReadOnlyList<EmbeddingMatrix> views, CandidateLabels candidates, PromptTuningOptions options, int[] labels, CancellationToken ct = default)
    {
        var loss = new PartialLabelLoss(options.Loss, candidates, pico: options.Pico, plcr: options.Plcr);
        var data = new TrainingViews(x, views, options.Seed, loss.MainViewIsOriginal);
        var settings = new PllTrainingSettings { Epochs = options.Epochs, LearningRate = 1e-3, WeightDecay = 1e-4, WarmupEpochs = 1, Seed = options.Seed };
        var classes = Enumerable.Range(0, candidates.ClassCount).Select(i => "class" + i).ToArray();
        return PromptTuner.LinearProbe(data, candidates, classes, loss, settings, 20f, "synthetic", options,
            PromptTuner.Fingerprint("synthetic", data, candidates, options with { Progress = null }), null, labels, ct);
    }

    [Theory]
    [InlineData(nameof(PartialLabelLossKind.PiCO))]
    [InlineData(nameof(PartialLabelLossKind.PLCR))]
    public void TheLinearProbeLearnsWithPicoAndPlcrAndResumesBitForBit(string kindName)
    {
        var kind = Enum.Parse<PartialLabelLossKind>(kindName);
        var (x, y, _) = LinearProbeTests.Synthetic(400, 5, 32, 1.2, 3);
        var train = new EmbeddingMatrix(x.Data[..(200 * 32)], 200, 32);
        var test = new EmbeddingMatrix(x.Data[(200 * 32)..], 200, 32);
        var views = NoisyViews(train, 2, 9);
        var candidates = CandidateLabels.Generate(y.AsSpan(0, 200), 5, 0.3, 5);
        var options = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = kind, Epochs = 30, Align = false, Seed = 4, Pico = new PicoSettings { QueueSize = 256 } };
        var result = Probe(train, views, candidates, options, y[..200]);
        double acc = result.Classifier.Accuracy(test, y.AsSpan(200));
        Assert.True(acc > 0.8, $"{kind}: held-out accuracy {acc} (chance 0.2)");

        // Interrupted after epoch 3 (PiCO's prototypes, queue, key head and pseudo-targets, or PLCR's distributions, are
        // in the checkpoint), then resumed: the same weights as straight through.
        var shortOptions = options with { Epochs = 6 };
        var straight = Probe(train, views, candidates, shortOptions, y[..200]);
        string dir = Fixtures.TempDir();
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => Probe(train, views, candidates,
            shortOptions with { CheckpointDirectory = dir, Progress = r => { if (r.Epoch == 3) cts.Cancel(); } }, y[..200], cts.Token));
        var resumed = Probe(train, views, candidates, shortOptions with { CheckpointDirectory = dir }, y[..200]);
        Assert.Equal(4, resumed.ResumedFromEpoch);
        Assert.Equal(straight.Classifier.Weights.Data, resumed.Classifier.Weights.Data);
        Assert.Equal(straight.Classifier.Bias, resumed.Classifier.Bias);
    }

    [Fact]
    public void ExperimentGainsAreSignedWithoutNegativeZero()
    {
        Assert.Equal("+0.0", CandidateLabelExperiment.Signed(-0.0333));
        Assert.Equal("+0.0", CandidateLabelExperiment.Signed(0.04));
        Assert.Equal("-0.1", CandidateLabelExperiment.Signed(-0.06));
        Assert.Equal("+53.2", CandidateLabelExperiment.Signed(53.2));
    }

    [Fact]
    public void ViewRolesAreDrawnFromTheSeedEpochAndImage()
    {
        var (x, _, _) = LinearProbeTests.Synthetic(40, 4, 8, 1.0, 1);
        var views = NoisyViews(x, 3, 2);
        var data = new TrainingViews(x, views, 7);
        for (int i = 0; i < 40; i++)
        {
            int main = data.Choice(5, i);
            Assert.NotEqual(main, data.Choice(5, i, ViewRole.Key, 0));   // the key is another view
            int s0 = data.Choice(5, i, ViewRole.Strong, 0), s1 = data.Choice(5, i, ViewRole.Strong, 1);
            Assert.InRange(s0, 1, 3);
            Assert.NotEqual(s0, s1);                                      // distinct strong views
            Assert.Equal(s0, data.Choice(5, i, ViewRole.Strong, 3));      // cycling past the three views
            Assert.Equal(data.Choice(5, i, ViewRole.Key, 0), new TrainingViews(x, views, 7).Choice(5, i, ViewRole.Key, 0));
        }
        var weak = new TrainingViews(x, views, 7, mainIsOriginal: true);
        Assert.All(Enumerable.Range(0, 40), i => Assert.Equal(0, weak.Choice(9, i)));
        var rows = weak.Batch([3, 1], 9, ViewRole.Strong, 1).ToArray();
        Assert.Equal(views[weak.Choice(9, 3, ViewRole.Strong, 1) - 1].Row(3).ToArray(), rows[..8]);
        // Without augmented views every role is the original.
        var none = new TrainingViews(x, null, 7);
        Assert.Equal(0, none.Choice(2, 5, ViewRole.Key, 0));
        Assert.Equal(0, none.Choice(2, 5, ViewRole.Strong, 1));
    }
}
