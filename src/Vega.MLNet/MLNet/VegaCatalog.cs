using Vega.MLNet;

namespace Microsoft.ML;

/// <summary>Catalog extensions for CLIP-style vision-language models exported to ONNX (Vega.MLNet).</summary>
public static class VegaCatalog
{
    /// <summary>
    /// Create an <see cref="ImageEmbeddingEstimator"/>, which embeds the images of <paramref name="inputColumnName"/> with
    /// the image tower of a CLIP model into <paramref name="outputColumnName"/>.
    /// </summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="outputColumnName">Name of the column resulting from the transformation of <paramref name="inputColumnName"/>:
    /// a known-sized vector of <see cref="System.Single"/>, L2-normalised.</param>
    /// <param name="modelPath">The model: a folder with a Hugging Face (split or combined) or OpenAI-style ONNX export, or
    /// a clip.json manifest (docs/models.md).</param>
    /// <param name="inputColumnName">Name of the image column: a file path (<see cref="System.String"/>), encoded image
    /// bytes (vector of <see cref="System.Byte"/>, from LoadRawImageBytes) or an MLImage (from LoadImages). If null,
    /// <paramref name="outputColumnName"/> is used.</param>
    /// <param name="gpuDeviceId">The CUDA device to run on, or null for the CPU (needs the GPU recipe of docs/gpu.md).</param>
    /// <param name="fallbackToCpu">If true and the GPU cannot be used, run on the CPU after one warning instead of throwing.</param>
    /// <remarks>
    /// <para>The model is loaded when the estimator is created. Dispose the fitted transformer to release it.</para>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="ImageEmbeddingEstimator"/> for the estimator characteristics and the options.</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var ml = new MLContext();
    /// var data = ml.Data.LoadFromEnumerable(Directory.GetFiles("photos").Select(p => new { ImagePath = p }));
    /// using var embed = ml.Transforms.EmbedImages("ImageEmbedding", modelPath: "models/clip-vit-b32", inputColumnName: "ImagePath").Fit(data);
    /// foreach (var row in ml.Data.CreateEnumerable&lt;Embedded&gt;(embed.Transform(data), reuseRowObject: false))
    ///     Console.WriteLine($"{row.ImagePath}: {row.ImageEmbedding.Length} floats");
    /// </code>
    /// (Embedded: <c>class Embedded { public string ImagePath = ""; public float[] ImageEmbedding = []; }</c>. The sample
    /// <c>vega sample zero-shot</c> in Vega.MLNet.Samples runs a complete pipeline.)
    /// </example>
    public static ImageEmbeddingEstimator EmbedImages(this TransformsCatalog catalog, string outputColumnName, string modelPath,
        string? inputColumnName = null, int? gpuDeviceId = null, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ImageEmbeddingEstimator(new ImageEmbeddingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            ModelPath = modelPath,
            InputColumnName = inputColumnName ?? outputColumnName,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });
    }

    /// <summary>
    /// Create an <see cref="ImageEmbeddingEstimator"/> with every option: batch size, threads, the crash-safe embedding
    /// cache, EXIF orientation, the size limit and what to do with unreadable images.
    /// </summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="options">The options, including the model path and both column names.</param>
    /// <remarks>
    /// <para>The model is loaded when the estimator is created. Dispose the fitted transformer to release it.</para>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var pipeline = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
    /// {
    ///     ModelPath = "models/clip-vit-b32", InputColumnName = "ImagePath", CacheDirectory = ".vega-cache",
    ///     OnError = ImageErrorHandling.MissingValue,   // unreadable images: NaN embedding + "ImageEmbeddingError"
    /// });
    /// var clean = ml.Data.FilterRowsByMissingValues(pipeline.Fit(data).Transform(data), "ImageEmbedding");
    /// </code>
    /// </example>
    public static ImageEmbeddingEstimator EmbedImages(this TransformsCatalog catalog, ImageEmbeddingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ImageEmbeddingEstimator(options);
    }
}
