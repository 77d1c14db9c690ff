using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Samples;

/// <summary>Sample: zero-shot classification of a folder of images with one CLIP model.</summary>
internal static class ZeroShotSample
{
    public static void Run(string modelFolder, string imageFolder, IReadOnlyList<string> classNames, TextWriter output)
    {
        using var model = ClipModel.Load(modelFolder);

        // Class names through prompt templates → C × D text embeddings (L2-normalised).
        var classes = model.EmbedClassNames(classNames, PromptTemplates.PhotoEnsemble);

        // Images → N × D image embeddings, decoded and preprocessed exactly as the model expects; bad files are skipped.
        var images = ImageEmbedder.Embed(model, ImageSource.FromFolder(imageFolder));

        for (int i = 0; i < images.Embeddings.Count; i++)
        {
            var image = images.Embeddings.Row(i);
            int best = 0;
            float bestScore = float.NegativeInfinity;
            for (int c = 0; c < classes.Count; c++)
            {
                float cosine = System.Numerics.Tensors.TensorPrimitives.Dot(image, classes.Row(c));
                if (cosine > bestScore) { bestScore = cosine; best = c; }
            }
            output.WriteLine($"{images.Items[i].Id}: {classNames[best]} (cosine {bestScore:F3})");
        }
        foreach (var skipped in images.Skipped) output.WriteLine($"skipped {skipped.Path ?? skipped.Id}: {skipped.Reason}");
    }
}
