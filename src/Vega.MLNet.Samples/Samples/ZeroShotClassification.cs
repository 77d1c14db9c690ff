using Microsoft.ML;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>
/// Sample: zero-shot classification of a folder of images with one CLIP model, as an ML.NET pipeline:
/// EmbedImages → ZeroShot → MapKeyToValue. Images that cannot be decoded get a missing embedding and their reason in an
/// error column instead of stopping the run; <c>FilterRowsByMissingValues</c> drops them. Run it with
/// <c>vega sample zero-shot</c>.
/// </summary>
public static class ZeroShotClassification
{
    /// <summary>Classifies every image of <paramref name="imageFolder"/> into <paramref name="classNames"/> and prints one line per image.</summary>
    public static void Run(string modelFolder, string imageFolder, IReadOnlyList<string> classNames, TextWriter output)
    {
        var ml = new MLContext(seed: 1);
        IDataView images = SampleData.Folder(ml, imageFolder);

        using var embed = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
        {
            ModelPath = modelFolder,
            InputColumnName = nameof(ImageData.ImagePath),
            OutputColumnName = "ImageEmbedding",
            OnError = EmbeddingErrorHandling.MissingValue,  // a broken file: NaN embedding + its reason in "ImageEmbeddingError"
        }).Fit(images);
        IDataView embedded = embed.Transform(images);
        foreach (var bad in ml.Data.CreateEnumerable<Skipped>(embedded, reuseRowObject: false).Where(r => r.ImageEmbeddingError.Length > 0))
            output.WriteLine($"skipped {Path.GetFileName(bad.ImagePath)}: {bad.ImageEmbeddingError}");
        IDataView readable = ml.Data.FilterRowsByMissingValues(embedded, "ImageEmbedding");

        var classify = ml.MulticlassClassification.Trainers.ZeroShot(modelPath: modelFolder, classNames: classNames, featureColumnName: "ImageEmbedding")
            .Append(ml.Transforms.Conversion.MapKeyToValue(outputColumnName: nameof(ImagePrediction.PredictedClass), inputColumnName: "PredictedLabel"));
        var model = classify.Fit(readable);
        foreach (var p in ml.Data.CreateEnumerable<ImagePrediction>(model.Transform(readable), reuseRowObject: false))
            output.WriteLine($"{Path.GetFileName(p.ImagePath)}: {p.PredictedClass} ({p.Score.Max():P1})");
    }

    private sealed class Skipped
    {
        public string ImagePath { get; set; } = "";
        public string ImageEmbeddingError { get; set; } = "";
    }
}
