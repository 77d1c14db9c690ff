using System.Text.Json;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Samples.Demo;

/// <summary>
/// Writes a trained <see cref="ClipNetwork"/> as an ordinary Hugging Face split CLIP package, with the project's own
/// ONNX writer (<see cref="OnnxGraphBuilder"/>, opset 17): <c>vision_model.onnx</c> (input <c>pixel_values</c>
/// [batch, 3, 28, 28] float, output <c>image_embeds</c> [batch, D]), <c>text_model.onnx</c> (inputs <c>input_ids</c>
/// and <c>attention_mask</c> [batch, sequence] int64, output <c>text_embeds</c> [batch, D]), <c>vocab.json</c> +
/// <c>merges.txt</c>, <c>preprocessor_config.json</c> (the demo's preprocessing) and <c>config.json</c> (projection
/// width, the learnt log logit scale, context length, pad id). Each graph computes exactly the trainer's forward pass;
/// the text tower pools at <c>ArgMax(input_ids)</c> (the end token has the highest id) with a one-hot mask and
/// ReduceSum, and its token embedding is a Gather on a [vocab, width] initializer indexed by the ids.
/// </summary>
internal static class ClipExporter
{
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;

    /// <summary>Writes the package into <paramref name="directory"/>; the tokenizer files are copied from <paramref name="tokenizerDirectory"/>.</summary>
    public static void Export(ClipNetwork net, string tokenizerDirectory, string directory, string name, IReadOnlyDictionary<string, object>? extraConfig = null)
    {
        Directory.CreateDirectory(directory);
        var metadata = new Dictionary<string, string> { ["name"] = name, ["architecture"] = net.Architecture.Describe(), ["producer"] = "Vega.MLNet demo zoo" };
        OnnxModelFile.Save(BuildVision(net).Build(metadata: metadata), Path.Combine(directory, "vision_model.onnx"));
        OnnxModelFile.Save(BuildText(net).Build(metadata: metadata), Path.Combine(directory, "text_model.onnx"));
        foreach (var f in new[] { "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(tokenizerDirectory, f), Path.Combine(directory, f), overwrite: true);
        WriteJson(Path.Combine(directory, "preprocessor_config.json"), PreprocessorConfig());
        WriteJson(Path.Combine(directory, "config.json"), Config(net, name, extraConfig));
    }

    internal static Dictionary<string, object> PreprocessorConfig()
    {
        var s = DemoPreprocessing.Settings;
        return new Dictionary<string, object>
        {
            ["image_processor_type"] = "CLIPImageProcessor",
            ["do_resize"] = true,
            ["size"] = new Dictionary<string, object> { ["shortest_edge"] = s.EffectiveShortestEdge },
            ["resample"] = 3,
            ["do_center_crop"] = true,
            ["crop_size"] = new Dictionary<string, object> { ["height"] = s.ImageSize, ["width"] = s.ImageSize },
            ["do_rescale"] = true,
            ["rescale_factor"] = 1.0 / 255,
            ["do_normalize"] = true,
            ["image_mean"] = s.Mean.ToArray(),
            ["image_std"] = s.Std.ToArray(),
            ["do_convert_rgb"] = true,
        };
    }

    internal static Dictionary<string, object> Config(ClipNetwork net, string name, IReadOnlyDictionary<string, object>? extra)
    {
        var a = net.Architecture;
        var config = new Dictionary<string, object>
        {
            ["model_type"] = "clip",
            ["name"] = name,
            ["projection_dim"] = a.EmbedDim,
            ["logit_scale"] = net.LogitScale.Span[0],
            ["text_config"] = new Dictionary<string, object>
            {
                ["hidden_size"] = a.TextWidth,
                ["num_hidden_layers"] = a.TextLayers,
                ["num_attention_heads"] = a.TextHeads,
                ["intermediate_size"] = 4 * a.TextWidth,
                ["max_position_embeddings"] = net.ContextLength,
                ["vocab_size"] = net.VocabularySize,
                ["pad_token_id"] = 0,
                ["bos_token_id"] = net.VocabularySize - 2,
                ["eos_token_id"] = net.VocabularySize - 1,
                ["hidden_act"] = "quick_gelu",
                ["layer_norm_eps"] = ClipNetwork.LayerNormEpsilon,
            },
            ["vision_config"] = new Dictionary<string, object>
            {
                ["image_size"] = a.ImageSize,
                ["num_channels"] = 3,
                ["architecture"] = a.Image.ToString().ToLowerInvariant(),
                ["description"] = a.Describe(),
            },
        };
        if (extra is not null) foreach (var (k, v) in extra) config[k] = v;
        return config;
    }

    private static void WriteJson(string path, object value) =>
        File.WriteAllText(path, JsonSerializer.Serialize(value, new JsonSerializerOptions { WriteIndented = true }) + "\n");

    // ------------------------------------------------------------------ vision

    internal static OnnxGraphBuilder BuildVision(ClipNetwork net)
    {
        var a = net.Architecture;
        var p = net.Parameters;
        int s = a.ImageSize;
        var g = new OnnxGraphBuilder("vision_model");
        string px = g.Input("pixel_values", F32, "batch", 3, s, s);
        string x = g.Node("ReduceMean", [px], null, ("axes", new long[] { 1 }), ("keepdims", 1L)); // ClipNetwork.ToGray
        switch (a.Image)
        {
            case ImageArchitecture.Mlp:
                x = g.Node("Flatten", [x], null, ("axis", 1L));
                for (int i = 0; i < a.Hidden.Length; i++) x = g.Node("Relu", [g.Linear(x, $"visual.fc{i}", p[$"visual.fc{i}.weight"], p[$"visual.fc{i}.bias"])]);
                break;
            case ImageArchitecture.Cnn:
                for (int i = 0; i < a.Channels.Length; i++)
                {
                    x = g.Node("Conv", [x, g.Initializer($"visual.conv{i}.weight", p[$"visual.conv{i}.weight"]), g.Initializer($"visual.conv{i}.bias", p[$"visual.conv{i}.bias"])], null,
                        ("kernel_shape", new long[] { 3, 3 }), ("pads", new long[] { 1, 1, 1, 1 }), ("strides", new long[] { 1, 1 }));
                    x = g.Node("MaxPool", [g.Node("Relu", [x])], null, ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 }));
                }
                x = g.Node("Flatten", [x], null, ("axis", 1L));
                for (int i = 0; i < a.Hidden.Length; i++) x = g.Node("Relu", [g.Linear(x, $"visual.fc{i}", p[$"visual.fc{i}.weight"], p[$"visual.fc{i}.bias"])]);
                break;
            case ImageArchitecture.Vit:
            {
                int w = a.VitWidth, patch = a.VitPatch, n = (s / patch) * (s / patch);
                x = g.Node("Conv", [x, g.Initializer("visual.patch.weight", p["visual.patch.weight"]), g.Initializer("visual.patch.bias", p["visual.patch.bias"])], null,
                    ("kernel_shape", new long[] { patch, patch }), ("strides", new long[] { patch, patch }));
                x = g.Node("Transpose", [g.Node("Reshape", [x, g.Int64s(0, w, n)])], null, ("perm", new long[] { 0, 2, 1 }));
                x = g.Node("Add", [x, g.Initializer("visual.positional", p["visual.positional"])]);
                for (int l = 0; l < a.VitLayers; l++) x = Block(g, net, x, $"visual.blocks.{l}", a.VitHeads, w, null);
                x = g.Node("ReduceMean", [x], null, ("axes", new long[] { 1 }), ("keepdims", 0L));
                x = g.LayerNorm(x, "visual.ln_post", p["visual.ln_post.weight"], p["visual.ln_post.bias"], ClipNetwork.LayerNormEpsilon);
                break;
            }
        }
        x = g.Linear(x, "visual.proj", p["visual.proj.weight"], null);
        g.Output(g.Identity(x, "image_embeds"), F32, "batch", a.EmbedDim);
        return g;
    }

    // ------------------------------------------------------------------ text

    internal static OnnxGraphBuilder BuildText(ClipNetwork net)
    {
        var a = net.Architecture;
        var p = net.Parameters;
        int c = net.ContextLength, w = a.TextWidth;
        var g = new OnnxGraphBuilder("text_model");
        string ids = g.Input("input_ids", I64, "batch", "sequence");
        string mask = g.Input("attention_mask", I64, "batch", "sequence");

        string x = g.Node("Gather", [g.Initializer("text.token_embedding", p["text.token_embedding"]), ids], null, ("axis", 0L)); // [B, T, W]
        string t = g.Node("Gather", [g.Node("Shape", [ids]), g.Int64Scalar(1)], null, ("axis", 0L));                             // T (scalar)
        string t1 = g.Node("Unsqueeze", [t, g.Int64s(0)]);                                                                      // [T]
        string pos = g.Node("Slice", [g.Initializer("text.positional", p["text.positional"]), g.Int64s(0), t1, g.Int64s(0)]);
        x = g.Node("Add", [x, pos]);

        // Attention bias [B, 1, T, T]: causal part sliced from a stored [C, C] table, plus (mask − 1)·1e9 on padded keys.
        var causal = new float[c * c];
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++) causal[i * c + j] = j > i ? ClipNetwork.MaskValue : 0f;
        string tt = g.Node("Concat", [t1, t1], null, ("axis", 0L));
        string causalT = g.Node("Slice", [g.Initializer("text.causal_mask", causal, c, c), g.Int64s(0, 0), tt, g.Int64s(0, 1)]);
        string maskF = g.Node("Cast", [mask], null, ("to", (long)F32));
        string pad = g.Node("Mul", [g.Node("Sub", [maskF, g.FloatScalar(1f)]), g.FloatScalar(-ClipNetwork.MaskValue)]);
        pad = g.Node("Unsqueeze", [pad, g.Int64s(1, 2)]);
        string bias = g.Node("Add", [causalT, pad]);

        for (int l = 0; l < a.TextLayers; l++) x = Block(g, net, x, $"text.blocks.{l}", a.TextHeads, w, bias);

        // End-token pooling: one-hot of ArgMax(ids) over the positions, times the hidden states, summed over the sequence.
        string eot = g.Node("ArgMax", [ids], null, ("axis", 1L), ("keepdims", 1L));                                           // [B, 1]
        string positions = g.Node("Range", [g.Int64Scalar(0), t, g.Int64Scalar(1)]);                                          // [T]
        string onehot = g.Node("Cast", [g.Node("Equal", [positions, eot])], null, ("to", (long)F32));                         // [B, T]
        string pooled = g.Node("ReduceSum", [g.Node("Mul", [x, g.Node("Unsqueeze", [onehot, g.Int64s(2)])]), g.Int64s(1)], null, ("keepdims", 0L));
        x = g.LayerNorm(pooled, "text.ln_final", p["text.ln_final.weight"], p["text.ln_final.bias"], ClipNetwork.LayerNormEpsilon);
        x = g.Linear(x, "text.proj", p["text.proj.weight"], null);
        g.Output(g.Identity(x, "text_embeds"), F32, "batch", a.EmbedDim);
        return g;
    }

    // ------------------------------------------------------------------ shared

    /// <summary>The pre-LN transformer block of <see cref="ClipNetwork"/> as ONNX nodes.</summary>
    private static string Block(OnnxGraphBuilder g, ClipNetwork net, string x, string name, int heads, int width, string? bias)
    {
        var p = net.Parameters;
        int dh = width / heads;
        string Lin(string input, string n) => g.Linear(input, n, p[n + ".weight"], p[n + ".bias"]);
        string h = g.LayerNorm(x, name + ".ln_1", p[name + ".ln_1.weight"], p[name + ".ln_1.bias"], ClipNetwork.LayerNormEpsilon);
        string heads4 = g.Int64s(0, 0, heads, dh);
        string q = g.Node("Transpose", [g.Node("Reshape", [Lin(h, name + ".attn.q"), heads4])], null, ("perm", new long[] { 0, 2, 1, 3 }));
        string k = g.Node("Transpose", [g.Node("Reshape", [Lin(h, name + ".attn.k"), heads4])], null, ("perm", new long[] { 0, 2, 3, 1 }));
        string v = g.Node("Transpose", [g.Node("Reshape", [Lin(h, name + ".attn.v"), heads4])], null, ("perm", new long[] { 0, 2, 1, 3 }));
        string s = g.Node("Mul", [g.Node("MatMul", [q, k]), g.FloatScalar(1f / MathF.Sqrt(dh))]);
        if (bias is not null) s = g.Node("Add", [s, bias]);
        string o = g.Node("MatMul", [g.Node("Softmax", [s], null, ("axis", -1L)), v]);
        o = g.Node("Reshape", [g.Node("Transpose", [o], null, ("perm", new long[] { 0, 2, 1, 3 })), g.Int64s(0, 0, width)]);
        x = g.Node("Add", [x, Lin(o, name + ".attn.out")]);
        string m = Lin(g.LayerNorm(x, name + ".ln_2", p[name + ".ln_2.weight"], p[name + ".ln_2.bias"], ClipNetwork.LayerNormEpsilon), name + ".mlp.fc");
        m = g.Node("Mul", [m, g.Node("Sigmoid", [g.Node("Mul", [m, g.FloatScalar(1.702f)])])]); // QuickGELU
        return g.Node("Add", [x, Lin(m, name + ".mlp.proj")]);
    }
}
