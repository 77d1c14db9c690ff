using Microsoft.Extensions.AI;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Models;

public sealed class ClipModelTests
{
    internal static readonly string[] GoldenTexts = ["a photo of a cat.", "a photo of a dog.", "T-shirt/top", "an ankle boot"];

    internal static float[] GoldenPixels() =>
        new[] { "grace_hopper", "china_progressive", "Minduka_Present_Blue_Pack" }
            .SelectMany(n => Fixtures.ReadF32(Path.Combine(Fixtures.Images, "golden", n + ".f32"))).ToArray();

    internal static float[] Normalized(string goldenFile, int dim)
    {
        var data = Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", goldenFile));
        var m = new EmbeddingMatrix(data, data.Length / dim, dim);
        m.NormalizeRows();
        return m.Data;
    }

    /// <summary>A folder of symbolic links to fixture files (the fixtures themselves are never modified).</summary>
    internal static string LinkFolder(params (string Name, string Target)[] files)
    {
        string dir = Fixtures.TempDir("vega-model");
        foreach (var (name, target) in files) File.CreateSymbolicLink(Path.Combine(dir, name), target);
        return dir;
    }

    internal static string OpenAiFolder() => LinkFolder(
        ("visual.onnx", Path.Combine(Fixtures.Onnx, "openai", "visual.onnx")),
        ("textual.onnx", Path.Combine(Fixtures.Onnx, "openai", "textual.onnx")),
        ("bpe_simple_vocab_16e6.txt.gz", Path.Combine(Fixtures.Tokenizer, "bpe_simple_vocab_16e6.txt.gz")));

    [Fact]
    public void HuggingFaceSplitExportMatchesTheGoldens()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        Assert.Equal(ClipModelLayout.HuggingFaceSplit, model.Layout);
        Assert.True(model.DynamicTextLength);
        Assert.Equal(32, model.EmbeddingDimension);
        Assert.Equal(14.284856f, model.LogitScale, 4);
        var text = model.EmbedTexts(GoldenTexts);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("hf_text_longest.f32", 32), text.Data) <= 1e-4);
        var images = model.EmbedPixels(GoldenPixels(), 3);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("hf_vision.f32", 32), images.Data) <= 1e-4);
    }

    [Fact]
    public void CombinedExportMatchesTheGoldens()
    {
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        string dir = LinkFolder(("model.onnx", Path.Combine(hf, "model.onnx")), ("vocab.json", Path.Combine(hf, "vocab.json")),
            ("merges.txt", Path.Combine(hf, "merges.txt")), ("config.json", Path.Combine(hf, "config.json")),
            ("preprocessor_config.json", Path.Combine(hf, "preprocessor_config.json")));
        using var model = ClipModel.Load(dir);
        Assert.Equal(ClipModelLayout.HuggingFaceCombined, model.Layout);
        var text = model.EmbedTexts(GoldenTexts);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "hf_model_text_embeds.f32")), text.Data) <= 1e-4);
        var images = model.EmbedPixels(GoldenPixels(), 3);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "hf_model_image_embeds.f32")), images.Data) <= 1e-4);
    }

    [Fact]
    public void OpenAiStyleExportMatchesTheGoldens()
    {
        using var model = ClipModel.Load(OpenAiFolder());
        Assert.Equal(ClipModelLayout.OpenAI, model.Layout);
        Assert.False(model.DynamicTextLength);
        Assert.Equal(77, model.ContextLength);
        Assert.Equal(100f, model.LogitScale);
        var text = model.EmbedTexts(GoldenTexts);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("openai_textual.f32", 32), text.Data) <= 1e-4);
        var images = model.EmbedPixels(GoldenPixels(), 3);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("openai_visual.f32", 32), images.Data) <= 1e-4);
    }

    [Fact]
    public void ManifestDescribesAnyLayoutWithRelativePaths()
    {
        string dir = Fixtures.TempDir("vega-manifest");
        string Rel(params string[] p) => Path.GetRelativePath(dir, Path.Combine([Fixtures.Shared, .. p]));
        File.WriteAllText(Path.Combine(dir, "clip.json"), $$"""
            {
              "name": "my-openai",
              "image_model": "{{Rel("onnx", "openai", "visual.onnx")}}",
              "text_model": "{{Rel("onnx", "openai", "textual.onnx")}}",
              "tokenizer": "{{Rel("clip-tokenizer")}}",
              "text_input": "input_ids",
              "text_output": "text_embeds",
              "image_size": 224,
              "logit_scale": 50,
              "crop_rounding": "floor"
            }
            """);
        using var model = ClipModel.Load(Path.Combine(dir, "clip.json"));
        Assert.Equal(ClipModelLayout.Manifest, model.Layout);
        Assert.Equal("my-openai", model.Name);
        Assert.Equal(50f, model.LogitScale);
        Assert.Equal(Vega.MLNet.Imaging.CropRounding.Floor, model.Preprocessing.CropRounding);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("openai_textual.f32", 32), model.EmbedTexts(GoldenTexts).Data) <= 1e-4);
    }

    [Fact]
    public void TemplateEnsemblingIsTheRenormalisedMeanOfNormalisedTemplateEmbeddings()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var templates = PromptTemplates.Create(["a photo of a {}.", "a drawing of the {}", "{} in the wild"]);
        string[] classes = ["cat", "dog", "T-shirt/top"];
        var ensembled = model.EmbedClassNames(classes, templates);
        for (int c = 0; c < classes.Length; c++)
        {
            var rows = model.EmbedTexts(templates.Templates.Select(t => t.Replace("{}", classes[c])).ToArray());
            var mean = new float[32];
            for (int t = 0; t < 3; t++) for (int d = 0; d < 32; d++) mean[d] += rows.Row(t)[d] / 3;
            EmbeddingMatrix.NormalizeInPlace(mean);
            Assert.True(Fixtures.MaxAbsDiff(mean, ensembled.Row(c)) <= 1e-6);
        }
    }

    [Fact]
    public void BatchingDoesNotChangeTextEmbeddings()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var texts = File.ReadLines(Path.Combine(Fixtures.Tokenizer, "golden_classnames.jsonl")).Take(40)
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!).ToArray();
        var one = model.EmbedTexts(texts, new TextEmbeddingOptions { BatchSize = 1 });
        var many = model.EmbedTexts(texts, new TextEmbeddingOptions { BatchSize = 16 });
        Assert.True(Fixtures.MaxAbsDiff(one.Data, many.Data) <= 1e-5);
    }

    [Fact]
    public async Task ExtensionsAiGeneratorReturnsTheSameEmbeddings()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using IEmbeddingGenerator<string, Embedding<float>> generator = new ClipTextEmbeddingGenerator(model);
        var generated = await generator.GenerateAsync(GoldenTexts);
        Assert.Equal(4, generated.Count);
        var direct = model.EmbedTexts(GoldenTexts);
        for (int i = 0; i < 4; i++) Assert.Equal(direct.Row(i).ToArray(), generated[i].Vector.ToArray());
        Assert.Equal(32, generator.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions);
    }

    [Fact]
    public void AFolderWithoutVocabularyUsesTheBuiltInOneAndMatchesTheGoldens()
    {
        // OpenAI / open_clip exports usually carry no vocabulary: the package's built-in CLIP vocabulary is used.
        string dir = LinkFolder(("visual.onnx", Path.Combine(Fixtures.Onnx, "openai", "visual.onnx")),
            ("textual.onnx", Path.Combine(Fixtures.Onnx, "openai", "textual.onnx")));
        using var model = ClipModel.Load(dir);
        Assert.True(model.Tokenizer.IsBuiltInVocabulary);
        Assert.Equal(ClipTokenizer.BuiltInVocabularySource, model.Tokenizer.Source);
        Assert.Contains("built-in", Vega.MLNet.Samples.Commands.InfoCommand.DescribeTokenizer(model.Tokenizer));
        Assert.True(Fixtures.MaxAbsDiff(Normalized("openai_textual.f32", 32), model.EmbedTexts(GoldenTexts).Data) <= 1e-4);

        using var own = ClipModel.Load(OpenAiFolder());
        Assert.False(own.Tokenizer.IsBuiltInVocabulary);
        string line = Vega.MLNet.Samples.Commands.InfoCommand.DescribeTokenizer(own.Tokenizer);
        Assert.Contains("the model's own files", line);
        Assert.Contains("bpe_simple_vocab_16e6.txt.gz", line);
    }

    [Fact]
    public void AManifestNamingAMissingVocabularyNamesTheTokenizerKey()
    {
        string dir = LinkFolder(("visual.onnx", Path.Combine(Fixtures.Onnx, "openai", "visual.onnx")),
            ("textual.onnx", Path.Combine(Fixtures.Onnx, "openai", "textual.onnx")));
        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "tokenizer": "no-such-vocab" }""");
        var e = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("\"tokenizer\"", e.Message);
        Assert.Contains("no-such-vocab", e.Message);
    }

    [Fact]
    public void UnknownLayoutListsWhatWasFound()
    {
        string dir = LinkFolder(("encoder.onnx", Path.Combine(Fixtures.Onnx, "openai", "visual.onnx")));
        var e = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("encoder.onnx", e.Message);
        Assert.Contains("clip.json", e.Message);
    }

    [Fact]
    public void ManifestErrorsNameTheKey()
    {
        string dir = OpenAiFolder();
        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "text_inputs": "ids" }""");
        var e1 = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("unknown key \"text_inputs\"", e1.Message);

        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "text_input": "ids" }""");
        var e2 = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("\"text_input\"", e2.Message);
        Assert.Contains("input_ids int64 [batch, 77]", e2.Message);

        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "image_size": 336 }""");
        var e3 = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("224", e3.Message);
        Assert.Contains("\"image_size\"", e3.Message);

        File.WriteAllText(Path.Combine(dir, "clip.json"), "{ not json");
        Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
    }

    [Fact]
    public void InputsThatCannotBeMatchedOrHaveTheWrongTypeAreClearErrors()
    {
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        // The combined file used as a text tower: its pixel input cannot be filled by text embedding.
        string dir = LinkFolder(("vocab.json", Path.Combine(hf, "vocab.json")), ("merges.txt", Path.Combine(hf, "merges.txt")),
            ("v.onnx", Path.Combine(hf, "vision_model.onnx")), ("t.onnx", Path.Combine(hf, "model.onnx")));
        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "image_model": "v.onnx", "text_model": "t.onnx" }""");
        var e1 = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("pixel_values", e1.Message);
        Assert.Contains("does not know how to fill", e1.Message);

        File.WriteAllText(Path.Combine(dir, "clip.json"), """{ "model": "t.onnx", "text_input": "pixel_values" }""");
        var e2 = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("int64 or int32", e2.Message);
    }

    [Fact]
    public void TowersOfDifferentWidthsAreRejected()
    {
        string dir = LinkFolder(("vocab.json", Path.Combine(Fixtures.Tokenizer, "vocab.json")), ("merges.txt", Path.Combine(Fixtures.Tokenizer, "merges.txt")),
            ("vision_model.onnx", Path.Combine(Fixtures.Shared, "bench", "hf-vit-b32", "vision_model.onnx")),
            ("text_model.onnx", Path.Combine(Fixtures.Onnx, "hf", "text_model.onnx")));
        var e = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("512", e.Message);
        Assert.Contains("32", e.Message);
    }

    [Fact]
    public void ClassNameAndTemplateMistakesAreClearErrors()
    {
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => PromptTemplates.ValidateClassNames([])).Message);
        Assert.Contains("appears twice", Assert.Throws<ArgumentException>(() => PromptTemplates.ValidateClassNames(["cat", "dog", "cat"])).Message);
        Assert.Contains("placeholder", Assert.Throws<ArgumentException>(() => PromptTemplates.Create(["a photo"])).Message);
        string dir = Fixtures.TempDir();
        File.WriteAllText(Path.Combine(dir, "t.txt"), "# comment\na photo of a {}.\na bad line\n");
        Assert.Contains("Line 3", Assert.Throws<InvalidDataException>(() => PromptTemplates.FromFile(Path.Combine(dir, "t.txt"))).Message);
    }

    [Fact]
    public void Int32TokenIdsAreDetectedAndFed()
    {
        // The HF text tower rewritten to take int32 ids (a Cast to int64 in front of the original graph), as some
        // exporters produce: ClipModel must detect the type from the metadata and feed int32.
        var proto = Vega.MLNet.Onnx.OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, "hf", "text_model.onnx"));
        var graph = proto.Graph;
        foreach (var name in new[] { "input_ids", "attention_mask" })
        {
            var input = graph.Input.Single(i => i.Name == name);
            input.Type.TensorType.ElemType = (int)Vega.MLNet.Onnx.Proto.TensorProto.Types.DataType.Int32;
            foreach (var node in graph.Node)
                for (int k = 0; k < node.Input.Count; k++)
                    if (node.Input[k] == name) node.Input[k] = name + "_int64";
            var cast = new Vega.MLNet.Onnx.Proto.NodeProto { OpType = "Cast", Name = "cast_" + name };
            cast.Input.Add(name);
            cast.Output.Add(name + "_int64");
            cast.Attribute.Add(new Vega.MLNet.Onnx.Proto.AttributeProto { Name = "to", Type = Vega.MLNet.Onnx.Proto.AttributeProto.Types.AttributeType.Int, I = 7 });
            graph.Node.Insert(0, cast);
        }
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        string dir = LinkFolder(("vision_model.onnx", Path.Combine(hf, "vision_model.onnx")), ("vocab.json", Path.Combine(hf, "vocab.json")),
            ("merges.txt", Path.Combine(hf, "merges.txt")), ("config.json", Path.Combine(hf, "config.json")));
        Vega.MLNet.Onnx.OnnxModelFile.Save(proto, Path.Combine(dir, "text_model.onnx"));
        using var model = ClipModel.Load(dir);
        Assert.Equal(Vega.MLNet.Runtime.OnnxElementType.Int32, model.TextTower.IdsType);
        Assert.True(Fixtures.MaxAbsDiff(Normalized("hf_text_longest.f32", 32), model.EmbedTexts(GoldenTexts).Data) <= 1e-4);
    }

    [Fact]
    public void ASessionCanBeCreatedFromBytes()
    {
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"));
        using var session = Vega.MLNet.Runtime.OnnxSession.FromBytes(bytes, name: "textual (memory)");
        Assert.Equal("textual (memory)", session.Source);
        var ids = Fixtures.ReadI64(Path.Combine(Fixtures.Onnx, "golden", "input_ids_ctx77.i64"));
        using var r = session.Run([Vega.MLNet.Runtime.OnnxInput.Create("input_ids", ids, 4, 77)]);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Path.Combine(Fixtures.Onnx, "golden", "openai_textual.f32")), r.GetFloats("text_embeds")) <= 1e-4);
        Assert.Throws<InvalidDataException>(() => Vega.MLNet.Runtime.OnnxSession.FromBytes(bytes.AsSpan(0, 1000), name: "cut"));
    }

    [Fact]
    public void AnUnusableGpuFallsBackOnceForTheWholeModelOrFailsNamingTheDevice()
    {
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        var warnings = new List<string>();
        using (var model = ClipModel.Load(hf, new ClipModelOptions { GpuDeviceId = 0, FallbackToCpu = true, Warning = warnings.Add }))
        {
            Assert.Equal("CPU", model.ExecutionDevice);
            Assert.Contains("CUDA device 0", Assert.Single(warnings));
            Assert.True(Fixtures.MaxAbsDiff(Normalized("hf_text_longest.f32", 32), model.EmbedTexts(GoldenTexts).Data) <= 1e-4);
        }
        var e = Assert.Throws<InvalidOperationException>(() => ClipModel.Load(hf, new ClipModelOptions { GpuDeviceId = 1 }));
        Assert.Contains("CUDA device 1", e.Message);
        Assert.Contains("fallbackToCpu", e.Message);
    }
}
