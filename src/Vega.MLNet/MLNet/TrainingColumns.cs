using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;

namespace Vega.MLNet;

/// <summary>What a candidate-label column holds.</summary>
internal enum CandidateColumnKind
{
    /// <summary>Vector&lt;Boolean, C&gt;: true for every candidate class.</summary>
    Mask,
    /// <summary>A vector (usually of variable length) of UInt32 keys over the class names, one per candidate.</summary>
    KeyVector,
    /// <summary>A scalar UInt32 key: one label per row (q = 0).</summary>
    Key,
}

/// <summary>What a true-label column holds.</summary>
internal enum LabelColumnKind
{
    /// <summary>A UInt32 key over the class names (MapValueToKey over the class names, in class order).</summary>
    Key,
    /// <summary>The class name as text.</summary>
    Text,
}

/// <summary>
/// Schema checks and readers of the training columns of the prompt-learning trainers: image embeddings, candidate-label
/// sets, true labels, augmented-view embeddings and image paths. Schema problems are reported as ML.NET reports them
/// (<see cref="SchemaChecks"/>); bad values are <see cref="InvalidOperationException"/>s naming the row, the column and
/// the fix.
/// </summary>
internal static class TrainingColumns
{
    // ---------------------------------------------------------------- schema (estimator side)

    public static void CandidatesShape(SchemaShape.Column c, int classCount)
    {
        bool mask = c.Kind == SchemaShape.Column.VectorKind.Vector && !c.IsKey && c.ItemType is BooleanDataViewType;
        bool keys = c.IsKey && c.ItemType == NumberDataViewType.UInt32;
        if (!mask && !keys) throw SchemaChecks.Mismatch("label", c.Name, CandidateTypes(classCount), SchemaChecks.Describe(c));
    }

    public static void LabelShape(SchemaShape.Column c, int classCount)
    {
        bool ok = c.Kind == SchemaShape.Column.VectorKind.Scalar && (c.IsKey && c.ItemType == NumberDataViewType.UInt32 || !c.IsKey && c.ItemType is TextDataViewType);
        if (!ok) throw SchemaChecks.Mismatch("label", c.Name, LabelTypes(classCount), SchemaChecks.Describe(c));
    }

    // ---------------------------------------------------------------- schema (data side)

    public static CandidateColumnKind Candidates(DataViewSchema.Column column, IReadOnlyList<string> classNames)
    {
        int c = classNames.Count;
        switch (column.Type)
        {
            case VectorDataViewType { ItemType: BooleanDataViewType, Size: var size } when size == c:
                return CandidateColumnKind.Mask;
            case VectorDataViewType { ItemType: KeyDataViewType key } when key.RawType == typeof(uint) && key.Count == (ulong)c:
                KeysOverClassNames(column, classNames, "label");
                return CandidateColumnKind.KeyVector;
            case KeyDataViewType key when key.RawType == typeof(uint) && key.Count == (ulong)c:
                KeysOverClassNames(column, classNames, "label");
                return CandidateColumnKind.Key;
            default:
                throw SchemaChecks.Mismatch("label", column.Name, CandidateTypes(c), SchemaChecks.Describe(column.Type));
        }
    }

    public static LabelColumnKind Label(DataViewSchema.Column column, IReadOnlyList<string> classNames, string role = "label")
    {
        switch (column.Type)
        {
            case KeyDataViewType key when key.RawType == typeof(uint) && key.Count == (ulong)classNames.Count:
                KeysOverClassNames(column, classNames, role);
                return LabelColumnKind.Key;
            case TextDataViewType:
                return LabelColumnKind.Text;
            default:
                throw SchemaChecks.Mismatch(role, column.Name, LabelTypes(classNames.Count), SchemaChecks.Describe(column.Type));
        }
    }

    private static string CandidateTypes(int c) =>
        $"Vector<Boolean, {c}> (a candidate mask), a vector of Key<UInt32, 0-{c - 1}> (candidate keys over the class names) or Key<UInt32, 0-{c - 1}> (one label)";

    private static string LabelTypes(int c) => $"Key<UInt32, 0-{c - 1}> (a key over the class names) or String (the class name)";

    /// <summary>A key column that carries KeyValues must have the class names, in class order, as its values (so key k
    /// means class k − 1); without KeyValues the keys are taken as class indices + 1.</summary>
    private static void KeysOverClassNames(DataViewSchema.Column column, IReadOnlyList<string> classNames, string role)
    {
        var meta = column.Annotations.Schema.GetColumnOrNull(AnnotationUtils.KeyValues);
        if (meta is null) return;
        if (meta.Value.Type is not VectorDataViewType { ItemType: TextDataViewType })
            throw SchemaChecks.Mismatch(role, column.Name, "keys over the class names", $"keys whose values are {SchemaChecks.Describe(meta.Value.Type)}");
        VBuffer<ReadOnlyMemory<char>> values = default;
        column.Annotations.GetValue(AnnotationUtils.KeyValues, ref values);
        var names = values.DenseValues().Select(v => v.ToString()).ToArray();
        if (!names.SequenceEqual(classNames, StringComparer.Ordinal))
            throw SchemaChecks.Mismatch(role, column.Name, $"keys over the {classNames.Count} class names in class order ({Preview(classNames)})",
                $"keys over ({Preview(names)}); map the names with MapValueToKey(keyData: the class names in class order)");
    }

    private static string Preview(IReadOnlyList<string> names) => string.Join(", ", names.Take(6)) + (names.Count > 6 ? ", …" : "");

    // ---------------------------------------------------------------- reading

    /// <summary>What <see cref="Read"/> reads.</summary>
    public sealed record Request
    {
        public required string FeatureColumn { get; init; }
        public required int Dimension { get; init; }
        public required IReadOnlyList<string> ClassNames { get; init; }
        public string? CandidateColumn { get; init; }
        public string? LabelColumn { get; init; }
        public IReadOnlyList<string> ViewColumns { get; init; } = [];
        public string? PathColumn { get; init; }
    }

    /// <summary>The rows read: features [N, D], candidate masks [N, C] or labels [N], view embeddings, paths.</summary>
    public sealed record Rows(EmbeddingMatrix Features, byte[]? CandidateMask, int[]? Labels, IReadOnlyList<EmbeddingMatrix> Views, string[]? Paths);

    /// <summary>Reads every row of <paramref name="data"/> (one pass). Embeddings must be finite; rows that are not
    /// unit-length are L2-normalised (the engine's embeddings are left as they are, bit for bit).</summary>
    public static Rows Read(IDataView data, Request r, CancellationToken cancellationToken = default)
    {
        var schema = data.Schema;
        int d = r.Dimension, c = r.ClassNames.Count;
        var feature = SchemaChecks.Find(schema, r.FeatureColumn, "feature");
        SchemaChecks.RequireFloatVector(feature, "feature", d);
        var views = r.ViewColumns.Select(v =>
        {
            var col = SchemaChecks.Find(schema, v, "feature");
            SchemaChecks.RequireFloatVector(col, "feature", d);
            return col;
        }).ToArray();
        DataViewSchema.Column? candidates = r.CandidateColumn is { } cn ? SchemaChecks.Find(schema, cn, "label") : null;
        var candidateKind = candidates is { } cc ? Candidates(cc, r.ClassNames) : default;
        DataViewSchema.Column? label = r.LabelColumn is { } ln ? SchemaChecks.Find(schema, ln, "label") : null;
        var labelKind = label is { } lc ? Label(lc, r.ClassNames) : default;
        DataViewSchema.Column? path = r.PathColumn is { } pn ? SchemaChecks.Find(schema, pn, "image") : null;
        if (path is { } pc && pc.Type is not TextDataViewType)
            throw SchemaChecks.Mismatch("image", pc.Name, "String (an image file path; the augmented views are cropped from the files)", SchemaChecks.Describe(pc.Type));

        var needed = new List<DataViewSchema.Column> { feature };
        needed.AddRange(views);
        if (candidates is { } c1) needed.Add(c1);
        if (label is { } l1) needed.Add(l1);
        if (path is { } p1) needed.Add(p1);
        using var cursor = data.GetRowCursor(needed.DistinctBy(x => x.Index));

        var featureGetter = cursor.GetGetter<VBuffer<float>>(feature);
        var viewGetters = views.Select(v => cursor.GetGetter<VBuffer<float>>(v)).ToArray();
        var featureRows = new List<float>();
        var viewRows = views.Select(_ => new List<float>()).ToArray();
        var mask = candidates is null ? null : new List<byte>();
        var labels = label is null ? null : new List<int>();
        var paths = path is null ? null : new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = 0; k < c; k++) index[r.ClassNames[k]] = k;

        ValueGetter<VBuffer<bool>>? maskGetter = candidates is { } m && candidateKind == CandidateColumnKind.Mask ? cursor.GetGetter<VBuffer<bool>>(m) : null;
        ValueGetter<VBuffer<uint>>? keysGetter = candidates is { } kv && candidateKind == CandidateColumnKind.KeyVector ? cursor.GetGetter<VBuffer<uint>>(kv) : null;
        ValueGetter<uint>? keyGetter = candidates is { } ks && candidateKind == CandidateColumnKind.Key ? cursor.GetGetter<uint>(ks) : null;
        ValueGetter<uint>? labelKeyGetter = label is { } lk && labelKind == LabelColumnKind.Key ? cursor.GetGetter<uint>(lk) : null;
        ValueGetter<ReadOnlyMemory<char>>? labelTextGetter = label is { } lt && labelKind == LabelColumnKind.Text ? cursor.GetGetter<ReadOnlyMemory<char>>(lt) : null;
        ValueGetter<ReadOnlyMemory<char>>? pathGetter = path is { } pg ? cursor.GetGetter<ReadOnlyMemory<char>>(pg) : null;

        VBuffer<float> embedding = default;
        VBuffer<bool> maskValue = default;
        VBuffer<uint> keys = default;
        uint key = 0;
        ReadOnlyMemory<char> text = default;
        var dense = new float[d];
        var rowMask = new bool[c];
        long row = -1;
        while (cursor.MoveNext())
        {
            cancellationToken.ThrowIfCancellationRequested();
            row++;
            featureGetter(ref embedding);
            AddEmbedding(featureRows, embedding, dense, row, feature.Name);
            for (int v = 0; v < views.Length; v++)
            {
                viewGetters[v](ref embedding);
                AddEmbedding(viewRows[v], embedding, dense, row, views[v].Name);
            }
            if (mask is not null)
            {
                Array.Clear(rowMask);
                if (maskGetter is not null)
                {
                    maskGetter(ref maskValue);
                    maskValue.CopyTo(rowMask);
                }
                else if (keysGetter is not null)
                {
                    keysGetter(ref keys);
                    foreach (uint k in keys.DenseValues()) rowMask[KeyToClass(k, c, row, candidates!.Value.Name, r.ClassNames)] = true;
                }
                else
                {
                    keyGetter!(ref key);
                    rowMask[KeyToClass(key, c, row, candidates!.Value.Name, r.ClassNames)] = true;
                }
                if (Array.IndexOf(rowMask, true) < 0)
                    throw new InvalidOperationException(
                        $"Row {row} of label column '{candidates!.Value.Name}' has an empty candidate set; every training image needs at least one candidate class (the true class among them).");
                foreach (bool b in rowMask) mask.Add(b ? (byte)1 : (byte)0);
            }
            if (labels is not null)
            {
                if (labelKeyGetter is not null)
                {
                    labelKeyGetter(ref key);
                    labels.Add(KeyToClass(key, c, row, label!.Value.Name, r.ClassNames));
                }
                else
                {
                    labelTextGetter!(ref text);
                    string name = text.ToString();
                    if (!index.TryGetValue(name, out int k))
                        throw new InvalidOperationException(
                            $"Row {row} of label column '{label!.Value.Name}' is \"{name}\", which is not one of the {c} class names ({Preview(r.ClassNames)}).");
                    labels.Add(k);
                }
            }
            if (paths is not null)
            {
                pathGetter!(ref text);
                if (text.Span.IsWhiteSpace())
                    throw new InvalidOperationException($"Row {row} of image column '{path!.Value.Name}' has no path; the augmented views are cropped from the image files.");
                paths.Add(text.ToString());
            }
        }
        int n = (int)(row + 1);
        return new Rows(new EmbeddingMatrix([.. featureRows], n, d), mask?.ToArray(), labels?.ToArray(),
            viewRows.Select(v => new EmbeddingMatrix([.. v], n, d)).ToArray(), paths?.ToArray());
    }

    private static int KeyToClass(uint key, int classCount, long row, string column, IReadOnlyList<string> classNames)
    {
        if (key == 0 || key > classCount)
            throw new InvalidOperationException(
                $"Row {row} of label column '{column}' has a missing key ({(key == 0 ? "0: a value that is not one of the class names" : $"{key} > {classCount}")}); " +
                $"map the class names with MapValueToKey(keyData: the {classCount} class names in class order) and check the names ({Preview(classNames)}).");
        return (int)key - 1;
    }

    private static void AddEmbedding(List<float> rows, in VBuffer<float> value, float[] dense, long row, string column)
    {
        value.CopyTo(dense);
        double ss = 0;
        foreach (float x in dense)
        {
            if (!float.IsFinite(x))
                throw new InvalidOperationException(
                    $"Row {row} of feature column '{column}' has a missing value (NaN or infinite): the image could not be embedded. " +
                    $"Drop such rows first with ml.Data.FilterRowsByMissingValues(data, \"{column}\").");
            ss += (double)x * x;
        }
        if (Math.Abs(ss - 1) > 1e-4) EmbeddingMatrix.NormalizeInPlace(dense);
        rows.AddRange(dense);
    }
}
