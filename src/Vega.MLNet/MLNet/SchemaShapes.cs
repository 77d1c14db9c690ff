using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vega.MLNet;

/// <summary>One column an estimator adds: name, type and the annotations ML.NET's consumers read.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">A known-size Single vector, a UInt32 key, a Single or a String.</param>
/// <param name="SlotNames">Names of the vector's slots (<c>SlotNames</c>), e.g. the classes of a score vector.</param>
/// <param name="KeyValues">Values of the key (<c>KeyValues</c>), e.g. the class names of a predicted label.</param>
internal sealed record AddedColumn(string Name, DataViewType Type, IReadOnlyList<string>? SlotNames = null, IReadOnlyList<string>? KeyValues = null)
{
    /// <summary>The annotations of the column, or null.</summary>
    public DataViewSchema.Annotations? Annotations()
    {
        if (SlotNames is null && KeyValues is null) return null;
        var b = new DataViewSchema.Annotations.Builder();
        if (SlotNames is not null) b.Add(AnnotationUtils.SlotNames, TextVector(SlotNames.Count), Names(SlotNames));
        if (KeyValues is not null) b.Add(AnnotationUtils.KeyValues, TextVector(KeyValues.Count), Names(KeyValues));
        return b.ToAnnotations();
    }

    public DataViewSchema.DetachedColumn Detached() => new(Name, Type, Annotations());

    private static VectorDataViewType TextVector(int n) => new(TextDataViewType.Instance, n);

    private static ValueGetter<VBuffer<ReadOnlyMemory<char>>> Names(IReadOnlyList<string> names) => (ref VBuffer<ReadOnlyMemory<char>> dst) =>
    {
        var editor = VBufferEditor.Create(ref dst, names.Count);
        for (int i = 0; i < names.Count; i++) editor.Values[i] = names[i].AsMemory();
        dst = editor.Commit();
    };
}

internal static class AnnotationUtils
{
    public const string SlotNames = "SlotNames";
    public const string KeyValues = "KeyValues";
}

/// <summary>
/// Builds the <see cref="SchemaShape"/> an estimator returns from <c>GetOutputSchema</c>. ML.NET keeps
/// <c>SchemaShape.Column</c>'s constructor internal, so the added columns are obtained from a built-in estimator that
/// declares them: a CustomMapping estimator over an empty input whose output schema definition carries the types and
/// annotations (it is never fitted or run). This is what lets <c>.Append(...)</c> after a Vega.MLNet estimator check
/// the pipeline's types before anything is fitted.
/// </summary>
internal static class SchemaShapes
{
    private static readonly MLContext Context = new(seed: 0);

    /// <summary>The input shape with <paramref name="added"/> columns added (same-named input columns replaced).</summary>
    public static SchemaShape With(SchemaShape input, IReadOnlyList<AddedColumn> added)
    {
        ArgumentNullException.ThrowIfNull(input);
        var definition = SchemaDefinition.Create(typeof(Template), SchemaDefinition.Direction.Write);
        var used = new List<SchemaDefinition.Column>();
        int vectors = 0, keys = 0, singles = 0, texts = 0;
        foreach (var a in added)
        {
            string member = a.Type switch
            {
                VectorDataViewType { ItemType: NumberDataViewType n } when n == NumberDataViewType.Single => Slot("Vector", ref vectors),
                KeyDataViewType => Slot("Key", ref keys),
                NumberDataViewType n when n == NumberDataViewType.Single => Slot("Single", ref singles),
                TextDataViewType => Slot("Text", ref texts),
                _ => throw new NotSupportedException($"Internal: no schema template for {a.Type}."),
            };
            var column = definition.First(c => c.MemberName == member);
            column.ColumnName = a.Name;
            column.ColumnType = a.Type;
            if (a.SlotNames is { } slots) column.AddAnnotation(AnnotationUtils.SlotNames, Values(slots), new VectorDataViewType(TextDataViewType.Instance, slots.Count));
            if (a.KeyValues is { } keysValues) column.AddAnnotation(AnnotationUtils.KeyValues, Values(keysValues), new VectorDataViewType(TextDataViewType.Instance, keysValues.Count));
            used.Add(column);
        }
        definition.Clear();
        definition.AddRange(used);
        var template = Context.Transforms.CustomMapping<Empty, Template>((_, _) => { }, contractName: null, inputSchemaDefinition: null, outputSchemaDefinition: definition);
        var shape = template.GetOutputSchema(new SchemaShape([]));
        var names = new HashSet<string>(added.Select(a => a.Name), StringComparer.Ordinal);
        return new SchemaShape(input.Where(c => !names.Contains(c.Name)).Concat(shape));
    }

    private static string Slot(string kind, ref int counter)
    {
        if (counter >= Template.PerKind) throw new NotSupportedException($"Internal: more than {Template.PerKind} added {kind} columns.");
        return kind + counter++;
    }

    private static VBuffer<ReadOnlyMemory<char>> Values(IReadOnlyList<string> names) =>
        new(names.Count, names.Select(n => n.AsMemory()).ToArray());

    private sealed class Empty { }

#pragma warning disable CS0649 // assigned by ML.NET's row mapping, never by code
    private sealed class Template
    {
        public const int PerKind = 4;
        public float[]? Vector0, Vector1, Vector2, Vector3;
        public uint Key0, Key1, Key2, Key3;
        public float Single0, Single1, Single2, Single3;
        public string? Text0, Text1, Text2, Text3;
    }
#pragma warning restore CS0649
}
