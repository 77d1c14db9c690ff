using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Prompting;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Prompting;

/// <summary>
/// Prompt learning through text towers whose ids (and mask) are not int64: the fixture towers rewritten to take the
/// inputs as another type (a Cast to int64 in front of the original graph, as exporters that emit int32 ids do). The
/// encoder must feed the declared types, and its features and context gradients must equal the int64 tower's.
/// </summary>
public sealed class IntegerInputTypeTests
{
    private static readonly string[] Names = ["cat", "T-shirt/top", "ankle boot"];

    /// <summary>The tower at <paramref name="path"/> with the named inputs retyped (each cast back to int64 inside the graph).</summary>
    internal static ModelProto Retyped(string path, params (string Input, TensorProto.Types.DataType Type)[] inputs)
    {
        var proto = OnnxModelFile.Load(path);
        var graph = proto.Graph;
        foreach (var (name, type) in inputs)
        {
            var input = graph.Input.Single(i => i.Name == name);
            input.Type.TensorType.ElemType = (int)type;
            foreach (var node in graph.Node)
                for (int k = 0; k < node.Input.Count; k++)
                    if (node.Input[k] == name) node.Input[k] = name + "_int64";
            var cast = new NodeProto { OpType = "Cast", Name = "cast_" + name };
            cast.Input.Add(name);
            cast.Output.Add(name + "_int64");
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Int64 });
            graph.Node.Insert(0, cast);
        }
        return proto;
    }

    private static (float[] Features, float[] Gradient) FeaturesAndGradient(PromptTextEncoder enc)
    {
        var layout = enc.Layout(PromptLayoutTests.Tokenizer.Value, Names, 4, ClassTokenPosition.Middle);
        var prompts = enc.Prepare(layout);
        var ctx = enc.InitialContext(layout, classSpecific: false, seed: 5, std: 0.05f);
        var r = new float[Names.Length * 32];
        new Rng(8).FillNormal(r);
        using var tape = new Tape();
        var f = enc.Forward(prompts, ctx);
        tape.Backward(Ops.Sum(Ops.Mul(f, Tensor.FromArray(r, Names.Length, 32))));
        return (f.ToArray(), ctx.Grad!.ToArray());
    }

    public static TheoryData<string, string, string?> Cases() => new()
    {
        { "openai/textual.onnx", "Int32", null },
        { "hf/text_model.onnx", "Int32", "Int32" },
        { "hf/text_model.onnx", "Uint16", "Bool" },
        { "hf/text_model.onnx", "Int32", "Float" },
        { "hf/text_model.onnx", "Int64", "Uint8" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ATowerWithOtherIntegerInputTypesGivesTheInt64TowersFeaturesAndGradients(string tower, string idsType, string? maskType)
    {
        string path = Path.Combine(Fixtures.Onnx, tower);
        var retypes = new List<(string, TensorProto.Types.DataType)> { ("input_ids", Enum.Parse<TensorProto.Types.DataType>(idsType)) };
        if (maskType is not null) retypes.Add(("attention_mask", Enum.Parse<TensorProto.Types.DataType>(maskType)));
        var retyped = PromptTextEncoder.Create(Retyped(path, [.. retypes]), tower + " (retyped)");
        Assert.Equal((OnnxElementType)(int)Enum.Parse<TensorProto.Types.DataType>(idsType), retyped.IdsType);
        if (maskType is not null) Assert.Equal((OnnxElementType)(int)Enum.Parse<TensorProto.Types.DataType>(maskType), retyped.MaskType);
        var (f64, g64) = FeaturesAndGradient(PromptTextEncoder.Load(path));
        var (f, g) = FeaturesAndGradient(retyped);
        Assert.True(Fixtures.MaxAbsDiff(f64, f) <= 1e-6, $"features differ by {Fixtures.MaxAbsDiff(f64, f):G3}");
        Assert.True(Fixtures.MaxAbsDiff(g64, g) <= 1e-6, $"gradients differ by {Fixtures.MaxAbsDiff(g64, g):G3}");
    }

    [Fact]
    public void IdsThatDoNotFitTheDeclaredTypeAreAClearError()
    {
        var enc = PromptTextEncoder.Create(Retyped(Path.Combine(Fixtures.Onnx, "openai", "textual.onnx"), ("input_ids", TensorProto.Types.DataType.Int16)), "int16 tower");
        var layout = enc.Layout(PromptLayoutTests.Tokenizer.Value, Names, 4, ClassTokenPosition.End);
        var e = Assert.Throws<InvalidDataException>(() => enc.Prepare(layout));
        Assert.Contains("49406", e.Message); // the start token, the first id that does not fit
        Assert.Contains("Int16", e.Message);
        Assert.Contains("input_ids", e.Message);
    }

    /// <summary>The reported failure: CoOp through a model folder whose text tower takes int32 ids and mask.</summary>
    [Fact]
    public void CoopThroughAnInt32TextTowerEqualsTheInt64Run()
    {
        string hf = Path.Combine(Fixtures.Onnx, "hf");
        string dir = ClipModelTests.LinkFolder(("vision_model.onnx", Path.Combine(hf, "vision_model.onnx")), ("vocab.json", Path.Combine(hf, "vocab.json")),
            ("merges.txt", Path.Combine(hf, "merges.txt")), ("config.json", Path.Combine(hf, "config.json")),
            ("preprocessor_config.json", Path.Combine(hf, "preprocessor_config.json")));
        OnnxModelFile.Save(Retyped(Path.Combine(hf, "text_model.onnx"), ("input_ids", TensorProto.Types.DataType.Int32), ("attention_mask", TensorProto.Types.DataType.Int32)),
            Path.Combine(dir, "text_model.onnx"));
        using var int32Model = ClipModel.Load(dir);
        using var int64Model = ClipModel.Load(hf);
        Assert.Equal(OnnxElementType.Int32, int32Model.TextTower.IdsType);

        var rng = new Rng(12);
        var images = new EmbeddingMatrix(12, 32);
        rng.FillNormal(images.Data);
        images.NormalizeRows();
        var labels = Enumerable.Range(0, 12).Select(i => i % Names.Length).ToArray();
        var candidates = CandidateLabels.Generate(labels, Names.Length, 0.5, 3);
        var options = new PromptTuningOptions { Method = TuningMethod.CoOp, Loss = PartialLabelLossKind.CC, ContextTokens = 3, Epochs = 2, WarmupEpochs = 0, BatchSize = 4, LearningRate = 0.05 };
        var a = PromptTuner.Tune(int32Model, images, candidates, Names, options);
        var b = PromptTuner.Tune(int64Model, images, candidates, Names, options);
        Assert.Equal(b.Context, a.Context);
        Assert.NotEqual(PromptTuner.Tune(int64Model, images, candidates, Names, options with { Epochs = 1 }).Context, a.Context); // training moved it
    }
}
