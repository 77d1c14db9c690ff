namespace Vega.MLNet.Tensors;

/// <summary>
/// The buffer behind one or more tensors (a tensor and its views share one storage). The array comes from
/// <see cref="TensorPool"/>. A storage belongs to the <see cref="TensorScope"/> that was current when it was allocated
/// (or to none: then it lives until the GC takes it or <see cref="Release"/> is called). Releasing returns the array to
/// the pool; any later access through a tensor throws <see cref="ObjectDisposedException"/>, so a recycled buffer is never
/// read by mistake.
/// </summary>
internal sealed class TensorStorage
{
    private float[]? _array;

    private TensorStorage(float[] array, int length, TensorScope? owner)
    {
        _array = array;
        Length = length;
        Owner = owner;
    }

    /// <summary>Number of usable elements (the array may be longer).</summary>
    public int Length { get; }

    /// <summary>The scope that releases this storage when it ends; null for persistent storage.</summary>
    public TensorScope? Owner { get; internal set; }

    /// <summary>Created while a backward pass was running (a gradient temporary the tape may release early).</summary>
    internal bool Transient;

    /// <summary>How many tensors' gradient slots currently refer to this storage (used by the backward pass).</summary>
    internal int GradRefs;

    /// <summary>Allocated as the private gradient buffer of one leaf: safe to accumulate into in place.</summary>
    internal bool ExclusiveGrad;

    public bool IsReleased => _array is null;

    public float[] Array => _array ?? throw new ObjectDisposedException(nameof(Tensor),
        "This tensor's buffer was released (its TensorScope or Tape ended, or it was disposed). " +
        "Call Keep() on a tensor that must outlive its scope, or copy its values out before the scope ends.");

    /// <summary>Allocates storage for <paramref name="length"/> elements in the current scope (persistent if none or if <paramref name="persistent"/>).</summary>
    public static TensorStorage Allocate(int length, bool zero, bool persistent = false) =>
        Allocate(length, zero, persistent ? null : TensorScope.Current);

    /// <summary>Allocates storage owned by <paramref name="owner"/> (persistent when null).</summary>
    public static TensorStorage Allocate(int length, bool zero, TensorScope? owner)
    {
        float[] a = TensorPool.Rent(length);
        if (zero) System.Array.Clear(a, 0, length);
        var s = new TensorStorage(a, length, owner);
        owner?.Register(s);
        Tape.OnAllocate(s);
        return s;
    }

    /// <summary>Wraps a caller-owned array (never returned to the pool, never owned by a scope).</summary>
    public static TensorStorage Wrap(float[] array) => new(array, array.Length, null) { _wrapped = true };

    private bool _wrapped;

    /// <summary>Returns the array to the pool (once); later accesses throw.</summary>
    public void Release()
    {
        var a = _array;
        if (a is null) return;
        _array = null;
        Owner = null;
        if (!_wrapped) TensorPool.Return(a);
    }
}
