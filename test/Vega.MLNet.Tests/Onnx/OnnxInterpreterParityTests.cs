using Vega.MLNet.Onnx;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// Forward parity of the interpreter on the fixture towers: against the PyTorch goldens of ../shared/onnx/golden and
/// against ONNX Runtime run on the same file with the same inputs, both within 1e-4.
/// </summary>
public sealed class OnnxInterpreterParityTests
{
    internal static string Golden(string f) => Path.Combine(Fixtures.Onnx, "golden", f);

    /// <summary>One golden case of index.json: model, inputs (name → file, shape), expected outputs (name → file).</summary>
    public sealed record Case(string Name, string Model, (string Input, string File, long[] Shape)[] Inputs, (string Output, string File)[] Expected)
    {
        public override string ToString() => Name;
    }

    private static readonly long[] Ctx77 = [4, 77];
    private static readonly long[] Longest = [4, 8];
    private static readonly long[] Pixels = [3, 3, 224, 224];

    public static TheoryData<string> TextCases() => ["openai_textual", "hf_text_longest", "hf_text_ctx77", "hf_text_probe"];

    public static TheoryData<string> VisionCases() => ["openai_visual", "hf_vision", "hf_model"];

    internal static Case Lookup(string name) => name switch
    {
        "openai_textual" => new(name, "openai/textual.onnx", [("input_ids", "input_ids_ctx77.i64", Ctx77)], [("text_embeds", "openai_textual.f32")]),
        "hf_text_longest" => new(name, "hf/text_model.onnx", [("input_ids", "input_ids_longest.i64", Longest), ("attention_mask", "attention_mask_longest.i64", Longest)], [("text_embeds", "hf_text_longest.f32")]),
        "hf_text_ctx77" => new(name, "hf/text_model.onnx", [("input_ids", "input_ids_ctx77.i64", Ctx77), ("attention_mask", "attention_mask_ctx77.i64", Ctx77)], [("text_embeds", "hf_text_ctx77.f32")]),
        "hf_text_probe" => new(name, "hf/text_model.onnx", [("input_ids", "input_ids_longest.i64", Longest), ("attention_mask", "attention_mask_probe.i64", Longest)], [("text_embeds", "hf_text_probe.f32")]),
        "openai_visual" => new(name, "openai/visual.onnx", [("pixel_values", "", Pixels)], [("image_embeds", "openai_visual.f32")]),
        "hf_vision" => new(name, "hf/vision_model.onnx", [("pixel_values", "", Pixels)], [("image_embeds", "hf_vision.f32")]),
        "hf_model" => new(name, "hf/model.onnx",
            [("input_ids", "input_ids_longest.i64", Longest), ("attention_mask", "attention_mask_longest.i64", Longest), ("pixel_values", "", Pixels)],
            [("logits_per_image", "hf_model_logits_per_image.f32"), ("logits_per_text", "hf_model_logits_per_text.f32"), ("text_embeds", "hf_model_text_embeds.f32"), ("image_embeds", "hf_model_image_embeds.f32")]),
        _ => throw new ArgumentException(name),
    };

    internal static float[] PixelValues() =>
        new[] { "grace_hopper", "china_progressive", "Minduka_Present_Blue_Pack" }
            .SelectMany(s => Fixtures.ReadF32(Path.Combine(Fixtures.Images, "golden", s + ".f32"))).ToArray();

    internal static Dictionary<string, OnnxValue> Feeds(Case c)
    {
        var feeds = new Dictionary<string, OnnxValue>();
        foreach (var (input, file, shape) in c.Inputs)
        {
            int[] dims = shape.Select(d => (int)d).ToArray();
            feeds[input] = file.Length == 0
                ? OnnxValue.FromTensor(Vega.MLNet.Tensors.Tensor.Wrap(PixelValues(), dims))
                : OnnxValue.FromInts(Fixtures.ReadI64(Golden(file)), dims);
        }
        return feeds;
    }

    internal static Dictionary<string, float[]> RunOrt(Case c)
    {
        using var s = OnnxSession.Open(Path.Combine(Fixtures.Onnx, c.Model));
        var inputs = c.Inputs.Select(i => i.File.Length == 0
            ? OnnxInput.Create(i.Input, PixelValues(), i.Shape)
            : OnnxInput.Create(i.Input, Fixtures.ReadI64(Golden(i.File)), i.Shape)).ToList();
        using var r = s.Run(inputs);
        return c.Expected.ToDictionary(e => e.Output, e => r.GetFloats(e.Output).ToArray());
    }

    private static void CheckCase(string name)
    {
        var c = Lookup(name);
        var interp = OnnxInterpreter.Load(Path.Combine(Fixtures.Onnx, c.Model));
        var result = interp.Run(Feeds(c));
        var ort = RunOrt(c);
        foreach (var (output, file) in c.Expected)
        {
            var ours = result[output].ToFloatArray();
            var golden = Fixtures.ReadF32(Golden(file));
            double vsGolden = Fixtures.MaxAbsDiff(golden, ours);
            double vsOrt = Fixtures.MaxAbsDiff(ort[output], ours);
            Assert.True(vsGolden <= 1e-4, $"{name}/{output}: max |interpreter − golden| = {vsGolden:G3}");
            Assert.True(vsOrt <= 1e-4, $"{name}/{output}: max |interpreter − ONNX Runtime| = {vsOrt:G3}");
        }
    }

    [Theory]
    [MemberData(nameof(TextCases))]
    public void TextTowersMatchGoldenAndOnnxRuntime(string name) => CheckCase(name);

    [Theory]
    [MemberData(nameof(VisionCases))]
    public void VisionTowersAndTheCombinedModelMatchGoldenAndOnnxRuntime(string name) => CheckCase(name);
}
