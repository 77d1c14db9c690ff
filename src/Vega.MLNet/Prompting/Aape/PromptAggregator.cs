using System.Diagnostics;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// The parameters of the aggregator's one pre-LN attention layer (shared by all classes): LayerNorm 1, the query,
/// key, value and output projections, LayerNorm 2 and the feed-forward block Linear(D, 4D) → GELU → Linear(4D, D).
/// Weights are [out, in] (PyTorch layout).
/// </summary>
internal sealed record AggregatorWeights(
    Tensor Ln1Gamma, Tensor Ln1Beta,
    Tensor Wq, Tensor Bq, Tensor Wk, Tensor Bk, Tensor Wv, Tensor Bv, Tensor Wo, Tensor Bo,
    Tensor Ln2Gamma, Tensor Ln2Beta,
    Tensor W1, Tensor B1, Tensor W2, Tensor B2)
{
    public Tensor[] All => [Ln1Gamma, Ln1Beta, Wq, Bq, Wk, Bk, Wv, Bv, Wo, Bo, Ln2Gamma, Ln2Beta, W1, B1, W2, B2];

    /// <summary>
    /// Fresh weights: LayerNorms at identity, Wq/Wk/Wv/W1 Xavier-uniform, their biases 0, and the two projections that
    /// end a residual branch (Wo, W2 and their biases) zero, so that the untrained layer is the identity on the query
    /// slot and pᵃ starts as the normalised mean description embedding.
    /// </summary>
    public static AggregatorWeights Create(int d, Rng rng)
    {
        int f = 4 * d;
        Tensor P(int[] shape, string name) => Tensor.Parameter(shape, "aggregator." + name);
        var w = new AggregatorWeights(
            Tensor.Parameter(Enumerable.Repeat(1f, d).ToArray(), [d], "aggregator.ln1.weight"), P([d], "ln1.bias"),
            Init.XavierUniform(P([d, d], "q.weight"), rng), P([d], "q.bias"),
            Init.XavierUniform(P([d, d], "k.weight"), rng), P([d], "k.bias"),
            Init.XavierUniform(P([d, d], "v.weight"), rng), P([d], "v.bias"),
            P([d, d], "out.weight"), P([d], "out.bias"),
            Tensor.Parameter(Enumerable.Repeat(1f, d).ToArray(), [d], "aggregator.ln2.weight"), P([d], "ln2.bias"),
            Init.XavierUniform(P([f, d], "ff1.weight"), rng), P([f], "ff1.bias"),
            P([d, f], "ff2.weight"), P([d], "ff2.bias"));
        return w;
    }
}

/// <summary>The outcome of the aggregator stage.</summary>
internal sealed record AggregatorResult(float[] Summaries, double InitialClipScore, double FinalClipScore, double[] Losses, TimeSpan Elapsed);

/// <summary>
/// The prompt aggregator: per class, the tokens [p̄, P₁..Pₙ] (p̄ a learnable query slot initialised to the mean
/// description embedding, Pᵢ the description embeddings) go through one pre-LN transformer layer; the output at the
/// p̄ slot, L2-normalised, is the class summary pᵃ. Only the slot-0 row is computed: in a single layer the
/// self-attention output at slot 0 is exactly the cross-attention of slot 0 over all tokens (itself included), and the
/// feed-forward block is per token. All classes run at once, padded to the longest description list; a key mask
/// removes the padding.
/// </summary>
internal static class PromptAggregator
{
    /// <summary>Additive attention mask value for padded keys (exp underflows to exactly 0).</summary>
    internal const float MaskedScore = -1e9f;

    /// <summary>
    /// pᵃ for every class. <paramref name="query"/> [C, D] is p̄, <paramref name="descriptions"/> [C, n, D] the padded
    /// description embeddings, <paramref name="mask"/> [C, 1, 1, n+1] 0 for real tokens and <see cref="MaskedScore"/>
    /// for padding. Returns [C, D], rows of unit norm.
    /// </summary>
    public static Tensor Forward(AggregatorWeights w, Tensor query, Tensor descriptions, Tensor mask, int heads)
    {
        int c = query.Shape[0], d = query.Shape[1], n = descriptions.Shape[1], l = n + 1;
        if (d % heads != 0) throw new ArgumentException($"The aggregator's {heads} heads must divide the embedding width {d}.", nameof(heads));
        int dh = d / heads;
        var tokens = Ops.Concat([Ops.Unsqueeze(query, 1), descriptions], 1);                 // [C, L, D]
        var u = Ops.LayerNorm(tokens, w.Ln1Gamma, w.Ln1Beta);                               // [C, L, D]
        var u0 = Ops.Reshape(Ops.Contiguous(Ops.Slice(u, 1, 0, 1)), c, d);                  // [C, D]
        var q = Ops.Reshape(Ops.Linear(u0, w.Wq, w.Bq), c, heads, 1, dh);                    // [C, H, 1, dh]
        var k = Ops.Transpose(Ops.Reshape(Ops.Linear(u, w.Wk, w.Bk), c, l, heads, dh), 0, 2, 3, 1); // [C, H, dh, L]
        var v = Ops.Transpose(Ops.Reshape(Ops.Linear(u, w.Wv, w.Bv), c, l, heads, dh), 0, 2, 1, 3); // [C, H, L, dh]
        var scores = Ops.Add(Ops.MulScalar(Ops.MatMul(q, k), 1f / MathF.Sqrt(dh)), mask);  // [C, H, 1, L]
        var attention = Ops.Softmax(scores, -1);
        var o = Ops.Reshape(Ops.MatMul(attention, v), c, d);                                  // [C, D]
        var z = Ops.Add(query, Ops.Linear(o, w.Wo, w.Bo));
        var ff = Ops.Linear(Ops.Gelu(Ops.Linear(Ops.LayerNorm(z, w.Ln2Gamma, w.Ln2Beta), w.W1, w.B1)), w.W2, w.B2);
        return Ops.L2Normalize(Ops.Add(z, ff), -1);
    }

    /// <summary>Pads the description embeddings to [C, n_max, D] and builds the key mask [C, 1, 1, n_max + 1].</summary>
    internal static (float[] Padded, int MaxCount, float[] Mask) Pad(DescriptionEmbeddings descriptions)
    {
        int c = descriptions.ClassNames.Count, d = descriptions.Dimension;
        int nMax = 0;
        for (int k = 0; k < c; k++) nMax = Math.Max(nMax, descriptions.For(k).Count);
        var padded = new float[c * nMax * d];
        var mask = new float[c * (nMax + 1)];
        for (int k = 0; k < c; k++)
        {
            var m = descriptions.For(k);
            m.Data.AsSpan().CopyTo(padded.AsSpan(k * nMax * d));
            for (int j = m.Count; j < nMax; j++) mask[k * (nMax + 1) + 1 + j] = MaskedScore;
        }
        return (padded, nMax, mask);
    }

    /// <summary>
    /// Trains the aggregator on the labelled (normalised) images by maximising the mean CLIP-S reward
    /// s·max(cos(x, pᵃ_y), 0), each class weighted equally (full batch, AdamW, one step per epoch), and returns the final
    /// summaries. With <see cref="AapeAggregator.Mean"/> nothing is trained: pᵃ is the normalised mean.
    /// </summary>
    public static AggregatorResult Train(DescriptionEmbeddings descriptions, float[] images, int[] labels, AapeOptions options, Rng rng, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        int c = descriptions.ClassNames.Count, d = descriptions.Dimension, n = labels.Length;
        var means = descriptions.NormalizedMeans();
        var weights = ImageWeights(labels, c);
        double initial = ClipScore(means, images, labels, weights, d, options.ClipScoreWeight);
        if (options.Aggregator == AapeAggregator.Mean || options.AggregatorEpochs == 0)
            return new AggregatorResult(means, initial, initial, [], clock.Elapsed);

        var (padded, nMax, maskValues) = Pad(descriptions);
        var tokens = Tensor.Wrap(padded, c, nMax, d);
        var mask = Tensor.Wrap(maskValues, c, 1, 1, nMax + 1);
        var x = Tensor.Wrap(images, n, d);
        var imageWeights = Tensor.Wrap(weights, n);
        var w = AggregatorWeights.Create(d, rng);
        var query = Tensor.Parameter(MeanRows(descriptions), [c, d], "aggregator.query");
        var parameters = w.All.Append(query).ToArray();
        var optimizer = new AdamW(parameters, new AdamWOptions(options.AggregatorLearningRate, WeightDecay: 0));
        var losses = new double[options.AggregatorEpochs];
        float s = (float)options.ClipScoreWeight;
        for (int epoch = 0; epoch < options.AggregatorEpochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            using var tape = new Tape();
            var summaries = Forward(w, query, tokens, mask, options.Heads);
            var perImage = Ops.Gather(summaries, 0, labels, [n]);                         // [N, D]
            var cos = Ops.Sum(Ops.Mul(x, perImage), [1]);                                  // [N]
            var loss = Ops.MulScalar(Ops.Sum(Ops.Mul(Ops.Relu(cos), imageWeights)), -s);
            optimizer.ZeroGrad();
            tape.Backward(loss);
            optimizer.Step();
            losses[epoch] = loss.Item();
        }
        float[] final;
        using (Tape.NoGrad())
        using (new TensorScope())
            final = Forward(w, query, tokens, mask, options.Heads).ToArray();
        double last = ClipScore(final, images, labels, weights, d, options.ClipScoreWeight);
        return new AggregatorResult(final, initial, last, losses, clock.Elapsed);
    }

    /// <summary>The raw (not renormalised) mean description embedding of each class: p̄'s initial value.</summary>
    internal static float[] MeanRows(DescriptionEmbeddings descriptions)
    {
        int c = descriptions.ClassNames.Count, d = descriptions.Dimension;
        var result = new float[c * d];
        for (int k = 0; k < c; k++)
        {
            var m = descriptions.For(k);
            var dst = result.AsSpan(k * d, d);
            for (int j = 0; j < d; j++)
            {
                double acc = 0;
                for (int r = 0; r < m.Count; r++) acc += m.Data[r * d + j];
                dst[j] = (float)(acc / m.Count);
            }
        }
        return result;
    }

    /// <summary>1/(C'·N_c) for an image of class c, where C' counts the classes with images: every class weighs the same.</summary>
    internal static float[] ImageWeights(int[] labels, int classes)
    {
        var counts = new int[classes];
        foreach (int y in labels) counts[y]++;
        int present = counts.Count(k => k > 0);
        return labels.Select(y => 1f / (present * counts[y])).ToArray();
    }

    /// <summary>The class-balanced mean CLIP-S s·max(cos(x, pᵃ_y), 0) of unit-norm images against unit-norm summaries.</summary>
    internal static double ClipScore(float[] summaries, float[] images, int[] labels, float[] weights, int d, double s)
    {
        double total = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            double cos = System.Numerics.Tensors.TensorPrimitives.Dot<float>(images.AsSpan(i * d, d), summaries.AsSpan(labels[i] * d, d));
            total += weights[i] * s * Math.Max(cos, 0);
        }
        return total;
    }
}
