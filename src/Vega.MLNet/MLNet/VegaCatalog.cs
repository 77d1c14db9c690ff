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
    /// Create a <see cref="PromptTuningEstimator"/>, which adapts a frozen CLIP model to training images labelled with
    /// candidate-label sets: CoOp prompt learning (or a linear probe) with a partial-label objective and prompt alignment,
    /// on the image embeddings of <paramref name="featureColumnName"/> and the candidate sets of
    /// <paramref name="candidateLabelsColumnName"/>. The fitted model adds <c>Score</c> and <c>PredictedLabel</c>, as ML.NET's
    /// multiclass trainers do.
    /// </summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="modelPath">The model whose text tower the prompts run through: the same model that produced the image embeddings.</param>
    /// <param name="classNames">The class names, in key order (at least 2, distinct).</param>
    /// <param name="featureColumnName">The image embedding column, a known-sized vector of <see cref="System.Single"/>.</param>
    /// <param name="candidateLabelsColumnName">The candidate-label column: a known-sized vector of <see cref="System.Boolean"/>
    /// of length C (true for every candidate), a vector of UInt32 keys over the class names (usually of variable length, from
    /// <c>TokenizeIntoWords</c> + <c>MapValueToKey</c>), or a scalar UInt32 key (ordinary labels). Only training reads it.</param>
    /// <param name="options">The training settings (objective, alignment and its weighting, context length, class token
    /// position, epochs, learning-rate schedule, seed, views, validation data, progress, checkpoints, cancellation); null for
    /// the defaults (CoOp, CC, dynamically weighted alignment, seed 1). Its model path, class names and the two column names
    /// are replaced by the arguments above; the object itself is not changed.</param>
    /// <remarks>
    /// <para>Training is deterministic: the seed is an option (default 1), as a third-party catalog extension cannot reach
    /// the MLContext's seed. PiCO and PLCR take strong views from the options (<see cref="PromptTuningEstimator.Options.ViewColumnNames"/>,
    /// <see cref="PromptTuningEstimator.Options.AugmentedViews"/>).</para>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="PromptTuningEstimator"/> for the estimator characteristics and the options (objective settings,
    /// alignment weighting, context, schedule, views, validation data, progress, checkpoints, cancellation).</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// // rows: ImagePath, Candidates ("Shirt|T-shirt/top|Pullover")
    /// var keys = ml.Data.LoadFromEnumerable(classes.Select(c =&gt; new { Name = c }));
    /// var pipeline = ml.Transforms.Text.TokenizeIntoWords("CandidateNames", "Candidates", separators: ['|'])
    ///     .Append(ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "CandidateNames", keyData: keys))
    ///     .Append(ml.Transforms.EmbedImages("ImageEmbedding", modelPath: dir, inputColumnName: "ImagePath"))
    ///     .Append(ml.MulticlassClassification.Trainers.PromptTuning(modelPath: dir, classNames: classes));
    /// var model = pipeline.Fit(training);
    /// </code>
    /// (The sample <c>vega sample candidate-labels</c> in Vega.MLNet.Samples, Samples/CandidateLabelTraining.cs, runs the
    /// whole pipeline from a CSV, evaluates it and predicts from the image path alone.)
    /// </example>
    public static PromptTuningEstimator PromptTuning(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, string modelPath,
        IReadOnlyList<string> classNames, string featureColumnName = VegaColumnNames.ImageEmbedding, string candidateLabelsColumnName = VegaColumnNames.CandidateLabels,
        PromptTuningEstimator.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = options?.Clone() ?? new PromptTuningEstimator.Options();
        o.ModelPath = modelPath;
        o.ClassNames = classNames;
        o.FeatureColumnName = featureColumnName;
        o.CandidateLabelsColumnName = candidateLabelsColumnName;
        return new PromptTuningEstimator(o);
    }

    /// <summary>Create a <see cref="PromptTuningEstimator"/> with every option: the objective and its settings (PiCO,
    /// PLCR, LWS), alignment and its weighting, CoOp's context, the schedule, the seed, augmented views, validation data
    /// with progress, checkpoints and cancellation.</summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="options">The options, including the model path, the class names and the columns.</param>
    /// <remarks><para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para></remarks>
    /// <example>
    /// <code language="csharp">
    /// var tuning = ml.MulticlassClassification.Trainers.PromptTuning(new PromptTuningEstimator.Options
    /// {
    ///     ModelPath = dir, ClassNames = classes, Loss = PartialLabelLossKind.PLCR,
    ///     AugmentedViews = 2, ImageColumnName = "ImagePath", CacheDirectory = ".vega-cache",   // PLCR's strong views
    ///     AlignmentWeighting = AlignmentWeighting.Fixed, AlignmentWeight = 1,
    ///     ValidationData = heldOut, Progress = new Progress&lt;PromptTuningProgress&gt;(p =&gt; Console.WriteLine($"{p.Epoch}: {p.Loss:F3} {p.ValidationAccuracy:P1}")),
    /// });
    /// </code>
    /// </example>
    public static PromptTuningEstimator PromptTuning(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, PromptTuningEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new PromptTuningEstimator(options);
    }

    /// <summary>
    /// Create an <see cref="AapeEstimator"/>, which trains AAPE (aggregate-and-adapt prompts) on the image embeddings of
    /// <paramref name="featureColumnName"/> labelled by <paramref name="labelColumnName"/>: it distils the natural-language
    /// <paramref name="descriptions"/> of each class into an image-conditioned prompt. The fitted model adds <c>Score</c>
    /// and <c>PredictedLabel</c> and needs no descriptions.
    /// </summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="modelPath">The model whose text tower embeds the prompts and descriptions: the model that produced the image embeddings.</param>
    /// <param name="classNames">The class names, in key order (at least 2, distinct).</param>
    /// <param name="descriptions">Class name → descriptive sentences (CuPL style); every class needs at least one, and a
    /// class without any is an error naming it.</param>
    /// <param name="featureColumnName">The image embedding column, a known-sized vector of <see cref="System.Single"/>.</param>
    /// <param name="labelColumnName">The true-label column: a UInt32 key over the class names, or the class name (<see cref="System.String"/>).</param>
    /// <param name="options">Training settings (λ, τ, the schedule, the aggregator, the seed, progress, cancellation); null
    /// for the defaults. Its model path, class names, descriptions and the two column names are replaced by the arguments
    /// above; the object itself is not changed.</param>
    /// <remarks>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="AapeEstimator"/> for the estimator characteristics and the options (λ, τ, schedule, aggregator, seed).</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var descriptions = new Dictionary&lt;string, IReadOnlyList&lt;string&gt;&gt;
    /// {
    ///     ["cat"] = ["a small furry pet with whiskers.", "a cat curled up asleep."],
    ///     ["dog"] = ["a loyal pet that barks.", "a dog fetching a stick."],
    /// };
    /// var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", modelPath: dir, inputColumnName: "ImagePath")
    ///     .Append(ml.MulticlassClassification.Trainers.Aape(modelPath: dir, classNames: ["cat", "dog"], descriptions: descriptions));
    /// </code>
    /// </example>
    public static AapeEstimator Aape(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, string modelPath, IReadOnlyList<string> classNames,
        IReadOnlyDictionary<string, IReadOnlyList<string>> descriptions, string featureColumnName = VegaColumnNames.ImageEmbedding, string labelColumnName = VegaColumnNames.Label,
        AapeEstimator.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(descriptions);
        var o = options?.Clone() ?? new AapeEstimator.Options();
        o.ModelPath = modelPath;
        o.ClassNames = classNames;
        o.Descriptions = descriptions;
        o.DescriptionsPath = null;
        o.FeatureColumnName = featureColumnName;
        o.LabelColumnName = labelColumnName;
        return new AapeEstimator(o);
    }

    /// <summary>
    /// Create an <see cref="AapeEstimator"/> whose class descriptions are read from <paramref name="descriptionsPath"/>:
    /// a CuPL-style JSON file <c>{"class name": ["sentence", ...]}</c> or a folder of <c>&lt;class&gt;.txt</c> files with
    /// one sentence per line.
    /// </summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="modelPath">The model whose text tower embeds the prompts and descriptions: the model that produced the image embeddings.</param>
    /// <param name="classNames">The class names, in key order (at least 2, distinct).</param>
    /// <param name="descriptionsPath">The JSON file or folder of descriptions; errors name the file, the line and the class.</param>
    /// <param name="featureColumnName">The image embedding column, a known-sized vector of <see cref="System.Single"/>.</param>
    /// <param name="labelColumnName">The true-label column: a UInt32 key over the class names, or the class name (<see cref="System.String"/>).</param>
    /// <param name="options">Training settings (λ, τ, the schedule, the aggregator, the seed, progress, cancellation); null
    /// for the defaults. Its model path, class names, descriptions and the two column names are replaced by the arguments
    /// above; the object itself is not changed.</param>
    /// <remarks>
    /// <para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para>
    /// <para>See <see cref="AapeEstimator"/> for the estimator characteristics and the options.</para>
    /// </remarks>
    /// <example>
    /// <code language="csharp">
    /// var aape = ml.MulticlassClassification.Trainers.Aape(modelPath: dir, classNames: classes, descriptionsPath: "descriptions.json",
    ///     labelColumnName: "Label");
    /// </code>
    /// </example>
    public static AapeEstimator Aape(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, string modelPath, IReadOnlyList<string> classNames,
        string descriptionsPath, string featureColumnName = VegaColumnNames.ImageEmbedding, string labelColumnName = VegaColumnNames.Label,
        AapeEstimator.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(descriptionsPath);
        var o = options?.Clone() ?? new AapeEstimator.Options();
        o.ModelPath = modelPath;
        o.ClassNames = classNames;
        o.Descriptions = null;
        o.DescriptionsPath = descriptionsPath;
        o.FeatureColumnName = featureColumnName;
        o.LabelColumnName = labelColumnName;
        return new AapeEstimator(o);
    }

    /// <summary>Create an <see cref="AapeEstimator"/> with every option (λ, τ, the schedule, the aggregator, the seed,
    /// progress, cancellation, column names).</summary>
    /// <param name="catalog">The multiclass trainers' catalog.</param>
    /// <param name="options">The options, including the model path, the class names and the descriptions.</param>
    /// <remarks><para>Only load models you trust: applying an ONNX model from an untrusted source is a security risk.</para></remarks>
    /// <example>
    /// <code language="csharp">
    /// var aape = ml.MulticlassClassification.Trainers.Aape(new AapeEstimator.Options
    /// {
    ///     ModelPath = dir, ClassNames = classes, DescriptionsPath = "descriptions/", Lambda = 5, Epochs = 50, Seed = 3,
    /// });
    /// </code>
    /// </example>
    public static AapeEstimator Aape(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, AapeEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AapeEstimator(options);
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
