using Vega.MLNet.Onnx;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Onnx;

public sealed class OnnxModelFileTests
{
    private static string Golden(string f) => Path.Combine(Fixtures.Onnx, "golden", f);

    private static float[] RunText(string modelPath, bool hf)
    {
        using var s = OnnxSession.Open(modelPath);
        var inputs = hf
            ? new[] { OnnxInput.Create("input_ids", Fixtures.ReadI64(Golden("input_ids_longest.i64")), 4, 8), OnnxInput.Create("attention_mask", Fixtures.ReadI64(Golden("attention_mask_longest.i64")), 4, 8) }
            : [OnnxInput.Create("input_ids", Fixtures.ReadI64(Golden("input_ids_ctx77.i64")), 4, 77)];
        using var r = s.Run(inputs);
        return r.GetFloats("text_embeds").ToArray();
    }

    [Theory]
    [InlineData("openai/textual.onnx", false, "openai_textual.f32")]
    [InlineData("hf/text_model.onnx", true, "hf_text_longest.f32")]
    public void SavedModelsRunIdenticallyInOnnxRuntime(string model, bool hf, string golden)
    {
        var proto = OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, model));
        foreach (var t in proto.Graph.Initializer.Where(t => t.DataType == 1))
            Assert.Equal(TensorProtoData.ElementCount(t), TensorProtoData.ToFloats(t).Length);
        string path = Path.Combine(Fixtures.TempDir(), "copy.onnx");
        OnnxModelFile.Save(proto, path);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Golden(golden)), RunText(path, hf)) <= 1e-4);
    }

    [Fact]
    public void ExternalDataIsWrittenAndReadBackAsOnnxSpecifiesIt()
    {
        var proto = OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"));
        var originals = proto.Graph.Initializer.ToDictionary(t => t.Name, t => t.RawData.ToByteArray());
        string dir = Fixtures.TempDir();
        string path = Path.Combine(dir, "textual.onnx");
        var external = proto.Clone();
        OnnxModelFile.MoveToExternalData(external, path, "textual.weights");
        OnnxModelFile.Save(external, path);
        Assert.True(new FileInfo(path).Length < 200_000); // the weights left the protobuf
        // ONNX Runtime (the reference reader of external data) computes the same outputs from it.
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Golden("openai_textual.f32")), RunText(path, hf: false)) <= 1e-4);
        // And our reader restores every initializer byte for byte.
        var reloaded = OnnxModelFile.Load(path);
        foreach (var t in reloaded.Graph.Initializer) Assert.Equal(originals[t.Name], t.RawData.ToByteArray());

        File.Delete(Path.Combine(dir, "textual.weights"));
        var e = Assert.Throws<FileNotFoundException>(() => OnnxModelFile.Load(path));
        Assert.Contains("textual.weights", e.Message);
    }

    [Fact]
    public void NonOnnxFilesAreClearErrors()
    {
        string dir = Fixtures.TempDir();
        string junk = Path.Combine(dir, "junk.onnx");
        File.WriteAllBytes(junk, [0xFF, 0xFF, 0xFF, 0x0F, 0x12]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxModelFile.Load(junk));
        Assert.Contains(junk, e.Message);
    }

    [Theory]
    [InlineData("openai/textual.onnx", false, "openai_textual")]
    [InlineData("hf/text_model.onnx", true, "hf_text")]
    public void InjectedEmbeddingsReproduceTheTowerInOnnxRuntime(string model, bool hf, string gradName)
    {
        var proto = OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, model));
        var injected = PromptInjection.ExposeTokenEmbeddings(proto, "input_ids", model);
        Assert.Equal(49408, injected.VocabularySize);
        Assert.Equal(64, injected.Width);
        Assert.Equal("/token_embedding/Gather_output_0", injected.GatherOutput);
        Assert.DoesNotContain(injected.Model.Graph.Node, n => n.Output.Contains(injected.GatherOutput));

        // The removed table indexed by the ids is exactly the golden E (the Gather's output).
        var ids = Fixtures.ReadI64(Golden(hf ? "input_ids_longest.i64" : "input_ids_ctx77.i64"));
        var e = Fixtures.ReadF32(Golden(gradName + ".E.f32"));
        var gathered = ids.SelectMany(id => injected.TokenEmbedding.AsSpan((int)id * 64, 64).ToArray()).ToArray();
        Assert.Equal(e, gathered);

        string path = Path.Combine(Fixtures.TempDir(), "injected.onnx");
        OnnxModelFile.Save(injected.Model, path);
        using var s = OnnxSession.Open(path);
        Assert.Contains(s.Inputs, i => i.Name == "inputs_embeds" && i.Shape[^1] == 64);
        int seq = hf ? 8 : 77;
        var inputs = new List<OnnxInput> { OnnxInput.Create("input_ids", ids, 4, seq), OnnxInput.Create("inputs_embeds", e, 4, seq, 64) };
        if (hf) inputs.Add(OnnxInput.Create("attention_mask", Fixtures.ReadI64(Golden("attention_mask_longest.i64")), 4, 8));
        using var r = s.Run(inputs);
        Assert.True(Fixtures.MaxAbsDiff(Fixtures.ReadF32(Golden(hf ? "hf_text_longest.f32" : "openai_textual.f32")), r.GetFloats("text_embeds")) <= 1e-4);
    }

    [Fact]
    public void AModelWithoutATokenLookupIsRejected()
    {
        var proto = OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, "openai", "visual.onnx"));
        proto.Graph.Input.Add(new Vega.MLNet.Onnx.Proto.ValueInfoProto { Name = "input_ids" });
        var e = Assert.Throws<InvalidDataException>(() => PromptInjection.ExposeTokenEmbeddings(proto, "input_ids", "visual.onnx"));
        Assert.Contains("no token-embedding lookup", e.Message);
    }
}
