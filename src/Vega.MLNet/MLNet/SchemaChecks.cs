using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Vega.MLNet;

/// <summary>
/// Column lookups and type checks with ML.NET's own error shapes: <see cref="ArgumentOutOfRangeException"/> with
/// parameter name <c>inputSchema</c> and the messages "Could not find input column 'X'" / "Schema mismatch for input
/// column 'X': expected …, got …". The same checks run on estimators (SchemaShape) and transformers (DataViewSchema),
/// so a wrong column is reported before any row is read.
/// </summary>
internal static class SchemaChecks
{
    public static ArgumentOutOfRangeException Missing(string role, string name) =>
        new("inputSchema", $"Could not find {role} column '{name}'");

    public static ArgumentOutOfRangeException Mismatch(string role, string name, string expected, string actual) =>
        new("inputSchema", $"Schema mismatch for {role} column '{name}': expected {expected}, got {actual}");

    public static DataViewSchema.Column Find(DataViewSchema schema, string name, string role = "input")
    {
        ArgumentNullException.ThrowIfNull(schema);
        return schema.GetColumnOrNull(name) ?? throw Missing(role, name);
    }

    public static SchemaShape.Column Find(SchemaShape shape, string name, string role = "input")
    {
        ArgumentNullException.ThrowIfNull(shape);
        foreach (var c in shape)
            if (c.Name == name) return c;
        throw Missing(role, name);
    }

    /// <summary>How ML.NET writes a column's type in messages, e.g. <c>Vector&lt;Single, 512&gt;</c> or <c>String</c>.</summary>
    public static string Describe(DataViewType type) => type.ToString() ?? type.GetType().Name;

    public static string Describe(SchemaShape.Column c)
    {
        string item = c.IsKey ? $"Key<{c.ItemType}>" : c.ItemType.ToString() ?? "?";
        return c.Kind switch
        {
            SchemaShape.Column.VectorKind.Scalar => item,
            SchemaShape.Column.VectorKind.Vector => $"Vector<{item}>",
            _ => $"VarVector<{item}>",
        };
    }

    /// <summary>A known-size vector of Single (the embedding columns); <paramref name="size"/> 0 accepts any known size.</summary>
    public static int RequireFloatVector(DataViewSchema.Column column, string role, int size = 0)
    {
        if (column.Type is VectorDataViewType { ItemType: NumberDataViewType n, Size: > 0 } v && n == NumberDataViewType.Single && (size == 0 || v.Size == size))
            return v.Size;
        throw Mismatch(role, column.Name, size > 0 ? $"Vector<Single, {size}>" : "known-size vector of Single", Describe(column.Type));
    }

    public static void RequireFloatVector(SchemaShape.Column column, string role)
    {
        if (column.Kind != SchemaShape.Column.VectorKind.Vector || column.IsKey || column.ItemType != NumberDataViewType.Single)
            throw Mismatch(role, column.Name, "known-size vector of Single", Describe(column));
    }

    public static void RequireText(DataViewSchema.Column column, string role)
    {
        if (column.Type is not TextDataViewType) throw Mismatch(role, column.Name, "String", Describe(column.Type));
    }

    public static void RequireText(SchemaShape.Column column, string role)
    {
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not TextDataViewType)
            throw Mismatch(role, column.Name, "String", Describe(column));
    }

    /// <summary>The image input kinds: a file path (String), encoded bytes (Vector&lt;Byte&gt;) or an MLImage.</summary>
    public static ImageInputKind ImageInput(DataViewSchema.Column column, string role)
    {
        return column.Type switch
        {
            TextDataViewType => ImageInputKind.Path,
            VectorDataViewType { ItemType: NumberDataViewType n } when n == NumberDataViewType.Byte => ImageInputKind.Bytes,
            ImageDataViewType => ImageInputKind.Image,
            _ => throw Mismatch(role, column.Name, ImageTypes, Describe(column.Type)),
        };
    }

    public static void ImageInput(SchemaShape.Column column, string role)
    {
        bool ok = column.Kind == SchemaShape.Column.VectorKind.Scalar && !column.IsKey && column.ItemType is TextDataViewType or ImageDataViewType
            || column.Kind != SchemaShape.Column.VectorKind.Scalar && !column.IsKey && column.ItemType == NumberDataViewType.Byte;
        if (!ok) throw Mismatch(role, column.Name, ImageTypes, Describe(column));
    }

    private const string ImageTypes = "String (an image file path), Vector<Byte> (encoded image bytes, e.g. from LoadRawImageBytes) or Image (from LoadImages)";
}

/// <summary>What an image column holds.</summary>
internal enum ImageInputKind { Path, Bytes, Image }
