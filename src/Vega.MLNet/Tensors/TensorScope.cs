namespace Vega.MLNet.Tensors;

/// <summary>
/// A memory arena for tensors: every tensor buffer allocated on this thread while the scope is the innermost one belongs
/// to it and goes back to <see cref="TensorPool"/> when the scope is disposed. A training step or an inference batch
/// inside one scope therefore reuses the same buffers step after step instead of allocating. Tensors that must outlive
/// the scope are detached with <see cref="Tensor.Keep"/>. A <see cref="Tape"/> opens its own scope.
/// Scopes nest and must be disposed in reverse order, on the thread that created them.
/// </summary>
internal sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? t_current;

    private readonly List<TensorStorage> _storages = [];
    private readonly TensorScope? _parent;
    private readonly int _threadId;
    private bool _disposed;

    public TensorScope()
    {
        _parent = t_current;
        _threadId = Environment.CurrentManagedThreadId;
        t_current = this;
    }

    /// <summary>The innermost scope of this thread, or null (tensors are then persistent, reclaimed by the GC).</summary>
    public static TensorScope? Current => t_current;

    /// <summary>Number of buffers this scope still owns.</summary>
    public int OwnedCount
    {
        get
        {
            int n = 0;
            foreach (var s in _storages) if (s.Owner == this && !s.IsReleased) n++;
            return n;
        }
    }

    internal void Register(TensorStorage storage) => _storages.Add(storage);

    /// <summary>Makes this scope the current one (the tape's backward pass); undo with <see cref="Restore"/>.</summary>
    internal void Enter(out TensorScope? previous)
    {
        previous = t_current;
        t_current = this;
    }

    internal static void Restore(TensorScope? previous) => t_current = previous;

    /// <summary>Releases every buffer still owned by this scope.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _threadId)
            throw new InvalidOperationException("A TensorScope must be disposed on the thread that created it.");
        if (t_current != this)
            throw new InvalidOperationException("TensorScopes must be disposed innermost first (dispose the nested scope or tape before this one).");
        _disposed = true;
        t_current = _parent;
        foreach (var s in _storages)
            if (s.Owner == this) s.Release();
        _storages.Clear();
    }
}
