using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Onnx;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.Demo;

/// <summary>
/// Every exported architecture, loaded through <see cref="ClipModel"/> like any user model and run by ONNX Runtime,
/// reproduces the trainer's forward pass (second implementation: the tensor core) within 1e-4 on real Fashion-MNIST
/// test images written as PNG files and on captions of different lengths.
/// </summary>
[Collection(nameof(DemoSerial))]
public sealed class ExportParityTests(ITestOutputHelper output)
{
    private static readonly Lazy<(string Clean, string Shifted)> Sets = new(() =>
    {
        string root = Fixtures.TempDir("vega-demo-sets");
        return (DemoRunner.WriteSet(Path.Combine(root, "clean"), DemoTestData.Data, 48, null),
                DemoRunner.WriteSet(Path.Combine(root, "low"), DemoTestData.Data, 48, ImageShiftKind.LowContrast));
    });

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    [InlineData("vit")]
    [InlineData("vit4")]
    public void OnnxRuntimeReproducesTheTrainerWithin1e4(string kind)
    {
        var (net, _) = DemoTestData.Train(DemoTestData.Architecture(kind), new TrainingSpec { TrainImages = 256, Epochs = 2, BatchSize = 64, LearningRate = 3e-3 });
        string dir = Path.Combine(Fixtures.TempDir("vega-demo-export"), kind);
        ClipExporter.Export(net, DemoTestData.TokenizerDirectory, dir, kind);
        using var model = ClipModel.Load(dir);

        Assert.Equal(ClipModelLayout.HuggingFaceSplit, model.Layout);
        Assert.Equal(net.Architecture.EmbedDim, model.EmbeddingDimension);
        Assert.True(model.DynamicTextLength);
        Assert.Equal(32, model.ContextLength);
        Assert.Equal(MathF.Exp(net.LogitScale.Span[0]), model.LogitScale, 5);
        AssertSamePreprocessing(DemoPreprocessing.Settings, model.Preprocessing);

        double worst = 0;
        foreach (var set in new[] { Sets.Value.Clean, Sets.Value.Shifted })
        {
            var source = ImageSource.FromCsv(Path.Combine(set, "labels.csv"));
            var ort = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 16 });
            Assert.Equal(source.Count, ort.Embeddings.Count);
            var pixels = new float[source.Count * 3 * 28 * 28];
            var pre = new ImagePreprocessor(model.Preprocessing);
            for (int i = 0; i < source.Count; i++)
                pre.Process(ImageDecoder.Decode(source.Items[i].Path!), pixels.AsSpan(i * 3 * 784, 3 * 784));
            float[] trainer;
            using (var scope = new TensorScope())
            using (Tape.NoGrad())
                trainer = Ops.L2Normalize(net.EncodeImage(Tensor.FromArray(pixels, source.Count, 3, 28, 28))).ToArray();
            worst = Math.Max(worst, Fixtures.MaxAbsDiff(trainer, ort.Embeddings.Data));
        }
        output.WriteLine($"{kind}: images max |ORT − trainer| = {worst:E2}");
        Assert.True(worst <= 1e-4, $"image embeddings differ by {worst:E2}");

        // Captions of different lengths in one batch (padding, attention mask, end-token pooling), and each alone.
        var texts = DemoCaptions.ClassNames.Select(c => DemoCaptions.Fill(DemoCaptions.EvaluationTemplate, c))
            .Concat(["a {}.", "a catalogue image of a knitted pullover.", "a photo of an item.", "bag", "a black and white photo of a pair of trousers."]).ToList();
        var expected = ClipTrainer.EmbedTexts(net, DemoTestData.Tokenizer, texts);
        double batched = Fixtures.MaxAbsDiff(expected, model.EmbedTexts(texts).Data);
        double single = Fixtures.MaxAbsDiff(expected, model.EmbedTexts(texts, new TextEmbeddingOptions { BatchSize = 1 }).Data);
        output.WriteLine($"{kind}: texts max |ORT − trainer| = {batched:E2} batched, {single:E2} one by one");
        Assert.True(batched <= 1e-4 && single <= 1e-4, $"text embeddings differ by {batched:E2} / {single:E2}");
    }

    [Fact]
    public void PngFilesGiveTheTrainersInputsBitForBit()
    {
        // The deployed data flow (PNG → decode → preprocess with the package's settings → first op of the tower)
        // yields exactly the floats the trainer trained on (IDX bytes → RgbImage.FromGray → preprocess → ToGray).
        string set = Sets.Value.Clean;
        var source = ImageSource.FromCsv(Path.Combine(set, "labels.csv"));
        var pre = new ImagePreprocessor(DemoPreprocessing.Settings);
        var pixels = new float[source.Count * 3 * 784];
        for (int i = 0; i < source.Count; i++) pre.Process(ImageDecoder.Decode(source.Items[i].Path!), pixels.AsSpan(i * 3 * 784, 3 * 784));
        float[] deployed;
        using (var scope = new TensorScope())
            deployed = ClipNetwork.ToGray(Tensor.FromArray(pixels, source.Count, 3, 28, 28)).ToArray();
        var trained = DemoPreprocessing.GrayInputs(DemoTestData.Data.Test, Enumerable.Range(0, source.Count).ToArray());
        Assert.Equal(trained, deployed);
        // And the preprocessing is the plain per-byte normalisation (no resampling at 28 → 28).
        var raw = DemoTestData.Data.Test.Gray(0).ToArray();
        for (int j = 0; j < 784; j++) Assert.Equal((raw[j] / 255f - DemoPreprocessing.Mean) / DemoPreprocessing.Std, pixels[j]);
        Assert.Equal(DemoCaptions.ClassNames[DemoTestData.Data.TestLabels[5]], source.Items[5].Label);
    }

    [Fact]
    public void TextTowerKeepsItsTokenEmbeddingAsAGatherForPromptLearning()
    {
        var (net, _) = DemoTestData.Train(DemoTestData.Architecture("mlp"), new TrainingSpec { TrainImages = 128, Epochs = 1, BatchSize = 64 });
        var proto = ClipExporter.BuildText(net).Build();
        var exposed = PromptInjection.ExposeTokenEmbeddings(proto, "input_ids", "demo text tower");
        Assert.Equal(net.VocabularySize, exposed.VocabularySize);
        Assert.Equal(net.Parameters["text.token_embedding"].ToArray(), exposed.TokenEmbedding);
    }

    private static void AssertSamePreprocessing(PreprocessSettings expected, PreprocessSettings actual)
    {
        Assert.Equal(expected.ImageSize, actual.ImageSize);
        Assert.Equal(expected.EffectiveShortestEdge, actual.EffectiveShortestEdge);
        Assert.Equal(expected.ResizeMode, actual.ResizeMode);
        Assert.Equal(expected.CropRounding, actual.CropRounding);
        Assert.Equal(expected.Mean.ToArray(), actual.Mean.ToArray());
        Assert.Equal(expected.Std.ToArray(), actual.Std.ToArray());
        Assert.Equal(expected.RescaleFactor, actual.RescaleFactor);
    }
}
