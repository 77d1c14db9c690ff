using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>EmbedText against ClipModel.EmbedTexts and PyTorch's goldens; ZeroShot against an independent softmax of the
/// scaled cosines, through MapKeyToValue, Evaluate and PredictionEngine.</summary>
public sealed class TextAndZeroShotTests
{
    internal sealed class TextRow
    {
        public string Text = "";
    }

    internal sealed class TextOut
    {
        public string Text = "";
        public float[] TextEmbedding = [];
    }

    private static readonly string[] GoldenTexts = ["a photo of a cat.", "a photo of a dog.", "T-shirt/top", "an ankle boot"];

    private static float[] NormalizedGolden(string file, int rows, int dim)
    {
        var raw = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", file));
        for (int r = 0; r < rows; r++)
        {
            double n = 0;
            for (int d = 0; d < dim; d++) n += raw[r * dim + d] * raw[r * dim + d];
            for (int d = 0; d < dim; d++) raw[r * dim + d] = (float)(raw[r * dim + d] / Math.Sqrt(n));
        }
        return raw;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(64)]
    public void TextEmbeddingsMatchPyTorchAndTheCorePathForEveryBatchSize(int batchSize)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(GoldenTexts.Select(t => new TextRow { Text = t }));
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        using var t = ml.Transforms.EmbedText(new TextEmbeddingEstimator.Options { ModelPath = hf, InputColumnName = "Text", BatchSize = batchSize }).Fit(data);
        var rows = ml.Data.CreateEnumerable<TextOut>(t.Transform(data), reuseRowObject: false).ToArray();
        Assert.Equal(GoldenTexts, rows.Select(r => r.Text));
        var golden = NormalizedGolden("hf_text_longest.f32", 4, 32);
        using var model = ClipModel.Load(hf);
        var core = model.EmbedTexts(GoldenTexts);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(golden.AsSpan(i * 32, 32), rows[i].TextEmbedding) <= 1e-4);
            Assert.Equal(core.Row(i).ToArray(), rows[i].TextEmbedding);
        }
        var engine = ml.Model.CreatePredictionEngine<TextRow, TextOut>(t);
        Assert.Equal(core.Row(2).ToArray(), engine.Predict(new TextRow { Text = GoldenTexts[2] }).TextEmbedding);
    }

    [Fact]
    public void ATextLongerThanTheContextIsAnErrorNamingTheRowUnlessTruncatedOrMarkedMissing()
    {
        var ml = new MLContext(seed: 1);
        string longText = string.Join(' ', Enumerable.Repeat("a", 80)); // 82 tokens with start and end
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Text = "ok" }, new TextRow { Text = longText } });
        string openai = Path.Combine(Fixtures.Onnx, "openai");
        using (var t = ml.Transforms.EmbedText("TextEmbedding", openai, "Text").Fit(data))
        {
            var e = Assert.Throws<InvalidOperationException>(() => t.Transform(data).GetColumn<float[]>("TextEmbedding").ToArray());
            Assert.Contains("row 1", e.Message);
            Assert.Contains("82 tokens", e.Message);
            Assert.Contains("Truncate", e.Message);
        }
        using (var t = ml.Transforms.EmbedText(new TextEmbeddingEstimator.Options { ModelPath = openai, InputColumnName = "Text", OnError = EmbeddingErrorHandling.MissingValue }).Fit(data))
        {
            var view = t.Transform(data);
            var vectors = view.GetColumn<float[]>("TextEmbedding").ToArray();
            Assert.All(vectors[1], v => Assert.True(float.IsNaN(v)));
            Assert.StartsWith("the text has 82 tokens", view.GetColumn<string>("TextEmbeddingError").ToArray()[1]);
            Assert.Single(ml.Data.FilterRowsByMissingValues(view, "TextEmbedding").GetColumn<string>("Text"));
        }
        using (var t = ml.Transforms.EmbedText(new TextEmbeddingEstimator.Options { ModelPath = openai, InputColumnName = "Text", Truncate = true }).Fit(data))
        {
            using var model = ClipModel.Load(openai);
            var core = model.EmbedTexts([longText], new TextEmbeddingOptions { Truncate = true });
            Assert.Equal(core.Row(0).ToArray(), t.Transform(data).GetColumn<float[]>("TextEmbedding").ToArray()[1]);
        }
    }

    internal sealed class Labelled
    {
        public string ImagePath = "";
        public string Label = "";
    }

    internal sealed class Prediction
    {
        public float[] Score = [];
        public uint PredictedLabel { get; set; }
        public string PredictedClass = "";
    }

    private static readonly string[] Classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];

    [Fact]
    public void ZeroShotScoresAreTheSoftmaxOfTheScaledCosinesAndPlugIntoMapKeyToValueEvaluateAndPredictionEngine()
    {
        var ml = new MLContext(seed: 1);
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        var paths = ImageEmbeddingTests.GoldenRows().Select(r => r.ImagePath).ToArray();
        // Labels: whatever class the reference computation below predicts for even rows, another class for odd rows.
        using var model = ClipModel.Load(hf);
        var texts = model.EmbedClassNames(Classes);
        var images = ImageEmbeddingTests.CoreEmbeddings(hf, paths);
        var expectedScores = images.Select(e => ReferenceSoftmax(e, texts, model.LogitScale)).ToArray();
        var expectedBest = expectedScores.Select(s => Array.IndexOf(s, s.Max())).ToArray();
        var rows = paths.Select((p, i) => new Labelled { ImagePath = p, Label = Classes[i % 2 == 0 ? expectedBest[i] : (expectedBest[i] + 1) % Classes.Length] }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);

        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", hf, "ImagePath")
            .Append(ml.MulticlassClassification.Trainers.ZeroShot(modelPath: hf, classNames: Classes, featureColumnName: "ImageEmbedding"))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
        using var fitted = pipeline.Fit(data);
        var scored = fitted.Transform(data);
        Assert.Equal(Classes, SlotNames(scored.Schema["Score"]));
        var predictions = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(expectedScores[i], predictions[i].Score) <= 1e-5, $"row {i}");
            Assert.Equal((uint)expectedBest[i] + 1, predictions[i].PredictedLabel);
            Assert.Equal(Classes[expectedBest[i]], predictions[i].PredictedClass);
        }

        // Evaluate: the true label mapped to keys over the same class names in the same order.
        var metrics = MLNetTestUtils.EvaluateCountsTheRightPredictions(ml, scored, Classes, [.. rows.Select(r => r.Label)], [.. expectedBest.Select(b => (uint)b + 1)]);
        Assert.Equal(rows.Length, metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()));

        var engine = ml.Model.CreatePredictionEngine<Labelled, Prediction>(fitted);
        var one = engine.Predict(rows[3]);
        Assert.Equal(Classes[expectedBest[3]], one.PredictedClass);
        Assert.True(Fixtures.MaxAbsDiff(expectedScores[3], one.Score) <= 1e-5);
    }

    [Fact]
    public void ZeroShotChecksTheFeatureColumnAndTheClassNames()
    {
        var ml = new MLContext(seed: 1);
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        var wrong = ml.Data.LoadFromEnumerable(new[] { new Wide { ImageEmbedding = new float[5] } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.ZeroShot(hf, Classes).Fit(wrong));
        Assert.Equal("inputSchema", e.ParamName);
        Assert.StartsWith("Schema mismatch for feature column 'ImageEmbedding': expected Vector<Single, 32>, got Vector<Single, 5>", e.Message);
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.ZeroShot(hf, ["cat", "cat"]));
        Assert.Contains("cat", e2.Message);
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.ZeroShot(hf, Classes, featureColumnName: "Nope").GetOutputSchema(MLNetTestUtils.ShapeOf<Wide>()));
        Assert.StartsWith("Could not find feature column 'Nope'", e3.Message);
    }

    internal sealed class Wide
    {
        [VectorType(5)] public float[] ImageEmbedding = [];
    }

    internal static float[] ReferenceSoftmax(float[] image, Vega.MLNet.Embedding.EmbeddingMatrix texts, float scale)
    {
        var logits = new double[texts.Count];
        for (int c = 0; c < texts.Count; c++)
        {
            double dot = 0, ni = 0, nt = 0;
            var t = texts.Row(c);
            for (int d = 0; d < image.Length; d++) { dot += image[d] * t[d]; ni += image[d] * image[d]; nt += t[d] * t[d]; }
            logits[c] = scale * dot / Math.Sqrt(ni * nt);
        }
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return logits.Select(l => (float)(Math.Exp(l - max) / sum)).ToArray();
    }

    internal static string[] SlotNames(DataViewSchema.Column column)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    internal static string[] KeyValues(DataViewSchema.Column column)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetKeyValues(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }
}
