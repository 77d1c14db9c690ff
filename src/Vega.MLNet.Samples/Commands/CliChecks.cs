using System.Globalization;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Samples.Commands;

/// <summary>A bad command-line argument: the message names the option, what is wrong and the fix.</summary>
internal sealed class CliUsageException(string message) : Exception(message);

/// <summary>
/// Checks of command-line arguments made before any work starts (docs/reliability.md): inputs exist, outputs can be
/// written (not a folder, the folder exists, the place is writable), numbers are in range. Every failure is a
/// <see cref="CliUsageException"/> naming the option, the value and the fix.
/// </summary>
internal static class CliChecks
{
    /// <summary>Largest --batch for the image tower (the engine also checks the model's own limit).</summary>
    public const int MaxImageBatch = 4096;

    /// <summary>Largest --threads / --ort-threads.</summary>
    public const int MaxThreads = 1024;

    // ------------------------------------------------------------------ inputs

    /// <summary>An existing file (links followed).</summary>
    public static string InputFile(string option, string path)
    {
        if (Directory.Exists(path)) throw new CliUsageException($"{option} '{path}' is a folder; give a file.");
        if (!File.Exists(path)) throw new CliUsageException($"{option} '{path}': no such file{Missing(path)}.");
        return path;
    }

    /// <summary>An existing folder.</summary>
    public static string InputFolder(string option, string path)
    {
        if (File.Exists(path)) throw new CliUsageException($"{option} '{path}' is a file; give a folder.");
        if (!Directory.Exists(path)) throw new CliUsageException($"{option} '{path}': no such folder{Missing(path)}.");
        return path;
    }

    /// <summary>An existing file or folder.</summary>
    public static string InputPath(string option, string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new CliUsageException($"{option} '{path}': no such file or folder{Missing(path)}.");
        return path;
    }

    /// <summary>A model: a folder or a .json manifest.</summary>
    public static string Model(string option, string path)
    {
        if (Directory.Exists(path)) return path;
        if (File.Exists(path) && path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return path;
        if (File.Exists(path)) throw new CliUsageException($"{option} '{path}' is a file; give the model's folder (or its clip.json).");
        throw new CliUsageException($"{option} '{path}': no such model folder{Missing(path)}.");
    }

    private static string Missing(string path)
    {
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        return parent is not null && !Directory.Exists(parent) ? $" (the folder '{parent}' does not exist either)" : "";
    }

    // ------------------------------------------------------------------ outputs

    /// <summary>
    /// A file that will be written: not a folder, its folder exists, and it can be created or overwritten there
    /// (checked by creating a temporary file beside it, so read-only places are found before the work).
    /// </summary>
    public static string OutputFile(string option, string path)
    {
        if (path.Length == 0) throw new CliUsageException($"{option}: give a file name.");
        if (Directory.Exists(path) || path.EndsWith('/'))
            throw new CliUsageException($"{option} '{path}' is a folder; give a file name inside it, e.g. '{Path.Combine(path, "out" + Suggested(option))}'.");
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        if (File.Exists(folder)) throw new CliUsageException($"{option} '{path}': '{folder}' is a file, not a folder.");
        if (!Directory.Exists(folder))
            throw new CliUsageException($"{option} '{path}': the folder '{folder}' does not exist; create it first (mkdir -p '{folder}') or choose another place.");
        if (File.Exists(full))
        {
            try
            {
                using var _ = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliUsageException($"{option} '{path}' exists and cannot be overwritten ({e.Message}); choose another file or fix its permissions.");
            }
        }
        else if (Unwritable(folder) is { } why)
            throw new CliUsageException($"{option} '{path}': cannot write in '{folder}' ({why}); choose a writable place.");
        return path;
    }

    /// <summary>A folder that will be written: created if missing, and writable.</summary>
    public static string OutputFolder(string option, string path)
    {
        if (path.Length == 0) throw new CliUsageException($"{option}: give a folder.");
        if (File.Exists(path)) throw new CliUsageException($"{option} '{path}' is a file; give a folder (it is created if missing).");
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"{option} '{path}': cannot create the folder ({e.Message}); choose a writable place.");
        }
        if (Unwritable(path) is { } why) throw new CliUsageException($"{option} '{path}': cannot write in this folder ({why}); choose a writable place.");
        return path;
    }

    /// <summary>
    /// The embedding cache folder: a file is an error; a missing folder must be creatable; an existing folder that is
    /// read-only is accepted (cached rows are used, new ones are not saved, and the run says so).
    /// </summary>
    public static string? CacheFolder(string option, string? path)
    {
        if (path is null) return null;
        if (path.Length == 0) throw new CliUsageException($"{option}: give a folder.");
        if (File.Exists(path)) throw new CliUsageException($"{option} '{path}' is a file; give a folder for the embedding cache.");
        if (Directory.Exists(path)) return path;
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"{option} '{path}': cannot create the cache folder ({e.Message}); give a writable folder with {option}.");
        }
        return path;
    }

    private static string? Unwritable(string folder)
    {
        try
        {
            using var probe = new FileStream(Path.Combine(folder, $".vega-write-check-{Environment.ProcessId}-{Guid.NewGuid():N}"),
                FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    private static string Suggested(string option) => option switch
    {
        "--report" => ".html",
        "--json" => ".json",
        _ => ".npy",
    };

    // ------------------------------------------------------------------ numbers

    public static int Range(string option, int value, int min, int max, string? meaning = null)
    {
        if (value < min || value > max)
            throw new CliUsageException(string.Create(CultureInfo.InvariantCulture,
                $"{option} {value}: must be between {min} and {max}{(meaning is null ? "" : " (" + meaning + ")")}."));
        return value;
    }

    public static int? Range(string option, int? value, int min, int max, string? meaning = null) =>
        value is int v ? Range(option, v, min, max, meaning) : null;

    public static double Positive(string option, double value)
    {
        if (!(value > 0) || !double.IsFinite(value))
            throw new CliUsageException(string.Create(CultureInfo.InvariantCulture, $"{option} {value}: must be a positive number."));
        return value;
    }

    public static double NonNegative(string option, double value)
    {
        if (!(value >= 0) || !double.IsFinite(value))
            throw new CliUsageException(string.Create(CultureInfo.InvariantCulture, $"{option} {value}: must be zero or a positive number."));
        return value;
    }

    public static double Probability(string option, double value)
    {
        if (!(value >= 0 && value <= 1))
            throw new CliUsageException(string.Create(CultureInfo.InvariantCulture, $"{option} {value}: must be between 0 and 1."));
        return value;
    }

    /// <summary>--batch of the image tower: 1 … <see cref="MaxImageBatch"/>.</summary>
    public static int ImageBatch(string option, int value) => Range(option, value, 1, MaxImageBatch, "images per image-tower run");

    /// <summary>--threads / --ort-threads: 0 (one per core) … <see cref="MaxThreads"/>.</summary>
    public static int Threads(string option, int value) => Range(option, value, 0, MaxThreads, "0 = one per core");

    /// <summary>The engine options, validated against the model once it is loaded.</summary>
    public static ImageEmbeddingOptions CheckForModel(ImageEmbeddingOptions options, Models.ClipModel model, string batchOption = "--batch")
    {
        int max = ImageEmbedder.MaxBatchSize(model);
        if (options.BatchSize > max)
            throw new CliUsageException($"{batchOption} {options.BatchSize}: too large for {model.Preprocessing.ImageSize}×{model.Preprocessing.ImageSize} images of '{model.Name}'; use at most {max}.");
        return options;
    }
}
