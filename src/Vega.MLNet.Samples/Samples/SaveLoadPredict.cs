using Microsoft.ML;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>
/// Sample: fit a zero-shot pipeline, save it with <c>ml.Model.Save</c>, and — in another process, with nothing but the
/// .zip — load it with <c>ml.Model.Load</c> and classify single images with a <c>PredictionEngine</c>.
/// Run it with <c>vega sample save-load</c> (both steps) or <c>vega sample predict --saved model.zip</c> (the second).
/// </summary>
public static class SaveLoadPredict
{
    /// <summary>Fits EmbedImages → ZeroShot → MapKeyToValue on the images of <paramref name="imageFolder"/> and saves it.</summary>
    public static void Save(string modelFolder, string imageFolder, IReadOnlyList<string> classNames, string zipPath, TextWriter output)
    {
        var ml = new MLContext(seed: 1);
        IDataView images = SampleData.Folder(ml, imageFolder);
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", modelFolder, nameof(ImageData.ImagePath))
            .Append(ml.MulticlassClassification.Trainers.ZeroShot(modelFolder, classNames, "ImageEmbedding"))
            .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(ImagePrediction.PredictedClass), "PredictedLabel"));
        using var model = pipeline.Fit(images);

        // ML.NET creates the file before the transformers write: save next to it and rename, so that a failed save
        // never replaces a good model.
        string partial = zipPath + ".partial";
        ml.Model.Save(model, images.Schema, partial);
        File.Move(partial, zipPath, overwrite: true);
        output.WriteLine($"saved {zipPath} ({new FileInfo(zipPath).Length / 1024} KiB, the ONNX graph included)");
    }

    /// <summary>Loads <paramref name="zipPath"/> and prints one line per image: file, predicted class, class probabilities.</summary>
    public static void Predict(string zipPath, IReadOnlyList<string> imagePaths, TextWriter output)
    {
        var ml = new MLContext(seed: 1);
        ml.ComponentCatalog.RegisterAssembly(typeof(VegaCatalog).Assembly);   // the saved model's decoding step lives there
        ITransformer model = ml.Model.Load(zipPath, out DataViewSchema inputSchema);
        var engine = ml.Model.CreatePredictionEngine<ImageData, ImagePrediction>(model, inputSchema);
        foreach (string path in imagePaths)
        {
            var p = engine.Predict(new ImageData { ImagePath = path });
            output.WriteLine($"{Path.GetFileName(path)}\t{p.PredictedClass}\t{string.Join(' ', p.Score.Select(s => s.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}");
        }
    }
}
