using Microsoft.ML;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>Input helpers shared by the samples: an image folder or a <c>path,label</c> CSV as an IDataView.</summary>
internal static class SampleData
{
    /// <summary>Every image file in <paramref name="folder"/> (recursively), in path order, without labels.</summary>
    public static IDataView Folder(MLContext ml, string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The image folder '{folder}' does not exist.");
        string[] extensions = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"];
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal).Select(f => new ImageData { ImagePath = f }).ToArray();
        if (files.Length == 0) throw new InvalidDataException($"No image files (JPEG, PNG, WebP, GIF, BMP) in '{folder}'.");
        return ml.Data.LoadFromEnumerable(files);
    }

    /// <summary>A <c>path,label</c> CSV with a header row; relative paths are relative to the CSV's folder.</summary>
    public static IDataView LabelledCsv(MLContext ml, string csv)
    {
        if (!File.Exists(csv)) throw new FileNotFoundException($"The labels file '{csv}' does not exist.", csv);
        string folder = Path.GetDirectoryName(Path.GetFullPath(csv))!;
        var rows = ml.Data.CreateEnumerable<ImageData>(ml.Data.LoadFromTextFile<ImageData>(csv, separatorChar: ',', hasHeader: true, allowQuoting: true), reuseRowObject: false)
            .Select(r => new ImageData { ImagePath = Path.IsPathRooted(r.ImagePath) ? r.ImagePath : Path.Combine(folder, r.ImagePath), Label = r.Label })
            .ToArray();
        return ml.Data.LoadFromEnumerable(rows);
    }

    /// <summary>The class names as a one-column IDataView: the key order for MapValueToKey, so label keys and predicted keys agree.</summary>
    public static IDataView ClassKeys(MLContext ml, IReadOnlyList<string> classNames) =>
        ml.Data.LoadFromEnumerable(classNames.Select(c => new ClassName { Label = c }));

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}
