using System.Text.Json;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>How a <see cref="TunedClassifier"/> was obtained.</summary>
public enum TuningMethod
{
    /// <summary>Zero-shot: the handcrafted prompt's class text embeddings.</summary>
    ZeroShot,
    /// <summary>A linear classifier trained on frozen image embeddings.</summary>
    LinearProbe,
    /// <summary>CoOp: learnable context vectors in the text tower's token-embedding space.</summary>
    CoOp,
}

/// <summary>
/// A deployable image classifier in a CLIP embedding space: logits = <see cref="Scale"/>·(x · Wᵀ) + b for an
/// L2-normalised image embedding x. For zero-shot and CoOp, W holds the (normalised) class text embeddings and
/// <see cref="Scale"/> the model's logit scale; for a linear probe, W and b are learnt and the scale is 1.
/// </summary>
internal sealed class TunedClassifier
{
    /// <summary>Creates a classifier.</summary>
    public TunedClassifier(TuningMethod method, IReadOnlyList<string> classNames, EmbeddingMatrix weights, float[] bias, float scale, string modelName)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(bias);
        if (weights.Count != classNames.Count) throw new ArgumentException($"{classNames.Count} classes need {classNames.Count} weight rows, got {weights.Count}.", nameof(weights));
        if (bias.Length != classNames.Count) throw new ArgumentException($"{classNames.Count} classes need {classNames.Count} biases, got {bias.Length}.", nameof(bias));
        Method = method;
        ClassNames = classNames;
        Weights = weights;
        Bias = bias;
        Scale = scale;
        ModelName = modelName;
    }

    /// <summary>How the classifier was obtained.</summary>
    public TuningMethod Method { get; }

    /// <summary>The classes, in logit order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>C × D weights.</summary>
    public EmbeddingMatrix Weights { get; }

    /// <summary>Per-class bias.</summary>
    public float[] Bias { get; }

    /// <summary>Multiplier of the dot products.</summary>
    public float Scale { get; }

    /// <summary>The CLIP model whose embedding space the classifier lives in.</summary>
    public string ModelName { get; }

    /// <summary>
    /// <see cref="Models.ClipModel.ContentHash"/> of that model when known (set by <see cref="PromptTuner.Tune"/>,
    /// saved as <c>model_sha256</c>); <see cref="CheckModel"/> refuses another model with it.
    /// </summary>
    public string? ModelHash { get; internal set; }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming both models when <paramref name="model"/> is not the model the
    /// classifier was trained with (content hash), or when its embedding width differs. Returns false when the
    /// classifier records no model hash (written by an older version), so the model cannot be verified.
    /// </summary>
    public bool CheckModel(Models.ClipModel model, string? classifierPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        string where = classifierPath is null ? "The classifier" : $"The classifier in '{classifierPath}'";
        if (ModelHash is not null && !string.Equals(ModelHash, model.ContentHash, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException(
                $"{where} was trained with model '{ModelName}' (content hash {ModelHash[..Math.Min(12, ModelHash.Length)]}…), but the model given is '{model.Name}' " +
                $"from '{model.Directory}' (content hash {model.ContentHash[..12]}…); a classifier only works in its own model's embedding space. " +
                "Give the model it was trained with, or train a classifier for this one (vega tune).");
        if (model.EmbeddingDimension != Weights.Dimension)
            throw new ArgumentException($"{where} was trained in a {Weights.Dimension}-d embedding space (model '{ModelName}'); '{model.Name}' has {model.EmbeddingDimension}.");
        return ModelHash is not null;
    }

    /// <summary>Logits [N, C] for L2-normalised image embeddings (float64 accumulation).</summary>
    public float[] Logits(EmbeddingMatrix images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Dimension != Weights.Dimension)
            throw new ArgumentException($"The images have embedding width {images.Dimension}, the classifier {Weights.Dimension}: they come from different models.", nameof(images));
        int c = ClassNames.Count;
        var logits = new float[images.Count * c];
        for (int i = 0; i < images.Count; i++)
        {
            var x = images.Row(i);
            for (int j = 0; j < c; j++)
            {
                var w = Weights.Row(j);
                double dot = 0;
                for (int d = 0; d < x.Length; d++) dot += (double)x[d] * w[d];
                logits[i * c + j] = (float)(Scale * dot + Bias[j]);
            }
        }
        return logits;
    }

    /// <summary>Softmax probabilities [N, C].</summary>
    public float[] Probabilities(EmbeddingMatrix images)
    {
        var p = Logits(images);
        int c = ClassNames.Count;
        for (int i = 0; i < images.Count; i++)
        {
            var row = p.AsSpan(i * c, c);
            double max = double.NegativeInfinity, sum = 0;
            foreach (float v in row) max = Math.Max(max, v);
            for (int j = 0; j < c; j++) { double e = Math.Exp(row[j] - max); row[j] = (float)e; sum += e; }
            for (int j = 0; j < c; j++) row[j] = (float)(row[j] / sum);
        }
        return p;
    }

    /// <summary>The predicted class index of every image.</summary>
    public int[] Predict(EmbeddingMatrix images)
    {
        var logits = Logits(images);
        int c = ClassNames.Count;
        var result = new int[images.Count];
        for (int i = 0; i < images.Count; i++)
        {
            int best = 0;
            for (int j = 1; j < c; j++) if (logits[i * c + j] > logits[i * c + best]) best = j;
            result[i] = best;
        }
        return result;
    }

    /// <summary>Fraction of images whose prediction equals <paramref name="labels"/>.</summary>
    public double Accuracy(EmbeddingMatrix images, ReadOnlySpan<int> labels)
    {
        if (labels.Length != images.Count) throw new ArgumentException($"{images.Count} images but {labels.Length} labels.", nameof(labels));
        var predicted = Predict(images);
        int ok = 0;
        for (int i = 0; i < predicted.Length; i++) if (predicted[i] == labels[i]) ok++;
        return images.Count == 0 ? 0 : (double)ok / images.Count;
    }

    /// <summary>Writes <c>classifier.json</c> and <c>weights.npy</c> into <paramref name="directory"/>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        Npy.WriteFloat32(Path.Combine(directory, "weights.npy"), Weights.Data, Weights.Count, Weights.Dimension);
        var json = new Dictionary<string, object?>
        {
            ["format"] = "vega-classifier-1",
            ["method"] = Method.ToString(),
            ["model"] = ModelName,
            ["model_sha256"] = ModelHash!,
            ["scale"] = Scale,
            ["classes"] = ClassNames,
            ["bias"] = Bias,
        };
        File.WriteAllText(Path.Combine(directory, "classifier.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads a classifier written by <see cref="Save"/>.</summary>
    public static TunedClassifier Load(string directory)
    {
        string jsonPath = Path.Combine(directory, "classifier.json");
        if (!File.Exists(jsonPath)) throw new FileNotFoundException($"No classifier in '{directory}' (classifier.json is missing; write one with `vega tune`).", jsonPath);
        try
        {
            using var doc = JsonDocument.Parse(Common.SafeFile.ReadAllBytesOrInvalid(jsonPath, 64L << 20, "classifier file"));
            var root = doc.RootElement;
            if (root.GetProperty("format").GetString() != "vega-classifier-1")
                throw new InvalidDataException($"'{jsonPath}' is not a Vega.MLNet classifier (format {root.GetProperty("format").GetString()}).");
            var classes = root.GetProperty("classes").EnumerateArray().Select(e => e.GetString()!).ToArray();
            var bias = root.GetProperty("bias").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            var (data, rows, cols) = Npy.ReadFloat32(Path.Combine(directory, "weights.npy"));
            string? hash = root.TryGetProperty("model_sha256", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString() : null;
            return new TunedClassifier(Enum.Parse<TuningMethod>(root.GetProperty("method").GetString()!), classes,
                new EmbeddingMatrix(data, rows, cols), bias, root.GetProperty("scale").GetSingle(), root.GetProperty("model").GetString() ?? "")
            {
                ModelHash = hash,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"'{jsonPath}' is damaged ({e.Message}); train the classifier again.", e);
        }
    }
}
