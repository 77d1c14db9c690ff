using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Vega.MLNet.Tensors;

/// <summary>
/// A float32 n-dimensional array: a <see cref="TensorStorage"/>, an element offset, a shape and element strides
/// (row-major when contiguous). Views (reshape of a contiguous tensor, transpose, slice, expand) share the storage and
/// only change offset/shape/strides. Operations live in <see cref="Ops"/>; they record themselves on the current
/// <see cref="Tape"/> when an input <see cref="RequiresGrad"/>.
/// The shape and stride arrays are shared, never mutate them.
/// </summary>
internal sealed class Tensor : IDisposable
{
    private readonly int[] _shape;
    private readonly int[] _strides;

    internal Tensor(TensorStorage storage, int offset, int[] shape, int[] strides)
    {
        Storage = storage;
        Offset = offset;
        _shape = shape;
        _strides = strides;
        long n = 1;
        foreach (int d in shape) n *= d;
        Length = checked((int)n);
        IsContiguous = ComputeContiguous(shape, strides);
    }

    internal TensorStorage Storage { get; }

    /// <summary>Element offset of this tensor's first element in <see cref="Data"/>.</summary>
    public int Offset { get; }

    /// <summary>The dimensions (do not modify the array).</summary>
    public int[] Shape => _shape;

    /// <summary>Element strides per dimension (0 for an expanded dimension).</summary>
    public int[] Strides => _strides;

    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Row-major with no gaps: <see cref="Span"/> is usable.</summary>
    public bool IsContiguous { get; }

    /// <summary>The storage array (throws when the storage was released).</summary>
    public float[] Data => Storage.Array;

    /// <summary>The elements of a contiguous tensor.</summary>
    public Span<float> Span
    {
        get
        {
            if (!IsContiguous) throw new InvalidOperationException($"Span needs a contiguous tensor; this {ShapeString} view is strided. Call Ops.Contiguous first.");
            return Storage.Array.AsSpan(Offset, Length);
        }
    }

    /// <summary>True for trainable leaves and for results computed from them while a tape records.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>The accumulated gradient (leaves keep it across backward passes until zeroed; intermediates drop it).</summary>
    public Tensor? Grad { get; internal set; }

    /// <summary>The tape node that produced this tensor (null for leaves).</summary>
    internal Tape.Node? GradFn { get; set; }

    /// <summary>An optional name (parameters: the key used in safetensors files).</summary>
    public string? Name { get; set; }

    public bool IsLeaf => GradFn is null;

    public int Dim(int axis) => _shape[Shapes.NormalizeAxis(axis, Rank, nameof(axis))];

    public string ShapeString => Shapes.ToString(_shape);

    // ---------------------------------------------------------------- factories

    /// <summary>Uninitialised contiguous tensor in the current scope.</summary>
    public static Tensor Empty(params int[] shape) => Create(shape, zero: false, persistent: false);

    public static Tensor Zeros(params int[] shape) => Create(shape, zero: true, persistent: false);

    public static Tensor Ones(params int[] shape) => Full(1f, shape);

    public static Tensor Full(float value, params int[] shape)
    {
        var t = Create(shape, zero: false, persistent: false);
        t.Span.Fill(value);
        return t;
    }

    public static Tensor Scalar(float value) => Full(value, []);

    /// <summary>A copy of <paramref name="values"/> with the given shape.</summary>
    public static Tensor FromArray(ReadOnlySpan<float> values, params int[] shape)
    {
        var t = Create(shape, zero: false, persistent: false);
        if (values.Length != t.Length)
            throw new ArgumentException($"A tensor of shape {Shapes.ToString(shape)} needs {t.Length} values, got {values.Length}.", nameof(values));
        values.CopyTo(t.Span);
        return t;
    }

    /// <summary>Wraps <paramref name="array"/> without copying (persistent, never pooled).</summary>
    public static Tensor Wrap(float[] array, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(array);
        Shapes.Validate(shape, nameof(shape));
        long n = Shapes.Product(shape);
        if (n != array.Length)
            throw new ArgumentException($"A tensor of shape {Shapes.ToString(shape)} needs {n} values, the array has {array.Length}.", nameof(array));
        return new Tensor(TensorStorage.Wrap(array), 0, (int[])shape.Clone(), Shapes.ContiguousStrides(shape));
    }

    /// <summary>A persistent trainable leaf initialised from <paramref name="values"/> (copied).</summary>
    public static Tensor Parameter(ReadOnlySpan<float> values, int[] shape, string? name = null)
    {
        var t = Create(shape, zero: false, persistent: true);
        if (values.Length != t.Length)
            throw new ArgumentException($"Parameter '{name}' of shape {Shapes.ToString(shape)} needs {t.Length} values, got {values.Length}.", nameof(values));
        values.CopyTo(t.Span);
        t.RequiresGrad = true;
        t.Name = name;
        return t;
    }

    /// <summary>A persistent zero-initialised trainable leaf.</summary>
    public static Tensor Parameter(int[] shape, string? name = null)
    {
        var t = Create(shape, zero: true, persistent: true);
        t.RequiresGrad = true;
        t.Name = name;
        return t;
    }

    internal static Tensor Create(int[] shape, bool zero, bool persistent)
    {
        Shapes.Validate(shape, nameof(shape));
        int n = checked((int)Shapes.Product(shape));
        var storage = TensorStorage.Allocate(n, zero, persistent);
        return new Tensor(storage, 0, (int[])shape.Clone(), Shapes.ContiguousStrides(shape));
    }

    /// <summary>A new tensor over the same storage (used by view ops; no copy).</summary>
    internal Tensor View(int offset, int[] shape, int[] strides) => new(Storage, offset, shape, strides);

    // ---------------------------------------------------------------- access

    /// <summary>The single value of a one-element tensor.</summary>
    public float Item()
    {
        if (Length != 1) throw new InvalidOperationException($"Item() needs a tensor with one element; this one has shape {ShapeString}.");
        return Storage.Array[Offset];
    }

    /// <summary>Element at the given multi-index (slow; for tests and diagnostics).</summary>
    [IndexerName("Element")]
    public float this[params int[] index]
    {
        get => Storage.Array[ElementOffset(index)];
        set => Storage.Array[ElementOffset(index)] = value;
    }

    private int ElementOffset(int[] index)
    {
        if (index.Length != Rank) throw new ArgumentException($"Index of rank {index.Length} for a tensor of shape {ShapeString}.", nameof(index));
        int o = Offset;
        for (int i = 0; i < index.Length; i++)
        {
            if ((uint)index[i] >= (uint)_shape[i]) throw new IndexOutOfRangeException($"Index {index[i]} is out of range for axis {i} of shape {ShapeString}.");
            o += index[i] * _strides[i];
        }
        return o;
    }

    /// <summary>The values in row-major order (a fresh array).</summary>
    public float[] ToArray()
    {
        var result = new float[Length];
        CopyTo(result);
        return result;
    }

    /// <summary>Copies the values in row-major order into <paramref name="destination"/>.</summary>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length < Length) throw new ArgumentException($"Destination holds {destination.Length} values, the tensor has {Length}.", nameof(destination));
        if (IsContiguous) Storage.Array.AsSpan(Offset, Length).CopyTo(destination);
        else Kernels.StridedCopy(this, destination[..Length]);
    }

    /// <summary>Detaches the buffer from its scope so that it survives the scope (the GC or <see cref="Dispose"/> reclaims it).</summary>
    public Tensor Keep()
    {
        Storage.Owner = null;
        return this;
    }

    /// <summary>A tensor over the same values that is not connected to the tape.</summary>
    public Tensor Detach() => new(Storage, Offset, _shape, _strides);

    /// <summary>Returns the buffer to the pool now. The storage is shared with views: they become unusable too.</summary>
    public void Dispose() => Storage.Release();

    public bool IsDisposed => Storage.IsReleased;

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append("Tensor").Append(ShapeString);
        if (RequiresGrad) sb.Append(" requires_grad");
        if (Storage.IsReleased) return sb.Append(" (released)").ToString();
        sb.Append(" [");
        int n = Math.Min(Length, 8);
        var values = ToArray();
        for (int i = 0; i < n; i++) sb.Append(i > 0 ? ", " : "").Append(values[i].ToString("G6", CultureInfo.InvariantCulture));
        if (Length > n) sb.Append(", …");
        return sb.Append(']').ToString();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ComputeContiguous(int[] shape, int[] strides)
    {
        int expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] == 1) continue;
            if (strides[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    // ---------------------------------------------------------------- operators (recorded like the Ops methods)

    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);
    public static Tensor operator +(Tensor a, float b) => Ops.AddScalar(a, b);
    public static Tensor operator -(Tensor a, float b) => Ops.AddScalar(a, -b);
    public static Tensor operator *(Tensor a, float b) => Ops.MulScalar(a, b);
    public static Tensor operator *(float a, Tensor b) => Ops.MulScalar(b, a);
    public static Tensor operator /(Tensor a, float b) => Ops.DivScalar(a, b);
    public static Tensor operator -(Tensor a) => Ops.Neg(a);
}
