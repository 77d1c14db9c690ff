using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
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
        command.SetAction((parse, ct) => Task.FromResult(CliErrors.Run(() =>
        {
            var tuned = TunedClassifier.Load(parse.GetValue(classifier)!);
            using var clip = ClipModel.Load(parse.GetValue(model)!);
            if (clip.EmbeddingDimension != tuned.Weights.Dimension)
                throw new ArgumentException($"The classifier was trained in a {tuned.Weights.Dimension}-d embedding space (model '{tuned.ModelName}'), '{clip.Name}' has {clip.EmbeddingDimension}.");
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), labelsFromFolders: parse.GetValue(folders));
            var embedded = CliInputs.EmbedWithProgress(clip, source, new ImageEmbeddingOptions { CacheDirectory = parse.GetValue(cache) }, ct);
            CliInputs.PrintSkipped(embedded.Skipped);
            var p = tuned.Probabilities(embedded.Embeddings);
            int c = tuned.ClassNames.Count, k = Math.Clamp(parse.GetValue(top), 1, c);
            if (parse.GetValue(output) is { } path)
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
                    ?? throw new ArgumentException("vega eval needs a label for every image (CSV label column, IDX labels or --labels-from-folders).");
                double acc = tuned.Accuracy(embedded.Embeddings, truth);
                AnsiConsole.MarkupLine(Markup.Escape($"{tuned.Method} classifier on {embedded.Items.Count} images: accuracy {acc:P2}"));
            }
            else if (parse.GetValue(output) is null)
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

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
