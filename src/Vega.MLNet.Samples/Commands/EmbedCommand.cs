using System.CommandLine;
using System.Text;
using Spectre.Console;
using Vega.MLNet.Embedding;

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
        var output = new Option<string?>("--out") { Description = "Write the embeddings as a NumPy .npy file (float32 [N, D]) plus FILE.ids.txt with one item id per line (row i of the matrix is line i; ids never contain line breaks)." };
        var batch = new Option<int>("--batch") { Description = "Images per image-tower run.", DefaultValueFactory = _ => 32 };
        var threads = new Option<int>("--threads") { Description = "Decode threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var ortThreads = new Option<int>("--ort-threads") { Description = "ONNX Runtime intra-op threads (0 = one per core).", DefaultValueFactory = _ => 0 };
        var fast = new Option<bool>("--fast-identity") { Description = "Identify cached images by path + size + modification time instead of a content hash (no need to read cached files)." };
        var exif = new Option<bool>("--exif") { Description = "Apply EXIF orientation (the reference CLIP preprocessing does not)." };
        var command = new Command("embed", "Embed images with a model's image tower (batched, parallel decoding, crash-safe cache).")
            { model, images, labels, cache, output, batch, threads, ortThreads, fast, exif };
        command.SetAction((parse, ct) => Task.Run(() => CliErrors.Run(() =>
        {
            // Every argument and output is checked before the work starts.
            string? cacheDir = CliChecks.CacheFolder("--cache", parse.GetValue(cache));
            string? outPath = parse.GetValue(output) is { } o ? CliChecks.OutputFile("--out", o) : null;
            if (outPath is not null) CliChecks.OutputFile("--out", outPath + ".ids.txt");
            int batchSize = CliChecks.ImageBatch("--batch", parse.GetValue(batch));
            int decodeThreads = CliChecks.Threads("--threads", parse.GetValue(threads));
            int intraOp = CliChecks.Threads("--ort-threads", parse.GetValue(ortThreads));
            var source = CliInputs.Images(parse.GetValue(images)!, parse.GetValue(labels), parse.GetValue(exif));
            using var clip = CliInputs.LoadModel(parse.GetValue(model)!, cacheDir, intraOp);
            var options = CliChecks.CheckForModel(new ImageEmbeddingOptions
            {
                BatchSize = batchSize,
                DecodeThreads = decodeThreads,
                CacheDirectory = cacheDir,
                Identity = parse.GetValue(fast) ? ImageIdentity.PathSizeTime : ImageIdentity.Content,
            }, clip);
            var result = CliInputs.EmbedWithProgress(clip, source, options, ct);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"{result.Embeddings.Count} embeddings of width {result.Embeddings.Dimension} in {result.Elapsed.TotalSeconds:F1} s ({result.Computed} computed, {result.FromCache} from cache{(result.CacheFile is null ? "" : " " + result.CacheFile)})."));
            CliInputs.PrintSkipped(result.Skipped);
            if (outPath is not null)
            {
                // ids.txt holds one id per line: ids with a line-breaking character were refused when the source was listed.
                foreach (var item in result.Items)
                    if (Imaging.ImageSource.LineBreakingCharacter(item.Id) is { } bad)
                        throw new InvalidDataException($"The image id '{item.Id.ReplaceLineEndings(" ")}' {bad}.");
                Npy.WriteFloat32(outPath, result.Embeddings.Data, result.Embeddings.Count, result.Embeddings.Dimension);
                File.WriteAllText(outPath + ".ids.txt", string.Concat(result.Items.Select(i => i.Id + "\n")), new UTF8Encoding(false));
                AnsiConsole.MarkupLine(Markup.Escape($"wrote {outPath} and {outPath}.ids.txt"));
            }
            return 0;
        })));
        return command;
    }
}
