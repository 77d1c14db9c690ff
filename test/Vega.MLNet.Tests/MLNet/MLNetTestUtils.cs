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
}
