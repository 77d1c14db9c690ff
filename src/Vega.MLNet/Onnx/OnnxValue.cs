using System.Runtime.InteropServices;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>
/// A value flowing through the interpreter: a tagged union of a float32 <see cref="Tensors.Tensor"/> (the differentiable
/// path; on the tape when it requires a gradient) and a host array of integers (every integer type and bool, held as
/// <c>long</c> and wrapped to the element type after each operation) with its shape. Shape sub-graphs (Shape, Gather
/// on shapes, Concat of int64, …) run on the host arrays; they are tiny and never differentiable.
/// </summary>
internal sealed class OnnxValue
{
    private OnnxValue(OnnxElementType type, Tensor? tensor, long[]? ints, int[] shape)
    {
        Type = type;
        Tensor = tensor;
        Ints = ints;
        Shape = shape;
    }

    public OnnxElementType Type { get; }

    /// <summary>The float32 tensor (when <see cref="IsFloat"/>).</summary>
    public Tensor? Tensor { get; }

    /// <summary>The integer or bool elements in row-major order (when not <see cref="IsFloat"/>).</summary>
    public long[]? Ints { get; }

    /// <summary>The dimensions (do not modify).</summary>
    public int[] Shape { get; }

    public bool IsFloat => Type == OnnxElementType.Float;

    public int Rank => Shape.Length;

    public long Length => Shapes.Product(Shape);

    public static OnnxValue FromTensor(Tensor t) => new(OnnxElementType.Float, t, null, t.Shape);

    public static OnnxValue FromInts(long[] data, int[] shape, OnnxElementType type = OnnxElementType.Int64)
    {
        if (!IsIntegral(type)) throw new ArgumentException($"{type} is not an integer or bool type.", nameof(type));
        if (Shapes.Product(shape) != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill the shape {Shapes.ToString(shape)}.", nameof(data));
        return new OnnxValue(type, null, data, shape);
    }

    public static OnnxValue Scalar(long v, OnnxElementType type = OnnxElementType.Int64) => FromInts([v], [], type);

    public static OnnxValue Vector(params long[] v) => FromInts(v, [v.Length]);

    /// <summary>Integer and bool types held in <see cref="Ints"/>.</summary>
    public static bool IsIntegral(OnnxElementType t) => t is OnnxElementType.UInt8 or OnnxElementType.Int8 or OnnxElementType.UInt16 or OnnxElementType.Int16
        or OnnxElementType.Int32 or OnnxElementType.Int64 or OnnxElementType.Bool or OnnxElementType.UInt32 or OnnxElementType.UInt64;

    /// <summary>The types this interpreter can hold.</summary>
    public static bool IsSupported(OnnxElementType t) => t == OnnxElementType.Float || IsIntegral(t);

    /// <summary>Wraps <paramref name="v"/> to the range of <paramref name="type"/> (two's complement, like a C cast).</summary>
    public static long Wrap(long v, OnnxElementType type) => type switch
    {
        OnnxElementType.UInt8 => (byte)v,
        OnnxElementType.Int8 => (sbyte)v,
        OnnxElementType.UInt16 => (ushort)v,
        OnnxElementType.Int16 => (short)v,
        OnnxElementType.Int32 => (int)v,
        OnnxElementType.UInt32 => (uint)v,
        OnnxElementType.Bool => v != 0 ? 1 : 0,
        _ => v,
    };

    /// <summary>The float tensor; integer values are converted to a new float tensor (not differentiable).</summary>
    public Tensor AsTensor()
    {
        if (Tensor is not null) return Tensor;
        var ints = Ints!;
        var t = Tensors.Tensor.Empty(Shape);
        var s = t.Span;
        for (int i = 0; i < ints.Length; i++) s[i] = Type == OnnxElementType.UInt64 ? (float)(ulong)ints[i] : ints[i];
        return t;
    }

    /// <summary>The float elements in row-major order (copied for strided tensors, converted for integers).</summary>
    public float[] ToFloatArray() => AsTensor().ToArray();

    public override string ToString() =>
        $"{Type} {Shapes.ToString(Shape)}" + (Ints is { Length: <= 8 } a ? " [" + string.Join(", ", a) + "]" : "");

    // ---------------------------------------------------------------- TensorProto conversion

    /// <summary>Reads a TensorProto (raw_data or the typed fields) into a value (float tensors are persistent).</summary>
    public static OnnxValue FromProto(TensorProto t, string source)
    {
        var type = (OnnxElementType)t.DataType;
        var dims = new int[t.Dims.Count];
        for (int i = 0; i < dims.Length; i++)
        {
            if (t.Dims[i] < 0 || t.Dims[i] > int.MaxValue)
                throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' has an invalid dimension {t.Dims[i]}.");
            dims[i] = (int)t.Dims[i];
        }
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' is stored externally and was not loaded (load the model with OnnxModelFile.Load from its folder).");
        // The element count must fit an array; the data present must match it (checked below before allocating).
        long n = OnnxNode.SaturatingProduct(dims);
        if (n > int.MaxValue)
            throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' has shape [{string.Join(", ", t.Dims)}]: too many elements.");
        if (type == OnnxElementType.Float)
        {
            float[] data;
            try { data = TensorProtoData.ToFloats(t); }
            catch (InvalidDataException e) { throw new InvalidDataException($"'{source}': {e.Message}", e); }
            var tensor = Tensors.Tensor.Wrap(data, dims);
            tensor.Name = t.Name;
            return FromTensor(tensor);
        }
        if (!IsIntegral(type))
            throw new NotSupportedException($"Tensor '{t.Name}' in '{source}' has element type {type}; the interpreter handles float32, integer and bool tensors.");
        var raw = t.RawData.Span;
        if (!raw.IsEmpty && raw.Length != n * ElementSize(type))
            throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' has {raw.Length} raw bytes; shape [{string.Join(", ", t.Dims)}] of {type} needs {n * ElementSize(type)}.");
        long typedCount = type switch
        {
            OnnxElementType.Int64 => t.Int64Data.Count,
            OnnxElementType.UInt32 or OnnxElementType.UInt64 => t.Uint64Data.Count,
            _ => t.Int32Data.Count,
        };
        if (raw.IsEmpty && typedCount != n)
            throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' of shape [{string.Join(", ", t.Dims)}] holds {typedCount} values instead of {n}.");
        var values = new long[n];
        if (!raw.IsEmpty)
        {
            int size = ElementSize(type);
            for (int i = 0; i < n; i++)
            {
                var b = raw.Slice(i * size, size);
                values[i] = type switch
                {
                    OnnxElementType.UInt8 or OnnxElementType.Bool => b[0],
                    OnnxElementType.Int8 => (sbyte)b[0],
                    OnnxElementType.UInt16 => MemoryMarshal.Read<ushort>(b),
                    OnnxElementType.Int16 => MemoryMarshal.Read<short>(b),
                    OnnxElementType.Int32 => MemoryMarshal.Read<int>(b),
                    OnnxElementType.UInt32 => MemoryMarshal.Read<uint>(b),
                    _ => MemoryMarshal.Read<long>(b),
                };
            }
        }
        else
        {
            // Typed fields: int64_data for INT64, uint64_data for UINT32/UINT64, int32_data for the small types.
            IReadOnlyList<long> source64 = type switch
            {
                OnnxElementType.Int64 => t.Int64Data,
                OnnxElementType.UInt32 or OnnxElementType.UInt64 => t.Uint64Data.Select(v => (long)v).ToArray(),
                _ => t.Int32Data.Select(v => (long)v).ToArray(),
            };
            if (source64.Count != n)
                throw new InvalidDataException($"Tensor '{t.Name}' in '{source}' of shape [{string.Join(", ", t.Dims)}] holds {source64.Count} values instead of {n}.");
            for (int i = 0; i < n; i++) values[i] = Wrap(source64[i], type);
        }
        return new OnnxValue(type, null, values, dims);
    }

    public static int ElementSize(OnnxElementType t) => t switch
    {
        OnnxElementType.UInt8 or OnnxElementType.Int8 or OnnxElementType.Bool => 1,
        OnnxElementType.UInt16 or OnnxElementType.Int16 or OnnxElementType.Float16 or OnnxElementType.BFloat16 => 2,
        OnnxElementType.Int32 or OnnxElementType.UInt32 or OnnxElementType.Float => 4,
        _ => 8,
    };
}
