using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Microsoft.ML;

namespace Vega.MLNet;

/// <summary>
/// Runs a model over the rows of a cursor in batches, ahead of the rows' consumer, in two overlapping stages on their own
/// threads: stage 1 reads the next rows from a lead cursor and prepares them (e.g. decodes images on several threads),
/// stage 2 runs the model on the previous batch. The consumer takes finished batches in row order. A fixed set of batch
/// buffers circulates, so memory stays bounded however far the input goes. The first exception of a stage cancels the
/// other and is rethrown to the consumer by <see cref="Next"/>; disposing stops both stages and waits for them.
/// </summary>
internal sealed class ReadAheadPipeline<TBatch> : IDisposable where TBatch : class
{
    private readonly Channel<TBatch> _free;
    private readonly Channel<TBatch> _prepared;
    private readonly Channel<TBatch> _finished;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _stage1;
    private readonly Task _stage2;
    private ExceptionDispatchInfo? _failure;
    private int _disposed;

    /// <param name="lead">A cursor over the input; owned (disposed) by the pipeline.</param>
    /// <param name="fill">Fills a batch from the lead cursor; returns false when the cursor had no more rows.</param>
    /// <param name="prepare">Stage 1 work on a filled batch.</param>
    /// <param name="run">Stage 2 work on a prepared batch.</param>
    /// <param name="batches">The circulating batch buffers (at least 3: one filling, one running, one consumed).</param>
    public ReadAheadPipeline(DataViewRowCursor lead, Func<DataViewRowCursor, TBatch, bool> fill, Action<TBatch, CancellationToken> prepare,
        Action<TBatch, CancellationToken> run, IReadOnlyList<TBatch> batches)
    {
        if (batches.Count < 3) throw new ArgumentException("The pipeline needs at least 3 batch buffers.", nameof(batches));
        _free = Channel.CreateUnbounded<TBatch>();
        foreach (var b in batches) _free.Writer.TryWrite(b);
        _prepared = Channel.CreateBounded<TBatch>(1);
        _finished = Channel.CreateBounded<TBatch>(1);
        var ct = _cts.Token;
        _stage1 = Task.Factory.StartNew(() =>
        {
            try
            {
                while (true)
                {
                    var b = Take(_free, ct);
                    if (!fill(lead, b)) break;
                    prepare(b, ct);
                    Put(_prepared, b, ct);
                }
                _prepared.Writer.TryComplete();
            }
            catch (Exception e)
            {
                Fail(e);
            }
            finally
            {
                lead.Dispose();
            }
        }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _stage2 = Task.Factory.StartNew(() =>
        {
            try
            {
                while (_prepared.Reader.WaitToReadAsync(ct).AsTask().GetAwaiter().GetResult())
                {
                    if (!_prepared.Reader.TryRead(out var b)) continue;
                    run(b, ct);
                    Put(_finished, b, ct);
                }
                _finished.Writer.TryComplete();
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The next finished batch in row order, or null after the last one. Give it back with
    /// <see cref="Recycle"/> once its rows are consumed. Rethrows a stage's failure.</summary>
    public TBatch? Next()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        try
        {
            while (_finished.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                if (_finished.Reader.TryRead(out var b)) return b;
        }
        catch (ChannelClosedException) { }
        catch (OperationCanceledException) when (_failure is not null) { }
        _failure?.Throw();
        return null;
    }

    /// <summary>Returns a consumed batch to the pool of buffers.</summary>
    public void Recycle(TBatch batch) => _free.Writer.TryWrite(batch);

    private void Fail(Exception e)
    {
        if (e is OperationCanceledException && _cts.IsCancellationRequested && _failure is null && _disposed != 0) return;
        Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
        _cts.Cancel();
        _prepared.Writer.TryComplete();
        _finished.Writer.TryComplete();
    }

    private static TBatch Take(Channel<TBatch> channel, CancellationToken ct) => channel.Reader.ReadAsync(ct).AsTask().GetAwaiter().GetResult();

    private static void Put(Channel<TBatch> channel, TBatch b, CancellationToken ct) => channel.Writer.WriteAsync(b, ct).AsTask().GetAwaiter().GetResult();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _cts.Cancel();
        _free.Writer.TryComplete();
        try { Task.WaitAll(_stage1, _stage2); }
        catch (AggregateException) { /* stages report through _failure; nothing more to do on disposal */ }
        _cts.Dispose();
    }
}
