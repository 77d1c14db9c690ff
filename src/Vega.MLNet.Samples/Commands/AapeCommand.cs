using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Samples.Experiments;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// <c>vega aape train|predict|eval</c>: AAPE prompt-embedding heads (docs/aape.md) — train one from labelled images and
/// class descriptions, classify images with it (CSV), and run the k-shot / base-to-new experiment protocol.
/// </summary>
internal static class AapeCommand
{
    public static Command Create()
    {
        var command = new Command("aape", "AAPE: distil class descriptions into an image-conditioned prompt embedding head (docs/aape.md).");
        command.Subcommands.Add(Train());
        command.Subcommands.Add(Predict());
        command.Subcommands.Add(Eval());
        command.Subcommands.Add(Synthetic());
        return command;
    }

    // ---------------------------------------------------------------- shared options

    private sealed class Common
    {
        public readonly Option<string> Model = new("--model") { Description = "CLIP model folder or clip.json.", Required = true };
        public readonly Option<string> Images = new("--images") { Description = "Labelled images: folder (--labels-from-folders), CSV manifest (path,label) or IDX image file (with --labels).", Required = true };
        public readonly Option<string?> Labels = new("--labels") { Description = "IDX label file for an IDX image file (label k is the k-th class of --classes)." };
        public readonly Option<bool> Folders = new("--labels-from-folders") { Description = "Labels are the images' first sub-folder names." };
        public readonly Option<string?> Classes = new("--classes") { Description = "Class names, one per line (default: the distinct labels, sorted; for IDX labels the numbers 0, 1, …)." };
        public readonly Option<string?> Templates = new("--templates") { Description = "Prompt templates file for the class weights w_c (default \"a photo of a {}.\")." };
        public readonly Option<string?> Cache = new("--cache") { Description = "Cache folder for image and description embeddings.", DefaultValueFactory = _ => ".vega-cache" };
        public readonly Option<int> Batch = new("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        public readonly Option<int> Threads = new("--threads") { Description = "Decode threads (0 = one per core).", DefaultValueFactory = _ => 0 };

        public void AddTo(Command c)
        {
            foreach (var o in new Option[] { Model, Images, Labels, Folders, Classes, Templates, Cache, Batch, Threads }) c.Options.Add(o);
        }

        public ImageEmbeddingOptions EmbeddingOptions(ParseResult p) => new()
        {
            BatchSize = CliChecks.ImageBatch("--batch", p.GetValue(Batch)),
            DecodeThreads = CliChecks.Threads("--threads", p.GetValue(Threads)),
            CacheDirectory = CliChecks.CacheFolder("--cache", p.GetValue(Cache)),
        };

        /// <summary>The class list file (read and checked) when given.</summary>
        public IReadOnlyList<string>? ClassFile(ParseResult p) =>
            p.GetValue(Classes) is { } f ? PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", f)) : null;

        public PromptTemplates Prompts(ParseResult p) =>
            p.GetValue(Templates) is { } t ? PromptTemplates.FromFile(CliChecks.InputFile("--templates", t)) : PromptTemplates.Default;
    }

    private sealed class TrainingOptions
    {
        public readonly Option<double> Lambda = new("--lambda") { Description = "Distillation weight λ (0 = plain adapter).", DefaultValueFactory = _ => AapeOptions.Default.Lambda };
        public readonly Option<double?> Temperature = new("--temperature") { Description = "Logit temperature τ (default 1/the model's logit scale)." };
        public readonly Option<int?> Epochs = new("--epochs") { Description = "Generator epochs (default: 50 for train; CoOp's 50/100/200 by shots for eval)." };
        public readonly Option<double> Lr = new("--lr") { Description = "Peak SGD learning rate.", DefaultValueFactory = _ => AapeOptions.Default.LearningRate };
        public readonly Option<int> TrainBatch = new("--train-batch") { Description = "Images per SGD step.", DefaultValueFactory = _ => AapeOptions.Default.BatchSize };
        public readonly Option<int> Heads = new("--heads") { Description = "Aggregator attention heads (must divide D).", DefaultValueFactory = _ => AapeOptions.Default.Heads };
        public readonly Option<string> Aggregator = new("--aggregator") { Description = "attention or mean.", DefaultValueFactory = _ => "attention" };
        public readonly Option<int> AggregatorEpochs = new("--aggregator-epochs") { Description = "Aggregator AdamW steps.", DefaultValueFactory = _ => AapeOptions.Default.AggregatorEpochs };
        public readonly Option<double> AggregatorLr = new("--aggregator-lr") { Description = "Aggregator AdamW learning rate.", DefaultValueFactory = _ => AapeOptions.Default.AggregatorLearningRate };

        public void AddTo(Command c)
        {
            foreach (var o in new Option[] { Lambda, Temperature, Epochs, Lr, TrainBatch, Heads, Aggregator, AggregatorEpochs, AggregatorLr }) c.Options.Add(o);
        }

        public AapeOptions Build(ParseResult p, int seed)
        {
            var options = new AapeOptions
            {
                Lambda = CliChecks.NonNegative("--lambda", p.GetValue(Lambda)),
                Temperature = p.GetValue(Temperature) is double t ? CliChecks.Positive("--temperature", t) : null,
                Epochs = CliChecks.Range("--epochs", p.GetValue(Epochs), 1, 1_000_000) ?? AapeOptions.Default.Epochs,
                LearningRate = CliChecks.Positive("--lr", p.GetValue(Lr)),
                BatchSize = CliChecks.Range("--train-batch", p.GetValue(TrainBatch), 1, 1 << 24),
                Heads = CliChecks.Range("--heads", p.GetValue(Heads), 1, 4096),
                Aggregator = p.GetValue(Aggregator)!.ToLowerInvariant() switch
                {
                    "attention" => AapeAggregator.Attention,
                    "mean" => AapeAggregator.Mean,
                    var s => throw new CliUsageException($"--aggregator '{s}': use attention or mean."),
                },
                AggregatorEpochs = CliChecks.Range("--aggregator-epochs", p.GetValue(AggregatorEpochs), 0, 1_000_000),
                AggregatorLearningRate = CliChecks.Positive("--aggregator-lr", p.GetValue(AggregatorLr)),
                Seed = seed,
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new CliUsageException($"{e.Message.Split(" (Parameter")[0]} Change the matching option (vega aape --help).");
            }
            return options;
        }
    }

    // ---------------------------------------------------------------- train

    private static Command Train()
    {
        var common = new Common();
        var training = new TrainingOptions();
        var descriptions = new Option<string>("--descriptions") { Description = "Class descriptions: JSON {class: [sentences]} or a folder of <class>.txt (see docs/aape.md).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the head (aape-head.safetensors, aape-head.json, aape-head.onnx).", Required = true };
        var shots = new Option<int>("--shots") { Description = "Use k seeded images per class (0 = every image).", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the shot selection and of training.", DefaultValueFactory = _ => 1 };
        var command = new Command("train", "Train an AAPE head on labelled images and class descriptions; writes safetensors + settings JSON + ONNX.") { descriptions, output, shots, seed };
        common.AddTo(command);
        training.AddTo(command);
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            string dir = CliChecks.OutputFolder("--out", parse.GetValue(output)!);
            var classFile = common.ClassFile(parse);
            var prompts = common.Prompts(parse);
            var embedOptions = common.EmbeddingOptions(parse);
            string descriptionsPath = CliChecks.InputPath("--descriptions", parse.GetValue(descriptions)!);
            int k = CliChecks.Range("--shots", parse.GetValue(shots), 0, 1_000_000, "0 = every image"), s = parse.GetValue(seed);
            var options = training.Build(parse, s);
            var source = CliInputs.Images(parse.GetValue(common.Images)!, parse.GetValue(common.Labels), labelsFromFolders: parse.GetValue(common.Folders), classNames: classFile);
            var classNames = ClassList(classFile, source);
            var labels = LabelIndices(source, classNames);
            if (k > 0)
            {
                var chosen = SampleShots(labels, classNames, k, s);
                source = source.Subset(chosen);
                labels = chosen.Select(i => labels[i]).ToArray();
            }
            var desc = LoadDescriptions(descriptionsPath, classNames);
            using var clip = CliInputs.LoadModel(parse.GetValue(common.Model)!, embedOptions.CacheDirectory);
            var embedded = desc.Embed(clip, embedOptions.CacheDirectory, ct);
            AnsiConsole.MarkupLine(Markup.Escape($"descriptions: {desc.Count} sentences for {classNames.Count} classes ({(embedded.FromCache ? "from cache" : "embedded")})"));
            var images = CliInputs.EmbedWithProgress(clip, source, embedOptions, ct);
            CliInputs.PrintSkipped(images.Skipped);
            var kept = KeptLabels(images, source, labels);
            var weights = clip.EmbedClassNames(classNames, prompts);
            var progress = new SynchronousProgress<AapeEpoch>(e =>
            {
                if (e.Epoch % 10 == 0 || e.Epoch == options.Epochs - 1)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {e.Epoch + 1,4}/{options.Epochs}: lr {e.LearningRate:G3}  CE {e.CrossEntropy:F4}  distil {e.Distillation:F4}  loss {e.Loss:F4}  train acc {e.Accuracy:P1}"));
            });
            var head = AapeTrainer.Train(new AapeTrainingSet
            {
                Images = images.Embeddings,
                Labels = kept,
                ClassNames = classNames,
                ClassWeights = weights,
                Descriptions = embedded,
                LogitScale = clip.LogitScale,
                ModelName = clip.Name,
                ModelHash = clip.ContentHash,
            }, options, progress, ct);
            head.Save(dir);
            head.ExportOnnx(Path.Combine(dir, AapeHead.OnnxFile));
            var r = head.Training!;
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"trained on {kept.Length} images, {classNames.Count} classes, D = {head.Dimension}, τ = {r.Temperature:G4}; aggregator CLIP-S {r.InitialClipScore:F3} → {r.FinalClipScore:F3} ({r.AggregatorTime.TotalSeconds:F1} s); generator {r.Epochs.Count} epochs in {r.GeneratorTime.TotalSeconds:F1} s, final loss {r.Epochs[^1].Loss:F4}")));
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {Path.Combine(dir, AapeHead.WeightsFile)}, {AapeHead.SettingsFile}, {AapeHead.OnnxFile}"));
            return 0;
        })));
        return command;
    }

    /// <summary>Runs the callback on the reporting thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    // ---------------------------------------------------------------- predict

    private static Command Predict()
    {
        var head = new Option<string>("--head") { Description = "Head folder written by `vega aape train`.", Required = true };
        var model = new Option<string>("--model") { Description = "The CLIP model the head was trained on.", Required = true };
        var images = new Option<string>("--images") { Description = "Images: folder, CSV manifest or IDX file.", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX label file (then accuracy is printed)." };
        var top = new Option<int>("--top") { Description = "Classes per image in the output.", DefaultValueFactory = _ => 3 };
        var output = new Option<string?>("--out") { Description = "CSV file (default: standard output)." };
        var cache = new Option<string?>("--cache") { Description = "Image embedding cache folder.", DefaultValueFactory = _ => ".vega-cache" };
        var batch = new Option<int>("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        var command = new Command("predict", "Classify images with an AAPE head: top-k classes with probabilities, as CSV (id,path,label,class1,p1,...).")
            { head, model, images, labels, top, output, cache, batch };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            string headDir = CliChecks.InputFolder("--head", parse.GetValue(head)!);
            var h = AapeHead.Load(headDir);
            string? outPath = parse.GetValue(output) is { } o ? CliChecks.OutputFile("--out", o) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            int batchSize = CliChecks.ImageBatch("--batch", parse.GetValue(batch));
            CliChecks.Range("--top", parse.GetValue(top), 1, int.MaxValue, "classes per image");
            int k = Math.Min(parse.GetValue(top), h.ClassNames.Count);
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), classNames: h.ClassNames);
            using var clip = CliInputs.LoadModel(parse.GetValue(model)!, cacheDir);
            if (h.ModelHash is not null && h.ModelHash != clip.ContentHash)
                throw new ArgumentException($"The head in '{headDir}' was trained on model '{h.ModelName}' (content hash {h.ModelHash[..12]}…), but --model '{parse.GetValue(model)}' is a different model ({clip.ContentHash[..12]}…); heads only work in their own model's embedding space.");
            if (h.Dimension != clip.EmbeddingDimension)
                throw new ArgumentException($"The head expects {h.Dimension}-dimensional embeddings; the model gives {clip.EmbeddingDimension}.");
            var embedded = CliInputs.EmbedWithProgress(clip, source, new ImageEmbeddingOptions { BatchSize = batchSize, CacheDirectory = cacheDir }, ct);
            CliInputs.PrintSkipped(embedded.Skipped);
            var logits = h.Predict(embedded.Embeddings);
            int c = h.ClassNames.Count, correct = 0, labelled = 0;
            var sb = new StringBuilder();
            sb.Append("id,path,label");
            for (int j = 1; j <= k; j++) sb.Append(CultureInfo.InvariantCulture, $",class{j},p{j}");
            sb.Append('\n');
            for (int i = 0; i < embedded.Items.Count; i++)
            {
                var item = embedded.Items[i];
                var p = AapeHead.Softmax(logits.AsSpan(i * c, c));
                var order = Enumerable.Range(0, c).OrderByDescending(j => p[j]).ThenBy(j => j).Take(k).ToArray();
                sb.Append(Csv(item.Id)).Append(',').Append(Csv(item.Path ?? "")).Append(',').Append(Csv(item.Label ?? ""));
                foreach (int j in order) sb.Append(',').Append(Csv(h.ClassNames[j])).Append(',').Append(p[j].ToString("F6", CultureInfo.InvariantCulture));
                sb.Append('\n');
                if (item.Label is not null)
                {
                    labelled++;
                    if (h.ClassNames[order[0]] == item.Label) correct++;
                }
            }
            if (outPath is { } path)
            {
                File.WriteAllText(path, sb.ToString(), new UTF8Encoding(false));
                AnsiConsole.MarkupLine(Markup.Escape($"wrote {embedded.Items.Count} predictions to {path}"));
            }
            else Console.Write(sb.ToString());
            if (labelled > 0)
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"top-1 accuracy {100.0 * correct / labelled:F2} % on {labelled} labelled images"));
            return 0;
        })));
        return command;
    }

    private static string Csv(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    // ---------------------------------------------------------------- eval

    private static Command Eval()
    {
        var common = new Common();
        var training = new TrainingOptions();
        var descriptions = new Option<string>("--descriptions") { Description = "Class descriptions: JSON {class: [sentences]} or a folder of <class>.txt.", Required = true };
        var testImages = new Option<string>("--test-images") { Description = "Labelled test images (same kinds as --images).", Required = true };
        var testLabels = new Option<string?>("--test-labels") { Description = "IDX label file of --test-images." };
        var shots = new Option<string>("--shots") { Description = "k values of the k-shot table, comma-separated.", DefaultValueFactory = _ => "1,2,4,8,16" };
        var seeds = new Option<string>("--seeds") { Description = "Seeds, comma-separated (mean ± std over them).", DefaultValueFactory = _ => "1,2,3" };
        var baseToNew = new Option<bool>("--base-to-new") { Description = "Also run base-to-new (train on the first half of the classes, test on the other half)." };
        var noKShot = new Option<bool>("--no-kshot") { Description = "Skip the k-shot table." };
        var b2nShots = new Option<int>("--base-to-new-shots") { Description = "Shots per base class.", DefaultValueFactory = _ => 16 };
        var pool = new Option<int>("--pool-per-class") { Description = "Training pool: the first P images of each class in --images (k-shot sets are drawn from it).", DefaultValueFactory = _ => 64 };
        var testPerClass = new Option<int>("--test-per-class") { Description = "Test images per class: the first T of each class (0 = all).", DefaultValueFactory = _ => 200 };
        var output = new Option<string>("--out") { Description = "Markdown file for the results.", Required = true };
        var append = new Option<bool>("--append") { Description = "Append to --out instead of overwriting it." };
        var note = new Option<string?>("--note") { Description = "A sentence printed above the tables (e.g. what the model is)." };
        var command = new Command("eval", "Run the AAPE protocol: k-shot accuracy and base-to-new (base/new/H) for zero-shot, linear probe, AAPE and its ablations; writes markdown.")
            { descriptions, testImages, testLabels, shots, seeds, baseToNew, noKShot, b2nShots, pool, testPerClass, output, append, note };
        common.AddTo(command);
        training.AddTo(command);
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            string outPath = CliChecks.OutputFile("--out", parse.GetValue(output)!);
            var classFile = common.ClassFile(parse);
            var prompts = common.Prompts(parse);
            var embOptions = common.EmbeddingOptions(parse);
            string descriptionsPath = CliChecks.InputPath("--descriptions", parse.GetValue(descriptions)!);
            var shotList = ParseInts(parse.GetValue(shots)!, "--shots");
            var seedList = ParseInts(parse.GetValue(seeds)!, "--seeds");
            int b2n = CliChecks.Range("--base-to-new-shots", parse.GetValue(b2nShots), 1, 1_000_000);
            var options = training.Build(parse, 1);
            var train = CliInputs.Images(parse.GetValue(common.Images)!, parse.GetValue(common.Labels), labelsFromFolders: parse.GetValue(common.Folders), classNames: classFile);
            var classNames = ClassList(classFile, train);
            var trainLabels = LabelIndices(train, classNames);
            var test = CliInputs.Images(parse.GetValue(testImages)!, parse.GetValue(testLabels), labelsFromFolders: parse.GetValue(common.Folders), classNames: classNames,
                option: "--test-images", labelsOption: "--test-labels");
            var testLabelIdx = LabelIndices(test, classNames);
            int poolSize = parse.GetValue(pool), testSize = parse.GetValue(testPerClass);
            if (poolSize < shotList.Max()) throw new CliUsageException($"--pool-per-class {poolSize}: must be at least the largest shot count ({shotList.Max()}).");
            CliChecks.Range("--test-per-class", testSize, 0, int.MaxValue, "0 = all");
            var desc = LoadDescriptions(descriptionsPath, classNames);
            using var clip = CliInputs.LoadModel(parse.GetValue(common.Model)!, embOptions.CacheDirectory);
            var poolIdx = FirstPerClass(trainLabels, classNames.Count, poolSize);
            var testIdx = testSize <= 0 ? Enumerable.Range(0, testLabelIdx.Length).ToArray() : FirstPerClass(testLabelIdx, classNames.Count, testSize);
            var embeddedDesc = desc.Embed(clip, embOptions.CacheDirectory, ct);
            var poolEmb = CliInputs.EmbedWithProgress(clip, train.Subset(poolIdx), embOptions, ct);
            var testEmb = CliInputs.EmbedWithProgress(clip, test.Subset(testIdx), embOptions, ct);
            CliInputs.PrintSkipped([.. poolEmb.Skipped, .. testEmb.Skipped]);
            int? fixedEpochs = parse.GetValue(training.Epochs);
            var settings = new ExperimentSettings
            {
                Shots = shotList,
                Seeds = seedList,
                KShot = !parse.GetValue(noKShot),
                BaseToNew = parse.GetValue(baseToNew),
                BaseToNewShots = b2n,
                Options = options,
                EpochsForShots = fixedEpochs is int e ? _ => e : ExperimentSettings.CoOpEpochs,
                Log = new SynchronousProgress<string>(line => Console.WriteLine(line)),
            };
            var data = new ExperimentData
            {
                ModelName = clip.Name,
                ClassNames = classNames,
                ClassWeights = clip.EmbedClassNames(classNames, prompts),
                Descriptions = embeddedDesc,
                Pool = poolEmb.Embeddings,
                PoolLabels = KeptLabels(poolEmb, train, trainLabels),
                Test = testEmb.Embeddings,
                TestLabels = KeptLabels(testEmb, test, testLabelIdx),
                LogitScale = clip.LogitScale,
                Provenance = parse.GetValue(note) ?? "",
            };
            var result = AapeExperiment.Run(data, settings, [.. AapeExperiment.DefaultMethods(settings), new AapeExperiment.CoOpMethod(clip)], ct);
            WriteReport(AapeExperimentReport.ToMarkdown(result, CommandLine()), outPath, parse.GetValue(append));
            return 0;
        })));
        return command;
    }

    private static string CommandLine() =>
        "vega " + string.Join(' ', Environment.GetCommandLineArgs()[1..].Select(a => a.Length > 0 && !a.Any(char.IsWhiteSpace) && !a.Contains('"') ? a : "\"" + a.Replace("\"", "\\\"", StringComparison.Ordinal) + "\""));

    private static void WriteReport(string markdown, string path, bool append)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir) Directory.CreateDirectory(dir);
        if (append) File.AppendAllText(path, "\n" + markdown);
        else File.WriteAllText(path, markdown);
        Console.WriteLine(markdown);
        AnsiConsole.MarkupLine(Markup.Escape($"wrote {path}"));
    }

    // ---------------------------------------------------------------- synthetic

    private static Command Synthetic()
    {
        var training = new TrainingOptions();
        var classes = new Option<int>("--classes") { Description = "Number of classes C.", DefaultValueFactory = _ => 10 };
        var dim = new Option<int>("--dim") { Description = "Embedding width D.", DefaultValueFactory = _ => 512 };
        var descriptions = new Option<int>("--descriptions") { Description = "Descriptions per class.", DefaultValueFactory = _ => 20 };
        var irrelevant = new Option<double>("--irrelevant") { Description = "Fraction of descriptions that are noise.", DefaultValueFactory = _ => 0.3 };
        var bias = new Option<double>("--prompt-bias") { Description = "Weight β of the next class in the handcrafted prompt w_c.", DefaultValueFactory = _ => 0.9 };
        var noise = new Option<double>("--image-noise") { Description = "Noise σ of the images around their prototype (cos(x, μ) ≈ 1/√(1 + σ²)).", DefaultValueFactory = _ => 3.0 };
        var shots = new Option<string>("--shots") { Description = "k values, comma-separated.", DefaultValueFactory = _ => "1,2,4,8,16" };
        var seeds = new Option<string>("--seeds") { Description = "Seeds, comma-separated.", DefaultValueFactory = _ => "1,2,3" };
        var dataSeed = new Option<int>("--data-seed") { Description = "Seed of the synthetic task itself.", DefaultValueFactory = _ => 7 };
        var output = new Option<string>("--out") { Description = "Markdown file for the results.", Required = true };
        var append = new Option<bool>("--append") { Description = "Append to --out instead of overwriting it." };
        var command = new Command("synthetic", "Run the eval protocol on a synthetic embedding task with known structure (biased handcrafted prompt, informative descriptions; see SyntheticTask).")
            { classes, dim, descriptions, irrelevant, bias, noise, shots, seeds, dataSeed, output, append };
        training.AddTo(command);
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            string outPath = CliChecks.OutputFile("--out", parse.GetValue(output)!);
            int c = CliChecks.Range("--classes", parse.GetValue(classes), 2, 100_000), d = CliChecks.Range("--dim", parse.GetValue(dim), 1, 65536);
            CliChecks.Range("--descriptions", parse.GetValue(descriptions), 1, 100_000);
            CliChecks.Probability("--irrelevant", parse.GetValue(irrelevant));
            CliChecks.NonNegative("--prompt-bias", parse.GetValue(bias));
            CliChecks.NonNegative("--image-noise", parse.GetValue(noise));
            var k = ParseInts(parse.GetValue(shots)!, "--shots");
            var seedList = ParseInts(parse.GetValue(seeds)!, "--seeds");
            var trainingOptions = training.Build(parse, 1);
            var task = SyntheticTask.Create(c, d, trainPerClass: Math.Max(64, k.Max()), testPerClass: 200, parse.GetValue(descriptions), (ulong)parse.GetValue(dataSeed),
                imageNoise: parse.GetValue(noise), promptBias: parse.GetValue(bias), irrelevant: parse.GetValue(irrelevant));
            var options = trainingOptions with { Temperature = parse.GetValue(training.Temperature) ?? 0.01 };
            int? fixedEpochs = parse.GetValue(training.Epochs);
            var settings = new ExperimentSettings
            {
                Shots = k,
                Seeds = seedList,
                BaseToNew = true,
                Options = options,
                EpochsForShots = fixedEpochs is int e ? _ => e : ExperimentSettings.CoOpEpochs,
                Log = new SynchronousProgress<string>(line => Console.WriteLine(line)),
            };
            var data = new ExperimentData
            {
                ModelName = $"synthetic C={c} D={d}",
                ClassNames = task.ClassNames, ClassWeights = task.ClassWeights, Descriptions = task.Descriptions,
                Pool = task.TrainImages, PoolLabels = task.TrainLabels, Test = task.TestImages, TestLabels = task.TestLabels,
                Provenance = $"Synthetic task (SyntheticTask): unit prototypes μ_c; images normalize(μ_c + {parse.GetValue(noise)}ε); handcrafted prompt normalize(μ_c + {parse.GetValue(bias)}·μ_(c+1) + 0.5ε + 0.5m); " +
                    $"{parse.GetValue(descriptions)} descriptions per class, {parse.GetValue(irrelevant):P0} of them noise, the rest normalize(μ_c + 0.6ε + 0.5m); m = a shared text offset (modality gap). Logit temperature 0.01.",
            };
            var result = AapeExperiment.Run(data, settings, ct: ct);
            WriteReport(AapeExperimentReport.ToMarkdown(result, CommandLine()), outPath, parse.GetValue(append));
            return 0;
        })));
        return command;
    }

    // ---------------------------------------------------------------- helpers

    private static ClassDescriptions LoadDescriptions(string path, IReadOnlyList<string> classNames)
    {
        var desc = ClassDescriptions.Load(path, classNames);
        if (desc.IgnoredClasses.Count > 0)
            CliErrors.Warn($"{desc.IgnoredClasses.Count} class(es) in '{path}' are not in the class list and are ignored: {string.Join(", ", desc.IgnoredClasses.Take(10))}");
        return desc;
    }

    /// <summary>The class list: the --classes file, else the distinct labels sorted (numerically when they are all numbers, e.g. IDX labels).</summary>
    private static IReadOnlyList<string> ClassList(IReadOnlyList<string>? file, ImageSource source)
    {
        if (file is not null) return file;
        if (source.Items.Any(i => i.Label is null))
            throw new CliUsageException($"Some images of {source.Description} have no label; AAPE needs labelled images (CSV label column, --labels for IDX, or --labels-from-folders).");
        var distinct = source.Items.Select(i => i.Label!).Distinct(StringComparer.Ordinal).ToArray();
        return distinct.All(l => l.Length is > 0 and < 10 && l.All(char.IsAsciiDigit))
            ? distinct.OrderBy(l => int.Parse(l, CultureInfo.InvariantCulture)).ToArray()
            : distinct.Order(StringComparer.Ordinal).ToArray();
    }

    private static int[] LabelIndices(ImageSource source, IReadOnlyList<string> classNames)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < classNames.Count; i++) index[classNames[i]] = i;
        var result = new int[source.Count];
        for (int i = 0; i < source.Count; i++)
        {
            var item = source.Items[i];
            if (item.Label is null)
                throw new ArgumentException($"Image '{item.Id}' of {source.Description} has no label; AAPE needs labelled images.");
            if (!index.TryGetValue(item.Label, out result[i]))
                throw new ArgumentException($"Image '{item.Id}' has label \"{item.Label}\", which is not in the class list ({string.Join(", ", classNames.Take(12))}{(classNames.Count > 12 ? ", …" : "")}).");
        }
        return result;
    }

    /// <summary>The labels of the rows that were embedded (skipped images dropped), mapped through the items' ids.</summary>
    private static int[] KeptLabels(ImageEmbeddings embedded, ImageSource source, int[] labels)
    {
        var byId = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < source.Count; i++) byId[source.Items[i].Id] = labels.Length == source.Count ? labels[i] : -1;
        return embedded.Items.Select(item => byId.TryGetValue(item.Id, out int l) && l >= 0 ? l
            : throw new InvalidOperationException($"Internal error: no label for '{item.Id}'.")).ToArray();
    }

    private static int[] SampleShots(int[] labels, IReadOnlyList<string> classNames, int k, int seed)
    {
        var chosen = new List<int>();
        for (int c = 0; c < classNames.Count; c++)
        {
            var members = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();
            if (members.Length < k) throw new ArgumentException($"Class \"{classNames[c]}\" has {members.Length} images; --shots {k} needs {k}.");
            new Rng(AapeTrainer.StreamSeed(seed, 1000 + c)).Shuffle<int>(members);
            chosen.AddRange(members.Take(k));
        }
        chosen.Sort();
        return chosen.ToArray();
    }

    private static int[] FirstPerClass(int[] labels, int classes, int perClass)
    {
        var counts = new int[classes];
        var result = new List<int>();
        for (int i = 0; i < labels.Length; i++)
            if (counts[labels[i]]++ < perClass) result.Add(i);
        return result.ToArray();
    }

    private static int[] ParseInts(string s, string option)
    {
        try
        {
            var v = s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            if (v.Length == 0 || v.Any(x => x < 1)) throw new FormatException();
            return v;
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new CliUsageException($"{option} '{s}': give positive integers separated by commas, e.g. 1,2,4,8,16.");
        }
    }
}
