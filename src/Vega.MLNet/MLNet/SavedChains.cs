using Microsoft.ML;

namespace Vega.MLNet;

/// <summary>
/// What each Vega.MLNet transformer saves as: a chain of ML.NET's own transformers that <c>ml.Model.Load</c> restores in
/// any process (docs/mlnet.md, "Saving").
/// </summary>
internal static class SavedChains
{
    public static ICanSaveModel ImageEmbedding(ImageEmbeddingTransformer t) =>
        throw new NotSupportedException("Saving an ImageEmbeddingTransformer is not implemented yet.");

    public static ICanSaveModel TextEmbedding(TextEmbeddingTransformer t) =>
        throw new NotSupportedException("Saving a TextEmbeddingTransformer is not implemented yet.");

    public static ICanSaveModel ZeroShot(ZeroShotTransformer t) =>
        throw new NotSupportedException("Saving a ZeroShotTransformer is not implemented yet.");

    public static ICanSaveModel VegaAlignment(VegaAlignmentTransformer t) =>
        throw new NotSupportedException("Saving a VegaAlignmentTransformer is not implemented yet.");

    /// <summary>
    /// The prompt-tuning classifier: constant class weights, a scale and a bias (<see cref="PromptTuningTransformer.ClassWeights"/>,
    /// <see cref="PromptTuningTransformer.Scale"/>, <see cref="PromptTuningTransformer.Bias"/>, or <c>t.Head</c>), the
    /// same head as the zero-shot classifier's plus a bias.
    /// </summary>
    public static ICanSaveModel PromptTuning(PromptTuningTransformer t) =>
        throw new NotSupportedException("Saving a PromptTuningTransformer is not implemented yet.");

    /// <summary>
    /// The AAPE classifier: its head depends on the image, so it is an ONNX graph (<see cref="AapeTransformer.OnnxModelBytes"/>:
    /// input <c>image_embeds</c> [batch, D], outputs <c>logits</c> and <c>probabilities</c> [batch, C]) for ApplyOnnxModel.
    /// </summary>
    public static ICanSaveModel Aape(AapeTransformer t) =>
        throw new NotSupportedException("Saving an AapeTransformer is not implemented yet.");

    public static ICanSaveModel ZeroShotPipeline(ImageEmbeddingTransformer embed, ZeroShotTransformer zeroShot) =>
        throw new NotSupportedException("Saving a VisionLanguageModelSelectingTransformer is not implemented yet.");
}
