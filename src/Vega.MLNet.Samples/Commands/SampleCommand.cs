using System.CommandLine;
using Vega.MLNet.Samples.Samples;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// <c>vega sample NAME</c>: runs one of the ML.NET samples in Samples/ (read them for the API). Without --model, --images
/// and --classes they use what <c>vega demo</c> built: its zoo of CLIP models and its Fashion-MNIST PNG sets.
/// </summary>
internal static class SampleCommand
{
    private const string DemoFolder = ".vega-demo";

    public static Command Create()
    {
        var command = new Command("sample", "Run an ML.NET sample (source in src/Vega.MLNet.Samples/Samples/); defaults come from `vega demo`'s output.");

        var model = new Option<string?>("--model") { Description = "Model folder (default: the demo zoo's first model)." };
        var images = new Option<string?>("--images") { Description = "Image folder (default: the demo's clean PNG set)." };
        var classes = new Option<string?>("--classes") { Description = "Class names file (default: the demo's classes.txt)." };
        var zeroShot = new Command("zero-shot", "Zero-shot classification of a folder: EmbedImages → ZeroShot → MapKeyToValue.") { model, images, classes };
        zeroShot.SetAction(parse => CliErrors.Run(() =>
        {
            ZeroShotClassification.Run(Model("--model", parse.GetValue(model)), Folder("--images", parse.GetValue(images)), Classes(parse.GetValue(classes)), Console.Out);
            return 0;
        }));
        command.Subcommands.Add(zeroShot);

        var models = new Option<string[]>("--models") { Description = "Candidate model folders (default: the demo zoo).", AllowMultipleArgumentsPerToken = true };
        var images2 = new Option<string?>("--images") { Description = "Image folder (default: the demo's clean PNG set)." };
        var classes2 = new Option<string?>("--classes") { Description = "Class names file (default: the demo's classes.txt)." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (default: the demo's)." };
        var select = new Command("select-model", "Choose among candidate models without labels: SelectVisionLanguageModel and its ranking.") { models, images2, classes2, cache };
        select.SetAction(parse => CliErrors.Run(() =>
        {
            var given = parse.GetValue(models);
            var candidates = given is { Length: > 0 } ? given.Select(m => CliChecks.Model("--models", m)).ToArray() : DemoModels();
            ModelSelection.Run(candidates, Folder("--images", parse.GetValue(images2)), Classes(parse.GetValue(classes2)),
                CliChecks.CacheFolder("--cache", parse.GetValue(cache) ?? Path.Combine(DemoFolder, "cache")), Console.Out);
            return 0;
        }));
        command.Subcommands.Add(select);

        var model3 = new Option<string?>("--model") { Description = "Model folder (default: the demo zoo's first model)." };
        var labels = new Option<string?>("--labels") { Description = "CSV of path,label with a header (default: the demo's clean labels.csv)." };
        var classes3 = new Option<string?>("--classes") { Description = "Class names file (default: the demo's classes.txt)." };
        var evaluate = new Command("evaluate", "Evaluate a zero-shot classifier on labelled images: MulticlassClassification.Evaluate and the confusion matrix.") { model3, labels, classes3 };
        evaluate.SetAction(parse => CliErrors.Run(() =>
        {
            string labelsFile = parse.GetValue(labels) is { } l ? CliChecks.InputFile("--labels", l) : DemoFile("downstream", "clean", "labels.csv");
            Evaluation.Run(Model("--model", parse.GetValue(model3)), labelsFile, Classes(parse.GetValue(classes3)), Console.Out);
            return 0;
        }));
        command.Subcommands.Add(evaluate);

        var model4 = new Option<string?>("--model") { Description = "Model folder (default: the demo zoo's first model)." };
        var images4 = new Option<string?>("--images") { Description = "Image folder (default: the demo's clean PNG set)." };
        var classes4 = new Option<string?>("--classes") { Description = "Class names file (default: the demo's classes.txt)." };
        var zip = new Option<string>("--out") { Description = "The saved model.", DefaultValueFactory = _ => "vega-zero-shot.zip" };
        var saveLoad = new Command("save-load", "Fit a zero-shot pipeline, ml.Model.Save it, ml.Model.Load it and predict with a PredictionEngine.") { model4, images4, classes4, zip };
        saveLoad.SetAction(parse => CliErrors.Run(() =>
        {
            string folder = Folder("--images", parse.GetValue(images4));
            string zipPath = CliChecks.OutputFile("--out", parse.GetValue(zip)!);
            SaveLoadPredict.Save(Model("--model", parse.GetValue(model4)), folder, Classes(parse.GetValue(classes4)), zipPath, Console.Out);
            SaveLoadPredict.Predict(zipPath, Directory.GetFiles(folder).Order(StringComparer.Ordinal).Take(5).ToArray(), Console.Out);
            return 0;
        }));
        command.Subcommands.Add(saveLoad);

        var saved = new Option<string>("--saved") { Description = "A model saved by `vega sample save-load` (or any ml.Model.Save of a Vega.MLNet pipeline).", Required = true };
        var images5 = new Option<string[]>("--images") { Description = "Image files to classify.", Required = true, AllowMultipleArgumentsPerToken = true };
        var predict = new Command("predict", "Load a saved model in this process and classify images one by one with a PredictionEngine.") { saved, images5 };
        predict.SetAction(parse => CliErrors.Run(() =>
        {
            SaveLoadPredict.Predict(CliChecks.InputFile("--saved", parse.GetValue(saved)!), parse.GetValue(images5)!.Select(i => CliChecks.InputFile("--images", i)).ToArray(), Console.Out);
            return 0;
        }));
        command.Subcommands.Add(predict);

        var model6 = new Option<string?>("--model") { Description = "Model folder (default: the demo zoo's first model)." };
        var train = new Option<string?>("--train") { Description = "CSV of path,candidates with a header; candidates are class names separated by | (default: written from the demo's labels.csv: 16 images per class, q = 0.3)." };
        var test = new Option<string?>("--test") { Description = "CSV of path,label with a header, for the evaluation (default: the demo images not used for training)." };
        var classes6 = new Option<string?>("--classes") { Description = "Class names file (default: the demo's classes.txt)." };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 20 };
        var candidates = new Command("candidate-labels", "Prompt learning from candidate-label sets: TokenizeIntoWords + MapValueToKey, EmbedImages → PromptTuning, Evaluate, and ML.NET's LbfgsMaximumEntropy as the baseline.")
            { model6, train, test, classes6, epochs };
        candidates.SetAction(parse => CliErrors.Run(() =>
        {
            var classNames = Classes(parse.GetValue(classes6));
            string modelFolder = Model("--model", parse.GetValue(model6));
            int epochCount = CliChecks.Range("--epochs", parse.GetValue(epochs), 1, 10_000);
            string? trainCsv = parse.GetValue(train) is { } t ? CliChecks.InputFile("--train", t) : null;
            string? testCsv = parse.GetValue(test) is { } e ? CliChecks.InputFile("--test", e) : null;
            if (trainCsv is null || testCsv is null)
            {
                if (trainCsv is not null || testCsv is not null) throw new CliUsageException("--train and --test go together (or give neither to use the demo's images).");
                (trainCsv, testCsv) = Vega.MLNet.Samples.Commands.CandidateCsv.WriteCandidateCsv(DemoFile("downstream", "clean", "labels.csv"), classNames, Path.Combine(DemoFolder, "candidate-labels"));
                Console.WriteLine($"training CSV {trainCsv}, test CSV {testCsv}");
            }
            CandidateLabelTraining.Run(modelFolder, trainCsv, testCsv, classNames, Console.Out, epochCount);
            return 0;
        }));
        command.Subcommands.Add(candidates);
        return command;
    }

    private static IReadOnlyList<string> Classes(string? file) =>
        PromptTemplates.ReadClassNames(file is null ? DemoFile("downstream", "classes.txt") : CliChecks.InputFile("--classes", file));

    private static string Model(string option, string? given) => given is null ? DemoModels()[0] : CliChecks.Model(option, given);

    private static string Folder(string option, string? given) => given is null ? DemoFile("downstream", "clean", "images") : CliChecks.InputFolder(option, given);

    private static string DemoFile(params string[] parts)
    {
        string path = Path.Combine([DemoFolder, .. parts]);
        return File.Exists(path) || Directory.Exists(path) ? path
            : throw new FileNotFoundException($"'{path}' does not exist: run `bash scripts/demo.sh` first (it builds the demo zoo and image sets), or pass the option explicitly.");
    }

    /// <summary>The demo zoo's model folders (the zoo of the most recent build).</summary>
    internal static string[] DemoModels()
    {
        string zoo = Path.Combine(DemoFolder, "zoo");
        var build = Directory.Exists(zoo) ? new DirectoryInfo(zoo).GetDirectories().OrderByDescending(d => d.LastWriteTimeUtc).FirstOrDefault() : null;
        var models = build?.GetDirectories().Where(d => d.GetFiles("*.onnx").Length > 0).Select(d => d.FullName).Order(StringComparer.Ordinal).ToArray();
        return models is { Length: > 0 } ? models
            : throw new FileNotFoundException($"No demo zoo under '{zoo}': run `bash scripts/demo.sh` first, or pass --model/--models.");
    }
}
