using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.PartialLabel;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega predict</c> (top-k classes per image) and <c>vega eval</c> (accuracy on labelled images) with a
/// classifier written by <c>vega tune</c>.</summary>
internal static class PredictCommand
{
    public static Command Create(bool evaluate)
    {
        var classifier = new Option<string>("--classifier") { Description = "Folder written by vega tune.", Required = true };
        var model = new Option<string>("--model") { Description = "The model the classifier was trained with.", Required = true };
        var images = new Option<string>("--images") { Description = "Folder, CSV or IDX of images.", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX label file for an IDX image file." };
        var folders = new Option<bool>("--labels-from-folders") { Description = "Labels are the images' sub-folder names." };
        var top = new Option<int>("--top") { Description = "Classes per image in the output.", DefaultValueFactory = _ => 3 };
        var output = new Option<string?>("--out") { Description = "Write predictions as CSV (id,class,probability…)." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder.", DefaultValueFactory = _ => ".vega-cache" };
        var command = new Command(evaluate ? "eval" : "predict", evaluate
            ? "Accuracy of a tuned classifier on labelled images."
            : "Predict classes of images with a tuned classifier.") { classifier, model, images, labels, folders, top, output, cache };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            string classifierDir = CliChecks.InputFolder("--classifier", parse.GetValue(classifier)!);
            var tuned = TunedClassifier.Load(classifierDir);
            string? outPath = parse.GetValue(output) is { } o ? CliChecks.OutputFile("--out", o) : null;
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            CliChecks.Range("--top", parse.GetValue(top), 1, int.MaxValue, "classes per image");
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), labelsFromFolders: parse.GetValue(folders), classNames: tuned.ClassNames);
            using var clip = CliInputs.LoadModel(parse.GetValue(model)!, cacheDir);
            if (!tuned.CheckModel(clip, classifierDir))
                CliErrors.Warn($"The classifier in '{classifierDir}' does not record which model it was trained with (written by an older vega), so --model cannot be verified; train it again to record it.");
            var embedded = CliInputs.EmbedWithProgress(clip, source, new ImageEmbeddingOptions { CacheDirectory = cacheDir }, ct);
            CliInputs.PrintSkipped(embedded.Skipped);
            var p = tuned.Probabilities(embedded.Embeddings);
            int c = tuned.ClassNames.Count, k = Math.Clamp(parse.GetValue(top), 1, c);
            if (outPath is { } path)
            {
                var sb = new StringBuilder("id");
                for (int r = 1; r <= k; r++) sb.Append(CultureInfo.InvariantCulture, $",class{r},probability{r}");
                sb.Append('\n');
                for (int i = 0; i < embedded.Items.Count; i++)
                {
                    sb.Append(Csv(embedded.Items[i].Id));
                    foreach (int j in TopK(p.AsSpan(i * c, c), k)) sb.Append(',').Append(Csv(tuned.ClassNames[j])).Append(',').Append(p[i * c + j].ToString("F5", CultureInfo.InvariantCulture));
                    sb.Append('\n');
                }
                File.WriteAllText(path, sb.ToString(), new UTF8Encoding(false));
                AnsiConsole.MarkupLine(Markup.Escape($"wrote {path}"));
            }
            if (evaluate)
            {
                var truth = TuneCommand.LabelsOf(embedded.Items, tuned.ClassNames)
                    ?? throw new CliUsageException("vega eval needs a label for every image (CSV label column, IDX labels or --labels-from-folders).");
                double acc = tuned.Accuracy(embedded.Embeddings, truth);
                AnsiConsole.MarkupLine(Markup.Escape($"{tuned.Method} classifier on {embedded.Items.Count} images: accuracy {acc:P2}"));
            }
            else if (outPath is null)
            {
                var table = new Table().AddColumns("image", "prediction");
                for (int i = 0; i < Math.Min(embedded.Items.Count, 50); i++)
                    table.AddRow(Markup.Escape(embedded.Items[i].Id), Markup.Escape(string.Join(", ", TopK(p.AsSpan(i * c, c), k).Select(j => $"{tuned.ClassNames[j]} {p[i * c + j]:P1}"))));
                AnsiConsole.Write(table);
            }
            return 0;
        })));
        return command;
    }

    private static int[] TopK(ReadOnlySpan<float> p, int k)
    {
        var idx = Enumerable.Range(0, p.Length).ToArray();
        var copy = p.ToArray();
        Array.Sort(idx, (a, b) => copy[b].CompareTo(copy[a]));
        return idx[..k];
    }

    /// <summary>RFC 4180 field: quoted when it holds a comma, quote or line break (ids and class names never hold line breaks).</summary>
    internal static string Csv(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
