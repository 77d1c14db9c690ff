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

    public static ICanSaveModel ZeroShotPipeline(ImageEmbeddingTransformer embed, ZeroShotTransformer zeroShot) =>
        throw new NotSupportedException("Saving a VisionLanguageModelSelectingTransformer is not implemented yet.");
}
