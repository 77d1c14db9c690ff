using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// ml.MulticlassClassification.Trainers.Aape on the fixture model and the golden images: the estimator equals the core
/// AapeTrainer weight for weight (descriptions in code, in a CuPL JSON file and in a folder of &lt;class&gt;.txt), two fits
/// agree, a PredictionEngine predicts from the image path alone, Evaluate counts what the predictions say, column and
/// description problems are clear errors, and cancellation stops training.
/// </summary>
public sealed class AapeEstimatorTests
{
    internal static readonly string[] Classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];

    private static string Hf => ImageEmbeddingTests.Hf;

    internal static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Descriptions = new Dictionary<string, IReadOnlyList<string>>
    {
        ["a person"] = ["a photo of someone standing.", "a human face and shoulders."],
        ["a landscape"] = ["hills under a wide sky.", "a view of fields and mountains."],
        ["a gift box"] = ["a wrapped present with a ribbon."],
        ["a flower"] = ["petals around a yellow centre.", "a blossom on a green stem."],
        ["a logo"] = ["a simple graphic mark of a brand."],
    };

    internal sealed class Row
    {
        public string ImagePath = "";
        public string Label = "";
    }

    internal sealed class PathOnly
    {
        public string ImagePath = "";
    }

    internal sealed class Prediction
    {
        public float[] Score = [];
        public uint PredictedLabel { get; set; }
    }

    internal static Row[] Rows() => ImageEmbeddingTests.GoldenRows().Select((r, i) => new Row { ImagePath = r.ImagePath, Label = Classes[i % 5] }).ToArray();

    internal static AapeEstimator.Options Small(string? descriptionsPath = null) => new()
    {
        ModelPath = Hf, ClassNames = Classes, Descriptions = descriptionsPath is null ? Descriptions : null, DescriptionsPath = descriptionsPath,
        LabelColumnName = "Label", Epochs = 3, AggregatorEpochs = 3, BatchSize = 4, Heads = 4, Seed = 5,
    };

    private static AapeOptions CoreOptions(AapeEstimator.Options o) => new()
    {
        Epochs = o.Epochs, AggregatorEpochs = o.AggregatorEpochs, BatchSize = o.BatchSize, Heads = o.Heads, Seed = o.Seed,
    };

    [Fact]
    public void TheEstimatorEqualsTheCoreTrainerWeightForWeightAndTwoFitsAgree()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Append(ml.MulticlassClassification.Trainers.Aape(Small()));
        using var first = pipeline.Fit(data);
        using var second = pipeline.Fit(data);
        var fitted = first.LastTransformer;

        // The oracle: the core trainer on the core engine's embeddings, class prompts and description embeddings.
        using var model = ClipModel.Load(Hf);
        var images = new EmbeddingMatrix(ImageEmbeddingTests.CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray()).SelectMany(e => e).ToArray(), rows.Length, model.EmbeddingDimension);
        var expected = AapeTrainer.Train(new AapeTrainingSet
        {
            Images = images,
            Labels = rows.Select(r => Array.IndexOf(Classes, r.Label)).ToArray(),
            ClassNames = Classes,
            ClassWeights = model.EmbedClassNames(Classes, PromptTemplates.Default),
            Descriptions = ClassDescriptions.Create(Descriptions, Classes).Embed(model),
            LogitScale = model.LogitScale,
        }, CoreOptions(Small()));
        AssertSameHead(expected, fitted.Head);
        AssertSameHead(fitted.Head, second.LastTransformer.Head);
        Assert.Equal(Classes, fitted.ClassNames);

        // Scores: softmax of the core head's logits; PredictedLabel its arg-max; the engine gives the same from the path alone.
        var scored = first.Transform(data);
        Assert.Equal(Classes, TextAndZeroShotTests.SlotNames(scored.Schema["Score"]));
        Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(scored.Schema["PredictedLabel"]));
        var predictions = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToArray();
        var logits = expected.Predict(images);
        var engine = ml.Model.CreatePredictionEngine<PathOnly, Prediction>(first);
        for (int i = 0; i < rows.Length; i++)
        {
            var p = AapeHead.Softmax(logits.AsSpan(i * 5, 5));
            Assert.True(Fixtures.MaxAbsDiff(p, predictions[i].Score) <= 1e-6, $"row {i}");
            Assert.Equal((uint)LinearArgMax(p) + 1, predictions[i].PredictedLabel);
            var one = engine.Predict(new PathOnly { ImagePath = rows[i].ImagePath });
            Assert.Equal(predictions[i].Score, one.Score);
            Assert.Equal(predictions[i].PredictedLabel, one.PredictedLabel);
        }

        // Evaluate with the true-label column as a key over the class names: its accuracy is the count of right predictions.
        MLNetTestUtils.EvaluateCountsTheRightPredictions(ml, scored, Classes, [.. rows.Select(r => r.Label)], [.. predictions.Select(p => p.PredictedLabel)]);
    }

    [Fact]
    public void DescriptionsFromACuplJsonFileOrAFolderOfClassFilesGiveTheSameHeadAsInCode()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var embed = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(data);
        var embedded = ml.Data.Cache(embed.Transform(data));
        var inCode = ml.MulticlassClassification.Trainers.Aape(Small()).Fit(embedded);

        string dir = Fixtures.TempDir("vega-aape-descriptions");
        string json = Path.Combine(dir, "descriptions.json");
        File.WriteAllText(json, JsonSerializer.Serialize(Descriptions));
        var fromJson = ml.MulticlassClassification.Trainers.Aape(Small(json)).Fit(embedded);
        string folder = Directory.CreateDirectory(Path.Combine(dir, "classes")).FullName;
        foreach (var (name, sentences) in Descriptions) File.WriteAllLines(Path.Combine(folder, name + ".txt"), sentences);
        var fromFolder = ml.MulticlassClassification.Trainers.Aape(modelPath: Hf, classNames: Classes, descriptionsPath: folder, labelColumnName: "Label").Fit(embedded);
        var defaults = ml.MulticlassClassification.Trainers.Aape(modelPath: Hf, classNames: Classes, descriptions: Descriptions, labelColumnName: "Label").Fit(embedded);

        AssertSameHead(inCode.Head, fromJson.Head);
        // The options argument of the catalog method carries the settings; the arguments set model, classes, descriptions
        // and columns, and the caller's object is left as it was.
        var settings = Small();
        settings.ModelPath = "elsewhere";
        settings.LabelColumnName = "Nope";
        var viaOptions = ml.MulticlassClassification.Trainers.Aape(modelPath: Hf, classNames: Classes, descriptionsPath: json, labelColumnName: "Label", options: settings).Fit(embedded);
        AssertSameHead(inCode.Head, viaOptions.Head);
        Assert.Equal(("elsewhere", "Nope", (string?)null), (settings.ModelPath, settings.LabelColumnName, settings.DescriptionsPath));
        // The catalog overloads use the default options: the folder and the dictionary give the same head.
        AssertSameHead(defaults.Head, fromFolder.Head);
        Assert.Equal(AapeEstimator.Defaults.Epochs, defaults.Head.Training!.Epochs.Count);
    }

    [Fact]
    public void MissingDescriptionsAndBadColumnsAreClearErrorsAndCancellationStopsTraining()
    {
        var ml = new MLContext(seed: 1);
        var t = ml.MulticlassClassification.Trainers;

        // A class without descriptions is named, in code and in a file.
        var partial = Descriptions.Where(kv => kv.Key != "a flower").ToDictionary(kv => kv.Key, kv => kv.Value);
        var e1 = Assert.Throws<ArgumentOutOfRangeException>(() => t.Aape(Hf, Classes, partial));
        Assert.Contains("\"a flower\"", e1.Message);
        var empty = new Dictionary<string, IReadOnlyList<string>>(Descriptions) { ["a logo"] = [] };
        Assert.Contains("Class \"a logo\" has no descriptions", Assert.Throws<ArgumentOutOfRangeException>(() => t.Aape(Hf, Classes, empty)).Message);
        string json = Path.Combine(Fixtures.TempDir("vega-aape-bad"), "d.json");
        File.WriteAllText(json, JsonSerializer.Serialize(partial));
        var e2 = Assert.Throws<InvalidDataException>(() => t.Aape(Hf, Classes, descriptionsPath: json));
        Assert.Contains("\"a flower\"", e2.Message);
        Assert.Contains(json, e2.Message);
        Assert.Contains("Descriptions or DescriptionsPath", Assert.Throws<ArgumentOutOfRangeException>(() => t.Aape(new AapeEstimator.Options { ModelPath = Hf, ClassNames = Classes })).Message);

        // Columns: the schema errors name the column, what was expected and what was found.
        var estimator = t.Aape(Hf, Classes, Descriptions, labelColumnName: "Label");
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<FloatLabel>()));
        Assert.Equal("Schema mismatch for label column 'Label': expected Key<UInt32, 0-4> (a key over the class names) or String (the class name), got Single (Parameter 'inputSchema')", e3.Message);
        var e4 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(ml.Data.LoadFromEnumerable(new[] { new FloatLabel { ImageEmbedding = new float[32] } })));
        Assert.StartsWith("Schema mismatch for label column 'Label'", e4.Message);
        Assert.Contains("got Single", e4.Message);
        var e5 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<PathOnly>()));
        Assert.StartsWith("Could not find feature column 'ImageEmbedding'", e5.Message);
        var unknown = ml.Data.LoadFromEnumerable(new[] { new TextLabel { ImageEmbedding = Unit(0), Label = "a person" }, new TextLabel { ImageEmbedding = Unit(1), Label = "a cat" } });
        var e6 = Assert.Throws<InvalidOperationException>(() => estimator.Fit(unknown));
        Assert.StartsWith("Row 1 of label column 'Label' is \"a cat\", which is not one of the 5 class names", e6.Message);
        var fewer = ml.Data.LoadFromEnumerable(Classes.Take(4).Select((c, i) => new TextLabel { ImageEmbedding = Unit(i), Label = c }));
        Assert.Contains("a logo", Assert.Throws<InvalidOperationException>(() => estimator.Fit(fewer)).Message);

        // Cancellation from the progress of the first epoch: training stops with OperationCanceledException.
        var data = ml.Data.LoadFromEnumerable(Classes.SelectMany((c, i) => new[] { new TextLabel { ImageEmbedding = Unit(i), Label = c }, new TextLabel { ImageEmbedding = Unit(i + 5), Label = c } }));
        using var cts = new CancellationTokenSource();
        int epochs = 0;
        var options = Small();
        options.Epochs = 20;
        options.CancellationToken = cts.Token;
        options.Progress = new Callback(_ => { epochs++; cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => t.Aape(options).Fit(data));
        Assert.Equal(1, epochs);
    }

    internal static void AssertSameHead(AapeHead expected, AapeHead actual)
    {
        var (w1, b1, w2, b2, g, gb) = expected.RawWeights;
        var (aw1, ab1, aw2, ab2, ag, agb) = actual.RawWeights;
        Assert.Equal(w1, aw1);
        Assert.Equal(b1, ab1);
        Assert.Equal(w2, aw2);
        Assert.Equal(b2, ab2);
        Assert.Equal(g, ag);
        Assert.Equal(gb, agb);
        Assert.Equal(expected.ProjectedClasses.ToArray(), actual.ProjectedClasses.ToArray());
        Assert.Equal(expected.Temperature, actual.Temperature);
    }

    private static int LinearArgMax(float[] p)
    {
        int best = 0;
        for (int c = 1; c < p.Length; c++) if (p[c] > p[best]) best = c;
        return best;
    }

    private static float[] Unit(int k)
    {
        var v = new float[32];
        v[k % 32] = 1;
        return v;
    }

    internal sealed class FloatLabel
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
        public float Label = 0f;
    }

    internal sealed class TextLabel
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
        public string Label = "";
    }

    private sealed class Callback(Action<AapeEpoch> action) : IProgress<AapeEpoch>
    {
        public void Report(AapeEpoch value) => action(value);
    }
}
