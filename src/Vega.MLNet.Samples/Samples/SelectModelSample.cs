using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Samples.Samples;

/// <summary>Sample: choose among candidate CLIP models for unlabeled images, without labels (VEGA).</summary>
internal static class SelectModelSample
{
    public static void Run(IReadOnlyList<string> modelFolders, string imageFolder, IReadOnlyList<string> classNames, TextWriter output)
    {
        var models = modelFolders.Select(f => ClipModel.Load(f)).ToList();
        try
        {
            var result = VisionLanguageModelSelection.SelectVisionLanguageModel(models, ImageSource.FromFolder(imageFolder), classNames,
                new VlmSelectionOptions { Images = new ImageEmbeddingOptions { CacheDirectory = Path.Combine(Path.GetTempPath(), $"vega-sample-cache-{EmbeddingCache.FormatVersion}") } });
            foreach (var m in result.Ranking.Models)
                output.WriteLine($"{m.Rank}. {m.ModelName}: VEGA {m.Vega.Score:F4} (node {m.Vega.NodeScore:F4}, edge {m.Vega.EdgeScore:F4})");
            output.WriteLine($"chosen: {result.ChosenModel}");
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }
}
