using System.Runtime.InteropServices;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Reverse-mode automatic differentiation. While a tape is current (and no <see cref="NoGrad"/> scope is open), every
/// op whose input requires a gradient appends a node (output, inputs, backward function) to the tape.
/// <see cref="Backward"/> walks the nodes in reverse order and accumulates gradients into <see cref="Tensor.Grad"/>:
/// leaves (parameters, inputs marked RequiresGrad) keep them — parameters across tapes, which is how gradient
/// accumulation works — intermediates drop theirs as soon as they have been propagated, and gradient temporaries go
/// back to the pool right away.
/// The tape is also a <see cref="TensorScope"/>: every buffer allocated while it is current (activations, gradient
/// temporaries) is released when it is disposed. Parameters and their gradients are persistent.
/// One tape per thread at a time; dispose it at the end of the step.
/// </summary>
internal sealed class Tape : IDisposable
{
    [ThreadStatic] private static Tape? t_current;
    [ThreadStatic] private static int t_noGrad;
    [ThreadStatic] private static List<TensorStorage>? t_pending; // buffers allocated by the running backward function

    private readonly List<Node> _nodes = [];
    private long _lastRecord;

    /// <summary>
    /// Diagnostics: when set (on the recording thread), forward time (since the previous recorded op) and backward time
    /// are accumulated per op name. Costs two timestamps per op; off (null) by default.
    /// </summary>
    [ThreadStatic] internal static Dictionary<string, OpProfile>? Profile;

    /// <summary>Accumulated timings of one op kind.</summary>
    internal sealed class OpProfile
    {
        public int Count;
        public double ForwardSeconds;
        public double BackwardSeconds;
    }
    private readonly TensorScope _scope;
    private readonly Tape? _parent;
    private bool _disposed;

    public Tape()
    {
        _scope = new TensorScope();
        _parent = t_current;
        t_current = this;
    }

    /// <summary>The innermost tape of this thread.</summary>
    public static Tape? Current => t_current;

    /// <summary>True when ops record (a tape is current and no <see cref="NoGrad"/> scope is open).</summary>
    public static bool IsRecording => t_current is not null && t_noGrad == 0;

    /// <summary>Number of recorded nodes.</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>The memory scope of this tape.</summary>
    public TensorScope Scope => _scope;

    /// <summary>Suspends recording until the returned scope is disposed (evaluation, optimiser updates).</summary>
    public static NoGradScope NoGrad()
    {
        t_noGrad++;
        return new NoGradScope();
    }

    /// <summary>Ends a <see cref="NoGrad"/> region.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        public void Dispose() => t_noGrad--;
    }

    /// <summary>One recorded operation.</summary>
    internal sealed class Node(string op, Tensor output, Tensor[] inputs, BackwardFn backward, Tape tape)
    {
        public string Op { get; } = op;
        public Tensor Output { get; } = output;
        public Tensor[] Inputs { get; } = inputs;
        public BackwardFn Backward { get; } = backward;
        public Tape Tape { get; } = tape;
    }

    /// <summary>Propagates <paramref name="gradOutput"/> (shape of the node's output) to the inputs with <see cref="Accumulate"/>.</summary>
    internal delegate void BackwardFn(Tensor gradOutput);

    // ---------------------------------------------------------------- recording

    internal static bool Needs(Tensor a) => a.RequiresGrad && IsRecording;
    internal static bool Needs(Tensor a, Tensor b) => (a.RequiresGrad || b.RequiresGrad) && IsRecording;
    internal static bool Needs(Tensor a, Tensor b, Tensor c) => (a.RequiresGrad || b.RequiresGrad || c.RequiresGrad) && IsRecording;

    internal static bool Needs(ReadOnlySpan<Tensor> inputs)
    {
        if (!IsRecording) return false;
        foreach (var t in inputs) if (t.RequiresGrad) return true;
        return false;
    }

    /// <summary>Records <paramref name="output"/> = op(<paramref name="inputs"/>) on the current tape.</summary>
    internal static void Record(string op, Tensor output, Tensor[] inputs, BackwardFn backward)
    {
        var tape = t_current ?? throw new InvalidOperationException("No tape is recording.");
        var node = new Node(op, output, inputs, backward, tape);
        tape._nodes.Add(node);
        if (Profile is { } profile)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            var p = CollectionsMarshal.GetValueRefOrAddDefault(profile, op, out _) ??= new OpProfile();
            p.Count++;
            if (tape._lastRecord != 0) p.ForwardSeconds += (now - tape._lastRecord) / (double)System.Diagnostics.Stopwatch.Frequency;
            tape._lastRecord = now;
        }
        output.GradFn = node;
        output.RequiresGrad = true;
    }

    internal static void OnAllocate(TensorStorage s)
    {
        var pending = t_pending;
        if (pending is null) return;
        s.Transient = true;
        pending.Add(s);
    }

    // ---------------------------------------------------------------- backward

    /// <summary>
    /// Computes the gradient of <paramref name="loss"/> with respect to every leaf that requires one.
    /// <paramref name="seed"/> is dLoss/dOutput (defaults to 1 for a one-element loss).
    /// </summary>
    public void Backward(Tensor loss, Tensor? seed = null)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!loss.RequiresGrad)
            throw new InvalidOperationException(
                $"The loss {loss.ShapeString} does not depend on anything that requires a gradient: mark parameters with RequiresGrad, " +
                "compute the forward pass while this tape is current, and not inside Tape.NoGrad().");
        if (loss.GradFn is { } fn && fn.Tape != this)
            throw new InvalidOperationException("The loss was recorded on a different tape; call Backward on the tape that was current during the forward pass.");
        if (seed is null && loss.Length != 1)
            throw new ArgumentException($"Backward without a seed needs a one-element loss; got shape {loss.ShapeString}. Pass the output gradient as seed.", nameof(seed));
        if (seed is not null && !Shapes.SameShape(seed.Shape, loss.Shape))
            throw new ArgumentException($"The seed gradient has shape {seed.ShapeString}, the loss {loss.ShapeString}.", nameof(seed));

        _scope.Enter(out var previousScope);
        t_noGrad++;
        var previousPending = t_pending;
        var pending = new List<TensorStorage>();
        try
        {
            Accumulate(loss, seed ?? Tensor.Ones(loss.Shape));
            int last = loss.GradFn is null ? -1 : _nodes.LastIndexOf(loss.GradFn);
            for (int i = last; i >= 0; i--)
            {
                var node = _nodes[i];
                var g = node.Output.Grad;
                if (g is null) continue;
                t_pending = pending;
                long t0 = Profile is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    node.Backward(g);
                }
                finally
                {
                    t_pending = null;
                }
                // The output's gradient has been propagated: drop it, and free temporaries nobody holds.
                ClearGrad(node.Output);
                foreach (var s in pending)
                    if (s.GradRefs == 0) s.Release();
                pending.Clear();
                if (Profile is { } profile && profile.TryGetValue(node.Op, out var p))
                    p.BackwardSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
        }
        finally
        {
            t_pending = previousPending;
            t_noGrad--;
            TensorScope.Restore(previousScope);
        }
    }

    private static void ClearGrad(Tensor t)
    {
        var g = t.Grad;
        if (g is null) return;
        t.Grad = null;
        var s = g.Storage;
        if (--s.GradRefs == 0 && s.Transient) s.Release();
    }

    private static void SetGrad(Tensor target, Tensor grad)
    {
        target.Grad = grad;
        grad.Storage.GradRefs++;
    }

    private static bool CanAccumulateInPlace(Tensor g) =>
        g.Storage.GradRefs == 1 && (g.Storage.Transient || g.Storage.ExclusiveGrad) && g.IsContiguous && !g.Storage.IsReleased;

    /// <summary>Adds <paramref name="grad"/> to the gradient of <paramref name="target"/> (ignored when it needs none).</summary>
    internal static void Accumulate(Tensor target, Tensor grad)
    {
        if (!target.RequiresGrad) return;
        if (!Shapes.SameShape(target.Shape, grad.Shape))
            throw new InvalidOperationException(
                $"Internal error: gradient of shape {grad.ShapeString} for a tensor of shape {target.ShapeString} ({target.GradFn?.Op ?? "leaf"}).");
        var existing = target.Grad;
        if (existing is null)
        {
            if (target.IsLeaf)
            {
                var own = NewLeafGrad(target, zero: false);
                grad.CopyTo(own.Span);
                SetGrad(target, own);
            }
            else SetGrad(target, grad);
            return;
        }
        if (CanAccumulateInPlace(existing))
        {
            Kernels.AddInto(existing, grad);
            return;
        }
        Tensor sum;
        if (target.IsLeaf)
        {
            sum = NewLeafGrad(target, zero: false);
            existing.CopyTo(sum.Span);
            Kernels.AddInto(sum, grad);
        }
        else
        {
            sum = Tensor.Empty(target.Shape);
            existing.CopyTo(sum.Span);
            Kernels.AddInto(sum, grad);
        }
        ClearGrad(target);
        SetGrad(target, sum);
    }

    /// <summary>
    /// A contiguous gradient buffer of <paramref name="target"/> that the caller may add into (created zeroed if absent,
    /// copied if the current one is shared). Null when <paramref name="target"/> needs no gradient.
    /// </summary>
    internal static Tensor? GradBuffer(Tensor target)
    {
        if (!target.RequiresGrad) return null;
        var existing = target.Grad;
        if (existing is not null && CanAccumulateInPlace(existing)) return existing;
        var fresh = target.IsLeaf ? NewLeafGrad(target, zero: existing is null) : Tensor.Zeros(target.Shape);
        if (existing is not null)
        {
            existing.CopyTo(fresh.Span);
            ClearGrad(target);
        }
        SetGrad(target, fresh);
        return fresh;
    }

    private static Tensor NewLeafGrad(Tensor leaf, bool zero)
    {
        // The gradient lives exactly as long as its leaf: persistent for a parameter, in the leaf's scope otherwise.
        var storage = TensorStorage.Allocate(leaf.Length, zero, leaf.Storage.Owner);
        storage.Transient = false;
        storage.ExclusiveGrad = true;
        return new Tensor(storage, 0, leaf.Shape, Shapes.ContiguousStrides(leaf.Shape));
    }

    /// <summary>Sets the gradients of <paramref name="parameters"/> to zero (keeping their buffers).</summary>
    public static void ZeroGrad(IEnumerable<Tensor> parameters)
    {
        foreach (var p in parameters) p.Grad?.Span.Clear();
    }

    /// <summary>Ends recording and releases every buffer allocated while the tape was current.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (t_current != this)
            throw new InvalidOperationException("Tapes must be disposed innermost first, on the thread that created them.");
        _disposed = true;
        t_current = _parent;
        foreach (var node in _nodes)
        {
            node.Output.GradFn = null;
            node.Output.RequiresGrad = false;
            if (node.Output.Grad is not null) node.Output.Grad = null;
        }
        _nodes.Clear();
        _scope.Dispose();
    }
}
