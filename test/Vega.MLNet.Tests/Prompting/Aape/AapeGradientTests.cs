using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Tensors;
using static Vega.MLNet.Tests.Tensors.GradCheck;

namespace Vega.MLNet.Tests.Prompting.Aape;

/// <summary>
/// The aggregator's attention layer and the generator head against finite differences (every parameter and input),
/// and the forward identities the design relies on: padding is invisible, descriptions are a set, the untrained
/// aggregator returns the normalised mean.
/// </summary>
public sealed class AapeGradientTests
{
    private const int C = 2, N = 3, D = 8, Heads = 2;

    /// <summary>Shapes of the 16 aggregator weights, in <see cref="AggregatorWeights"/> order.</summary>
    private static readonly int[][] WeightShapes =
        [[D], [D], [D, D], [D], [D, D], [D], [D, D], [D], [D, D], [D], [D], [D], [4 * D, D], [4 * D], [D, 4 * D], [D]];

    private static AggregatorWeights Weights(Tensor[] t, int first) => new(
        t[first], t[first + 1], t[first + 2], t[first + 3], t[first + 4], t[first + 5], t[first + 6], t[first + 7],
        t[first + 8], t[first + 9], t[first + 10], t[first + 11], t[first + 12], t[first + 13], t[first + 14], t[first + 15]);

    /// <summary>Random weights: LayerNorm gains in [0.5, 1.5], everything else in [−0.5, 0.5] (all residual branches active).</summary>
    private static Input[] RandomWeights(ulong seed) => WeightShapes.Select((s, i) =>
        i is 0 or 10 ? Input.Between(seed + (ulong)i, 0.5, 1.5, s) : Input.Between(seed + (ulong)i, -0.5, 0.5, s)).ToArray();

    /// <summary>Class 0 has 3 descriptions, class 1 has 2 (its third slot is padding).</summary>
    private static (Input Descriptions, Input Mask) PaddedDescriptions(ulong seed, float paddingValue = 0f)
    {
        var desc = Input.Random(seed, C, N, D).Values;
        for (int j = 0; j < D; j++) desc[(1 * N + 2) * D + j] = paddingValue;
        var mask = new float[C * (N + 1)];
        mask[1 * (N + 1) + 3] = PromptAggregator.MaskedScore;
        return (new Input(desc, [C, N, D], RequiresGrad: false), new Input(mask, [C, 1, 1, N + 1], RequiresGrad: false));
    }

    [Fact]
    public void AttentionAggregatorGradientsMatchFiniteDifferences()
    {
        var (desc, mask) = PaddedDescriptions(3);
        var inputs = new List<Input> { Input.Random(1, C, D) };
        inputs.AddRange(RandomWeights(100));
        inputs.Add(desc);
        inputs.Add(mask);
        Check(t => PromptAggregator.Forward(Weights(t, 1), t[0], t[17], t[18], Heads), inputs.ToArray(), h: 1e-2, atol: 2e-4, rtol: 2e-3, maxCoordinates: 24);
    }

    [Fact]
    public void TheDescriptionsAreDifferentiableToo()
    {
        // Not needed for training (they are frozen text embeddings) but it checks the key/value path independently.
        var (desc, mask) = PaddedDescriptions(4);
        var inputs = new List<Input> { Input.Random(2, C, D).Fixed() };
        inputs.AddRange(RandomWeights(200).Select(i => i.Fixed()));
        inputs.Add(desc with { RequiresGrad = true });
        inputs.Add(mask);
        Check(t => PromptAggregator.Forward(Weights(t, 1), t[0], t[17], t[18], Heads), inputs.ToArray(), h: 1e-2, atol: 2e-4, rtol: 2e-3, maxCoordinates: 48);
    }

    private static float[] RunAggregator(Input query, Input[] weights, Input desc, Input mask)
    {
        using var scope = new TensorScope();
        var t = new[] { query }.Concat(weights).Append(desc).Append(mask).Select(i => Tensor.FromArray(i.Values, i.Shape)).ToArray();
        return PromptAggregator.Forward(Weights(t, 1), t[0], t[17], t[18], Heads).ToArray();
    }

    [Fact]
    public void PaddingIsInvisibleAndDescriptionsAreASet()
    {
        var query = Input.Random(5, C, D);
        var weights = RandomWeights(300);
        var (desc, mask) = PaddedDescriptions(6);
        var baseline = RunAggregator(query, weights, desc, mask);

        // Whatever sits in the padded slot does not change anything.
        var (junk, _) = PaddedDescriptions(6, paddingValue: 37f);
        Assert.Equal(baseline, RunAggregator(query, weights, junk, mask));

        // Permuting a class's descriptions (no positional encoding) leaves pᵃ unchanged up to float rounding.
        var permuted = (float[])desc.Values.Clone();
        int[] order = [2, 0, 1];
        for (int j = 0; j < N; j++) desc.Values.AsSpan(order[j] * D, D).CopyTo(permuted.AsSpan(j * D, D));
        var p = RunAggregator(query, weights, desc with { Values = permuted }, mask);
        Assert.True(Fixtures_MaxAbs(baseline, p) < 1e-6, "permutation invariance");
        Assert.NotEqual(baseline[..D], RunAggregator(Input.Random(55, C, D), weights, desc, mask)[..D]); // and it does depend on its inputs
    }

    [Fact]
    public void TheUntrainedAggregatorReturnsTheNormalisedMeanDescription()
    {
        var task = SyntheticTask.Create(classes: 3, dimension: 16, trainPerClass: 2, testPerClass: 1, descriptionsPerClass: 5, seed: 9);
        var (padded, nMax, maskValues) = PromptAggregator.Pad(task.Descriptions);
        var w = AggregatorWeights.Create(16, new Rng(1));
        using var scope = new TensorScope();
        var query = Tensor.FromArray(PromptAggregator.MeanRows(task.Descriptions), 3, 16);
        var p = PromptAggregator.Forward(w, query, Tensor.FromArray(padded, 3, nMax, 16), Tensor.FromArray(maskValues, 3, 1, 1, nMax + 1), heads: 4).ToArray();
        var expected = task.Descriptions.NormalizedMeans();
        Assert.True(Fixtures_MaxAbs(expected, p) < 1e-6, "zero-initialised residual branches make the layer the identity on the query slot");
    }

    [Fact]
    public void GeneratorHeadGradientsMatchFiniteDifferences()
    {
        const int b = 2, c = 3, d = 4, r = 2;
        const float step = 5e-3f, margin = 0.1f;
        // Draw inputs until every ReLU input is at least `margin` from its kink: a ±2·step perturbation of one coordinate
        // (weights ≤ 0.5 in size) cannot move it across, so the finite differences see one linear piece.
        for (ulong seed = 1; seed < 2000; seed++)
        {
            Input[] inputs =
            [
                Input.Random(seed * 10 + 1, b, d),               // x
                Input.Random(seed * 10 + 2, c, d).Fixed(),       // class weights
                Input.Between(seed * 10 + 3, -0.5, 0.5, r, d),   // W1
                Input.Between(seed * 10 + 4, -0.5, 0.5, r),      // b1
                Input.Between(seed * 10 + 5, -0.5, 0.5, d, r),   // W2
                Input.Between(seed * 10 + 6, -0.5, 0.5, d),      // b2
                Input.Between(seed * 10 + 7, -0.5, 0.5, d, 2 * d), // G
                Input.Between(seed * 10 + 8, -0.5, 0.5, d),      // g bias
            ];
            if (!AwayFromKinks(inputs, margin)) continue;
            Tensor Logits(Tensor[] t, out Tensor prompt) =>
                PromptGenerator.Logits(new GeneratorWeights(t[2], t[3], t[4], t[5], t[6], t[7]), t[0], t[1], temperature: 1f, out prompt);
            Check(t => Logits(t, out _), inputs, h: step, atol: 1e-4, rtol: 1e-3, maxCoordinates: 48);
            Check(t => { Logits(t, out var prompt); return prompt; }, inputs, h: step, atol: 1e-4, rtol: 1e-3, maxCoordinates: 48);
            return;
        }
        Assert.Fail("no input draw kept every ReLU input away from its kink");
    }

    private static bool AwayFromKinks(Input[] inputs, float margin)
    {
        using var scope = new TensorScope();
        var t = inputs.Select(i => Tensor.FromArray(i.Values, i.Shape)).ToArray();
        var hidden = Ops.Linear(t[0], t[2], t[3]).ToArray();
        int d = inputs[0].Shape[1];
        var prompt = Ops.Linear(Ops.Relu(Ops.Linear(t[0], t[2], t[3])), t[4], t[5]);
        var a = Ops.Linear(t[1], Ops.Slice(t[6], 1, 0, d));
        var u = Ops.Linear(prompt, Ops.Slice(t[6], 1, d, 2 * d), t[7]);
        var z = Ops.Add(Ops.Unsqueeze(u, 1), Ops.Unsqueeze(a, 0)).ToArray();
        return hidden.Concat(z).All(v => Math.Abs(v) >= margin);
    }

    [Fact]
    public void TheFastPredictKernelEqualsTheTensorCoreForward()
    {
        var task = SyntheticTask.Create(classes: 5, dimension: 32, trainPerClass: 4, testPerClass: 60, descriptionsPerClass: 6, seed: 21);
        var head = AapeTrainer.Train(task.TrainingSet, new AapeOptions { Epochs = 5, AggregatorEpochs = 3, Temperature = 0.05, Heads = 4 });
        var fast = head.Predict(task.TestImages); // 300 rows: crosses the kernel's 256-row chunk
        var x = (float[])task.TestImages.Data.Clone();
        for (int i = 0; i < task.TestImages.Count; i++) EmbeddingMatrix.NormalizeInPlace(x.AsSpan(i * 32, 32));
        float[] reference;
        using (Tape.NoGrad())
        using (new TensorScope())
            reference = PromptGenerator.Logits(head.ToWeights(), Tensor.FromArray(x, task.TestImages.Count, 32),
                Tensor.FromArray(head.ClassWeights, 5, 32), head.Temperature, out _).ToArray();
        Assert.True(Fixtures_MaxAbs(reference, fast) * head.Temperature < 2e-6, "logits agree at the cosine level");
    }

    private static double Fixtures_MaxAbs(float[] a, float[] b) => Infrastructure.Fixtures.MaxAbsDiff(a, b);
}
