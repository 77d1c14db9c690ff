namespace Vega.MLNet.Tensors;

/// <summary>Shape arithmetic: validation, strides, numpy/ONNX broadcasting, axis normalisation.</summary>
internal static class Shapes
{
    public static string ToString(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static void Validate(int[] shape, string argument)
    {
        ArgumentNullException.ThrowIfNull(shape, argument);
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape {ToString(shape)} has a negative dimension.", argument);
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"Shape {ToString(shape)} has more than {int.MaxValue} elements.", argument);
        }
    }

    /// <summary>The number of elements (checked: a product beyond long's range throws <see cref="OverflowException"/>).</summary>
    public static long Product(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape) n = checked(n * d);
        return n;
    }

    public static int[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= Math.Max(shape[i], 1);
        }
        return s;
    }

    public static int NormalizeAxis(int axis, int rank, string argument)
    {
        int a = axis < 0 ? axis + rank : axis;
        if ((uint)a >= (uint)Math.Max(rank, 0) || rank == 0)
            throw new ArgumentOutOfRangeException(argument, axis, $"Axis {axis} is out of range for a tensor of rank {rank} (valid: {-rank}..{rank - 1}).");
        return a;
    }

    /// <summary>Sorted, distinct, non-negative axes; null or empty means all axes.</summary>
    public static int[] NormalizeAxes(int[]? axes, int rank, string argument)
    {
        if (axes is null || axes.Length == 0)
        {
            var all = new int[rank];
            for (int i = 0; i < rank; i++) all[i] = i;
            return all;
        }
        var r = new int[axes.Length];
        for (int i = 0; i < axes.Length; i++) r[i] = NormalizeAxis(axes[i], rank, argument);
        Array.Sort(r);
        for (int i = 1; i < r.Length; i++)
            if (r[i] == r[i - 1]) throw new ArgumentException($"Axis {r[i]} is listed twice in [{string.Join(", ", axes)}].", argument);
        return r;
    }

    /// <summary>The numpy/ONNX multidirectional broadcast of two shapes.</summary>
    public static int[] Broadcast(int[] a, int[] b, string operation)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da == db || db == 1) r[i] = da;
            else if (da == 1) r[i] = db;
            else throw new ArgumentException($"{operation}: shapes {ToString(a)} and {ToString(b)} cannot be broadcast (dimension {i} of the aligned shapes is {da} vs {db}; each pair must be equal or contain a 1).");
        }
        return r;
    }

    public static int[] Broadcast(int[] a, int[] b, int[] c, string operation) => Broadcast(Broadcast(a, b, operation), c, operation);

    /// <summary>Strides of <paramref name="t"/> aligned to <paramref name="outShape"/> (0 on broadcast dimensions).</summary>
    public static int[] BroadcastStrides(Tensor t, int[] outShape)
    {
        var s = new int[outShape.Length];
        int shift = outShape.Length - t.Rank;
        for (int i = 0; i < t.Rank; i++)
            s[i + shift] = t.Shape[i] == 1 ? 0 : t.Strides[i];
        return s;
    }

    public static bool SameShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);
}
