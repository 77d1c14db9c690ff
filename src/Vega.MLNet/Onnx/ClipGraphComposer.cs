using System.Globalization;
using Google.Protobuf;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Text;

namespace Vega.MLNet.Onnx;

/// <summary>
/// A zero-shot head to fold into a composed model: the class text embeddings (C × D, each row L2-normalised) and the
/// logit scale; score = softmax(scale · cos), index = first argmax of the score.
/// </summary>
internal sealed class ZeroShotHead
{
    public ZeroShotHead(EmbeddingMatrix classEmbeddings, float logitScale) : this(classEmbeddings, logitScale, bias: null, unitRows: true)
    {
    }

    /// <summary>
    /// A linear head over the L2-normalised embedding: score = softmax(scale · e · Wᵀ + b). With <paramref name="unitRows"/>
    /// the rows of W must be L2-normalised (a cosine classifier: zero-shot, CoOp); without, any finite W (a linear probe).
    /// </summary>
    public ZeroShotHead(EmbeddingMatrix classEmbeddings, float logitScale, float[]? bias, bool unitRows)
    {
        ArgumentNullException.ThrowIfNull(classEmbeddings);
        if (classEmbeddings.Count < 1) throw new ArgumentException("The zero-shot head needs at least one class.", nameof(classEmbeddings));
        if (!(logitScale > 0) || !float.IsFinite(logitScale))
            throw new ArgumentOutOfRangeException(nameof(logitScale), logitScale, "The logit scale must be positive and finite.");
        for (int c = 0; c < classEmbeddings.Count; c++)
        {
            double ss = 0;
            foreach (float v in classEmbeddings.Row(c))
            {
                if (!float.IsFinite(v)) throw new ArgumentException($"Class embedding row {c} holds a non-finite value.", nameof(classEmbeddings));
                ss += (double)v * v;
            }
            if (unitRows && Math.Abs(Math.Sqrt(ss) - 1) > 1e-3)
                throw new ArgumentException(
                    $"Class embedding row {c} has L2 norm {Math.Sqrt(ss).ToString("G4", CultureInfo.InvariantCulture)}; pass L2-normalised rows (ClipModel.EmbedClassNames returns them).", nameof(classEmbeddings));
        }
        if (bias is not null && (bias.Length != classEmbeddings.Count || !Array.TrueForAll(bias, float.IsFinite)))
            throw new ArgumentException($"The bias needs {classEmbeddings.Count} finite values, one per class.", nameof(bias));
        ClassEmbeddings = classEmbeddings;
        LogitScale = logitScale;
        Bias = bias;
    }

    /// <summary>b, one value per class, added to the scaled logits (null: none).</summary>
    public float[]? Bias { get; }

    /// <summary>The class text embeddings, C × D, rows L2-normalised.</summary>
    public EmbeddingMatrix ClassEmbeddings { get; }

    /// <summary>Multiplier of the cosines before the softmax.</summary>
    public float LogitScale { get; }

    public int ClassCount => ClassEmbeddings.Count;
    public int Dimension => ClassEmbeddings.Dimension;

    /// <summary>The head of <paramref name="model"/> for class names (prompt-ensembled class embeddings and the model's
    /// logit scale).</summary>
    public static ZeroShotHead ForClassNames(ClipModel model, IReadOnlyList<string> classNames, PromptTemplates? templates = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ZeroShotHead(model.EmbedClassNames(classNames, templates, cancellationToken: cancellationToken), model.LogitScale);
    }
}

/// <summary>An image tower file and how to call it (what <see cref="ClipModel"/> detected, or given by hand).</summary>
/// <param name="Path">The ONNX file: a split image tower, or a combined model (then only the image branch is kept).</param>
/// <param name="InputName">Its float32 [batch, 3, S, S] pixel input.</param>
/// <param name="OutputName">Its [batch, D] image-embedding output (raw or normalised; it is normalised again).</param>
/// <param name="Dimension">D.</param>
internal sealed record ImageTowerFile(string Path, string InputName, string OutputName, int Dimension)
{
    /// <summary>The image tower of a loaded model.</summary>
    public static ImageTowerFile Of(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ImageTowerFile(model.TowerFiles[0], model.ImageTower.InputName, model.ImageTower.OutputName, model.EmbeddingDimension);
    }
}

/// <summary>
/// Writes one ONNX model per use, for ML.NET's <c>ApplyOnnxModel</c> (one row per run, so every input and output has
/// batch 1):
/// <list type="bullet">
/// <item>image model: [exact CLIP preprocessing (<see cref="ClipPreprocessGraph"/>) or a float pixel input] → the
/// model's image tower (pruned to its image branch, every name prefixed with <see cref="TowerPrefix"/>) → L2
/// normalisation → optionally a zero-shot head;</item>
/// <item>head model: an embedding input → L2 normalisation → the zero-shot head.</item>
/// </list>
/// Inputs: <c>rgb</c> uint8 [1, H·W·3] (HWC), <c>height</c>, <c>width</c> int64 [1, 1] — or <c>pixel_values</c> float
/// [1, 3, S, S], or <c>embedding</c> float [1, D]. Outputs: <c>embedding</c> float [1, D] (unit L2 norm; a zero vector
/// stays zero), <c>score</c> float [1, C], <c>index</c> int64 [1, 1] (first maximum of the score). The merged model keeps
/// the tower's default-domain opset (13 or later) and its other domains' imports; its own nodes are valid from opset 13.
/// </summary>
internal static class ClipGraphComposer
{
    public const string RgbInput = ClipPreprocessGraph.RgbInput;
    public const string HeightInput = ClipPreprocessGraph.HeightInput;
    public const string WidthInput = ClipPreprocessGraph.WidthInput;
    public const string PixelInput = "pixel_values";
    public const string EmbeddingInput = "embedding";
    public const string EmbeddingOutput = "embedding";
    public const string ScoreOutput = "score";
    public const string IndexOutput = "index";

    /// <summary>Prefix of every name taken from the tower.</summary>
    public const string TowerPrefix = "image_tower/";

    /// <summary>Lowest default-domain opset a tower may import.</summary>
    public const int MinimumOpset = 13;

    /// <summary>Protobuf cannot serialise a message of 2 GB or more, so no single ONNX file can be larger.</summary>
    public const long MaxModelBytes = int.MaxValue;

    /// <summary>Room left for the graph structure (nodes, names, shapes) beside the tensor data.</summary>
    private const long StructureAllowance = 16L << 20;

    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType F64 = TensorProto.Types.DataType.Double;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;

    /// <summary>
    /// The image model of <paramref name="model"/>: its preprocessing (<see cref="ClipModel.Preprocessing"/>, unless
    /// <paramref name="includePreprocessing"/> is false: then the input is <c>pixel_values</c>), its image tower, L2
    /// normalisation and the optional <paramref name="head"/>.
    /// </summary>
    public static ModelProto ComposeImageModel(ClipModel model, ZeroShotHead? head = null, bool includePreprocessing = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ComposeImageModel(ImageTowerFile.Of(model), model.Preprocessing, includePreprocessing, head);
    }

    /// <summary>The image model of a tower file; see the class remarks.</summary>
    public static ModelProto ComposeImageModel(ImageTowerFile tower, PreprocessSettings preprocessing, bool includePreprocessing, ZeroShotHead? head) =>
        ComposeImageModel(tower, preprocessing, includePreprocessing, head, MaxModelBytes);

    internal static ModelProto ComposeImageModel(ImageTowerFile tower, PreprocessSettings preprocessing, bool includePreprocessing, ZeroShotHead? head, long maxBytes)
    {
        ArgumentNullException.ThrowIfNull(tower);
        ArgumentNullException.ThrowIfNull(preprocessing);
        preprocessing.Validate();
        if (head is not null && head.Dimension != tower.Dimension)
            throw new ArgumentException($"The zero-shot head's class embeddings have {head.Dimension} dimensions, the image tower '{tower.Path}' produces {tower.Dimension}.", nameof(head));

        var model = OnnxModelFile.Load(tower.Path);
        int opset = DefaultOpset(model, tower.Path);
        if (opset < MinimumOpset)
            throw new NotSupportedException(
                $"The image tower '{tower.Path}' imports ONNX opset {opset}; composing it into one graph needs opset {MinimumOpset} or later. " +
                "Re-export it with a newer opset (e.g. torch.onnx.export(..., opset_version=17)) or convert it with onnx.version_converter.");

        var graph = model.Graph;
        var initializerNames = new HashSet<string>(graph.Initializer.Select(t => t.Name), StringComparer.Ordinal);
        // Old exports list initializers as graph inputs too; those are not inputs to feed.
        foreach (var dup in graph.Input.Where(i => initializerNames.Contains(i.Name)).ToList()) graph.Input.Remove(dup);
        if (!graph.Input.Any(i => i.Name == tower.InputName))
            throw new InvalidDataException($"'{tower.Path}' has no graph input '{tower.InputName}'; its inputs are: {string.Join(", ", graph.Input.Select(i => i.Name))}.");
        OnnxGraphSurgery.Prune(graph, [tower.OutputName], tower.Path);
        var others = graph.Input.Select(i => i.Name).Where(n => n != tower.InputName).ToList();
        if (others.Count > 0)
            throw new NotSupportedException(
                $"The image embedding '{tower.OutputName}' of '{tower.Path}' depends on the input(s) {string.Join(", ", others.Select(o => $"'{o}'"))} besides the pixels '{tower.InputName}'; only pixels can be fed. Export the image tower on its own.");

        long bytes = OnnxGraphSurgery.TensorBytes(graph) + (head is null ? 0 : 4L * head.ClassCount * head.Dimension) + StructureAllowance;
        if (bytes > maxBytes)
            throw new NotSupportedException(
                $"The composed model would hold {FormatBytes(bytes)} ({bytes.ToString("N0", CultureInfo.InvariantCulture)} bytes, mostly the weights of '{tower.Path}'), " +
                $"more than the {FormatBytes(maxBytes)} protobuf can write as one ONNX model, so it cannot be saved as one graph. " +
                "Use the fitted transformer without saving it, or a smaller export of the model.");

        OnnxGraphSurgery.Rename(graph, n => TowerPrefix + n);
        string towerInput = TowerPrefix + tower.InputName, towerOutput = TowerPrefix + tower.OutputName;

        var g = new OnnxGraphBuilder("vega_clip_image", opset);
        string pixels;
        if (includePreprocessing) pixels = ClipPreprocessGraph.Append(g, preprocessing);
        else
        {
            int s = preprocessing.ImageSize;
            pixels = g.Input(PixelInput, F32, 1, 3, s, s);
        }
        g.Identity(pixels, towerInput);
        int before = g.Graph.Node.Count;
        string embedding = Normalize(g, g.Adopt(towerOutput));
        g.Output(g.Identity(embedding, EmbeddingOutput), F32, 1, tower.Dimension);
        if (head is not null) AppendHead(g, embedding, head);

        // The tower's graph object becomes the merged graph (it keeps anything this project's protobuf subset does not
        // model); its nodes sit between the preprocessing and the normalisation.
        var mine = g.Graph;
        var towerNodes = graph.Node.ToList();
        graph.Node.Clear();
        graph.Node.AddRange(mine.Node.Take(before));
        graph.Node.AddRange(towerNodes);
        graph.Node.AddRange(mine.Node.Skip(before));
        graph.Initializer.AddRange(mine.Initializer);
        graph.Input.Clear();
        graph.Input.AddRange(mine.Input);
        graph.Output.Clear();
        graph.Output.AddRange(mine.Output);
        graph.Name = mine.Name;
        graph.DocString = $"Vega.MLNet: {(includePreprocessing ? "CLIP preprocessing, " : "")}image tower of {Path.GetFileName(tower.Path)}, L2 normalisation{(head is null ? "" : $", zero-shot head ({head.ClassCount} classes)")}.";

        model.IrVersion = Math.Max(model.IrVersion, 7);
        model.ProducerName = "Vega.MLNet";
        model.ProducerVersion = typeof(ClipGraphComposer).Assembly.GetName().Version?.ToString() ?? "0";
        AddMetadata(model, "vega.tower", Path.GetFileName(tower.Path));
        if (includePreprocessing) AddMetadata(model, "vega.preprocessing", ClipPreprocessGraph.Describe(preprocessing));
        if (head is not null) AddMetadata(model, "vega.classes", head.ClassCount.ToString(CultureInfo.InvariantCulture));
        return model;
    }

    /// <summary>The head alone: <c>embedding</c> float [1, D] → L2 normalisation → <c>score</c> [1, C], <c>index</c> [1, 1].</summary>
    public static ModelProto ComposeHeadModel(ZeroShotHead head, int opset = 17)
    {
        ArgumentNullException.ThrowIfNull(head);
        var g = new OnnxGraphBuilder("vega_zero_shot_head", opset);
        string embedding = Normalize(g, g.Input(EmbeddingInput, F32, 1, head.Dimension));
        AppendHead(g, embedding, head);
        return g.Build(metadata: new Dictionary<string, string> { ["vega.classes"] = head.ClassCount.ToString(CultureInfo.InvariantCulture) });
    }

    /// <summary>The model's bytes; refuses (before trying) a model that protobuf cannot write.</summary>
    public static byte[] ToBytes(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long bytes = OnnxGraphSurgery.TensorBytes(model.Graph) + StructureAllowance;
        if (bytes > MaxModelBytes)
            throw new NotSupportedException($"The model '{model.Graph.Name}' holds {FormatBytes(bytes)} of tensors; protobuf cannot write an ONNX model of 2 GB or more.");
        return model.ToByteArray();
    }

    /// <summary>
    /// x / ‖x‖ along the last axis like <see cref="EmbeddingMatrix.NormalizeInPlace"/>: the sum of squares in float64,
    /// the float32 factor (float)(1 / √ss), a zero vector unchanged.
    /// </summary>
    private static string Normalize(OnnxGraphBuilder g, string x)
    {
        string x64 = g.Node("Cast", [x], null, ("to", (long)F64));
        string ss = g.Node("ReduceSum", [g.Node("Mul", [x64, x64]), g.Int64s(-1)], null, ("keepdims", 1L));
        string factor = g.Node("Cast", [g.Node("Div", [g.DoubleScalar(1.0), g.Node("Sqrt", [ss])])], null, ("to", (long)F32));
        return g.Node("Where", [g.Node("Greater", [ss, g.DoubleScalar(0.0)]), g.Node("Mul", [x, factor]), x]);
    }

    /// <summary>score = Softmax(scale · e · Wᵀ), index = ArgMax(score) (first maximum), as graph outputs.</summary>
    private static void AppendHead(OnnxGraphBuilder g, string embedding, ZeroShotHead head)
    {
        int c = head.ClassCount, d = head.Dimension;
        var transposed = new float[d * c];
        var data = head.ClassEmbeddings.Data;
        for (int k = 0; k < c; k++)
            for (int j = 0; j < d; j++) transposed[j * c + k] = data[k * d + j];
        string classes = g.Initializer(g.NewName("head_class_embeddings_t"), transposed, d, c);
        string logits = g.Node("Mul", [g.Node("MatMul", [embedding, classes]), g.FloatScalar(head.LogitScale)]);
        if (head.Bias is { } bias) logits = g.Node("Add", [logits, g.Initializer(g.NewName("head_bias"), bias, 1, c)]);
        string score = g.Node("Softmax", [logits], ScoreOutput, ("axis", -1L));
        g.Output(score, F32, 1, c);
        g.Output(g.Node("ArgMax", [score], IndexOutput, ("axis", -1L), ("keepdims", 1L), ("select_last_index", 0L)), I64, 1, 1);
    }

    private static int DefaultOpset(ModelProto model, string path)
    {
        foreach (var o in model.OpsetImport)
            if (o.Domain is "" or "ai.onnx") return (int)o.Version;
        throw new InvalidDataException($"'{path}' imports no default-domain (ai.onnx) operator set; it is not a usable ONNX model.");
    }

    private static void AddMetadata(ModelProto model, string key, string value)
    {
        foreach (var e in model.MetadataProps.Where(p => p.Key == key).ToList()) model.MetadataProps.Remove(e);
        model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
    }

    private static string FormatBytes(long bytes) => bytes >= 1L << 30
        ? (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
        : (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}
