using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tests.Imaging;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// Composed models (preprocessing → tower → L2 norm → zero-shot head) run in fresh ONNX Runtime sessions from bytes and
/// are compared with ClipModel's own path (C# preprocessing, the tower file in its own session, C# normalisation) and
/// with softmax(scale · cos) computed here in double.
/// </summary>
public sealed class ClipGraphComposerTests
{
    private static readonly string[] Classes = ["cat", "dog", "T-shirt/top", "ankle boot", "person in uniform"];
    private static readonly string[] Images = ["grace_hopper.jpg", "china_progressive.jpg", "Minduka_Present_Blue_Pack.png", "tiny_7x5.png", "panorama_12to1.png"];

    public static TheoryData<string> Layouts() => new() { "openai", "hf-split", "hf-combined" };

    internal static ClipModel LoadLayout(string layout)
    {
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        return layout switch
        {
            "openai" => ClipModel.Load(ClipModelTests.OpenAiFolder()),
            "hf-split" => ClipModel.Load(hf),
            "hf-combined" => ClipModel.Load(ClipModelTests.LinkFolder(("model.onnx", Path.Combine(hf, "model.onnx")), ("vocab.json", Path.Combine(hf, "vocab.json")),
                ("merges.txt", Path.Combine(hf, "merges.txt")), ("config.json", Path.Combine(hf, "config.json")),
                ("preprocessor_config.json", Path.Combine(hf, "preprocessor_config.json")))),
            _ => throw new ArgumentException(layout),
        };
    }

    private static OnnxSession Open(ModelProto model) => OnnxSession.FromBytes(ClipGraphComposer.ToBytes(model), name: model.Graph.Name);

    /// <summary>ClipModel's path from decoded bytes: C# preprocessing, the tower in ClipModel's session, C# normalisation.</summary>
    private static float[] Reference(ClipModel model, GoldenImage image)
    {
        var pixels = new ImagePreprocessor(model.Preprocessing).Process(image.RgbImage());
        return model.EmbedPixels(pixels, 1).Data;
    }

    /// <summary>softmax(scale · cos) in double, from a normalised embedding and normalised class rows.</summary>
    private static double[] ExpectedScores(ReadOnlySpan<float> embedding, EmbeddingMatrix classes, float scale)
    {
        var logits = new double[classes.Count];
        for (int c = 0; c < classes.Count; c++)
        {
            double dot = 0;
            var row = classes.Row(c);
            for (int j = 0; j < row.Length; j++) dot += (double)embedding[j] * row[j];
            logits[c] = scale * dot;
        }
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return logits.Select(l => Math.Exp(l - max) / sum).ToArray();
    }

    private static OnnxInput[] RgbInputs(GoldenImage image)
    {
        var rgb = image.Rgb();
        return
        [
            OnnxInput.Create(ClipGraphComposer.RgbInput, rgb, 1, rgb.Length),
            OnnxInput.Create(ClipGraphComposer.HeightInput, new long[] { image.Height }, 1, 1),
            OnnxInput.Create(ClipGraphComposer.WidthInput, new long[] { image.Width }, 1, 1),
        ];
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ComposedModelMatchesClipModelsOwnPath(string layout)
    {
        using var model = LoadLayout(layout);
        var head = ZeroShotHead.ForClassNames(model, Classes);
        using var session = Open(ClipGraphComposer.ComposeImageModel(model, head));

        Assert.Equal(["rgb uint8 [1, rgb_length]", "height int64 [1, 1]", "width int64 [1, 1]"], session.Inputs.Select(i => i.ToString()));
        Assert.Equal(["embedding float [1, 32]", "score float [1, 5]", "index int64 [1, 1]"], session.Outputs.Select(o => o.ToString()));

        foreach (string name in Images)
        {
            var image = Goldens.Get(name);
            var expected = Reference(model, image);
            using var r = session.Run(RgbInputs(image));
            var embedding = r.GetFloats(ClipGraphComposer.EmbeddingOutput).ToArray();
            double diff = Fixtures.MaxAbsDiff(expected, embedding);
            Assert.True(diff <= 1e-5, $"{layout} {name}: embedding differs from ClipModel's by {diff}");
            double norm = Math.Sqrt(embedding.Sum(v => (double)v * v));
            Assert.InRange(norm, 1 - 1e-6, 1 + 1e-6);

            var score = r.GetFloats(ClipGraphComposer.ScoreOutput).ToArray();
            var expectedScore = ExpectedScores(embedding, head.ClassEmbeddings, model.LogitScale);
            for (int c = 0; c < Classes.Length; c++)
                Assert.True(Math.Abs(score[c] - expectedScore[c]) <= 1e-5, $"{layout} {name}: score[{c}] {score[c]} vs softmax(scale·cos) {expectedScore[c]}");
            long index = Assert.Single(r.GetInt64s(ClipGraphComposer.IndexOutput).ToArray());
            Assert.Equal(Array.IndexOf(score, score.Max()), (int)index);
        }
    }

    [Fact]
    public void CombinedModelKeepsOnlyTheImageBranch()
    {
        using var model = LoadLayout("hf-combined");
        var composed = ClipGraphComposer.ComposeImageModel(model);
        var graph = composed.Graph;
        Assert.Equal(["rgb", "height", "width"], graph.Input.Select(i => i.Name));
        Assert.Equal(["embedding"], graph.Output.Select(o => o.Name));
        var towerNames = graph.Node.SelectMany(n => n.Input.Concat(n.Output)).Where(n => n.StartsWith(ClipGraphComposer.TowerPrefix, StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(towerNames);
        Assert.DoesNotContain(towerNames, n => n.Contains("input_ids", StringComparison.Ordinal) || n.Contains("attention_mask", StringComparison.Ordinal) || n.Contains("text", StringComparison.Ordinal));
        Assert.DoesNotContain(graph.Initializer, t => t.Name.Contains("token_embedding", StringComparison.Ordinal));
        // Every tower value is prefixed; the only unprefixed names are the composer's own.
        var original = OnnxModelFile.Load(model.TowerFiles[0]);
        var originalNames = new HashSet<string>(original.Graph.Node.SelectMany(n => n.Output));
        Assert.All(graph.Node.SelectMany(n => n.Output).Where(originalNames.Contains), n => Assert.Fail($"unprefixed tower value '{n}'"));
        Assert.Equal(17, composed.OpsetImport.Single(o => o.Domain == "").Version);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void WithoutPreprocessingThePixelInputFeedsTheTower(string layout)
    {
        using var model = LoadLayout(layout);
        using var session = Open(ClipGraphComposer.ComposeImageModel(model, includePreprocessing: false));
        Assert.Equal("pixel_values float [1, 3, 224, 224]", Assert.Single(session.Inputs).ToString());
        Assert.Equal("embedding float [1, 32]", Assert.Single(session.Outputs).ToString());
        foreach (string name in Images.Take(3))
        {
            var image = Goldens.Get(name);
            using var r = session.Run([OnnxInput.Create(ClipGraphComposer.PixelInput, image.Tensor(), 1, 3, 224, 224)]);
            var expected = model.EmbedPixels(image.Tensor(), 1).Data;
            Assert.True(Fixtures.MaxAbsDiff(expected, r.GetFloats(ClipGraphComposer.EmbeddingOutput)) <= 1e-5, $"{layout} {name}");
        }
    }

    [Fact]
    public void HeadModelNormalisesAnEmbeddingAndScoresIt()
    {
        using var model = LoadLayout("hf-split");
        var head = ZeroShotHead.ForClassNames(model, Classes);
        using var session = Open(ClipGraphComposer.ComposeHeadModel(head));
        Assert.Equal("embedding float [1, 32]", Assert.Single(session.Inputs).ToString());
        Assert.Equal(["score float [1, 5]", "index int64 [1, 1]"], session.Outputs.Select(o => o.ToString()));
        foreach (string name in Images)
        {
            var embedding = Reference(model, Goldens.Get(name));
            var scaled = embedding.Select(v => v * 3.5f).ToArray(); // not normalised: the head normalises
            using var r = session.Run([OnnxInput.Create(ClipGraphComposer.EmbeddingInput, scaled, 1, 32)]);
            var score = r.GetFloats(ClipGraphComposer.ScoreOutput).ToArray();
            var expected = ExpectedScores(embedding, head.ClassEmbeddings, model.LogitScale);
            for (int c = 0; c < Classes.Length; c++) Assert.True(Math.Abs(score[c] - expected[c]) <= 1e-5, $"{name}: score[{c}]");
            Assert.Equal(Array.IndexOf(score, score.Max()), (int)r.GetInt64s(ClipGraphComposer.IndexOutput)[0]);
        }

        // A zero embedding stays zero: every class scores the same, and the first maximum is class 0.
        using var zero = session.Run([OnnxInput.Create(ClipGraphComposer.EmbeddingInput, new float[32], 1, 32)]);
        Assert.All(zero.GetFloats(ClipGraphComposer.ScoreOutput).ToArray(), s => Assert.Equal(1f / Classes.Length, s, 6));
        Assert.Equal(0, zero.GetInt64s(ClipGraphComposer.IndexOutput)[0]);
    }

    [Theory]
    [InlineData(13)]
    [InlineData(21)]
    public void HeadModelRunsAtOpsets13And21(int opset)
    {
        using var model = LoadLayout("openai");
        var head = ZeroShotHead.ForClassNames(model, Classes);
        using var session = Open(ClipGraphComposer.ComposeHeadModel(head, opset));
        var embedding = Reference(model, Goldens.Get("dots.png"));
        using var r = session.Run([OnnxInput.Create(ClipGraphComposer.EmbeddingInput, embedding, 1, 32)]);
        var expected = ExpectedScores(embedding, head.ClassEmbeddings, model.LogitScale);
        var score = r.GetFloats(ClipGraphComposer.ScoreOutput).ToArray();
        for (int c = 0; c < Classes.Length; c++) Assert.True(Math.Abs(score[c] - expected[c]) <= 1e-5);
    }

    [Fact]
    public void TiesGoToTheFirstMaximum()
    {
        // Two identical class rows: equal scores; ArgMax must pick the first of them.
        var row = new float[32];
        row[0] = 1;
        var other = new float[32];
        other[1] = 1;
        var classes = new EmbeddingMatrix([.. other, .. row, .. row], 3, 32);
        using var session = Open(ClipGraphComposer.ComposeHeadModel(new ZeroShotHead(classes, 10f)));
        var e = new float[32];
        e[0] = 1;
        using var r = session.Run([OnnxInput.Create(ClipGraphComposer.EmbeddingInput, e, 1, 32)]);
        var score = r.GetFloats(ClipGraphComposer.ScoreOutput).ToArray();
        Assert.Equal(score[1], score[2]);
        Assert.Equal(1, r.GetInt64s(ClipGraphComposer.IndexOutput)[0]);
    }

    [Fact]
    public void TowersWithExternalDataAreComposed()
    {
        using var model = LoadLayout("openai");
        string dir = Fixtures.TempDir("vega-external");
        var proto = OnnxModelFile.Load(model.TowerFiles[0]);
        string path = Path.Combine(dir, "visual.onnx");
        OnnxModelFile.MoveToExternalData(proto, path, "visual.onnx.data");
        OnnxModelFile.Save(proto, path);
        Assert.True(new FileInfo(path).Length < new FileInfo(Path.Combine(Fixtures.Onnx, "openai", "visual.onnx")).Length / 4, "the weights were not moved out");

        var tower = ImageTowerFile.Of(model) with { Path = path };
        using var session = Open(ClipGraphComposer.ComposeImageModel(tower, model.Preprocessing, includePreprocessing: true, head: null));
        var image = Goldens.Get("grace_hopper.jpg");
        using var r = session.Run(RgbInputs(image));
        Assert.True(Fixtures.MaxAbsDiff(Reference(model, image), r.GetFloats(ClipGraphComposer.EmbeddingOutput)) <= 1e-5);
    }

    [Fact]
    public void OpsetsBelow13AreRefusedNamingTheFile()
    {
        using var model = LoadLayout("openai");
        var proto = OnnxModelFile.Load(model.TowerFiles[0]);
        proto.OpsetImport.Single(o => o.Domain == "").Version = 12;
        string path = Path.Combine(Fixtures.TempDir("vega-opset"), "old.onnx");
        OnnxModelFile.Save(proto, path);
        var e = Assert.Throws<NotSupportedException>(() =>
            ClipGraphComposer.ComposeImageModel(ImageTowerFile.Of(model) with { Path = path }, model.Preprocessing, true, null));
        Assert.Contains(path, e.Message);
        Assert.Contains("opset 12", e.Message);
        Assert.Contains("13", e.Message);
    }

    [Fact]
    public void OtherDomainImportsAreKept()
    {
        using var model = LoadLayout("openai");
        var proto = OnnxModelFile.Load(model.TowerFiles[0]);
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        string path = Path.Combine(Fixtures.TempDir("vega-domains"), "visual.onnx");
        OnnxModelFile.Save(proto, path);
        var composed = ClipGraphComposer.ComposeImageModel(ImageTowerFile.Of(model) with { Path = path }, model.Preprocessing, true, null);
        Assert.Equal(14, composed.OpsetImport.Single(o => o.Domain == "").Version);
        Assert.Equal(1, composed.OpsetImport.Single(o => o.Domain == "com.microsoft").Version);
        using var session = Open(composed);
        var image = Goldens.Get("dots.png");
        using var r = session.Run(RgbInputs(image));
        Assert.True(Fixtures.MaxAbsDiff(Reference(model, image), r.GetFloats(ClipGraphComposer.EmbeddingOutput)) <= 1e-5);
    }

    [Fact]
    public void ModelsOverTheProtobufLimitAreRefusedWithTheFileAndSize()
    {
        using var model = LoadLayout("hf-split");
        // The real limit is 2 GB; a small limit exercises the same check without writing gigabytes.
        var e = Assert.Throws<NotSupportedException>(() =>
            ClipGraphComposer.ComposeImageModel(ImageTowerFile.Of(model), model.Preprocessing, true, null, maxBytes: 1 << 20));
        Assert.Contains(model.TowerFiles[0], e.Message);
        Assert.Contains("bytes", e.Message);
        Assert.Contains("protobuf", e.Message);
    }

    [Fact]
    public void TowerInputsOtherThanPixelsAreRefused()
    {
        using var model = LoadLayout("hf-split");
        // Ask the combined model for its text embedding as if it were the image output: it needs the text inputs.
        var tower = new ImageTowerFile(Path.Combine(Fixtures.Onnx, "hf", "model.onnx"), "pixel_values", "logits_per_image", 32);
        var e = Assert.Throws<NotSupportedException>(() => ClipGraphComposer.ComposeImageModel(tower, model.Preprocessing, true, null));
        Assert.Contains("input_ids", e.Message);
        Assert.Contains("model.onnx", e.Message);
    }

    [Fact]
    public void HeadsAreValidated()
    {
        Assert.Contains("norm", Assert.Throws<ArgumentException>(() => new ZeroShotHead(new EmbeddingMatrix([3f, 4f], 1, 2), 100f)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZeroShotHead(new EmbeddingMatrix([1f, 0f], 1, 2), 0f));
        using var model = LoadLayout("hf-split");
        var e = Assert.Throws<ArgumentException>(() => ClipGraphComposer.ComposeImageModel(model, new ZeroShotHead(new EmbeddingMatrix([1f, 0f], 1, 2), 1f)));
        Assert.Contains("32", e.Message);
    }
}
