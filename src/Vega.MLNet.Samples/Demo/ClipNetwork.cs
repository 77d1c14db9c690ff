using System.Text.Json.Serialization;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Demo;

/// <summary>The image tower families of the demo zoo.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ImageArchitecture>))]
internal enum ImageArchitecture
{
    /// <summary>Flattened pixels → ReLU hidden layers → projection.</summary>
    Mlp,

    /// <summary>3×3 convolutions (padding 1) with ReLU and 2×2 max-pooling → flatten → projection.</summary>
    Cnn,

    /// <summary>Patch embedding (a strided convolution) + learned positions → pre-LN transformer layers → mean over patches → LN → projection.</summary>
    Vit,
}

/// <summary>
/// The shape of one small CLIP model. Image input is 3 × <see cref="ImageSize"/>² (gray replicated to RGB); every
/// image tower starts by averaging the three channels. The text tower is token embedding + learned positions +
/// pre-LN causal transformer layers + final LN at the end token (the highest id, as CLIP) + projection.
/// </summary>
internal sealed record ClipArchitecture
{
    public ImageArchitecture Image { get; init; }

    /// <summary>MLP: hidden widths; CNN: optional hidden widths after the flatten.</summary>
    public int[] Hidden { get; init; } = [];

    /// <summary>CNN: output channels of each conv (each followed by ReLU and 2×2 max-pooling).</summary>
    public int[] Channels { get; init; } = [];

    public int VitWidth { get; init; } = 64;
    public int VitLayers { get; init; } = 1;
    public int VitPatch { get; init; } = 7;
    public int VitHeads { get; init; } = 4;

    public int TextWidth { get; init; } = 64;
    public int TextLayers { get; init; } = 1;
    public int TextHeads { get; init; } = 4;

    /// <summary>Width of the shared embedding space.</summary>
    public int EmbedDim { get; init; } = 64;

    public int ImageSize { get; init; } = 28;

    /// <summary>The image tower in a few characters, e.g. "CNN 16-32" or "ViT p7 w64 ×2".</summary>
    public string DescribeImage() => Image switch
    {
        ImageArchitecture.Mlp => $"MLP {string.Join("-", Hidden)}",
        ImageArchitecture.Cnn => $"CNN {string.Join("-", Channels)}{(Hidden.Length > 0 ? " fc" + string.Join("-", Hidden) : "")}",
        _ => $"ViT p{VitPatch} w{VitWidth} ×{VitLayers}",
    };

    /// <summary>The text tower, e.g. "text w64 ×1".</summary>
    public string DescribeText() => $"text w{TextWidth} ×{TextLayers}";

    /// <summary>Both towers and the embedding width.</summary>
    public string Describe() => $"{DescribeImage()} / {DescribeText()} / D{EmbedDim}";
}

/// <summary>Named persistent parameters in creation order (the order of the safetensors file and of the optimiser).</summary>
internal sealed class ParameterSet
{
    private readonly List<Tensor> _list = [];
    private readonly Dictionary<string, Tensor> _byName = new(StringComparer.Ordinal);

    public IReadOnlyList<Tensor> All => _list;

    public Tensor this[string name] => _byName.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"The network has no parameter '{name}'.");

    public Tensor Add(string name, int[] shape, Action<Tensor>? init = null)
    {
        var p = Tensor.Parameter(shape, name);
        init?.Invoke(p);
        _list.Add(p);
        _byName.Add(name, p);
        return p;
    }

    public long Count => _list.Sum(p => (long)p.Length);
}

/// <summary>
/// A small CLIP model for training with the tensor core: parameters (named as in the ONNX export) and the forward
/// passes of both towers. The exporter (<see cref="ClipExporter"/>) writes exactly these computations as ONNX graphs.
/// </summary>
internal sealed class ClipNetwork
{
    /// <summary>ε of every LayerNorm.</summary>
    public const float LayerNormEpsilon = 1e-5f;

    /// <summary>Additive attention bias of masked positions (finite, so no row is ever all −∞).</summary>
    public const float MaskValue = -1e9f;

    /// <summary>CLIP's initial logit scale, ln(1/0.07).</summary>
    public static readonly float InitialLogitScale = (float)Math.Log(1 / 0.07);

    /// <summary>CLIP's clamp of the learnt log scale, ln 100.</summary>
    public static readonly float MaxLogitScale = (float)Math.Log(100);

    public ClipNetwork(ClipArchitecture architecture, int vocabularySize, int contextLength, Rng rng)
    {
        Architecture = architecture;
        VocabularySize = vocabularySize;
        ContextLength = contextLength;
        var a = architecture;
        if (a.TextWidth % a.TextHeads != 0) throw new ArgumentException($"Text width {a.TextWidth} is not a multiple of {a.TextHeads} heads.");
        if (a.Image == ImageArchitecture.Vit && (a.VitWidth % a.VitHeads != 0 || a.ImageSize % a.VitPatch != 0))
            throw new ArgumentException($"ViT width {a.VitWidth} must be a multiple of {a.VitHeads} heads and image size {a.ImageSize} of patch {a.VitPatch}.");
        BuildImageTower(rng);
        BuildTextTower(rng);
        LogitScale = Parameters.Add("logit_scale", [1], t => t.Span.Fill(InitialLogitScale));
    }

    public ClipArchitecture Architecture { get; }
    public int VocabularySize { get; }
    public int ContextLength { get; }
    public ParameterSet Parameters { get; } = new();
    public Tensor LogitScale { get; }

    public long ImageParameterCount => Parameters.All.Where(p => p.Name!.StartsWith("visual.", StringComparison.Ordinal)).Sum(p => (long)p.Length);
    public long TextParameterCount => Parameters.All.Where(p => p.Name!.StartsWith("text.", StringComparison.Ordinal)).Sum(p => (long)p.Length);

    // ------------------------------------------------------------------ construction

    private Tensor Linear(string name, int inF, int outF, Rng rng, bool bias = true, bool relu = false)
    {
        Parameters.Add(name + ".weight", [outF, inF], t => { if (relu) Init.KaimingUniform(t, rng); else Init.XavierUniform(t, rng); });
        if (bias) Parameters.Add(name + ".bias", [outF]);
        return Parameters[name + ".weight"];
    }

    private void LayerNormParams(string name, int width)
    {
        Parameters.Add(name + ".weight", [width], t => t.Span.Fill(1f));
        Parameters.Add(name + ".bias", [width]);
    }

    private void Block(string name, int width, Rng rng)
    {
        LayerNormParams(name + ".ln_1", width);
        Linear(name + ".attn.q", width, width, rng);
        Linear(name + ".attn.k", width, width, rng);
        Linear(name + ".attn.v", width, width, rng);
        Linear(name + ".attn.out", width, width, rng);
        LayerNormParams(name + ".ln_2", width);
        Linear(name + ".mlp.fc", width, 4 * width, rng);
        Linear(name + ".mlp.proj", 4 * width, width, rng);
    }

    private void BuildImageTower(Rng rng)
    {
        var a = Architecture;
        int s = a.ImageSize;
        switch (a.Image)
        {
            case ImageArchitecture.Mlp:
            {
                int inF = s * s;
                for (int i = 0; i < a.Hidden.Length; i++) { Linear($"visual.fc{i}", inF, a.Hidden[i], rng, relu: true); inF = a.Hidden[i]; }
                Linear("visual.proj", inF, a.EmbedDim, rng, bias: false);
                break;
            }
            case ImageArchitecture.Cnn:
            {
                int c = 1, side = s;
                for (int i = 0; i < a.Channels.Length; i++)
                {
                    Parameters.Add($"visual.conv{i}.weight", [a.Channels[i], c, 3, 3], t => Init.KaimingUniform(t, rng));
                    Parameters.Add($"visual.conv{i}.bias", [a.Channels[i]]);
                    c = a.Channels[i];
                    if (side % 2 != 0) throw new ArgumentException($"CNN: {a.Channels.Length} poolings do not divide the image size {s}.");
                    side /= 2;
                }
                int inF = c * side * side;
                for (int i = 0; i < a.Hidden.Length; i++) { Linear($"visual.fc{i}", inF, a.Hidden[i], rng, relu: true); inF = a.Hidden[i]; }
                Linear("visual.proj", inF, a.EmbedDim, rng, bias: false);
                break;
            }
            case ImageArchitecture.Vit:
            {
                int w = a.VitWidth, p = a.VitPatch, n = (s / p) * (s / p);
                Parameters.Add("visual.patch.weight", [w, 1, p, p], t => Init.KaimingUniform(t, rng, a: Math.Sqrt(5)));
                Parameters.Add("visual.patch.bias", [w]);
                Parameters.Add("visual.positional", [n, w], t => Init.Normal(t, rng, 0, 0.02));
                for (int l = 0; l < a.VitLayers; l++) Block($"visual.blocks.{l}", w, rng);
                LayerNormParams("visual.ln_post", w);
                Linear("visual.proj", w, a.EmbedDim, rng, bias: false);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(Architecture), a.Image, "Unknown image architecture.");
        }
    }

    private void BuildTextTower(Rng rng)
    {
        var a = Architecture;
        Parameters.Add("text.token_embedding", [VocabularySize, a.TextWidth], t => Init.Normal(t, rng, 0, 0.02));
        Parameters.Add("text.positional", [ContextLength, a.TextWidth], t => Init.Normal(t, rng, 0, 0.01));
        for (int l = 0; l < a.TextLayers; l++) Block($"text.blocks.{l}", a.TextWidth, rng);
        LayerNormParams("text.ln_final", a.TextWidth);
        Linear("text.proj", a.TextWidth, a.EmbedDim, rng, bias: false);
    }

    // ------------------------------------------------------------------ forward

    /// <summary>The first step of every image tower: the mean of the three channels, [B, 3, S, S] → [B, 1, S, S].</summary>
    public static Tensor ToGray(Tensor pixels) => Ops.Mean(pixels, [1], keepDims: true);

    private Tensor P(string name) => Parameters[name];

    private Tensor Lin(Tensor x, string name, bool bias = true) => Ops.Linear(x, P(name + ".weight"), bias ? P(name + ".bias") : null);

    private Tensor LN(Tensor x, string name) => Ops.LayerNorm(x, P(name + ".weight"), P(name + ".bias"), LayerNormEpsilon);

    /// <summary>Raw (unnormalised) image embeddings [B, E] of gray inputs [B, 1, S, S] (see <see cref="ToGray"/>).</summary>
    public Tensor EncodeImageGray(Tensor gray)
    {
        var a = Architecture;
        int b = gray.Shape[0];
        switch (a.Image)
        {
            case ImageArchitecture.Mlp:
            {
                var x = Ops.Reshape(gray, b, -1);
                for (int i = 0; i < a.Hidden.Length; i++) x = Ops.Relu(Lin(x, $"visual.fc{i}"));
                return Lin(x, "visual.proj", bias: false);
            }
            case ImageArchitecture.Cnn:
            {
                var x = gray;
                for (int i = 0; i < a.Channels.Length; i++)
                    x = Ops.MaxPool2d(Ops.Relu(Ops.Conv2d(x, P($"visual.conv{i}.weight"), P($"visual.conv{i}.bias"), 1, 1)), 2);
                x = Ops.Reshape(x, b, -1);
                for (int i = 0; i < a.Hidden.Length; i++) x = Ops.Relu(Lin(x, $"visual.fc{i}"));
                return Lin(x, "visual.proj", bias: false);
            }
            default:
            {
                int w = a.VitWidth, p = a.VitPatch, n = (a.ImageSize / p) * (a.ImageSize / p);
                var x = Ops.Conv2d(gray, P("visual.patch.weight"), P("visual.patch.bias"), p, 0); // [B, W, g, g]
                x = Ops.Transpose(Ops.Reshape(x, b, w, n), 0, 2, 1);                              // [B, N, W]
                x = Ops.Add(x, P("visual.positional"));
                for (int l = 0; l < a.VitLayers; l++) x = Block(x, $"visual.blocks.{l}", a.VitHeads, null);
                x = Ops.Mean(x, [1]);                                                               // [B, W]
                x = LN(x, "visual.ln_post");
                return Lin(x, "visual.proj", bias: false);
            }
        }
    }

    /// <summary>Raw image embeddings of preprocessed pixels [B, 3, S, S].</summary>
    public Tensor EncodeImage(Tensor pixels) => EncodeImageGray(ToGray(pixels));

    /// <summary>
    /// Raw text embeddings [B, E] of token rows: <paramref name="ids"/> is [B, T] row-major (start, tokens, end, padding),
    /// <paramref name="lengths"/> the real length of each row (the end token sits at length − 1).
    /// </summary>
    public Tensor EncodeText(int[] ids, int[] lengths, int batch, int width)
    {
        var a = Architecture;
        if (width > ContextLength) throw new ArgumentException($"Token rows of {width} exceed the context length {ContextLength}.", nameof(width));
        var x = Ops.Embedding(P("text.token_embedding"), ids, batch, width);
        x = Ops.Add(x, Ops.Slice(P("text.positional"), 0, 0, width));
        var bias = AttentionBias(lengths, batch, width);
        for (int l = 0; l < a.TextLayers; l++) x = Block(x, $"text.blocks.{l}", a.TextHeads, bias);
        var eot = new int[batch];
        for (int i = 0; i < batch; i++) eot[i] = lengths[i] - 1;
        x = Ops.TakePerRow(x, eot);
        x = LN(x, "text.ln_final");
        return Lin(x, "text.proj", bias: false);
    }

    /// <summary>Causal mask plus key-padding mask as an additive bias [B, 1, T, T] (0 or <see cref="MaskValue"/> each).</summary>
    internal static Tensor AttentionBias(int[] lengths, int batch, int width)
    {
        var causal = Tensor.Empty(width, width);
        var cs = causal.Span;
        for (int i = 0; i < width; i++)
            for (int j = 0; j < width; j++) cs[i * width + j] = j > i ? MaskValue : 0f;
        var pad = Tensor.Empty(batch, 1, 1, width);
        var ps = pad.Span;
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < width; j++) ps[b * width + j] = j < lengths[b] ? 0f : MaskValue; // (mask − 1)·1e9
        return Ops.Add(causal, pad);
    }

    /// <summary>A pre-LN transformer block; <paramref name="bias"/> is added to the attention scores (null = none).</summary>
    private Tensor Block(Tensor x, string name, int heads, Tensor? bias)
    {
        int b = x.Shape[0], t = x.Shape[1], w = x.Shape[2], dh = w / heads;
        var h = LN(x, name + ".ln_1");
        var q = Ops.Transpose(Ops.Reshape(Lin(h, name + ".attn.q"), b, t, heads, dh), 0, 2, 1, 3); // [B, H, T, dh]
        var k = Ops.Transpose(Ops.Reshape(Lin(h, name + ".attn.k"), b, t, heads, dh), 0, 2, 3, 1); // [B, H, dh, T]
        var v = Ops.Transpose(Ops.Reshape(Lin(h, name + ".attn.v"), b, t, heads, dh), 0, 2, 1, 3); // [B, H, T, dh]
        var s = Ops.MulScalar(Ops.MatMul(q, k), 1f / MathF.Sqrt(dh));
        if (bias is not null) s = Ops.Add(s, bias);
        var o = Ops.MatMul(Ops.Softmax(s, -1), v);                                                   // [B, H, T, dh]
        o = Ops.Reshape(Ops.Transpose(o, 0, 2, 1, 3), b, t, w);
        x = Ops.Add(x, Lin(o, name + ".attn.out"));
        var m = Ops.QuickGelu(Lin(LN(x, name + ".ln_2"), name + ".mlp.fc"));
        return Ops.Add(x, Lin(m, name + ".mlp.proj"));
    }

    /// <summary>Clamps the learnt log scale to [0, ln 100] as CLIP does after each step.</summary>
    public void ClampLogitScale()
    {
        var s = LogitScale.Span;
        s[0] = Math.Clamp(s[0], 0f, MaxLogitScale);
    }
}
