using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// ml.Model.Save / ml.Model.Load of every Vega.MLNet transformer: the loaded model (a chain of ML.NET's own transformers)
/// gives the same columns and values as the fitted one. A second process is exercised by <see cref="SaveLoadProcessTests"/>.
/// </summary>
public sealed class SavingTests
{
    private static readonly string[] Classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];
    private static string Hf => Path.Combine(Fixtures.Onnx, "hf");
    private static string OpenAI => Path.Combine(Fixtures.Onnx, "openai");

    internal sealed class Output
    {
        public string ImagePath = "";
        public float[] ImageEmbedding = [];
        public float[] Score = [];
        public uint PredictedLabel { get; set; }
        public string PredictedClass = "";
    }

    internal static ITransformer SaveAndLoad(MLContext ml, ITransformer model, DataViewSchema schema, out DataViewSchema loadedSchema)
    {
        string file = Path.Combine(Fixtures.TempDir(), "model.zip");
        ml.Model.Save(model, schema, file);
        var fresh = new MLContext(seed: 7);
        fresh.ComponentCatalog.RegisterAssembly(typeof(VegaCatalog).Assembly);
        return fresh.Model.Load(file, out loadedSchema);
    }

    [Theory]
    [InlineData("hf")]
    [InlineData("openai")]
    public void AZeroShotPipelineOverPathsSavesAndLoadsWithTheSameKeysAndScores(string modelName)
    {
        string dir = Path.Combine(Fixtures.Onnx, modelName);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", dir, "ImagePath")
            .Append(ml.MulticlassClassification.Trainers.ZeroShot(dir, Classes))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
        using var fitted = pipeline.Fit(data);
        var loaded = SaveAndLoad(ml, fitted, data.Schema, out var schema);
        Assert.Equal(["ImagePath", "Label"], schema.Select(c => c.Name));

        var expected = ml.Data.CreateEnumerable<Output>(fitted.Transform(data), reuseRowObject: false).ToArray();
        var scored = loaded.Transform(data);
        var actual = ml.Data.CreateEnumerable<Output>(scored, reuseRowObject: false).ToArray();
        Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(scored.Schema["PredictedLabel"]));
        Assert.Null(scored.Schema.GetColumnOrNull("__VegaRgb"));
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(expected[i].ImageEmbedding, actual[i].ImageEmbedding) <= 1e-6, $"embedding {i}");
            Assert.True(Fixtures.MaxAbsDiff(expected[i].Score, actual[i].Score) <= 1e-5, $"score {i}");
            Assert.Equal(expected[i].PredictedLabel, actual[i].PredictedLabel);
            Assert.Equal(expected[i].PredictedClass, actual[i].PredictedClass);
        }
    }

    [Fact]
    public void EncodedBytesAndMissingValuesSaveToo()
    {
        var ml = new MLContext(seed: 1);
        var rows = ImageEmbeddingTests.GoldenRows().Take(3).ToList();
        rows.Insert(1, new ImageEmbeddingTests.PathRow { ImagePath = Path.Combine(Fixtures.Images, "bad", "not_an_image.jpg"), Label = "bad" });
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadRawImageBytes("Bytes", null, "ImagePath")
            .Append(ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
            {
                ModelPath = Hf, InputColumnName = "Bytes", OnError = EmbeddingErrorHandling.MissingValue, ApplyExifOrientation = true,
            }));
        using var fitted = pipeline.Fit(data);
        var loaded = SaveAndLoad(ml, fitted, data.Schema, out _);
        var expected = fitted.Transform(data);
        var actual = loaded.Transform(data);
        Assert.Equal(expected.GetColumn<string>("ImageEmbeddingError").ToArray(), actual.GetColumn<string>("ImageEmbeddingError").ToArray());
        var e = expected.GetColumn<float[]>("ImageEmbedding").ToArray();
        var a = actual.GetColumn<float[]>("ImageEmbedding").ToArray();
        Assert.All(a[1], v => Assert.True(float.IsNaN(v)));
        foreach (int i in new[] { 0, 2, 3 }) Assert.True(Fixtures.MaxAbsDiff(e[i], a[i]) <= 1e-6);
    }

    [Fact]
    public void AnMLImageColumnSavesThroughMLNetsOwnResizingAndIsCloseToTheExactPath()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows().Take(4));
        var pipeline = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.EmbedImages("ImageEmbedding", Hf, "Image"));
        using var fitted = pipeline.Fit(data);
        var loaded = SaveAndLoad(ml, fitted, data.Schema, out _);
        var e = fitted.Transform(data).GetColumn<float[]>("ImageEmbedding").ToArray();
        var a = loaded.Transform(data).GetColumn<float[]>("ImageEmbedding").ToArray();
        // ML.NET's resize (Skia, bilinear) is not Pillow's bicubic: the embeddings are close, not equal.
        for (int i = 0; i < e.Length; i++)
        {
            Assert.Equal(e[i].Length, a[i].Length);
            double cos = e[i].Zip(a[i], (x, y) => (double)x * y).Sum();
            Assert.True(cos > 0.9, $"image {i}: cosine {cos} between the fitted and the loaded embedding");
        }
    }

    [Fact]
    public void ZeroShotAloneAndVegaAlignmentSaveAsHeadsOverTheEmbeddingColumn()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        using var embed = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(data);
        var embedded = embed.Transform(data);
        var zs = ml.MulticlassClassification.Trainers.ZeroShot(Hf, Classes).Fit(embedded);
        var vega = ml.Transforms.VegaAlignment(Hf, Classes).Fit(embedded);
        foreach (var (model, columns) in new (ITransformer, string[])[] { (zs, ["Score", "PredictedLabel"]), (vega, ["PseudoLabel", "NodeScore"]) })
        {
            var loaded = SaveAndLoad(ml, model, embedded.Schema, out _);
            var e = model.Transform(embedded);
            var a = loaded.Transform(embedded);
            foreach (var c in columns)
            {
                Assert.Equal(ItemType(e.Schema[c].Type).RawType, ItemType(a.Schema[c].Type).RawType);
                if (e.Schema[c].Type is KeyDataViewType)
                {
                    Assert.Equal(e.GetColumn<uint>(c).ToArray(), a.GetColumn<uint>(c).ToArray());
                    Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(a.Schema[c]));
                }
                else if (e.Schema[c].Type is VectorDataViewType)
                {
                    var ev = e.GetColumn<float[]>(c).ToArray();
                    var av = a.GetColumn<float[]>(c).ToArray();
                    for (int i = 0; i < ev.Length; i++) Assert.True(Fixtures.MaxAbsDiff(ev[i], av[i]) <= 1e-5);
                }
                else
                {
                    var ev = e.GetColumn<float>(c).ToArray();
                    var av = a.GetColumn<float>(c).ToArray();
                    for (int i = 0; i < ev.Length; i++) Assert.Equal(ev[i], av[i], 5);
                }
            }
        }
    }

    [Fact]
    public void TheChosenModelOfASelectionSavesAsItsZeroShotTransform()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows());
        using var selection = ml.Transforms.SelectVisionLanguageModel([OpenAI, Hf], Classes).Fit(data);
        var loaded = SaveAndLoad(ml, selection, data.Schema, out _);
        var e = selection.Transform(data);
        var a = loaded.Transform(data);
        Assert.Equal(e.GetColumn<uint>("PredictedLabel").ToArray(), a.GetColumn<uint>("PredictedLabel").ToArray());
        var es = e.GetColumn<float[]>("Score").ToArray();
        var @as = a.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < es.Length; i++) Assert.True(Fixtures.MaxAbsDiff(es[i], @as[i]) <= 1e-5);
    }

    [Fact]
    public void WhatCannotBeSavedIsAClearNotSupportedError()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ImageEmbeddingTests.GoldenRows().Select(r => new ImageEmbeddingTests.PathRow { ImagePath = Path.GetFileName(r.ImagePath) }));
        using var t = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options { ModelPath = Hf, InputColumnName = "ImagePath", ImageFolder = Fixtures.Images }).Fit(data);
        var e = Assert.Throws<NotSupportedException>(() => ml.Model.Save(t, data.Schema, new MemoryStream()));
        Assert.Contains("ImageFolder", e.Message);
        Assert.Contains("absolute paths", e.Message);
    }

    private static DataViewType ItemType(DataViewType t) => t is VectorDataViewType v ? v.ItemType : t;
}

/// <summary>The saved model in a second process: `vega sample predict` loads the .zip with a fresh MLContext and predicts
/// with a PredictionEngine; its output must equal the fitted pipeline's.</summary>
public sealed class SaveLoadProcessTests
{
    [Fact]
    public void ASavedZeroShotPipelineGivesTheSamePredictionsInAnotherProcess()
    {
        string[] classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        string dir = Fixtures.TempDir();
        var images = Directory.GetFiles(Fixtures.Images).Where(f => f.EndsWith(".jpg") || f.EndsWith(".png")).Order(StringComparer.Ordinal).ToArray();
        foreach (var f in images) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string zip = Path.Combine(Fixtures.TempDir(), "model.zip");
        var saveOutput = new StringWriter();
        Vega.MLNet.Samples.Samples.SaveLoadPredict.Save(hf, dir, classes, zip, saveOutput);
        Assert.False(File.Exists(zip + ".partial"));

        // The oracle: the same pipeline, fitted here, through the same PredictionEngine printing.
        var here = new StringWriter();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(images.Select(p => new ImageEmbeddingTests.PathRow { ImagePath = p }));
        using var fitted = ml.Transforms.EmbedImages("ImageEmbedding", hf, "ImagePath")
            .Append(ml.MulticlassClassification.Trainers.ZeroShot(hf, classes))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel")).Fit(data);
        var engine = ml.Model.CreatePredictionEngine<Vega.MLNet.Samples.Samples.DataModels.ImageData, Vega.MLNet.Samples.Samples.DataModels.ImagePrediction>(fitted);

        MLNetTestUtils.AnotherProcessPredictsAs(zip, images, engine);
    }
}
