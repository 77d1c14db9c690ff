using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// EmbedImages against the core path it wraps (ImageEmbedder over the same files: decode → Pillow-exact preprocessing →
/// tower → L2 norm), for each input kind, batch size and error mode, plus ML.NET's schema and laziness rules.
/// </summary>
public sealed class ImageEmbeddingTests
{
    internal sealed class PathRow
    {
        public string ImagePath = "";
        public string Label = "";
    }

    internal sealed class FloatRow
    {
        public float ImagePath;
    }

    internal sealed class EmbeddedRow
    {
        public string ImagePath = "";
        public string Label = "";
        public float[] ImageEmbedding = [];
    }

    internal static string Hf => Path.Combine(Fixtures.Onnx, "hf");

    internal static PathRow[] GoldenRows() =>
        Goldens.Images.Select((g, i) => new PathRow { ImagePath = g.File, Label = $"label-{i}" }).ToArray();

    /// <summary>The core engine's embeddings of the same files, in order (the oracle of these tests).</summary>
    internal static float[][] CoreEmbeddings(string modelDir, IReadOnlyList<string> paths)
    {
        using var model = ClipModel.Load(modelDir);
        var result = ImageEmbedder.Embed(model, ImageSource.FromPaths(paths));
        Assert.Empty(result.Skipped);
        return Enumerable.Range(0, result.Embeddings.Count).Select(i => result.Embeddings.Row(i).ToArray()).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(32)]
    public void EveryBatchSizeGivesTheCoreEmbeddingsInRowOrderWithAlignedColumns(int batchSize)
    {
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var t = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
        {
            ModelPath = Hf, InputColumnName = "ImagePath", BatchSize = batchSize, DecodeThreads = 2,
        }).Fit(data);
        var output = ml.Data.CreateEnumerable<EmbeddedRow>(t.Transform(data), reuseRowObject: false).ToArray();
        var expected = CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray());
        Assert.Equal(rows.Length, output.Length);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i].ImagePath, output[i].ImagePath);
            Assert.Equal(rows[i].Label, output[i].Label);
            Assert.Equal(expected[i], output[i].ImageEmbedding);
        }
    }

    [Fact]
    public void TheSchemaHasAKnownSizeVectorAndPredictionEngineGivesTheSameRow()
    {
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var t = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(data);
        var column = t.GetOutputSchema(data.Schema)["ImageEmbedding"];
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 32), column.Type);
        Assert.Equal(32, t.EmbeddingDimension);
        Assert.Equal("CPU", t.ExecutionDevice);

        var expected = CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray());
        var engine = ml.Model.CreatePredictionEngine<PathRow, EmbeddedRow>(t);
        for (int i = 0; i < 3; i++)
            Assert.Equal(expected[i], engine.Predict(rows[i]).ImageEmbedding);
    }

    [Fact]
    public void EncodedBytesGiveTheSameEmbeddingsAsPaths()
    {
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadRawImageBytes("Bytes", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.EmbedImages("ImageEmbedding", Hf, "Bytes"));
        using var model = pipeline.Fit(data);
        var output = ml.Data.CreateEnumerable<EmbeddedRow>(model.Transform(data), reuseRowObject: false).ToArray();
        var expected = CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray());
        for (int i = 0; i < rows.Length; i++) Assert.Equal(expected[i], output[i].ImageEmbedding);
    }

    [Fact]
    public void MLImagesAreAsExactAsMLNetsDecoder()
    {
        // ML.NET's MLImage premultiplies alpha: the RGBA and palette images differ from Pillow; the others decode alike.
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows().Where(r => !r.ImagePath.EndsWith("Minduka_Present_Blue_Pack.png") && !r.ImagePath.EndsWith("osx_installer_logo.png")).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.EmbedImages("ImageEmbedding", Hf, "Image"));
        using var model = pipeline.Fit(data);
        var output = ml.Data.CreateEnumerable<EmbeddedRow>(model.Transform(data), reuseRowObject: false).ToArray();
        var expected = CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray());
        for (int i = 0; i < rows.Length; i++) Assert.True(Fixtures.MaxAbsDiff(expected[i], output[i].ImageEmbedding) <= 1e-6, rows[i].ImagePath);
    }

    [Fact]
    public void WrongOrMissingColumnsAreMLNetSchemaErrorsBeforeAnyRowIsRead()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new FloatRow { ImagePath = 1.5f } });
        var estimator = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath");
        var e1 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<FloatRow>()));
        Assert.Equal("inputSchema", e1.ParamName);
        Assert.StartsWith("Schema mismatch for input column 'ImagePath': expected String (an image file path), Vector<Byte>", e1.Message);
        Assert.Contains("got Single", e1.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.EmbedImages("ImageEmbedding", Hf, "Photo").Fit(data));
        Assert.StartsWith("Could not find input column 'Photo'", e2.Message);
        estimator.Fit(ml.Data.LoadFromEnumerable(GoldenRows())).Dispose();
    }

    [Fact]
    public void ACursorThatDoesNotAskForTheEmbeddingRunsNothing()
    {
        var ml = new MLContext(seed: 1);
        var missing = Path.Combine(Fixtures.TempDir(), "nope.jpg");
        var data = ml.Data.LoadFromEnumerable(new[] { new PathRow { ImagePath = missing, Label = "x" } });
        using var t = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(data);
        var view = t.Transform(data);
        // Only the label: the missing file is never touched.
        Assert.Equal(["x"], view.GetColumn<string>("Label").ToArray());
        var e = Assert.Throws<InvalidOperationException>(() => view.GetColumn<float[]>("ImageEmbedding").ToArray());
        Assert.Contains("row 0", e.Message);
        Assert.Contains(missing, e.Message);
        Assert.Contains("file not found", e.Message);
        Assert.Contains("FilterRowsByMissingValues", e.Message);
    }

    [Fact]
    public void WithMissingValueABadImageGetsNaNAndItsReasonAndFilterRowsByMissingValuesDropsIt()
    {
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows().Take(3).ToList();
        rows.Insert(1, new PathRow { ImagePath = Path.Combine(Fixtures.Images, "bad", "truncated_60pct.jpg"), Label = "bad" });
        var data = ml.Data.LoadFromEnumerable(rows);
        using var t = ml.Transforms.EmbedImages(new ImageEmbeddingEstimator.Options
        {
            ModelPath = Hf, InputColumnName = "ImagePath", OnError = EmbeddingErrorHandling.MissingValue, BatchSize = 2,
        }).Fit(data);
        var view = t.Transform(data);
        var errors = view.GetColumn<string>("ImageEmbeddingError").ToArray();
        Assert.Equal(["", "truncated JPEG (premature end of data)", "", ""], errors);
        var embeddings = view.GetColumn<float[]>("ImageEmbedding").ToArray();
        Assert.All(embeddings[1], v => Assert.True(float.IsNaN(v)));
        var kept = ml.Data.CreateEnumerable<EmbeddedRow>(ml.Data.FilterRowsByMissingValues(view, "ImageEmbedding"), reuseRowObject: false).ToArray();
        Assert.Equal(rows.Where(r => r.Label != "bad").Select(r => r.Label), kept.Select(k => k.Label));
        var expected = CoreEmbeddings(Hf, kept.Select(k => k.ImagePath).ToArray());
        for (int i = 0; i < kept.Length; i++) Assert.Equal(expected[i], kept[i].ImageEmbedding);
    }

    [Fact]
    public void TheCacheServesASecondTransformerWithoutRunningTheTower()
    {
        var ml = new MLContext(seed: 1);
        var rows = GoldenRows();
        var data = ml.Data.LoadFromEnumerable(rows);
        string cache = Fixtures.TempDir();
        var options = new ImageEmbeddingEstimator.Options { ModelPath = Hf, InputColumnName = "ImagePath", CacheDirectory = cache };
        float[][] first, second;
        using (var t = ml.Transforms.EmbedImages(options).Fit(data)) first = t.Transform(data).GetColumn<float[]>("ImageEmbedding").ToArray();
        string file = Assert.Single(Directory.GetFiles(cache, "*.vemb"));
        long size = new FileInfo(file).Length;
        using (var t = ml.Transforms.EmbedImages(options).Fit(data)) second = t.Transform(data).GetColumn<float[]>("ImageEmbedding").ToArray();
        Assert.Equal(size, new FileInfo(file).Length); // nothing appended: every row came from the cache
        Assert.Equal(first, second);
        Assert.True(Directory.Exists(Path.Combine(cache, "optimized-models")));
    }

    [Fact]
    public void APipelineAfterTheEmbeddingTypeChecksBeforeFitting()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(GoldenRows());
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath")
            .Append(ml.Transforms.NormalizeMinMax("Features", "ImageEmbedding"));
        var shape = pipeline.GetOutputSchema(MLNetTestUtils.ShapeOf<PathRow>());
        Assert.Contains(shape, c => c.Name == "Features" && c.ItemType == NumberDataViewType.Single);
        Assert.Contains(shape, c => c.Name == "ImageEmbedding" && c.Kind == SchemaShape.Column.VectorKind.Vector);
    }

}
