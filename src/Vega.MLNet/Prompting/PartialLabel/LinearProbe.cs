using Vega.MLNet.Embedding;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>
/// The linear-probe baseline: a linear classifier on frozen, L2-normalised image embeddings, logits =
/// s·(x·Wᵀ) + b with s the model's logit scale, W and b starting at zero, trained with the same partial-label objectives
/// (and optionally the same prompt alignment) as CoOp, with AdamW.
/// </summary>
internal static class LinearProbe
{
    public static (TunedClassifier Classifier, IReadOnlyList<EpochReport> Epochs) Train(EmbeddingMatrix features, CandidateLabels candidates, IReadOnlyList<string> classNames,
        PartialLabelLoss loss, PllTrainingSettings settings, float scale, string modelName, float[]? teacherLogits = null, int[]? trueLabels = null,
        Action<EpochReport>? progress = null, CancellationToken ct = default)
    {
        int c = candidates.ClassCount, d = features.Dimension;
        if (features.Count != candidates.Count) throw new ArgumentException($"{features.Count} image embeddings but {candidates.Count} candidate sets.");
        var w = Tensor.Parameter([c, d], "probe.weight");
        var b = Tensor.Parameter([c], "probe.bias");
        var x = Tensor.FromArray(features.Data, features.Count, d).Keep();
        var trainer = new PllTrainer([w, b], batch =>
        {
            var xb = Ops.Gather(x, 0, batch, [batch.Length]);
            return Ops.Add(Ops.MulScalar(Ops.MatMul(xb, Ops.Transpose(w, 1, 0)), scale), b);
        }, loss, candidates, settings with { AdamW = true }, teacherLogits, trueLabels);
        var reports = new List<EpochReport>(settings.Epochs);
        for (int e = 0; e < settings.Epochs; e++)
        {
            var r = trainer.RunEpoch(e, ct);
            reports.Add(r);
            progress?.Invoke(r);
        }
        var weights = new EmbeddingMatrix(w.ToArray(), c, d);
        var classifier = new TunedClassifier(TuningMethod.LinearProbe, classNames, weights, b.ToArray(), scale, modelName);
        return (classifier, reports);
    }
}
