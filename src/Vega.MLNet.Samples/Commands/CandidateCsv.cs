using System.Text;
using Microsoft.ML;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// The input files of <c>vega sample candidate-labels</c> when none are given: candidate-label sets drawn from the demo's
/// labelled images (the sample itself reads any CSV of that format through the public API only).
/// </summary>
internal static class CandidateCsv
{
    /// <summary>
    /// Writes a training CSV (<c>path,candidates,label</c>: <paramref name="shots"/> images per class of
    /// <paramref name="labelsCsv"/>, each with its true class plus every other class with probability <paramref name="q"/>)
    /// and a test CSV (<c>path,label</c>: the other images) into <paramref name="folder"/>, with absolute paths.
    /// </summary>
    public static (string Train, string Test) WriteCandidateCsv(string labelsCsv, IReadOnlyList<string> classNames, string folder, int shots = 16, double q = 0.3, ulong seed = 1)
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.CreateEnumerable<ImageData>(ml.Data.LoadFromTextFile<ImageData>(labelsCsv, separatorChar: ',', hasHeader: true, allowQuoting: true), reuseRowObject: false)
            .Select(r => new ImageData { ImagePath = Path.IsPathRooted(r.ImagePath) ? r.ImagePath : Path.Combine(Folder(labelsCsv), r.ImagePath), Label = r.Label })
            .ToArray();
        var labels = rows.Select(r => classNames.ToList().IndexOf(r.Label)).ToArray();
        if (Array.IndexOf(labels, -1) is int bad and >= 0)
            throw new InvalidDataException($"'{labelsCsv}': \"{rows[bad].Label}\" is not one of the class names.");
        var chosen = CandidateLabels.SampleShots(labels, classNames.Count, shots, seed);
        var candidates = CandidateLabels.Generate(chosen.Select(i => labels[i]).ToArray(), classNames.Count, q, seed);
        Directory.CreateDirectory(folder);
        var train = new StringBuilder("path,candidates,label\n");
        for (int k = 0; k < chosen.Length; k++)
        {
            var set = Enumerable.Range(0, classNames.Count).Where(c => candidates.Contains(k, c)).Select(c => classNames[c]);
            train.Append(Csv(rows[chosen[k]].ImagePath)).Append(',').Append(Csv(string.Join('|', set))).Append(',').Append(Csv(rows[chosen[k]].Label)).Append('\n');
        }
        var inTrain = chosen.ToHashSet();
        var testCsv = new StringBuilder("path,label\n");
        for (int i = 0; i < rows.Length; i++)
            if (!inTrain.Contains(i)) testCsv.Append(Csv(rows[i].ImagePath)).Append(',').Append(Csv(rows[i].Label)).Append('\n');
        string trainPath = Path.Combine(folder, "train.csv"), testPath = Path.Combine(folder, "test.csv");
        File.WriteAllText(trainPath, train.ToString());
        File.WriteAllText(testPath, testCsv.ToString());
        return (trainPath, testPath);
    }

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static string Folder(string csv) => Path.GetDirectoryName(Path.GetFullPath(csv))!;
}
