using System.Security.Cryptography;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Runtime;
using Vega.MLNet.Text;

namespace Vega.MLNet.Models;

/// <summary>The file layout a <see cref="ClipModel"/> was loaded from.</summary>
internal enum ClipModelLayout
{
    /// <summary>Hugging Face split export: vision_model.onnx + text_model.onnx (+ tokenizer and configs).</summary>
    HuggingFaceSplit,
    /// <summary>Hugging Face / Optimum combined export: one model.onnx with both towers.</summary>
    HuggingFaceCombined,
    /// <summary>OpenAI / open_clip style: visual.onnx + textual.onnx + bpe_simple_vocab_16e6.txt.gz.</summary>
    OpenAI,
    /// <summary>Any other layout, described by clip.json.</summary>
    Manifest,
}

/// <summary>Options for <see cref="ClipModel.Load"/>.</summary>
public sealed record ClipModelOptions
{
    /// <summary>The CUDA device to run both towers on, or null (default) for the CPU. Needs the
    /// Microsoft.ML.OnnxRuntime.Gpu package and CUDA 13 (docs/gpu.md).</summary>
    public int? GpuDeviceId { get; init; }

    /// <summary>When <see cref="GpuDeviceId"/> is set but the GPU cannot be used: true runs on the CPU after one
    /// warning (<see cref="Warning"/>), false (default) throws an <see cref="InvalidOperationException"/> that names
    /// the device and what is missing.</summary>
    public bool FallbackToCpu { get; init; }

    /// <summary>Threads ONNX Runtime uses inside one operator; 0 (default) uses every core the process may run on.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>
    /// A folder where ONNX Runtime's optimised form of each tower is kept after the first load, so later loads skip
    /// graph optimisation (null: none). Worth it for exports whose weights are folded at load time.
    /// </summary>
    public string? OptimizedModelDirectory { get; init; }

    /// <summary>Receives warnings such as a GPU fallback (default: <see cref="System.Diagnostics.Trace"/>).</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>A display name (default: the manifest's "name", else the folder name).</summary>
    public string? Name { get; init; }

    internal OnnxSessionOptions SessionOptions => new()
    {
        GpuDeviceId = GpuDeviceId,
        FallbackToCpu = FallbackToCpu,
        IntraOpThreads = IntraOpThreads,
        OptimizedModelDirectory = OptimizedModelDirectory,
        Warning = Warning,
    };

    /// <summary>
    /// A folder (e.g. the embedding cache folder) where <see cref="ClipModel.ContentHash"/> is remembered in
    /// <c>model-hashes.tsv</c>, keyed by the tower files' paths and file-system stamps, so that a large model is hashed
    /// once; null (default) hashes the files on first use in every process.
    /// </summary>
    public string? ContentHashCache { get; init; }
}

/// <summary>Options of text embedding.</summary>
public sealed record TextEmbeddingOptions
{
    /// <summary>Texts per text-tower run (default 64).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Cut texts longer than the context (the last kept token becomes the end token) instead of throwing.</summary>
    public bool Truncate { get; init; }

    /// <summary>The defaults.</summary>
    public static TextEmbeddingOptions Default { get; } = new();
}

/// <summary>
/// A CLIP-style model: an image tower, a text tower and a tokenizer, loaded from a folder with any of the supported
/// layouts (<see cref="ClipModelLayout"/>) or from a <c>clip.json</c> manifest. Input/output names, element types and
/// fixed or dynamic text length are read from the ONNX metadata; a <c>clip.json</c> beside the files overrides any of
/// it. Thread-safe for embedding.
/// </summary>
internal sealed class ClipModel : IDisposable
{
    private readonly TextTower _text;
    private readonly ImageTower _image;
    private readonly string[] _towerFiles;
    private readonly Lazy<string> _contentHash;
    private readonly long _padId;
    private readonly string? _hashCache;

    private ClipModel(string name, string directory, ClipModelLayout layout, ClipTokenizer tokenizer, TextTower text, ImageTower image,
        int contextLength, long padId, float logitScale, PreprocessSettings preprocessing, string[] towerFiles, string? hashCache)
    {
        _hashCache = hashCache;
        Name = name;
        Directory = directory;
        Layout = layout;
        Tokenizer = tokenizer;
        _text = text;
        _image = image;
        ContextLength = contextLength;
        _padId = padId;
        LogitScale = logitScale;
        Preprocessing = preprocessing;
        _towerFiles = towerFiles;
        _contentHash = new Lazy<string>(ComputeContentHash, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Display name.</summary>
    public string Name { get; }

    /// <summary>The folder the model was loaded from.</summary>
    public string Directory { get; }

    /// <summary>The detected layout.</summary>
    public ClipModelLayout Layout { get; }

    /// <summary>The model's tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>Width of the (shared) embedding space.</summary>
    public int EmbeddingDimension => _text.Dimension;

    /// <summary>Maximum number of tokens per text, start and end included (77 for CLIP).</summary>
    public int ContextLength { get; }

    /// <summary>Whether the text tower takes any sequence length up to <see cref="ContextLength"/> (then batches are cut
    /// to their longest text), or exactly <see cref="ContextLength"/>.</summary>
    public bool DynamicTextLength => _text.FixedLength is null;

    /// <summary>The multiplier of cosine similarities in CLIP's logits (exp of the learned log scale; 100 for trained
    /// CLIP models when the package does not say).</summary>
    public float LogitScale { get; }

    /// <summary>The image preprocessing the model expects (from preprocessor_config.json, clip.json or CLIP's defaults).</summary>
    public PreprocessSettings Preprocessing { get; }

    /// <summary>Where the towers run: "CPU", or "CUDA:&lt;id&gt;" when <see cref="ClipModelOptions.GpuDeviceId"/> was
    /// given and the GPU could be used.</summary>
    public string ExecutionDevice => _image.Session.Device;

    /// <summary>SHA-256 of the tower files' bytes (hex), computed on first use (or read from
    /// <see cref="ClipModelOptions.ContentHashCache"/>); identifies the model in caches and in trained classifiers.</summary>
    public string ContentHash => _contentHash.Value;

    internal TextTower TextTower => _text;
    internal ImageTower ImageTower => _image;
    internal long PadId => _padId;
    internal IReadOnlyList<string> TowerFiles => _towerFiles;

    /// <summary>
    /// Loads a model from a folder (layout detected) or from a <c>clip.json</c> path. Errors name the file, what was
    /// found and the <c>clip.json</c> key that fixes it.
    /// </summary>
    public static ClipModel Load(string path, ClipModelOptions? options = null)
    {
        options ??= new ClipModelOptions();
        string directory;
        ClipManifest manifest = new();
        string? manifestPath = null;
        if (File.Exists(path) && path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            manifestPath = Path.GetFullPath(path);
            directory = Path.GetDirectoryName(manifestPath)!;
        }
        else if (System.IO.Directory.Exists(path))
        {
            directory = Path.GetFullPath(path);
            string candidate = Path.Combine(directory, "clip.json");
            if (File.Exists(candidate)) manifestPath = candidate;
        }
        else
        {
            throw new ClipModelException($"The model path '{path}' is neither a folder nor a clip.json file.");
        }
        if (manifestPath is not null) manifest = ClipManifest.Read(manifestPath);

        string Resolve(string p) => Path.GetFullPath(Path.Combine(directory, p));
        bool Has(string f) => File.Exists(Path.Combine(directory, f));

        ClipModelLayout layout;
        string? combined = null, imageFile = null, textFile = null;
        if (manifest.Model is not null) { layout = ClipModelLayout.Manifest; combined = Resolve(manifest.Model); }
        else if (manifest.ImageModel is not null || manifest.TextModel is not null)
        {
            layout = ClipModelLayout.Manifest;
            imageFile = manifest.ImageModel is not null ? Resolve(manifest.ImageModel)
                : throw new ClipModelException($"'{manifestPath}' names \"text_model\" but not \"image_model\"; name both (or \"model\" for a combined file).");
            textFile = manifest.TextModel is not null ? Resolve(manifest.TextModel)
                : throw new ClipModelException($"'{manifestPath}' names \"image_model\" but not \"text_model\"; name both (or \"model\" for a combined file).");
        }
        else if (Has("vision_model.onnx") && Has("text_model.onnx"))
        {
            layout = ClipModelLayout.HuggingFaceSplit; imageFile = Resolve("vision_model.onnx"); textFile = Resolve("text_model.onnx");
        }
        else if (Has("visual.onnx") && Has("textual.onnx"))
        {
            layout = ClipModelLayout.OpenAI; imageFile = Resolve("visual.onnx"); textFile = Resolve("textual.onnx");
        }
        else if (Has("model.onnx"))
        {
            layout = ClipModelLayout.HuggingFaceCombined; combined = Resolve("model.onnx");
        }
        else
        {
            var onnx = System.IO.Directory.GetFiles(directory, "*.onnx").Select(Path.GetFileName).ToArray();
            throw new ClipModelException(
                $"No CLIP model layout found in '{directory}' (ONNX files there: {(onnx.Length == 0 ? "none" : string.Join(", ", onnx))}). " +
                "Expected vision_model.onnx + text_model.onnx, visual.onnx + textual.onnx, or model.onnx; or write a clip.json naming " +
                "\"image_model\" and \"text_model\" (or \"model\"). See docs/models.md.");
        }

        // Hugging Face configs (any layout may carry them), overridden by the manifest.
        var settings = ClipManifest.FromHuggingFace(directory).OverriddenBy(manifest);

        ClipTokenizer tokenizer;
        try
        {
            // A folder without vocabulary files (OpenAI / open_clip exports usually carry none) gets the standard CLIP
            // vocabulary built into the package; a "tokenizer" key in clip.json must name files that exist.
            tokenizer = settings.Tokenizer is not null ? ClipTokenizer.Load(Resolve(settings.Tokenizer))
                : ClipTokenizer.HasVocabularyFiles(directory) ? ClipTokenizer.Load(directory)
                : ClipTokenizer.Create();
        }
        catch (FileNotFoundException e)
        {
            throw new ClipModelException(e.Message.Contains("clip.json", StringComparison.Ordinal) ? e.Message
                : $"{e.Message} Fix the \"tokenizer\" key of clip.json in '{directory}'.", e);
        }
        catch (InvalidDataException e)
        {
            throw new ClipModelException($"The model '{directory}' has an unusable vocabulary: {e.Message}", e);
        }

        var sessionOptions = options.SessionOptions;
        var sessions = new List<OnnxSession>();
        try
        {
            TextTower text;
            ImageTower image;
            string[] towerFiles;
            int imageSize;
            if (combined is not null)
            {
                var s = OnnxSession.Open(RequireFile(combined, "model"), sessionOptions);
                sessions.Add(s);
                var pixel = s.Inputs.FirstOrDefault(i => i.ElementType == OnnxElementType.Float && i.Rank == 4);
                imageSize = settings.ImageSize ?? (pixel is { } px && px.Shape[2] > 0 ? (int)px.Shape[2] : 224);
                text = TextTower.Bind(s, settings, imageSize);
                image = ImageTower.Bind(s, settings, text, tokenizer.StartOfTextId, tokenizer.EndOfTextId);
                towerFiles = [combined];
            }
            else
            {
                var si = OnnxSession.Open(RequireFile(imageFile!, "image_model"), sessionOptions);
                sessions.Add(si);
                // One GPU fallback per model: once the first tower runs on the CPU, so does the second (one warning).
                if (si.Device == "CPU") sessionOptions = sessionOptions with { GpuDeviceId = null };
                var st = OnnxSession.Open(RequireFile(textFile!, "text_model"), sessionOptions);
                sessions.Add(st);
                text = TextTower.Bind(st, settings, null);
                image = ImageTower.Bind(si, settings, null, 0, 0);
                imageSize = image.FixedSize ?? settings.ImageSize ?? 224;
                towerFiles = [imageFile!, textFile!];
            }
            if (image.FixedSize is int fixedSize && settings.ImageSize is int declared && declared != fixedSize)
                throw new ClipModelException(
                    $"The image tower of '{directory}' takes {fixedSize}×{fixedSize} pixels but the configuration says image size {declared}; fix \"image_size\" in clip.json (or crop_size in preprocessor_config.json).");

            int contextLength = text.FixedLength ?? settings.ContextLength ?? 77;
            if (text.FixedLength is int fl && settings.ContextLength is int cl && cl != fl)
                throw new ClipModelException($"The text tower of '{directory}' takes {fl} tokens but the configuration says context length {cl}; fix \"context_length\" in clip.json.");
            long padId = settings.PadId ?? 0;
            text.ProbeDimension(tokenizer.EncodeBatch(["a"], contextLength), text.FixedLength ?? 3, padId);
            image.ProbeDimension(imageSize);
            if (text.Dimension != image.Dimension)
                throw new ClipModelException(
                    $"The towers of '{directory}' disagree on the embedding width: image output '{image.OutputName}' has {image.Dimension}, text output '{text.OutputName}' has {text.Dimension}. " +
                    "They must be the projected embeddings of one CLIP model; name the right outputs with \"image_output\" / \"text_output\" in clip.json.");
            if (tokenizer.VocabularySize < 2)
                throw new ClipModelException($"The vocabulary of '{directory}' is empty.");

            var preprocessing = settings.ToPreprocessing(imageSize, directory);

            string name = options.Name ?? settings.Name ?? new DirectoryInfo(directory).Name;
            return new ClipModel(name, directory, layout, tokenizer, text, image, contextLength, padId, settings.LogitScale ?? 100f, preprocessing, towerFiles, options.ContentHashCache);
        }
        catch
        {
            foreach (var s in sessions) s.Dispose();
            throw;
        }
    }

    private static string RequireFile(string path, string key) => File.Exists(path) ? path
        : throw new ClipModelException($"The ONNX file '{path}' does not exist; fix \"{key}\" in clip.json or add the file.");

    /// <summary>Embeds texts with the text tower: L2-normalised rows, in input order.</summary>
    public EmbeddingMatrix EmbedTexts(IReadOnlyList<string> texts, TextEmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        options ??= TextEmbeddingOptions.Default;
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be at least 1.");
        var result = new EmbeddingMatrix(texts.Count, EmbeddingDimension);
        var batchTexts = new List<string>(options.BatchSize);
        for (int start = 0; start < texts.Count; start += options.BatchSize)
        {
            int n = Math.Min(options.BatchSize, texts.Count - start);
            batchTexts.Clear();
            for (int i = 0; i < n; i++) batchTexts.Add(texts[start + i]);
            var tokens = Tokenizer.EncodeBatch(batchTexts, ContextLength, options.Truncate, (int)_padId);
            EmbedTokensInto(tokens, result.Data.AsMemory(start * EmbeddingDimension, n * EmbeddingDimension), cancellationToken);
        }
        return result;
    }

    /// <summary>Runs the text tower on token rows and writes L2-normalised embeddings (rows × D).</summary>
    internal void EmbedTokensInto(TokenBatch tokens, Memory<float> destination, CancellationToken ct)
    {
        int width = _text.FixedLength ?? Math.Max(1, tokens.MaxLength);
        _text.Run(tokens, width, _padId, destination, ct);
        NormalizeRows(destination.Span, tokens.Count, EmbeddingDimension);
    }

    /// <summary>
    /// Embeds class names through prompt templates: each class's embedding is the mean of its L2-normalised template
    /// embeddings, renormalised (CLIP's prompt ensembling). Returns C × D.
    /// </summary>
    public EmbeddingMatrix EmbedClassNames(IReadOnlyList<string> classNames, PromptTemplates? templates = null, TextEmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        templates ??= PromptTemplates.Default;
        PromptTemplates.ValidateClassNames(classNames);
        var texts = new List<string>(classNames.Count * templates.Count);
        foreach (var c in classNames)
            foreach (var t in templates.Templates) texts.Add(PromptTemplates.Fill(t, c));
        var all = EmbedTexts(texts, options, cancellationToken);
        var result = new EmbeddingMatrix(classNames.Count, EmbeddingDimension);
        var acc = new double[EmbeddingDimension];
        for (int c = 0; c < classNames.Count; c++)
        {
            Array.Clear(acc);
            for (int t = 0; t < templates.Count; t++)
            {
                var row = all.Row(c * templates.Count + t);
                for (int d = 0; d < acc.Length; d++) acc[d] += row[d];
            }
            var dst = result.Row(c);
            for (int d = 0; d < acc.Length; d++) dst[d] = (float)(acc[d] / templates.Count);
            EmbeddingMatrix.NormalizeInPlace(dst);
        }
        return result;
    }

    /// <summary>
    /// Embeds preprocessed images: <paramref name="pixelValues"/> holds <paramref name="count"/> CHW float tensors of
    /// <see cref="PreprocessSettings.ImageSize"/>² (see <see cref="Preprocessing"/>). Returns L2-normalised rows.
    /// </summary>
    public EmbeddingMatrix EmbedPixels(ReadOnlyMemory<float> pixelValues, int count, CancellationToken cancellationToken = default)
    {
        int size = Preprocessing.ImageSize;
        if (pixelValues.Length != (long)count * 3 * size * size)
            throw new ArgumentException($"{count} images of 3×{size}×{size} need {(long)count * 3 * size * size} floats, got {pixelValues.Length}.", nameof(pixelValues));
        var result = new EmbeddingMatrix(count, EmbeddingDimension);
        if (count > 0) EmbedPixelsInto(pixelValues, count, result.Data, cancellationToken);
        return result;
    }

    /// <summary>Runs the image tower and writes L2-normalised embeddings (count × D).</summary>
    internal void EmbedPixelsInto(ReadOnlyMemory<float> pixelValues, int count, Memory<float> destination, CancellationToken ct)
    {
        _image.Run(pixelValues, count, Preprocessing.ImageSize, destination, ct);
        NormalizeRows(destination.Span, count, EmbeddingDimension);
    }

    private static void NormalizeRows(Span<float> data, int rows, int dim)
    {
        for (int r = 0; r < rows; r++) EmbeddingMatrix.NormalizeInPlace(data.Slice(r * dim, dim));
    }

    private string ComputeContentHash()
    {
        string? key = _hashCache is null ? null : ModelHashCache.Key(_towerFiles);
        if (key is not null && ModelHashCache.TryGet(_hashCache!, key) is { } known) return known;
        string hash = HashFiles();
        if (key is not null && ModelHashCache.Key(_towerFiles) == key) ModelHashCache.TryStore(_hashCache!, key, hash); // unchanged while hashing
        return hash;
    }

    private string HashFiles()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var f in _towerFiles)
        {
            using var s = File.OpenRead(f);
            int n;
            while ((n = s.Read(buffer, 0, buffer.Length)) > 0) sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Releases the ONNX Runtime sessions.</summary>
    public void Dispose()
    {
        _text.Session.Dispose();
        if (!ReferenceEquals(_image.Session, _text.Session)) _image.Session.Dispose();
    }

    /// <summary>A one-line description.</summary>
    public override string ToString() =>
        $"{Name} ({Layout}, D={EmbeddingDimension}, context {ContextLength}{(DynamicTextLength ? " dynamic" : "")}, image {Preprocessing.ImageSize}px)";
}
