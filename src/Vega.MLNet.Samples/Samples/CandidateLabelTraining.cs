using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>
/// Sample: prompt learning from images whose labels are uncertain. Each training image carries a set of candidate
/// classes, one of which is right (a CSV <c>path,candidates</c> with the names separated by <c>|</c>, e.g.
/// <c>images/00001.png,Shirt|T-shirt/top|Pullover</c>). Two pipelines, as ML.NET separates data preparation from the
/// model: the candidate names become keys over the class names (<c>TokenizeIntoWords</c> + <c>MapValueToKey</c>), then
/// EmbedImages → PromptTuning (CoOp with the CC objective and prompt alignment) is fitted on them. The model reads only
/// the image path, so it is evaluated on a labelled CSV (<c>path,label</c>) with <c>MulticlassClassification.Evaluate</c>
/// and a PredictionEngine classifies an image from its path alone. For comparison, ML.NET's own
/// <c>LbfgsMaximumEntropy</c> after EmbedImages, trained on one row per candidate weighted 1/|S| (the NAIVE objective).
/// Run it with <c>vega sample candidate-labels</c>.
/// </summary>
public static class CandidateLabelTraining
{
    /// <summary>Trains on <paramref name="trainCsv"/>, evaluates on <paramref name="testCsv"/>, prints the metrics and one
    /// prediction; returns the prompt-tuned model's and the baseline's test metrics.</summary>
    public static (MulticlassClassificationMetrics PromptTuning, MulticlassClassificationMetrics Baseline) Run(string modelFolder, string trainCsv, string testCsv,
        IReadOnlyList<string> classNames, TextWriter output, int epochs = 20)
    {
        var ml = new MLContext(seed: 1);
        IDataView training = ml.Data.LoadFromTextFile<CandidateImageData>(trainCsv, separatorChar: ',', hasHeader: true, allowQuoting: true);
        IDataView test = ml.Data.LoadFromTextFile<ImageData>(testCsv, separatorChar: ',', hasHeader: true, allowQuoting: true);
        IDataView classKeys = SampleData.ClassKeys(ml, classNames);     // key order = class order, for every key column below

        // 1. Data preparation (training only): "Shirt|T-shirt/top" → a variable-length vector of keys over the class names.
        var prepare = ml.Transforms.Text.TokenizeIntoWords("CandidateNames", nameof(CandidateImageData.Candidates), separators: ['|'])
            .Append(ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "CandidateNames", keyData: classKeys));
        IDataView prepared = prepare.Fit(training).Transform(training);

        // 2. The model: image path → embedding → prompt-tuned classifier. Relative paths are relative to each CSV.
        var model = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
            {
                ModelPath = modelFolder, InputColumnName = nameof(ImageData.ImagePath), ImageFolder = Folder(trainCsv),
            })
            .Append(ml.MulticlassClassification.Trainers.PromptTuning(new PromptTuningEstimator.Options
            {
                ModelPath = modelFolder,
                ClassNames = classNames,
                Method = TuningMethod.CoOp,
                Loss = PartialLabelLossKind.CC,
                Align = true,                               // keeps the prompt near the handcrafted one's posterior over S
                ContextTokens = 4,
                Epochs = epochs,
                LearningRate = 0.01,
                Progress = new EpochPrinter(output, epochs),
            }))
            .Fit(prepared);

        // 3. Evaluate on labelled images: the true label as a key over the same class names, in the same order.
        var metrics = Evaluate(ml, model, test, classKeys, testCsv);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"PromptTuning (CoOp, CC + alignment): micro-accuracy {metrics.MicroAccuracy:P2}, log-loss {metrics.LogLoss:F4}"));

        // 4. The linear-probe baseline with ML.NET's own trainer: one row per candidate, weighted 1/|S|.
        var embedRows = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
        {
            ModelPath = modelFolder, InputColumnName = nameof(ImageData.ImagePath), ImageFolder = Folder(trainCsv),
        });
        var expanded = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<CandidateImageData>(training, reuseRowObject: false)
            .SelectMany(r =>
            {
                var names = r.Candidates.Split('|');
                return names.Select(n => new WeightedImage { ImagePath = r.ImagePath, Label = n, Weight = 1f / names.Length });
            }));
        var baselineModel = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(WeightedImage.Label), keyData: classKeys)
            .Append(embedRows)
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = "LabelKey", FeatureColumnName = "ImageEmbedding", ExampleWeightColumnName = nameof(WeightedImage.Weight), NumberOfThreads = 1,
            }))
            .Fit(expanded);
        var baseline = Evaluate(ml, baselineModel, test, classKeys, testCsv);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"LbfgsMaximumEntropy after EmbedImages (NAIVE weights): micro-accuracy {baseline.MicroAccuracy:P2}"));

        // 5. One prediction from the image path alone: the model has no candidate column to read.
        var first = ml.Data.CreateEnumerable<ImageData>(test, reuseRowObject: false).First();
        var engine = ml.Model.CreatePredictionEngine<PathOnly, CandidatePrediction>(model);
        var prediction = engine.Predict(new PathOnly { ImagePath = Path.Combine(Folder(testCsv), first.ImagePath) });
        output.WriteLine($"{first.ImagePath}: {classNames[(int)prediction.PredictedLabel - 1]} ({prediction.Score.Max():P1}; true: {first.Label})");
        return (metrics, baseline);
    }

    private static MulticlassClassificationMetrics Evaluate(MLContext ml, ITransformer model, IDataView test, IDataView classKeys, string testCsv)
    {
        // The test CSV's relative paths are relative to its own folder.
        var rebased = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<ImageData>(test, reuseRowObject: false)
            .Select(r => new ImageData { ImagePath = Path.IsPathRooted(r.ImagePath) ? r.ImagePath : Path.Combine(Folder(testCsv), r.ImagePath), Label = r.Label }));
        var keyed = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(ImageData.Label), keyData: classKeys).Fit(rebased).Transform(rebased);
        return ml.MulticlassClassification.Evaluate(model.Transform(keyed), labelColumnName: "LabelKey");
    }

    private static string Folder(string csv) => Path.GetDirectoryName(Path.GetFullPath(csv))!;

    /// <summary>Prints every fifth epoch's loss (IProgress on the training thread).</summary>
    private sealed class EpochPrinter(TextWriter output, int epochs) : IProgress<PromptTuningProgress>
    {
        public void Report(PromptTuningProgress p)
        {
            if (p.Epoch % 5 == 4 || p.Epoch == epochs - 1)
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch + 1}/{p.Epochs}: loss {p.Loss:F4}"));
        }
    }

    private sealed class PathOnly
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class WeightedImage
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
        public float Weight { get; set; }
    }
}
