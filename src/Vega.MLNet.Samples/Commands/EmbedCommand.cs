using System.CommandLine;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Runtime;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega embed --model DIR --images DIR|CSV|IDX [--cache DIR] [--out FILE.npy]</c>.</summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model folder or clip.json.", Required = true };
        var images = new Option<string>("--images") { Description = "Folder of images, CSV manifest (path[,label][,candidates]) or IDX image file.", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX label file for an IDX image file." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (re-runs and other commands reuse it)." };
        var output = new Option<string?>("--out") { Description = "Write the embeddings as a NumPy .npy file (float32 [N, D]) plus FILE.ids.txt with one item id per row." };
        var batch = new Option<int>("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        var threads = new Option<int>("--threads") { Description = "Decode threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var ortThreads = new Option<int>("--ort-threads") { Description = "ONNX Runtime intra-op threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var fast = new Option<bool>("--fast-identity") { Description = "Identify cached images by path + size + modification time instead of a content hash (no need to read cached files)." };
        var exif = new Option<bool>("--exif") { Description = "Apply EXIF orientation (the reference CLIP preprocessing does not)." };
        var command = new Command("embed", "Embed images with a model's image tower (batched, parallel decoding, crash-safe cache).")
            { model, images, labels, cache, output, batch, threads, ortThreads, fast, exif };
        command.SetAction((parse, ct) => Task.FromResult(CliErrors.Run(() =>
        {
            using var clip = ClipModel.Load(parse.GetValue(model)!, new ClipModelOptions { IntraOpThreads = parse.GetValue(ortThreads) });
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), parse.GetValue(exif));
            var options = new ImageEmbeddingOptions
            {
                BatchSize = parse.GetValue(batch),
                DecodeThreads = parse.GetValue(threads),
                CacheDirectory = parse.GetValue(cache),
                Identity = parse.GetValue(fast) ? ImageIdentity.PathSizeTime : ImageIdentity.Content,
            };
            var result = CliInputs.EmbedWithProgress(clip, source, options, ct);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"{result.Embeddings.Count} embeddings of width {result.Embeddings.Dimension} in {result.Elapsed.TotalSeconds:F1} s ({result.Computed} computed, {result.FromCache} from cache{(result.CacheFile is null ? "" : " " + result.CacheFile)})."));
            CliInputs.PrintSkipped(result.Skipped);
            if (parse.GetValue(output) is { } path)
            {
                Npy.WriteFloat32(path, result.Embeddings.Data, result.Embeddings.Count, result.Embeddings.Dimension);
                File.WriteAllLines(path + ".ids.txt", result.Items.Select(i => i.Id), new UTF8Encoding(false));
                AnsiConsole.MarkupLine(Markup.Escape($"wrote {path} and {path}.ids.txt"));
            }
            return 0;
        })));
        return command;
    }
}
