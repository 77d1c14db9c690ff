using System.Numerics;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Process-wide pool of float buffers for tensor storage. Sizes are rounded up to one of four classes per power of two
/// (waste ≤ 25 %), each class keeps a stack of free arrays. Unlike <c>ArrayPool.Shared</c> the pool is not bounded per
/// size class (a training step needs dozens of same-sized activations at once), only by <see cref="MaxRetainedBytes"/>.
/// Rented arrays are not cleared.
/// </summary>
internal static class TensorPool
{
    private const int MinLength = 16;
    private const int Classes = 4 * 31;
    private static readonly Stack<float[]>?[] Free = new Stack<float[]>?[Classes];
    private static readonly Lock Gate = new();
    private static long _retainedBytes;
    private static long _rented;
    private static long _reused;
    [ThreadStatic] private static long t_rented;
    [ThreadStatic] private static long t_reused;

    /// <summary>Upper bound on the bytes kept in the pool; arrays returned beyond it are left to the GC. Default 4 GiB.</summary>
    public static long MaxRetainedBytes { get; set; } = 4L << 30;

    /// <summary>Bytes currently held by the pool (free arrays).</summary>
    public static long RetainedBytes { get { lock (Gate) return _retainedBytes; } }

    /// <summary>Number of rents served so far, and how many of them reused a pooled array.</summary>
    public static (long Rented, long Reused) Statistics { get { lock (Gate) return (_rented, _reused); } }

    /// <summary>The same counts for rents made on the calling thread only.</summary>
    public static (long Rented, long Reused) ThreadStatistics => (t_rented, t_reused);

    /// <summary>An array with at least <paramref name="length"/> elements (contents undefined).</summary>
    public static float[] Rent(int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "A tensor length cannot be negative.");
        int cls = ClassOf(length);
        t_rented++;
        lock (Gate)
        {
            _rented++;
            var stack = Free[cls];
            if (stack is { Count: > 0 })
            {
                var a = stack.Pop();
                _retainedBytes -= (long)a.Length * sizeof(float);
                _reused++;
                t_reused++;
                return a;
            }
        }
        return GC.AllocateUninitializedArray<float>(ClassLength(cls));
    }

    /// <summary>Gives <paramref name="array"/> (obtained from <see cref="Rent"/>) back to the pool.</summary>
    public static void Return(float[] array)
    {
        int cls = ClassOf(array.Length);
        if (ClassLength(cls) != array.Length) return; // not one of ours
        lock (Gate)
        {
            long bytes = (long)array.Length * sizeof(float);
            if (_retainedBytes + bytes > MaxRetainedBytes) return;
            (Free[cls] ??= new Stack<float[]>()).Push(array);
            _retainedBytes += bytes;
        }
    }

    /// <summary>Drops every pooled array (they become garbage).</summary>
    public static void Clear()
    {
        lock (Gate)
        {
            Array.Clear(Free);
            _retainedBytes = 0;
        }
    }

    // Size classes: for length ≤ 16 one class; above, 2^e · {1, 1.25, 1.5, 1.75}.
    internal static int ClassOf(int length)
    {
        if (length <= MinLength) return 0;
        int e = 31 - BitOperations.LeadingZeroCount((uint)(length - 1)); // 2^e < length ≤ 2^(e+1)
        long baseLen = 1L << e;
        int sub = (int)Math.Min(3, ((long)length - baseLen - 1) * 4 / baseLen); // quarter steps above 2^e
        int cls = (e - 3) * 4 + sub; // e ≥ 4 here → ≥ 4
        if (ClassLength(cls) < length) cls++;
        return cls;
    }

    internal static int ClassLength(int cls)
    {
        if (cls <= 0) return MinLength;
        int e = cls / 4 + 3, sub = cls % 4;
        long len = (1L << e) + ((1L << e) * (sub + 1) / 4);
        return (int)Math.Min(len, Array.MaxLength);
    }
}
