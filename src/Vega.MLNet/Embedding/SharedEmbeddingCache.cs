namespace Vega.MLNet.Embedding;

/// <summary>
/// One open <see cref="EmbeddingCache"/> per cache file in the process, shared by every user (the file's lock allows a
/// single writer, and several transformers or cursors over the same model and folder are common in an ML.NET
/// pipeline). Each <see cref="Acquire"/> returns a lease; the file closes when the last lease is disposed.
/// </summary>
internal static class SharedEmbeddingCache
{
    private static readonly Dictionary<string, (EmbeddingCache Cache, int Leases)> Open = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();

    public static Lease Acquire(string directory, string modelHash, string modelName, string preprocessingKey, int dimension)
    {
        string path = Path.GetFullPath(EmbeddingCache.FileFor(directory, modelHash, preprocessingKey));
        lock (Gate)
        {
            if (!Open.TryGetValue(path, out var entry))
                entry = (EmbeddingCache.Open(directory, modelHash, modelName, preprocessingKey, dimension), 0);
            Open[path] = (entry.Cache, entry.Leases + 1);
            return new Lease(path, entry.Cache);
        }
    }

    private static void Release(string path)
    {
        lock (Gate)
        {
            if (!Open.TryGetValue(path, out var entry)) return;
            if (entry.Leases > 1) Open[path] = (entry.Cache, entry.Leases - 1);
            else
            {
                Open.Remove(path);
                entry.Cache.Dispose();
            }
        }
    }

    /// <summary>A use of a shared cache; dispose it once.</summary>
    internal sealed class Lease(string path, EmbeddingCache cache) : IDisposable
    {
        private int _disposed;

        public EmbeddingCache Cache { get; } = cache;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Release(path);
        }
    }
}
