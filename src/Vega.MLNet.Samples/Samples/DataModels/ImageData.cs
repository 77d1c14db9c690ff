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

/// <summary>A training image with its candidate classes, as a CSV row <c>path,candidates,label</c> ("a|b|c"; the true
/// label, when known, is only for reference).</summary>
public sealed class CandidateImageData
{
    /// <summary>Path of the image file (absolute, or relative to the CSV's folder).</summary>
    [LoadColumn(0)] public string ImagePath { get; set; } = "";

    /// <summary>The candidate class names, separated by '|'; the true class is one of them.</summary>
    [LoadColumn(1)] public string Candidates { get; set; } = "";

    /// <summary>The true class (empty when unknown; training does not read it).</summary>
    [LoadColumn(2)] public string Label { get; set; } = "";
}

/// <summary>What a classifier predicts for one image: the key of the class (1-based) and the class probabilities.</summary>
public sealed class CandidatePrediction
{
    /// <summary>The predicted class as an ML.NET key: class index + 1.</summary>
    public uint PredictedLabel { get; set; }

    /// <summary>Class probabilities, in class order.</summary>
    [ColumnName("Score")] public float[] Score { get; set; } = [];
}
