using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Samples.Commands;

/// <summary>Turns command-line arguments into library inputs, shared by the commands.</summary>
internal static class CliInputs
{
    /// <summary>A folder, a CSV manifest or an IDX image file (optionally with an IDX label file).</summary>
    public static ImageSource Images(string images, string? idxLabels = null, bool exif = false, bool labelsFromFolders = false)
    {
        ImageSource source;
        if (Directory.Exists(images)) source = ImageSource.FromFolder(images, labelsFromSubfolders: labelsFromFolders);
        else if (!File.Exists(images)) throw new FileNotFoundException($"--images '{images}' is neither a folder nor a file.", images);
        else if (images.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) source = ImageSource.FromCsv(images);
        else if (images.Contains("idx", StringComparison.OrdinalIgnoreCase) || images.Contains("ubyte", StringComparison.OrdinalIgnoreCase))
            source = ImageSource.FromIdx(images, idxLabels, idxLabels is null ? null : ImageSource.FashionMnistClassNames);
        else throw new ArgumentException($"--images '{images}': give a folder of images, a .csv manifest (path[,label][,candidates]) or an IDX file (*-idx3-ubyte[.gz]).");
        if (source.Count == 0) throw new ArgumentException($"--images '{images}' holds no images ({source.Description}).");
        if (exif) source.DecodeOptions = source.DecodeOptions with { ApplyExifOrientation = true };
        return source;
    }

    /// <summary>Embeds with a live progress bar (images/s, ETA) on the terminal.</summary>
    public static ImageEmbeddings EmbedWithProgress(ClipModel model, ImageSource source, ImageEmbeddingOptions options, CancellationToken ct)
    {
        ImageEmbeddings? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape($"{model.Name}: embedding {source.Count} images"), maxValue: source.Count);
                var progress = new Progress<EmbeddingProgress>(p =>
                {
                    task.Value = p.Done;
                    task.Description = Markup.Escape($"{model.Name}: {p.Done}/{p.Total} ({p.ImagesPerSecond:F1} images/s, {p.FromCache} cached, {p.Skipped} skipped)");
                });
                result = ImageEmbedder.Embed(model, source, options with { Progress = progress }, ct);
                task.Value = source.Count;
            });
        return result!;
    }

    public static void PrintSkipped(IReadOnlyList<SkippedItem> skipped)
    {
        if (skipped.Count == 0) return;
        AnsiConsole.MarkupLine($"[yellow]{skipped.Count} item(s) skipped:[/]");
        foreach (var s in skipped.Take(20)) AnsiConsole.MarkupLine($"  [yellow]{Markup.Escape(s.Path ?? s.Id)}[/]: {Markup.Escape(s.Reason)}");
        if (skipped.Count > 20) AnsiConsole.MarkupLine($"  … and {skipped.Count - 20} more");
    }
}
