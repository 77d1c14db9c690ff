using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Vega.MLNet.Models;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Demo;

/// <summary>One model of the zoo: its name, shape and training.</summary>
internal sealed record ZooModelSpec(string Name, ClipArchitecture Architecture, TrainingSpec Training)
{
    /// <summary>"all", "7/10 (drop)" or "5/10 (generic)".</summary>
    public string CoverageText => Training.Classes is null ? "all" : $"{Training.Classes.Length}/10 ({Training.Coverage.ToString().ToLowerInvariant()})";
}

/// <summary>
/// A zoo of small CLIP models trained on Fashion-MNIST. The models differ in capacity, training length, caption noise
/// and class coverage so that their zero-shot accuracies spread. Everything is derived from <see cref="Seed"/>: the
/// training pool (the first <see cref="PoolSize"/> images of a seeded permutation of the training split), each model's
/// initialisation and its batch order and captions.
/// </summary>
internal sealed record ZooDefinition
{
    public required string Name { get; init; }
    public required IReadOnlyList<ZooModelSpec> Models { get; init; }

    /// <summary>Training images shared by the zoo (each model uses the first <see cref="TrainingSpec.TrainImages"/>).</summary>
    public int PoolSize { get; init; } = 60000;

    /// <summary>Test images the trainer scores each model on after training (the first ones of the test split).</summary>
    public int EvaluationImages { get; init; } = 10000;

    /// <summary>Maximum tokens per caption, start and end included (the positional table's length).</summary>
    public int ContextLength { get; init; } = 32;

    /// <summary>Requested BPE vocabulary size (the learner stops earlier when no pair occurs twice).</summary>
    public int VocabularySize { get; init; } = 1024;

    public ulong Seed { get; init; } = 2024;

    private static ClipArchitecture Mlp(params int[] hidden) => new() { Image = ImageArchitecture.Mlp, Hidden = hidden };
    private static ClipArchitecture Cnn(int[] channels, params int[] hidden) => new() { Image = ImageArchitecture.Cnn, Channels = channels, Hidden = hidden };
    private static ClipArchitecture Vit(int layers, int patch = 7, int width = 64) => new() { Image = ImageArchitecture.Vit, VitLayers = layers, VitPatch = patch, VitWidth = width };

    /// <summary>The built-in zoo of <c>vega demo</c> (docs/demo.md has its table and measured figures).</summary>
    public static ZooDefinition Default(ulong seed = 2024) => new()
    {
        Name = "fashion-mnist-zoo",
        Seed = seed,
        PoolSize = 30000,
        Models =
        [
            new("cnn-16-32", Cnn([16, 32]), new TrainingSpec { TrainImages = 30000, Epochs = 2 }),
            new("vit-p7-2l", Vit(2), new TrainingSpec { TrainImages = 30000, Epochs = 2 }),
            new("mlp-256", Mlp(256), new TrainingSpec { TrainImages = 30000, Epochs = 2 }),
            new("mlp-64-noisy", Mlp(64), new TrainingSpec { TrainImages = 20000, Epochs = 1, CaptionNoise = 0.6 }),
            new("cnn-8-16-noisy", Cnn([8, 16]), new TrainingSpec { TrainImages = 10000, Epochs = 1, CaptionNoise = 0.5 }),
            new("vit-p7-short", Vit(1), new TrainingSpec { TrainImages = 2048, Epochs = 1, BatchSize = 64 }),
            new("mlp-128-7cls", Mlp(128), new TrainingSpec { TrainImages = 20000, Epochs = 1, Classes = [0, 1, 2, 3, 5, 7, 8] }),
            new("cnn-16-5cls", Cnn([16, 32]), new TrainingSpec { TrainImages = 15000, Epochs = 1, Classes = [1, 3, 5, 7, 8], Coverage = CoverageMode.Generic }),
        ],
    };

    /// <summary>The reduced zoo of <c>vega demo --quick</c> and of the tests: two small models, a few hundred images, few epochs.</summary>
    public static ZooDefinition Quick(ulong seed = 2024) => new()
    {
        Name = "fashion-mnist-quick",
        Seed = seed,
        PoolSize = 512,
        EvaluationImages = 500,
        Models =
        [
            new("mlp-64", Mlp(64), new TrainingSpec { TrainImages = 512, Epochs = 3, BatchSize = 64 }),
            new("cnn-4-8", Cnn([4, 8]), new TrainingSpec { TrainImages = 512, Epochs = 2, BatchSize = 64, CaptionNoise = 0.3 }),
        ],
    };

    /// <summary>The per-model network seed (a stable hash of the zoo seed and the model's name).</summary>
    public ulong ModelSeed(string modelName)
    {
        ulong h = 14695981039346656037UL ^ Seed;
        foreach (char ch in modelName) h = (h ^ ch) * 1099511628211UL;
        return h;
    }
}

/// <summary>One built (or loaded) model of the zoo.</summary>
internal sealed record ZooModel
{
    public required ZooModelSpec Spec { get; init; }
    public required string Directory { get; init; }
    public required long ImageParameters { get; init; }
    public required long TextParameters { get; init; }
    public required double TrainSeconds { get; init; }
    public required int Steps { get; init; }
    public required int ImagesUsed { get; init; }
    public required double[] EpochLoss { get; init; }
    public required float LogitScale { get; init; }

    /// <summary>Zero-shot accuracy of the trainer's forward pass on the first <see cref="ZooDefinition.EvaluationImages"/> test images.</summary>
    public required double TrainerAccuracy { get; init; }

    /// <summary>
    /// Largest difference between the exported package run by ONNX Runtime (loaded through ClipModel) and the trainer's
    /// forward pass, over L2-normalised embeddings of <see cref="ZooBuilder.ParityImages"/> test images and every
    /// caption of the corpus; the build fails above <see cref="ZooBuilder.ParityTolerance"/>.
    /// </summary>
    public required double OrtMaxDifference { get; init; }
}

/// <summary>The zoo on disk.</summary>
internal sealed record ZooBuild(ZooDefinition Definition, string Directory, string Key, string TokenizerDirectory, IReadOnlyList<ZooModel> Models, int ModelsTrained, TimeSpan Elapsed);

/// <summary>
/// Builds the zoo or loads it from its cache folder <c>&lt;root&gt;/&lt;key&gt;/</c>, where the key is a hash of the zoo
/// definition, <see cref="ClipTrainer.Version"/> and the content of the Fashion-MNIST files. Every finished model is a
/// CLIP package folder with a <c>training.json</c> written last; an interrupted build resumes with the models that are
/// missing. Models are trained two (or one per core) at a time with one thread each, which keeps every model's weights
/// independent of the machine's core count and of the scheduling.
/// </summary>
internal static class ZooBuilder
{
    /// <summary>Test images on which every exported model is checked against the trainer.</summary>
    public const int ParityImages = 256;

    /// <summary>Largest accepted difference of normalised embeddings between ONNX Runtime and the trainer.</summary>
    public const double ParityTolerance = 1e-4;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public static string CacheKey(ZooDefinition zoo, string dataHash)
    {
        string definition = JsonSerializer.Serialize(zoo, Json);
        string text = $"trainer {ClipTrainer.Version}\ndata {dataHash}\n{definition}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }

    public static ZooBuild BuildOrLoad(ZooDefinition zoo, FashionMnistData data, string root, Action<string>? log = null, int workers = 0, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        string key = CacheKey(zoo, data.ContentHash());
        string dir = Path.Combine(Path.GetFullPath(root), key);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "zoo-definition.json"), JsonSerializer.Serialize(zoo, Json) + "\n");

        // Tokenizer: byte-level BPE learnt on the caption corpus (deterministic), saved once.
        string tokDir = Path.Combine(dir, "tokenizer");
        if (!File.Exists(Path.Combine(tokDir, "merges.txt")))
        {
            var vocab = BpeTrainer.Learn(DemoCaptions.Corpus(), zoo.VocabularySize);
            string tmp = tokDir + ".tmp";
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            BpeTrainer.Save(vocab, tmp);
            if (Directory.Exists(tokDir)) Directory.Delete(tokDir, true);
            Directory.Move(tmp, tokDir);
        }
        var tokenizer = ClipTokenizer.Load(tokDir);
        int longest = DemoCaptions.Corpus().Max(c => tokenizer.Encode(c).Length + 2);
        if (longest > zoo.ContextLength)
            throw new InvalidOperationException($"A demo caption needs {longest} tokens, more than the zoo's context length {zoo.ContextLength}.");

        var models = new ZooModel?[zoo.Models.Count];
        var todo = new List<int>();
        for (int i = 0; i < zoo.Models.Count; i++)
        {
            string mdir = Path.Combine(dir, zoo.Models[i].Name);
            string record = Path.Combine(mdir, "training.json");
            if (File.Exists(record))
            {
                try { models[i] = JsonSerializer.Deserialize<ZooModel>(File.ReadAllText(record), Json)! with { Directory = mdir }; }
                catch (JsonException) { }
            }
            if (models[i] is null) todo.Add(i);
        }

        if (todo.Count > 0)
        {
            log?.Invoke($"training {todo.Count} of {zoo.Models.Count} models into {dir}");
            var poolIndices = new Rng(zoo.Seed).Permutation(data.Train.Count).Take(zoo.PoolSize).ToArray();
            var pool = new TrainingPool(DemoPreprocessing.GrayInputs(data.Train, poolIndices), poolIndices.Select(i => data.TrainLabels[i]).ToArray());
            int evalCount = Math.Min(zoo.EvaluationImages, data.Test.Count);
            var evalIdx = Enumerable.Range(0, evalCount).ToArray();
            var evalGray = DemoPreprocessing.GrayInputs(data.Test, evalIdx);
            var evalLabels = data.TestLabels.AsSpan(0, evalCount).ToArray();
            var evalPixels = DemoPreprocessing.Pixels(data.Test, evalIdx.Take(ParityImages).ToArray());

            int saved = Parallelism.ThreadCount;
            int w = workers > 0 ? workers : Math.Max(1, Math.Min(Environment.ProcessorCount, todo.Count));
            try
            {
                Parallelism.ThreadCount = 1;
                // Longest jobs first (by a rough cost estimate) so the workers finish together.
                var queue = new Queue<int>(todo.OrderByDescending(i => Cost(zoo.Models[i])));
                var gate = new Lock();
                var errors = new List<Exception>();
                var threads = new List<Thread>();
                for (int k = 0; k < w; k++)
                {
                    var thread = new Thread(() =>
                    {
                        while (true)
                        {
                            int i;
                            lock (gate)
                            {
                                if (errors.Count > 0 || queue.Count == 0) return;
                                i = queue.Dequeue();
                            }
                            try
                            {
                                models[i] = TrainOne(zoo, zoo.Models[i], tokenizer, tokDir, pool, evalGray, evalLabels, evalPixels, Path.Combine(dir, zoo.Models[i].Name), log, cancellationToken);
                            }
                            catch (Exception e)
                            {
                                lock (gate) errors.Add(e);
                            }
                        }
                    }, 16 << 20) { IsBackground = true, Name = $"zoo-trainer-{k}" };
                    threads.Add(thread);
                    thread.Start();
                }
                foreach (var t in threads) t.Join();
                if (errors.Count > 0)
                {
                    if (errors[0] is OperationCanceledException oce) throw oce;
                    throw new AggregateException("Training the demo zoo failed.", errors);
                }
            }
            finally
            {
                Parallelism.ThreadCount = saved;
            }
        }
        var built = models.Select(m => m!).ToArray();
        File.WriteAllText(Path.Combine(dir, "zoo.json"), JsonSerializer.Serialize(built, Json) + "\n");
        return new ZooBuild(zoo, dir, key, tokDir, built, todo.Count, clock.Elapsed);
    }

    private static double Cost(ZooModelSpec m)
    {
        var a = m.Architecture;
        double perImage = a.Image switch
        {
            ImageArchitecture.Mlp => 784.0 * (a.Hidden.Length > 0 ? a.Hidden[0] : a.EmbedDim),
            ImageArchitecture.Cnn => 784.0 * 9 * a.Channels[0] + (a.Channels.Length > 1 ? 196.0 * 9 * a.Channels[0] * a.Channels[1] : 0),
            _ => 16.0 * 12 * a.VitWidth * a.VitWidth * a.VitLayers * 2,
        };
        return (perImage + 12.0 * 12 * a.TextWidth * a.TextWidth * a.TextLayers) * m.Training.TrainImages * m.Training.Epochs;
    }

    private static ZooModel TrainOne(ZooDefinition zoo, ZooModelSpec spec, ClipTokenizer tokenizer, string tokDir, TrainingPool pool,
        float[] evalGray, byte[] evalLabels, float[] evalPixels, string directory, Action<string>? log, CancellationToken ct)
    {
        var net = new ClipNetwork(spec.Architecture, tokenizer.VocabularySize, zoo.ContextLength, new Rng(zoo.ModelSeed(spec.Name)));
        log?.Invoke($"{spec.Name}: training {spec.Architecture.Describe()}, {net.Parameters.Count:N0} parameters");
        var report = ClipTrainer.Train(net, tokenizer, pool, spec.Training, zoo.ModelSeed(spec.Name) ^ 0x5DEECE66DUL,
            m => log?.Invoke($"{spec.Name}: {m}"), ct);
        double accuracy = ClipTrainer.ZeroShotAccuracy(net, tokenizer, evalGray, evalLabels);
        string tmp = directory + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        ClipExporter.Export(net, tokDir, tmp, spec.Name, new Dictionary<string, object> { ["vega_demo"] = new { zoo = zoo.Name, spec.Architecture, spec.Training } });
        double parity = CheckParity(net, tokenizer, tmp, evalPixels, evalGray);
        if (!(parity <= ParityTolerance))
            throw new InvalidOperationException($"The exported model '{spec.Name}' ({tmp}) differs from the trainer by {parity:E2} (> {ParityTolerance:E0}) in ONNX Runtime; this is a bug in the exporter.");
        var model = new ZooModel
        {
            Spec = spec,
            Directory = directory,
            ImageParameters = net.ImageParameterCount,
            TextParameters = net.TextParameterCount,
            TrainSeconds = report.Elapsed.TotalSeconds,
            Steps = report.Steps,
            ImagesUsed = report.ImagesUsed,
            EpochLoss = report.EpochLoss,
            LogitScale = report.LogitScale,
            TrainerAccuracy = accuracy,
            OrtMaxDifference = parity,
        };
        SafeTensors.SaveParameters(Path.Combine(tmp, "weights.safetensors"), net.Parameters.All);
        File.WriteAllText(Path.Combine(tmp, "training.json"), JsonSerializer.Serialize(model, Json) + "\n");
        if (Directory.Exists(directory)) Directory.Delete(directory, true);
        Directory.Move(tmp, directory);
        log?.Invoke($"{spec.Name}: done in {report.Elapsed.TotalSeconds:F1} s, trainer zero-shot accuracy {accuracy:P1}, ONNX Runtime within {parity:E1}");
        return model;
    }

    /// <summary>Max |ORT − trainer| over normalised embeddings of the given images (pixels and their gray inputs) and of the caption corpus.</summary>
    internal static double CheckParity(ClipNetwork net, ClipTokenizer tokenizer, string packageDirectory, float[] pixels, float[] gray)
    {
        int n = Math.Min(pixels.Length / (3 * 784), gray.Length / 784);
        using var model = ClipModel.Load(packageDirectory);
        var ortImages = model.EmbedPixels(pixels.AsMemory(0, n * 3 * 784), n);
        var trainerImages = ClipTrainer.EmbedGray(net, gray.AsSpan(0, n * 784), n);
        var texts = DemoCaptions.Corpus().ToList();
        var ortTexts = model.EmbedTexts(texts);
        var trainerTexts = ClipTrainer.EmbedTexts(net, tokenizer, texts);
        double worst = 0;
        for (int i = 0; i < trainerImages.Length; i++) worst = Math.Max(worst, Math.Abs((double)trainerImages[i] - ortImages.Data[i]));
        for (int i = 0; i < trainerTexts.Length; i++) worst = Math.Max(worst, Math.Abs((double)trainerTexts[i] - ortTexts.Data[i]));
        return worst;
    }

    /// <summary>The trainer network of a built model, with its weights (for parity checks).</summary>
    public static ClipNetwork LoadNetwork(ZooBuild zoo, ZooModel model)
    {
        var tokenizer = ClipTokenizer.Load(zoo.TokenizerDirectory);
        var net = new ClipNetwork(model.Spec.Architecture, tokenizer.VocabularySize, zoo.Definition.ContextLength, new Rng(0));
        SafeTensors.LoadInto(Path.Combine(model.Directory, "weights.safetensors"), net.Parameters.All);
        return net;
    }
}
