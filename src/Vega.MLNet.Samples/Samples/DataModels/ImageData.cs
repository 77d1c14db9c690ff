using Microsoft.ML.Data;

namespace Vega.MLNet.Samples.Samples.DataModels;

/// <summary>An image file and (when known) its class, as a CSV row <c>path,label</c> or built in code.</summary>
public sealed class ImageData
{
    /// <summary>Path of the image file (absolute, or relative to the images folder).</summary>
    [LoadColumn(0)] public string ImagePath { get; set; } = "";

    /// <summary>The true class (empty when unknown).</summary>
    [LoadColumn(1)] public string Label { get; set; } = "";
}

/// <summary>What the zero-shot pipeline predicts for one image.</summary>
public sealed class ImagePrediction
{
    /// <summary>The image file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The predicted class name (PredictedLabel mapped back to its value).</summary>
    public string PredictedClass { get; set; } = "";

    /// <summary>Class probabilities, in class order.</summary>
    [ColumnName("Score")] public float[] Score { get; set; } = [];
}
