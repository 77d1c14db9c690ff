using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Prompting.PartialLabel;

namespace Vega.MLNet.Samples.Experiments;

/// <summary>
/// In-memory IDataViews of embeddings computed elsewhere (the experiment runners and the tests): an
/// <c>ImageEmbedding</c> column (Vector&lt;Single, D&gt;), optionally <c>CandidateLabels</c> (Vector&lt;Boolean, C&gt;),
/// <c>Label</c> (Key&lt;UInt32, C&gt; with the class names as KeyValues), <c>Weight</c> (Single) and up to four view
/// columns <c>View0</c>…<c>View3</c> (Vector&lt;Single, D&gt;).
/// </summary>
internal static class MatrixData
{
    public const int MaxViews = 4;

    public static string ViewColumn(int v) => $"View{v}";

    public static IDataView Create(MLContext ml, IReadOnlyList<string> classNames, EmbeddingMatrix features, CandidateLabels? candidates = null,
        int[]? labels = null, IReadOnlyList<EmbeddingMatrix>? views = null, float[]? weights = null)
    {
        int n = features.Count, d = features.Dimension, c = classNames.Count;
        views ??= [];
        if (views.Count > MaxViews) throw new ArgumentOutOfRangeException(nameof(views), views.Count, $"At most {MaxViews} view columns.");
        if (candidates is not null && (candidates.Count != n || candidates.ClassCount != c)) throw new ArgumentException("The candidate sets do not match the rows or classes.", nameof(candidates));
        if (labels is not null && labels.Length != n) throw new ArgumentException("One label per row is needed.", nameof(labels));
        if (weights is not null && weights.Length != n) throw new ArgumentException("One weight per row is needed.", nameof(weights));
        var rows = new Row[n];
        for (int i = 0; i < n; i++)
        {
            var row = new Row { ImageEmbedding = features.Row(i).ToArray() };
            if (candidates is not null)
            {
                row.CandidateLabels = new bool[c];
                for (int k = 0; k < c; k++) row.CandidateLabels[k] = candidates.Contains(i, k);
            }
            if (labels is not null) row.Label = (uint)labels[i]; // LoadFromEnumerable stores a key field's value v as key v + 1
            if (weights is not null) row.Weight = weights[i];
            for (int v = 0; v < views.Count; v++)
            {
                var values = views[v].Row(i).ToArray();
                switch (v)
                {
                    case 0: row.View0 = values; break;
                    case 1: row.View1 = values; break;
                    case 2: row.View2 = values; break;
                    default: row.View3 = values; break;
                }
            }
            rows[i] = row;
        }
        var definition = SchemaDefinition.Create(typeof(Row));
        var keep = new List<SchemaDefinition.Column>();
        foreach (var column in definition)
        {
            switch (column.MemberName)
            {
                case nameof(Row.ImageEmbedding):
                    column.ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
                    break;
                case nameof(Row.CandidateLabels) when candidates is not null:
                    column.ColumnType = new VectorDataViewType(BooleanDataViewType.Instance, c);
                    break;
                case nameof(Row.Label) when labels is not null:
                    column.ColumnType = new KeyDataViewType(typeof(uint), c);
                    column.AddAnnotation(AnnotationUtils.KeyValues, new VBuffer<ReadOnlyMemory<char>>(c, classNames.Select(x => x.AsMemory()).ToArray()),
                        new VectorDataViewType(TextDataViewType.Instance, c));
                    break;
                case nameof(Row.Weight) when weights is not null:
                    break;
                case var name when name.StartsWith("View", StringComparison.Ordinal) && int.Parse(name[4..], System.Globalization.CultureInfo.InvariantCulture) < views.Count:
                    column.ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
                    break;
                default:
                    continue;
            }
            keep.Add(column);
        }
        definition.Clear();
        definition.AddRange(keep);
        return ml.Data.LoadFromEnumerable(rows, definition);
    }

    internal sealed class Row
    {
        public float[] ImageEmbedding = [];
        public bool[] CandidateLabels = [];
        public uint Label;
        public float Weight;
        public float[] View0 = [], View1 = [], View2 = [], View3 = [];
    }
}
