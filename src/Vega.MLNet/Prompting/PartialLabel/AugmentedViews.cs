using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>
/// Cached augmented views of training images for the objectives that need strong views (PiCO, PLCR): random resized
/// crops plus flips (<see cref="ImageSource.AugmentedViews"/>), embedded once through the engine (and its cache), as
/// one matrix per view with rows in the images' order.
/// </summary>
internal static class AugmentedViews
{
    /// <summary>Embeds <paramref name="views"/> augmented views of every image of <paramref name="source"/>.</summary>
    public static IReadOnlyList<EmbeddingMatrix> Embed(ClipModel model, ImageSource source, int views, ulong seed, double minScale,
        ImageEmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        var embedded = ImageEmbedder.Embed(model, source.AugmentedViews(views, seed, minScale), options, cancellationToken);
        return Matrices(embedded, source.Count, views);
    }

    /// <summary>
    /// Splits the embeddings of an augmented source (item index = image · k + view) into k matrices of n rows; a view
    /// that could not be embedded is an error naming the image and the reason.
    /// </summary>
    public static IReadOnlyList<EmbeddingMatrix> Matrices(ImageEmbeddings views, int n, int k)
    {
        int d = views.Embeddings.Dimension;
        var result = Enumerable.Range(0, k).Select(_ => new EmbeddingMatrix(n, d)).ToArray();
        var filled = new bool[k, n];
        for (int r = 0; r < views.Items.Count; r++)
        {
            int index = views.Items[r].Index; // = image · k + view in the augmented source
            views.Embeddings.Row(r).CopyTo(result[index % k].Row(index / k));
            filled[index % k, index / k] = true;
        }
        for (int v = 0; v < k; v++)
            for (int i = 0; i < n; i++)
                if (!filled[v, i]) throw new InvalidDataException($"View {v} of training image {i} could not be embedded: {string.Join("; ", views.Skipped.Select(s => s.Reason))}.");
        return result;
    }
}
