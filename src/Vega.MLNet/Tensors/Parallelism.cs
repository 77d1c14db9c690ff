namespace Vega.MLNet.Tensors;

/// <summary>
/// Thread settings of the tensor core and the chunked parallel loop its kernels use. Work is split into a fixed number
/// of contiguous chunks that depends only on the problem size and <see cref="ThreadCount"/>, and each chunk writes
/// disjoint outputs, so results do not depend on scheduling.
/// </summary>
internal static class Parallelism
{
    private static int _threads = DefaultThreads();

    /// <summary>Minimum number of elementary operations per chunk worth a thread hand-off.</summary>
    public const long MinWorkPerChunk = 1 << 15;

    /// <summary>
    /// Threads used by the managed kernels (process-wide). Defaults to the environment variable
    /// <c>VEGA_THREADS</c>, else the number of processors.
    /// </summary>
    public static int ThreadCount
    {
        get => _threads;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "The thread count must be at least 1.");
            _threads = value;
        }
    }

    private static int DefaultThreads()
    {
        string? env = Environment.GetEnvironmentVariable("VEGA_THREADS");
        if (int.TryParse(env, out int n) && n >= 1) return n;
        return Environment.ProcessorCount;
    }

    /// <summary>How many chunks to split <paramref name="count"/> items of <paramref name="costPerItem"/> work into.</summary>
    public static int Chunks(long count, long costPerItem)
    {
        int threads = _threads;
        if (threads <= 1 || count <= 1) return 1;
        long work = count * Math.Max(costPerItem, 1);
        long byWork = work / MinWorkPerChunk;
        return (int)Math.Max(1, Math.Min(Math.Min(threads, byWork), count));
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, <paramref name="count"/>) in balanced contiguous chunks.</summary>
    public static void For(int count, long costPerItem, Action<int, int> body)
    {
        int chunks = Chunks(count, costPerItem);
        if (chunks <= 1)
        {
            if (count > 0) body(0, count);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, c =>
        {
            int start = (int)((long)count * c / chunks), end = (int)((long)count * (c + 1) / chunks);
            if (end > start) body(start, end);
        });
    }

    /// <summary>Runs <paramref name="body"/>(task) for every task in [0, <paramref name="tasks"/>) on up to <see cref="ThreadCount"/> threads.</summary>
    public static void ForTasks(int tasks, Action<int> body)
    {
        int threads = Math.Min(_threads, tasks);
        if (threads <= 1)
        {
            for (int t = 0; t < tasks; t++) body(t);
            return;
        }
        Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
    }
}
