using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Samples.Commands;

/// <summary>Turns command-line arguments into library inputs, shared by the commands.</summary>
internal static class CliInputs
{
    /// <summary>
    /// A folder, a CSV manifest or an IDX image file (optionally with an IDX label file). IDX label k is named
    /// <paramref name="classNames"/>[k] (the command's class list: --classes, or the classifier's classes) and the
    /// number k when there is no class list.
    /// </summary>
    public static ImageSource Images(string images, string? idxLabels = null, bool exif = false, bool labelsFromFolders = false,
        IReadOnlyList<string>? classNames = null, string option = "--images", string labelsOption = "--labels")
    {
        CliChecks.InputPath(option, images);
        if (idxLabels is not null) CliChecks.InputFile(labelsOption, idxLabels);
        ImageSource source;
        bool idx = false;
        if (Directory.Exists(images)) source = ImageSource.FromFolder(images, labelsFromSubfolders: labelsFromFolders);
        else if (images.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) source = ImageSource.FromCsv(images);
        else if (images.Contains("idx", StringComparison.OrdinalIgnoreCase) || images.Contains("ubyte", StringComparison.OrdinalIgnoreCase))
        {
            source = ImageSource.FromIdx(images, idxLabels, idxLabels is null ? null : classNames);
            idx = true;
        }
        else throw new CliUsageException($"{option} '{images}': give a folder of images, a .csv manifest (path[,label][,candidates]) or an IDX file (*-idx3-ubyte[.gz]).");
        if (idxLabels is not null && !idx)
            throw new CliUsageException($"{labelsOption} is for IDX image files; {option} '{images}' is not one (a CSV has a label column, a folder can use --labels-from-folders).");
        if (source.Count == 0) throw new CliUsageException($"{option} '{images}' holds no images ({source.Description}{FirstProblems(source)}).");
        if (exif) source.DecodeOptions = source.DecodeOptions with { ApplyExifOrientation = true };
        return source;
    }

    private static string FirstProblems(ImageSource source) =>
        source.Skipped.Count == 0 ? "" : "; " + string.Join("; ", source.Skipped.Take(3).Select(s => $"{s.Id}: {s.Reason}"));

    /// <summary>Loads a model, remembering its content hash in the cache folder when there is one.</summary>
    public static ClipModel LoadModel(string path, string? cache, int ortThreads = 0, string option = "--model") =>
        ClipModel.Load(CliChecks.Model(option, path), ModelOptions(cache, ortThreads));

    /// <summary>How the CLI loads models: with a cache folder, the models' content hashes and ONNX Runtime's optimised
    /// models are kept there too.</summary>
    public static ClipModelOptions ModelOptions(string? cache, int ortThreads = 0) => new()
    {
        IntraOpThreads = ortThreads,
        ContentHashCache = cache,
        OptimizedModelDirectory = cache is null ? null : Path.Combine(cache, "optimized-models"),
    };

    /// <summary>The run's warnings (damaged cache records, read-only cache, …).</summary>
    public static void PrintWarnings(ImageEmbeddings result)
    {
        foreach (var w in result.Warnings) CliErrors.Warn(w);
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
                result = ImageEmbedder.Embed(model, source, CliChecks.CheckForModel(options, model) with { Progress = progress }, ct);
                task.Value = source.Count;
            });
        PrintWarnings(result!);
        return result!;
    }

    public static void PrintSkipped(IReadOnlyList<SkippedItem> skipped)
    {
        if (skipped.Count == 0) return;
        int files = skipped.Count(s => s.Index is not null);
        AnsiConsole.MarkupLine(files == skipped.Count ? $"[yellow]{skipped.Count} item(s) skipped:[/]"
            : $"[yellow]{skipped.Count} entries skipped ({files} unreadable image(s), {skipped.Count - files} not listed):[/]");
        foreach (var s in skipped.Take(20)) AnsiConsole.MarkupLine($"  [yellow]{Markup.Escape(s.Path ?? s.Id)}[/]: {Markup.Escape(s.Reason)}");
        if (skipped.Count > 20) AnsiConsole.MarkupLine($"  … and {skipped.Count - 20} more");
    }
}
