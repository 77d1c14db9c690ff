using System.ComponentModel;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Vega.MLNet.Imaging;

namespace Vega.MLNet.Saving;

// The stateless steps of the models Vega.MLNet saves with ml.Model.Save (docs/mlnet.md, "Saving"). ML.NET restores a
// CustomMapping by its contract name from the factories of the assemblies registered with
// ml.ComponentCatalog.RegisterAssembly(typeof(VegaCatalog).Assembly); that is why these types are public. They are
// not meant to be used directly.

/// <summary>Column names of the intermediate columns of a saved Vega.MLNet model (dropped at its end).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class SavedColumns
{
    /// <summary>The image input, copied under a fixed name.</summary>
    public const string Source = "__VegaSource";
    /// <summary>Decoded pixels: HWC RGB bytes.</summary>
    public const string Rgb = "__VegaRgb";
    /// <summary>Height of the decoded image.</summary>
    public const string Height = "__VegaHeight";
    /// <summary>Width of the decoded image.</summary>
    public const string Width = "__VegaWidth";
    /// <summary>1 when the image was decoded, NaN when it could not be (the embedding is multiplied by it).</summary>
    public const string Valid = "__VegaValid";
    /// <summary>Why the image could not be decoded (empty when it was).</summary>
    public const string Error = "__VegaError";
    /// <summary>The arg-max class of a score vector, as an ONNX int64 vector of one element.</summary>
    public const string Index = "__VegaIndex";
    /// <summary>The arg-max class as a 0-based UInt32 (the input of the class-name lookup).</summary>
    public const string Class = "__VegaClass";
    /// <summary>A node probability, as an ONNX vector of one element.</summary>
    public const string Node = "__VegaNode";
    /// <summary>The node probability as a scalar.</summary>
    public const string NodeScalar = "__VegaNodeScalar";
    /// <summary>An MLImage resized to the model's input size.</summary>
    public const string Resized = "__VegaResized";
    /// <summary>Its raw 0..255 R, G and B planes.</summary>
    public const string Pixels = "__VegaPixels";
}

/// <summary>A file path to decode.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedPathInput
{
    /// <summary>The path.</summary>
    [ColumnName(SavedColumns.Source)] public string Source { get; set; } = "";
}

/// <summary>Encoded image bytes to decode.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedBytesInput
{
    /// <summary>The bytes.</summary>
    [ColumnName(SavedColumns.Source)] public byte[] Source { get; set; } = [];
}

/// <summary>A decoded image (Pillow's convert("RGB") semantics), or a 1×1 placeholder with the reason it failed.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedDecoded
{
    /// <summary>HWC RGB bytes.</summary>
    [ColumnName(SavedColumns.Rgb)] public byte[] Rgb { get; set; } = [];
    /// <summary>Height.</summary>
    [ColumnName(SavedColumns.Height)] public long Height { get; set; }
    /// <summary>Width.</summary>
    [ColumnName(SavedColumns.Width)] public long Width { get; set; }
    /// <summary>1, or NaN when the image could not be decoded.</summary>
    [ColumnName(SavedColumns.Valid)] public float Valid { get; set; }
    /// <summary>The reason, or empty.</summary>
    [ColumnName(SavedColumns.Error)] public string Error { get; set; } = "";
}

/// <summary>An arg-max index from ONNX (one int64).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedIndexInput
{
    /// <summary>The index.</summary>
    [ColumnName(SavedColumns.Index), VectorType(1)] public long[] Index { get; set; } = [0];
}

/// <summary>The 0-based class of a row, or <see cref="uint.MaxValue"/> when it is missing.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedClassOutput
{
    /// <summary>The class.</summary>
    [ColumnName(SavedColumns.Class)] public uint Class { get; set; }
}

internal static class SavedDecoding
{
    public static void Decode(string name, ReadOnlySpan<byte> bytes, string? path, bool exif, bool throwOnError, SavedDecoded output)
    {
        try
        {
            var options = new DecodeOptions { ApplyExifOrientation = exif };
            var image = path is not null ? ImageDecoder.Decode(path, options) : ImageDecoder.Decode(bytes, name, options);
            output.Rgb = image.Span.ToArray();
            output.Height = image.Height;
            output.Width = image.Width;
            output.Valid = 1;
            output.Error = "";
        }
        catch (ImageDecodeException e) when (!throwOnError)
        {
            output.Rgb = [0, 0, 0];
            output.Height = 1;
            output.Width = 1;
            output.Valid = float.NaN;
            output.Error = e.Reason;
        }
        catch (ImageDecodeException e)
        {
            throw new InvalidOperationException($"Cannot embed the image {name}: {e.Reason}.", e);
        }
    }
}

/// <summary>Decodes an image file (errors throw).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodePath : CustomMappingFactory<SavedPathInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodePath.v1";
    /// <inheritdoc/>
    public override Action<SavedPathInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode($"'{i.Source}'", default, i.Source, false, true, o);
}

/// <summary>Decodes an image file, rotated by its EXIF orientation (errors throw).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodePathExif : CustomMappingFactory<SavedPathInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodePathExif.v1";
    /// <inheritdoc/>
    public override Action<SavedPathInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode($"'{i.Source}'", default, i.Source, true, true, o);
}

/// <summary>Decodes an image file; a file that cannot be decoded gives a NaN embedding and its reason.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodePathOrMissing : CustomMappingFactory<SavedPathInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodePathOrMissing.v1";
    /// <inheritdoc/>
    public override Action<SavedPathInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode($"'{i.Source}'", default, i.Source, false, false, o);
}

/// <summary>Decodes an image file rotated by its EXIF orientation; a file that cannot be decoded gives a NaN embedding and its reason.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodePathExifOrMissing : CustomMappingFactory<SavedPathInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodePathExifOrMissing.v1";
    /// <inheritdoc/>
    public override Action<SavedPathInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode($"'{i.Source}'", default, i.Source, true, false, o);
}

/// <summary>Decodes encoded image bytes (errors throw).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodeBytes : CustomMappingFactory<SavedBytesInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodeBytes.v1";
    /// <inheritdoc/>
    public override Action<SavedBytesInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode("(encoded bytes)", i.Source, null, false, true, o);
}

/// <summary>Decodes encoded image bytes rotated by their EXIF orientation (errors throw).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodeBytesExif : CustomMappingFactory<SavedBytesInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodeBytesExif.v1";
    /// <inheritdoc/>
    public override Action<SavedBytesInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode("(encoded bytes)", i.Source, null, true, true, o);
}

/// <summary>Decodes encoded image bytes; bytes that cannot be decoded give a NaN embedding and the reason.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodeBytesOrMissing : CustomMappingFactory<SavedBytesInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodeBytesOrMissing.v1";
    /// <inheritdoc/>
    public override Action<SavedBytesInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode("(encoded bytes)", i.Source, null, false, false, o);
}

/// <summary>Decodes encoded image bytes rotated by their EXIF orientation; bytes that cannot be decoded give a NaN embedding and the reason.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedDecodeBytesExifOrMissing : CustomMappingFactory<SavedBytesInput, SavedDecoded>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.DecodeBytesExifOrMissing.v1";
    /// <inheritdoc/>
    public override Action<SavedBytesInput, SavedDecoded> GetMapping() => (i, o) => SavedDecoding.Decode("(encoded bytes)", i.Source, null, true, false, o);
}

/// <summary>The arg-max index from ONNX as a 0-based UInt32 class (the input of the class-name lookup).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedClassFromIndex : CustomMappingFactory<SavedIndexInput, SavedClassOutput>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.ClassFromIndex.v1";
    /// <inheritdoc/>
    public override Action<SavedIndexInput, SavedClassOutput> GetMapping() => (i, o) => o.Class = i.Index.Length == 1 && i.Index[0] >= 0 ? (uint)i.Index[0] : uint.MaxValue;
}

/// <summary>A one-element vector from ONNX.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedNodeInput
{
    /// <summary>The vector.</summary>
    [ColumnName(SavedColumns.Node), VectorType(1)] public float[] Node { get; set; } = [0];
}

/// <summary>Its element as a scalar.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SavedNodeOutput
{
    /// <summary>The element.</summary>
    [ColumnName(SavedColumns.NodeScalar)] public float Node { get; set; }
}

/// <summary>The element of a one-element ONNX output as a scalar column.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
[CustomMappingFactoryAttribute(Contract)]
public sealed class SavedFirstElement : CustomMappingFactory<SavedNodeInput, SavedNodeOutput>
{
    /// <summary>The contract name stored in saved models.</summary>
    public const string Contract = "Vega.MLNet.FirstElement.v1";
    /// <inheritdoc/>
    public override Action<SavedNodeInput, SavedNodeOutput> GetMapping() => (i, o) => o.Node = i.Node.Length == 1 ? i.Node[0] : float.NaN;
}
