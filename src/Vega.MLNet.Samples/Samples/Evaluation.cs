using Microsoft.ML;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>
/// Sample: evaluate a zero-shot CLIP classifier on labelled images with <c>ml.MulticlassClassification.Evaluate</c>
/// (accuracy, log-loss, confusion matrix). The true labels are mapped to keys over the class names in class order, so
/// they agree with the predicted keys. Run it with <c>vega sample evaluate</c>.
/// </summary>
public static class Evaluation
{
    /// <summary>Evaluates <paramref name="modelFolder"/> on the images of <paramref name="labelsCsv"/> (<c>path,label</c>).</summary>
    public static Microsoft.ML.Data.MulticlassClassificationMetrics Run(string modelFolder, string labelsCsv, IReadOnlyList<string> classNames, TextWriter output)
    {
        var ml = new MLContext(seed: 1);
        IDataView labelled = SampleData.LabelledCsv(ml, labelsCsv);

        var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(ImageData.Label), keyData: SampleData.ClassKeys(ml, classNames))
            .Append(ml.Transforms.EmbedImages("ImageEmbedding", modelFolder, nameof(ImageData.ImagePath)))
            .Append(ml.MulticlassClassification.Trainers.ZeroShot(modelFolder, classNames, "ImageEmbedding"));

        using var model = pipeline.Fit(labelled);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(labelled), labelColumnName: "LabelKey");

        output.WriteLine($"micro-accuracy {metrics.MicroAccuracy:P2}, macro-accuracy {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:F4}");
        output.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());
        return metrics;
    }
}
