using Microsoft.ML;
using Vega.MLNet.Samples.Samples.DataModels;

namespace Vega.MLNet.Samples.Samples;

/// <summary>
/// Sample: choose among candidate CLIP models for unlabeled images, without labels (AutoML-style), with
/// <c>ml.Transforms.SelectVisionLanguageModel</c>, and print the ranking. Run it with <c>vega sample select-model</c>.
/// </summary>
public static class ModelSelection
{
    /// <summary>Ranks <paramref name="modelFolders"/> on the images of <paramref name="imageFolder"/> and prints the ranking.</summary>
    public static string Run(IReadOnlyList<string> modelFolders, string imageFolder, IReadOnlyList<string> classNames, string? cacheFolder, TextWriter output)
    {
        var ml = new MLContext(seed: 1);
        IDataView unlabeled = SampleData.Folder(ml, imageFolder);

        using var selection = ml.Transforms.SelectVisionLanguageModel(new VisionLanguageModelSelectingEstimator.Options
        {
            CandidateModelPaths = modelFolders,
            ClassNames = classNames,
            ImageColumnName = nameof(ImageData.ImagePath),
            CacheDirectory = cacheFolder,                   // fit again over the same images: nothing is embedded twice
        }).Fit(unlabeled);

        output.WriteLine($"metric: {selection.Result.Ranking.Metric} (higher is better)");
        foreach (var m in selection.Ranking)
            output.WriteLine($"{m.Rank}. {m.Name}: {m.Score:F4}" + (m.Interval is { } i ? $" [{i.Lower:F4}, {i.Upper:F4}]" : ""));
        output.WriteLine($"chosen: {selection.ChosenModel}" + (selection.TooCloseToCall ? " (too close to call: the two best overlap)" : ""));
        return selection.ChosenModel;
    }
}
