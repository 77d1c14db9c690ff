using Microsoft.ML;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>Public-API stand-ins for ML.NET's internal test helpers.</summary>
internal static class MLNetTestUtils
{
    private sealed class Empty { }

    /// <summary>The SchemaShape of the columns of <typeparamref name="T"/> (ML.NET keeps SchemaShape.Create internal: a
    /// CustomMapping estimator that outputs <typeparamref name="T"/> declares them).</summary>
    public static SchemaShape ShapeOf<T>() where T : class, new() =>
        new MLContext().Transforms.CustomMapping<Empty, T>((_, _) => { }, contractName: null).GetOutputSchema(new SchemaShape([]));

    /// <summary>
    /// <c>MulticlassClassification.Evaluate</c> over <paramref name="scored"/> with the true labels mapped to keys over
    /// <paramref name="classes"/> in class order: its micro-accuracy must be the share of rows whose predicted key
    /// (1-based) names the true label.
    /// </summary>
    public static Microsoft.ML.Data.MulticlassClassificationMetrics EvaluateCountsTheRightPredictions(MLContext ml, IDataView scored, IReadOnlyList<string> classes, IReadOnlyList<string> trueLabels, IReadOnlyList<uint> predictedKeys)
    {
        var keyed = ml.Transforms.Conversion.MapValueToKey("LabelKey", "Label", keyData: ml.Data.LoadFromEnumerable(classes.Select(c => new { Label = c })))
            .Fit(scored).Transform(scored);
        var metrics = ml.MulticlassClassification.Evaluate(keyed, labelColumnName: "LabelKey");
        double accuracy = trueLabels.Where((label, i) => classes[(int)predictedKeys[i] - 1] == label).Count() / (double)trueLabels.Count;
        Assert.Equal(accuracy, metrics.MicroAccuracy, 10);
        return metrics;
    }

    /// <summary>
    /// Loads <paramref name="zip"/> in another process (<c>vega sample predict</c>) and checks that it prints, for each of
    /// <paramref name="images"/>, the class and the scores (to 1e-5) that <paramref name="engine"/> gives in this one.
    /// </summary>
    public static void AnotherProcessPredictsAs(string zip, IReadOnlyList<string> images,
        PredictionEngine<Vega.MLNet.Samples.Samples.DataModels.ImageData, Vega.MLNet.Samples.Samples.DataModels.ImagePrediction> engine)
    {
        var run = Vega.MLNet.Tests.Infrastructure.TinyClip.Vega(["sample", "predict", "--saved", zip, "--images", .. images]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(images.Count, lines.Length);
        for (int i = 0; i < images.Count; i++)
        {
            var parts = lines[i].Split('\t');
            var expected = engine.Predict(new Vega.MLNet.Samples.Samples.DataModels.ImageData { ImagePath = images[i] });
            Assert.Equal(Path.GetFileName(images[i]), parts[0]);
            Assert.Equal(expected.PredictedClass, parts[1]);
            var scores = parts[2].Split(' ').Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            Assert.True(Vega.MLNet.Tests.Infrastructure.Fixtures.MaxAbsDiff(expected.Score, scores) <= 1e-5, lines[i]);
        }
    }
}
