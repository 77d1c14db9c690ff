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
    ///     OnError = EmbeddingErrorHandling.MissingValue,   // unreadable images: NaN embedding + "ImageEmbeddingError"
    /// });
    /// var clean = ml.Data.FilterRowsByMissingValues(pipeline.Fit(data).Transform(data), "ImageEmbedding");
    /// </code>
    /// </example>
    public static ImageEmbeddingEstimator EmbedImages(this TransformsCatalog catalog, ImageEmbeddingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ImageEmbeddingEstimator(options);
    }

    /// <summary>
    /// Create a <see cref="TextEmbeddingEstimator"/>, which embeds the texts of <paramref name="inputColumnName"/> with the
    /// text tower of a CLIP model into <paramref name="outputColumnName"/>.
    /// </summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="outputColumnName">Name of the column resulting from the transformation of <paramref name="inputColumnName"/>:
    /// a known-sized vector of <see cref="System.Single"/>, L2-normalised.</param>
    /// <param name="modelPath">The model folder or clip.json file (docs/models.md).</param>
    /// <param name="inputColumnName">Name of the text column (<see cref="System.String"/>). If null, <paramref name="outputColumnName"/> is used.</param>
    /// <param name="gpuDeviceId">The CUDA device to run on, or null for the CPU.</param>
    /// <param name="fallbackToCpu">If true and the GPU cannot be used, run on the CPU after one warning instead of throwing.</param>
    /// <remarks>
    /// <para>The model is loaded when the estimator is created. Dispose the fitted transformer to release it.</para>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="TextEmbeddingEstimator"/> for the estimator characteristics and the options.</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var texts = ml.Data.LoadFromEnumerable(new[] { new { Text = "a photo of a cat." }, new { Text = "a photo of a dog." } });
    /// using var embed = ml.Transforms.EmbedText("TextEmbedding", modelPath: "models/clip-vit-b32", inputColumnName: "Text").Fit(texts);
    /// float[][] vectors = embed.Transform(texts).GetColumn&lt;float[]&gt;("TextEmbedding").ToArray();
    /// </code>
    /// </example>
    public static TextEmbeddingEstimator EmbedText(this TransformsCatalog catalog, string outputColumnName, string modelPath,
        string? inputColumnName = null, int? gpuDeviceId = null, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new TextEmbeddingEstimator(new TextEmbeddingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            ModelPath = modelPath,
            InputColumnName = inputColumnName ?? outputColumnName,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });
    }

    /// <summary>Create a <see cref="TextEmbeddingEstimator"/> with every option (batch size, threads, truncation, errors).</summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="options">The options, including the model path and both column names.</param>
    /// <remarks>
    /// <para>The model is loaded when the estimator is created. Dispose the fitted transformer to release it.</para>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var embed = ml.Transforms.EmbedText(new TextEmbeddingEstimator.Options
    /// {
    ///     ModelPath = "models/clip-vit-b32", InputColumnName = "Caption", OutputColumnName = "CaptionEmbedding", Truncate = true,
    /// });
    /// </code>
    /// </example>
    public static TextEmbeddingEstimator EmbedText(this TransformsCatalog catalog, TextEmbeddingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new TextEmbeddingEstimator(options);
    }

    /// <summary>
    /// Create a <see cref="ZeroShotEstimator"/>, a multiclass classifier without training data: it scores the image
    /// embeddings of <paramref name="featureColumnName"/> against a prompt for each of <paramref name="classNames"/>
    /// and adds <c>Score</c> and <c>PredictedLabel</c>, as ML.NET's multiclass trainers do.
    /// </summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="modelPath">The model whose text tower embeds the prompts: the same model that produced the image embeddings.</param>
    /// <param name="classNames">The class names, in key order (at least 2, distinct).</param>
    /// <param name="featureColumnName">The image embedding column, a known-sized vector of <see cref="System.Single"/>.</param>
    /// <param name="gpuDeviceId">The CUDA device for embedding the prompts, or null for the CPU.</param>
    /// <param name="fallbackToCpu">If true and the GPU cannot be used, run on the CPU after one warning instead of throwing.</param>
    /// <remarks>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="ZeroShotEstimator"/> for the estimator characteristics and the options (prompt templates, logit scale).</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// string[] classes = ["cat", "dog", "bird"];
    /// var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", modelPath: dir, inputColumnName: "ImagePath")
    ///     .Append(ml.MulticlassClassification.Trainers.ZeroShot(modelPath: dir, classNames: classes, featureColumnName: "ImageEmbedding"))
    ///     .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
    /// var model = pipeline.Fit(images);
    /// </code>
    /// </example>
    public static ZeroShotEstimator ZeroShot(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, string modelPath,
        IReadOnlyList<string> classNames, string featureColumnName = VegaColumnNames.ImageEmbedding, int? gpuDeviceId = null, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ZeroShotEstimator(new ZeroShotEstimator.Options
        {
            ModelPath = modelPath,
            ClassNames = classNames,
            FeatureColumnName = featureColumnName,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });
    }

    /// <summary>Create a <see cref="ZeroShotEstimator"/> with every option (prompt templates, logit scale, column names).</summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="options">The options, including the model path and the class names.</param>
    /// <remarks><para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para></remarks>
    /// <example>
    /// <code language="csharp">
    /// var zeroShot = ml.MulticlassClassification.Trainers.ZeroShot(new ZeroShotEstimator.Options
    /// {
    ///     ModelPath = dir, ClassNames = classes, Templates = ["a photo of a {}.", "a blurry photo of a {}."],
    /// });
    /// </code>
    /// </example>
    public static ZeroShotEstimator ZeroShot(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, ZeroShotEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ZeroShotEstimator(options);
    }

    /// <summary>
    /// Create a <see cref="VegaAlignmentEstimator"/>, which scores with VEGA how well the visual graph of the image
    /// embeddings in <paramref name="imageEmbeddingColumnName"/> agrees with the textual graph of <paramref name="classNames"/>
    /// (a label-free predictor of zero-shot accuracy), and adds each row's <c>PseudoLabel</c> and <c>NodeScore</c>.
    /// </summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="modelPath">The model whose text tower embeds the class prompts: the model that produced the image embeddings.</param>
    /// <param name="classNames">The class names (at least 2, distinct).</param>
    /// <param name="imageEmbeddingColumnName">The image embedding column, a known-sized vector of <see cref="System.Single"/>.</param>
    /// <remarks>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="VegaAlignmentEstimator"/> for the estimator characteristics and the options (VEGA's settings,
    /// <see cref="Vega.MLNet.Selection.VegaOptions.Paper"/>).</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var embedded = ml.Transforms.EmbedImages("ImageEmbedding", dir, "ImagePath").Fit(images).Transform(images);
    /// var vega = ml.Transforms.VegaAlignment(modelPath: dir, classNames: classes, imageEmbeddingColumnName: "ImageEmbedding").Fit(embedded);
    /// Console.WriteLine($"VEGA {vega.Result.Score:F3} = node {vega.Result.NodeScore:F3} + edge {vega.Result.EdgeScore:F3}");
    /// </code>
    /// </example>
    public static VegaAlignmentEstimator VegaAlignment(this TransformsCatalog catalog, string modelPath, IReadOnlyList<string> classNames,
        string imageEmbeddingColumnName = VegaColumnNames.ImageEmbedding)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new VegaAlignmentEstimator(new VegaAlignmentEstimator.Options { ModelPath = modelPath, ClassNames = classNames, ImageEmbeddingColumnName = imageEmbeddingColumnName });
    }

    /// <summary>Create a <see cref="VegaAlignmentEstimator"/> with every option (VEGA's settings, bootstrap, column names).</summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="options">The options, including the model path and the class names.</param>
    /// <remarks><para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para></remarks>
    /// <example>
    /// <code language="csharp">
    /// var vega = ml.Transforms.VegaAlignment(new VegaAlignmentEstimator.Options
    /// {
    ///     ModelPath = dir, ClassNames = classes, Vega = VegaOptions.Paper,   // the published definition
    /// }).Fit(embedded);
    /// </code>
    /// </example>
    public static VegaAlignmentEstimator VegaAlignment(this TransformsCatalog catalog, VegaAlignmentEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new VegaAlignmentEstimator(options);
    }

    /// <summary>
    /// Create a <see cref="VisionLanguageModelSelectingEstimator"/>: AutoML-style selection among candidate CLIP models
    /// without labels. <c>Fit</c> ranks the candidates on the images of <paramref name="imageColumnName"/> by a label-free
    /// predictor of their zero-shot accuracy for <paramref name="classNames"/> and returns the chosen model's zero-shot
    /// transformer (image embedding, Score, PredictedLabel) with the ranking.
    /// </summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="candidateModelPaths">The candidate models: folders or clip.json files.</param>
    /// <param name="classNames">The class names (at least 2, distinct).</param>
    /// <param name="imageColumnName">The image column: a file path (<see cref="System.String"/>), encoded bytes (vector of
    /// <see cref="System.Byte"/>) or an MLImage.</param>
    /// <param name="gpuDeviceId">The CUDA device to run on, or null for the CPU.</param>
    /// <param name="fallbackToCpu">If true and the GPU cannot be used, run on the CPU after one warning instead of throwing.</param>
    /// <remarks>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="VisionLanguageModelSelectingEstimator"/> for the estimator characteristics and the options
    /// (metric, budgeted search, cache, bootstrap).</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// using var selection = ml.Transforms.SelectVisionLanguageModel(candidateModelPaths: dirs, classNames: classes, imageColumnName: "ImagePath")
    ///     .Fit(unlabeled);
    /// Console.WriteLine($"chosen: {selection.ChosenModel}");
    /// foreach (var m in selection.Ranking) Console.WriteLine($"{m.Rank}. {m.Name}: {m.Score:F4}");
    /// var predictions = selection.Transform(unlabeled);   // ImageEmbedding, Score, PredictedLabel of the chosen model
    /// </code>
    /// </example>
    public static VisionLanguageModelSelectingEstimator SelectVisionLanguageModel(this TransformsCatalog catalog, IReadOnlyList<string> candidateModelPaths,
        IReadOnlyList<string> classNames, string imageColumnName = VegaColumnNames.ImagePath, int? gpuDeviceId = null, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new VisionLanguageModelSelectingEstimator(new VisionLanguageModelSelectingEstimator.Options
        {
            CandidateModelPaths = candidateModelPaths,
            ClassNames = classNames,
            ImageColumnName = imageColumnName,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });
    }

    /// <summary>Create a <see cref="VisionLanguageModelSelectingEstimator"/> with every option (metric, VEGA settings,
    /// bootstrap, budgeted search, embedding cache, threads, GPU).</summary>
    /// <param name="catalog">The transform's catalog.</param>
    /// <param name="options">The options, including the candidates and the class names.</param>
    /// <remarks><para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para></remarks>
    /// <example>
    /// <code language="csharp">
    /// var selection = ml.Transforms.SelectVisionLanguageModel(new VisionLanguageModelSelectingEstimator.Options
    /// {
    ///     CandidateModelPaths = dirs, ClassNames = classes, CacheDirectory = ".vega-cache",
    ///     BudgetedSearch = new BudgetedSearchOptions { TimeBudget = TimeSpan.FromMinutes(10) },   // successive halving
    /// }).Fit(unlabeled);
    /// </code>
    /// </example>
    public static VisionLanguageModelSelectingEstimator SelectVisionLanguageModel(this TransformsCatalog catalog, VisionLanguageModelSelectingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new VisionLanguageModelSelectingEstimator(options);
    }
}
