using System.Buffers;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vega.MLNet.Embedding;
using Vega.MLNet.Tensors;
using Tensor = Vega.MLNet.Tensors.Tensor;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// A trained AAPE classification head in CLIP's embedding space. For unit-norm image embeddings x it computes
/// logits_c = cos(x, w_c(x))/τ with w_c(x) = ReLU(G·[w_c; h(x)] + b) and h(x) = W₂·ReLU(W₁x + b₁) + b₂, for every class
/// at once; w_c are the classes' handcrafted-prompt text embeddings. No description is needed at inference.
/// The classes can be replaced (<see cref="WithClasses"/>): h and g do not depend on them, which is how the head
/// transfers to new classes. Thread-safe for prediction.
/// </summary>
internal sealed class AapeHead
{
    /// <summary>File name of the weights inside a head folder.</summary>
    public const string WeightsFile = "aape-head.safetensors";

    /// <summary>File name of the settings inside a head folder.</summary>
    public const string SettingsFile = "aape-head.json";

    /// <summary>File name of the ONNX export inside a head folder (written by the CLI).</summary>
    public const string OnnxFile = "aape-head.onnx";

    private const string Format = "vega-aape-head";
    private const float NormEpsilon = 1e-12f;

    private readonly float[] _w1, _b1, _w2, _b2, _g, _gb, _classWeights;
    private readonly float[] _projectedClasses; // G_w·w_c for every class, [C, D]
    private readonly float[] _fusedPrompt;      // G_h·W₂, [D, R]
    private readonly float[] _fusedBias;        // G_h·b₂ + b, [D]

    internal AapeHead(IReadOnlyList<string> classNames, float[] classWeights, float[] w1, float[] b1, float[] w2, float[] b2, float[] g, float[] gb,
        float temperature, AapeOptions options, float[]? summaries, AapeTrainingReport? training, string? modelName, string? modelHash)
    {
        int d = b2.Length;
        ClassNames = classNames.ToArray();
        Dimension = d;
        Bottleneck = b1.Length;
        Temperature = temperature;
        Options = options;
        Training = training;
        ModelName = modelName;
        ModelHash = modelHash;
        _classWeights = classWeights;
        _w1 = w1; _b1 = b1; _w2 = w2; _b2 = b2; _g = g; _gb = gb;
        Summaries = summaries;
        _projectedClasses = new float[ClassNames.Count * d];
        // A[c] = G_w·w_c: rows of w_c times the first D columns of G (row stride 2D), transposed.
        Gemm.Sgemm(false, true, ClassNames.Count, d, d, 1f, classWeights, 0, d, g, 0, 2 * d, 0f, _projectedClasses, 0, d);
        // u(x) = G_h·(W₂·z + b₂) + b = (G_h·W₂)·z + (G_h·b₂ + b) with z = ReLU(W₁x + b₁): one D×R product per image
        // instead of D×R and D×D.
        int r = b1.Length;
        _fusedPrompt = new float[d * r];
        Gemm.Sgemm(false, false, d, r, d, 1f, g, d, 2 * d, w2, 0, r, 0f, _fusedPrompt, 0, r);
        _fusedBias = new float[d];
        for (int i = 0; i < d; i++)
            _fusedBias[i] = (float)(gb[i] + Kernels.DotDouble(g.AsSpan(i * 2 * d + d, d), b2));
    }

    /// <summary>The classes, in logit order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Embedding width D.</summary>
    public int Dimension { get; }

    /// <summary>Width R of the prompt generator's bottleneck.</summary>
    public int Bottleneck { get; }

    /// <summary>The logit temperature τ.</summary>
    public float Temperature { get; }

    /// <summary>The options the head was trained with.</summary>
    public AapeOptions Options { get; }

    /// <summary>The training report (null for a head loaded from disk).</summary>
    public AapeTrainingReport? Training { get; }

    /// <summary>Name of the CLIP model the head was trained on, if known.</summary>
    public string? ModelName { get; }

    /// <summary>Content hash of the CLIP model the head was trained on, if known (a head only fits its model's space).</summary>
    public string? ModelHash { get; }

    /// <summary>The class summaries pᵃ the generator was distilled towards ([C, D], training classes), if kept.</summary>
    internal float[]? Summaries { get; }

    internal ReadOnlySpan<float> ClassWeights => _classWeights;
    internal GeneratorWeights ToWeights() => new(
        Tensor.Wrap((float[])_w1.Clone(), Bottleneck, Dimension), Tensor.Wrap((float[])_b1.Clone(), Bottleneck),
        Tensor.Wrap((float[])_w2.Clone(), Dimension, Bottleneck), Tensor.Wrap((float[])_b2.Clone(), Dimension),
        Tensor.Wrap((float[])_g.Clone(), Dimension, 2 * Dimension), Tensor.Wrap((float[])_gb.Clone(), Dimension));
    internal (float[] W1, float[] B1, float[] W2, float[] B2, float[] G, float[] Gb) RawWeights => (_w1, _b1, _w2, _b2, _g, _gb);
    internal ReadOnlySpan<float> ProjectedClasses => _projectedClasses;
    internal ReadOnlySpan<float> FusedPrompt => _fusedPrompt;
    internal ReadOnlySpan<float> FusedBias => _fusedBias;

    // ---------------------------------------------------------------- prediction

    /// <summary>Logits [N × C] (row-major) for <paramref name="images"/> (rows are normalised first).</summary>
    public float[] Predict(EmbeddingMatrix images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var logits = new float[images.Count * ClassNames.Count];
        Predict(images.Data, images.Count, logits);
        return logits;
    }

    /// <summary>
    /// Writes the logits of <paramref name="count"/> image embeddings (row-major, D values each; normalised internally)
    /// into <paramref name="logits"/> (count × C).
    /// </summary>
    public void Predict(ReadOnlySpan<float> images, int count, Span<float> logits)
    {
        int d = Dimension, c = ClassNames.Count, r = Bottleneck;
        if (images.Length != (long)count * d)
            throw new ArgumentException($"{count} image embeddings of width {d} need {(long)count * d} values, got {images.Length}; the head was trained on a {d}-dimensional CLIP space.", nameof(images));
        if (logits.Length < (long)count * c)
            throw new ArgumentException($"The logits buffer holds {logits.Length} values; {count} images × {c} classes need {(long)count * c}.", nameof(logits));
        const int chunk = 256;
        var x = ArrayPool<float>.Shared.Rent(chunk * d);
        var hidden = ArrayPool<float>.Shared.Rent(chunk * r);
        var shift = ArrayPool<float>.Shared.Rent(chunk * d);
        var output = ArrayPool<float>.Shared.Rent(chunk * c);
        try
        {
            for (int start = 0; start < count; start += chunk)
            {
                int rows = Math.Min(chunk, count - start);
                images.Slice(start * d, rows * d).CopyTo(x);
                for (int i = 0; i < rows; i++) Normalize(x.AsSpan(i * d, d));
                ComputeShift(x, rows, hidden, shift);
                ScorePairs(x, shift, rows, output);
                output.AsSpan(0, rows * c).CopyTo(logits.Slice(start * c));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(x);
            ArrayPool<float>.Shared.Return(hidden);
            ArrayPool<float>.Shared.Return(shift);
            ArrayPool<float>.Shared.Return(output);
        }
    }

    /// <summary>u = G_h·h(x) + b for unit-norm rows ([rows, D]), through the fused G_h·W₂.</summary>
    private void ComputeShift(float[] x, int rows, float[] hidden, float[] shift)
    {
        int d = Dimension, r = Bottleneck;
        for (int i = 0; i < rows; i++) _b1.CopyTo(hidden, i * r);
        Gemm.Sgemm(false, true, rows, r, d, 1f, x, 0, d, _w1, 0, d, 1f, hidden, 0, r);
        TensorPrimitives.Max(hidden.AsSpan(0, rows * r), 0f, hidden.AsSpan(0, rows * r));
        for (int i = 0; i < rows; i++) _fusedBias.CopyTo(shift, i * d);
        Gemm.Sgemm(false, true, rows, d, r, 1f, hidden, 0, r, _fusedPrompt, 0, r, 1f, shift, 0, d);
    }

    /// <summary>logits[i, c] = (x_i · v)/max(‖v‖, ε)/τ with v = ReLU(A[c] + u_i), without materialising [rows, C, D]:
    /// one SIMD pass per (image, class) accumulates x·v and v·v.</summary>
    private void ScorePairs(float[] x, float[] shift, int rows, float[] output)
    {
        int d = Dimension, c = ClassNames.Count;
        float invTau = 1f / Temperature;
        var projected = _projectedClasses;
        int chunks = Parallelism.Chunks(rows, 3L * c * d);
        void Run(int s, int e)
        {
            for (int i = s; i < e; i++)
            {
                var xi = x.AsSpan(i * d, d);
                var ui = shift.AsSpan(i * d, d);
                for (int k = 0; k < c; k++)
                {
                    var (dot, ss) = ReluDotAndSquares(projected.AsSpan(k * d, d), ui, xi);
                    output[i * c + k] = dot / MathF.Max(MathF.Sqrt(ss), NormEpsilon) * invTau;
                }
            }
        }
        if (chunks <= 1) Run(0, rows);
        else Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks },
            k => Run((int)((long)rows * k / chunks), (int)((long)rows * (k + 1) / chunks)));
    }

    /// <summary>With v = max(a + u, 0): returns (x·v, v·v).</summary>
    private static (float Dot, float Squares) ReluDotAndSquares(ReadOnlySpan<float> a, ReadOnlySpan<float> u, ReadOnlySpan<float> x)
    {
        int n = a.Length, j = 0;
        var dot = System.Numerics.Vector<float>.Zero;
        var ss = System.Numerics.Vector<float>.Zero;
        int w = System.Numerics.Vector<float>.Count;
        for (; j <= n - w; j += w)
        {
            var v = System.Numerics.Vector.Max(new System.Numerics.Vector<float>(a[j..]) + new System.Numerics.Vector<float>(u[j..]), System.Numerics.Vector<float>.Zero);
            dot += v * new System.Numerics.Vector<float>(x[j..]);
            ss += v * v;
        }
        float d = System.Numerics.Vector.Sum(dot), s2 = System.Numerics.Vector.Sum(ss);
        for (; j < n; j++)
        {
            float v = MathF.Max(a[j] + u[j], 0f);
            d += v * x[j];
            s2 += v * v;
        }
        return (d, s2);
    }

    private static void Normalize(Span<float> v)
    {
        float norm = MathF.Max(MathF.Sqrt(TensorPrimitives.SumOfSquares<float>(v)), NormEpsilon);
        TensorPrimitives.Divide(v, norm, v);
    }

    /// <summary>Softmax probabilities of one row of logits (float64 normaliser).</summary>
    public static float[] Softmax(ReadOnlySpan<float> logits)
    {
        var p = new float[logits.Length];
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = MathF.Exp(logits[i] - max);
        for (int i = 0; i < p.Length; i++) p[i] = (float)(p[i] / sum);
        return p;
    }

    // ---------------------------------------------------------------- classes

    /// <summary>
    /// The same trained h and g with other classes: <paramref name="classWeights"/> holds their handcrafted-prompt text
    /// embeddings (C' × D, from the same CLIP model; rows are normalised). This is how a head trained on base classes
    /// classifies new ones.
    /// </summary>
    public AapeHead WithClasses(IReadOnlyList<string> classNames, EmbeddingMatrix classWeights)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(classWeights);
        Text.PromptTemplates.ValidateClassNames(classNames);
        if (classWeights.Count != classNames.Count || classWeights.Dimension != Dimension)
            throw new ArgumentException($"Class weights {classWeights.Count} × {classWeights.Dimension} do not fit {classNames.Count} classes of width {Dimension}.", nameof(classWeights));
        var w = (float[])classWeights.Data.Clone();
        for (int k = 0; k < classNames.Count; k++) EmbeddingMatrix.NormalizeInPlace(w.AsSpan(k * Dimension, Dimension));
        return new AapeHead(classNames, w, _w1, _b1, _w2, _b2, _g, _gb, Temperature, Options, null, Training, ModelName, ModelHash);
    }

    // ---------------------------------------------------------------- persistence

    /// <summary>
    /// Writes <see cref="WeightsFile"/> (safetensors: h.fc1/h.fc2/g weights and biases, class_weights, and the class
    /// summaries when known) and <see cref="SettingsFile"/> (JSON: classes, width, temperature, options, model) into
    /// <paramref name="directory"/>.
    /// </summary>
    public void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        int d = Dimension, r = Bottleneck, c = ClassNames.Count;
        var tensors = new Dictionary<string, Tensor>
        {
            ["h.fc1.weight"] = Tensor.Wrap(_w1, r, d),
            ["h.fc1.bias"] = Tensor.Wrap(_b1, r),
            ["h.fc2.weight"] = Tensor.Wrap(_w2, d, r),
            ["h.fc2.bias"] = Tensor.Wrap(_b2, d),
            ["g.weight"] = Tensor.Wrap(_g, d, 2 * d),
            ["g.bias"] = Tensor.Wrap(_gb, d),
            ["class_weights"] = Tensor.Wrap(_classWeights, c, d),
        };
        if (Summaries is not null && Summaries.Length % d == 0) tensors["summaries"] = Tensor.Wrap(Summaries, Summaries.Length / d, d);
        SafeTensors.Save(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = Format });
        var settings = new JsonObject
        {
            ["format"] = Format,
            ["version"] = 1,
            ["class_names"] = new JsonArray(ClassNames.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
            ["dimension"] = d,
            ["bottleneck"] = r,
            ["temperature"] = Temperature,
            ["model"] = ModelName,
            ["model_hash"] = ModelHash,
            ["options"] = JsonSerializer.SerializeToNode(Options, OptionsJson),
        };
        File.WriteAllText(Path.Combine(directory, SettingsFile), settings.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static readonly JsonSerializerOptions OptionsJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Reads a head written by <see cref="Save"/>. Errors name the file and what is wrong.</summary>
    public static AapeHead Load(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string settingsPath = Path.Combine(directory, SettingsFile), weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(settingsPath))
            throw new FileNotFoundException($"'{directory}' is not an AAPE head folder: '{SettingsFile}' is missing (write one with `vega aape train --out DIR`).", settingsPath);
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException($"The AAPE head folder '{directory}' has no '{WeightsFile}'.", weightsPath);
        string[] classNames;
        int d, r;
        float temperature;
        AapeOptions options;
        string? modelName, modelHash;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(settingsPath));
            var root = doc.RootElement;
            if (!root.TryGetProperty("format", out var f) || f.GetString() != Format)
                throw new InvalidDataException($"'{settingsPath}' is not an AAPE head settings file (\"format\" must be \"{Format}\").");
            classNames = root.GetProperty("class_names").EnumerateArray().Select(e => e.GetString() ?? "").ToArray();
            d = root.GetProperty("dimension").GetInt32();
            r = root.GetProperty("bottleneck").GetInt32();
            temperature = root.GetProperty("temperature").GetSingle();
            options = root.TryGetProperty("options", out var o) ? o.Deserialize<AapeOptions>(OptionsJson) ?? AapeOptions.Default : AapeOptions.Default;
            modelName = root.TryGetProperty("model", out var mn) && mn.ValueKind == JsonValueKind.String ? mn.GetString() : null;
            modelHash = root.TryGetProperty("model_hash", out var mh) && mh.ValueKind == JsonValueKind.String ? mh.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"The AAPE head settings '{settingsPath}' are unreadable: {e.Message}", e);
        }
        if (d < 1 || r < 1 || !(temperature > 0))
            throw new InvalidDataException($"The AAPE head settings '{settingsPath}' have an invalid dimension ({d}), bottleneck ({r}) or temperature ({temperature.ToString(CultureInfo.InvariantCulture)}).");
        var contents = SafeTensors.Load(weightsPath);
        float[] Get(string name, params int[] shape)
        {
            if (!contents.Tensors.TryGetValue(name, out var t))
                throw new InvalidDataException($"The AAPE head weights '{weightsPath}' have no tensor '{name}'.");
            if (!Shapes.SameShape(t.Shape, shape))
                throw new InvalidDataException($"The AAPE head weights '{weightsPath}': '{name}' has shape {t.ShapeString}, the settings imply {Shapes.ToString(shape)}.");
            return t.ToArray();
        }
        int c = classNames.Length;
        float[]? summaries = contents.Tensors.TryGetValue("summaries", out var st) && st.Rank == 2 && st.Shape[1] == d ? st.ToArray() : null;
        return new AapeHead(classNames, Get("class_weights", c, d), Get("h.fc1.weight", r, d), Get("h.fc1.bias", r), Get("h.fc2.weight", d, r), Get("h.fc2.bias", d),
            Get("g.weight", d, 2 * d), Get("g.bias", d), temperature, options, summaries, null, modelName, modelHash);
    }

    /// <summary>
    /// Exports the head as an ONNX model (opset 17): input <c>image_embeds</c> float [batch, D] (normalised inside),
    /// outputs <c>logits</c> [batch, C] and <c>probabilities</c> (softmax); the class weights are baked in as
    /// initialisers. Class names and τ are stored in the model's metadata.
    /// </summary>
    public void ExportOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Onnx.OnnxModelFile.Save(AapeOnnxExport.Build(this), path);
    }
}
