using System.Numerics.Tensors;

namespace Vega.MLNet.Embedding;

/// <summary>
/// A dense row-major float32 matrix of embeddings, one row per item (image or text), in the order of the source.
/// Rows produced by the embedding engine are L2-normalised.
/// </summary>
internal sealed class EmbeddingMatrix
{
    /// <summary>Wraps <paramref name="data"/> (not copied) as <paramref name="count"/> rows of <paramref name="dimension"/>.</summary>
    public EmbeddingMatrix(float[] data, int count, int dimension)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (count < 0 || dimension <= 0 || (long)count * dimension != data.Length)
            throw new ArgumentException($"An embedding matrix of {count} × {dimension} needs {(long)count * dimension} values, got {data.Length}.", nameof(data));
        Data = data;
        Count = count;
        Dimension = dimension;
    }

    /// <summary>Creates a zero matrix.</summary>
    public EmbeddingMatrix(int count, int dimension) : this(new float[checked(count * dimension)], count, dimension) { }

    /// <summary>The values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>Number of rows.</summary>
    public int Count { get; }

    /// <summary>Length of each row.</summary>
    public int Dimension { get; }

    /// <summary>Row <paramref name="index"/>.</summary>
    public Span<float> Row(int index) => Data.AsSpan(index * Dimension, Dimension);

    /// <summary>Rows <paramref name="start"/> .. <paramref name="start"/>+<paramref name="count"/>-1 as one span.</summary>
    public Span<float> Rows(int start, int count) => Data.AsSpan(start * Dimension, count * Dimension);

    /// <summary>Scales every row to unit L2 norm (rows of norm 0 stay 0).</summary>
    public void NormalizeRows()
    {
        for (int i = 0; i < Count; i++) NormalizeInPlace(Row(i));
    }

    /// <summary>Scales <paramref name="v"/> to unit L2 norm, accumulating the norm in float64; a zero vector stays zero.</summary>
    public static void NormalizeInPlace(Span<float> v)
    {
        double ss = 0;
        foreach (float x in v) ss += (double)x * x;
        if (ss <= 0) return;
        TensorPrimitives.Multiply(v, (float)(1.0 / Math.Sqrt(ss)), v);
    }
}
