namespace Vega.MLNet;

/// <summary>The column names Vega.MLNet's catalog methods use by default.</summary>
public static class VegaColumnNames
{
    /// <summary>The image file path column the examples read ("ImagePath").</summary>
    public const string ImagePath = "ImagePath";

    /// <summary>Image embeddings ("ImageEmbedding").</summary>
    public const string ImageEmbedding = "ImageEmbedding";

    /// <summary>The text column the examples read ("Text").</summary>
    public const string Text = "Text";

    /// <summary>Text embeddings ("TextEmbedding").</summary>
    public const string TextEmbedding = "TextEmbedding";

    /// <summary>Class probabilities ("Score"), as ML.NET's multiclass trainers name them.</summary>
    public const string Score = "Score";

    /// <summary>The predicted class, a key over the class names ("PredictedLabel").</summary>
    public const string PredictedLabel = "PredictedLabel";

    /// <summary>The true class ("Label"), as ML.NET's trainers name it.</summary>
    public const string Label = "Label";

    /// <summary>The zero-shot pseudo-label VEGA groups a row under ("PseudoLabel").</summary>
    public const string PseudoLabel = "PseudoLabel";

    /// <summary>The row's agreement with its pseudo-class's text node ("NodeScore").</summary>
    public const string NodeScore = "NodeScore";

    /// <summary>Candidate label sets for prompt learning ("CandidateLabels").</summary>
    public const string CandidateLabels = "CandidateLabels";
}
