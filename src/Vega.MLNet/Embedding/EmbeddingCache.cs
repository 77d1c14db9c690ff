using Vega.MLNet.Common;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Vega.MLNet.Embedding;

/// <summary>How images are identified in the embedding cache.</summary>
public enum ImageIdentity
{
    /// <summary>SHA-256 of the file's bytes (or of the pixels for IDX / in-memory images). Safe; reads every file.</summary>
    Content,
    /// <summary>Full path + size + last-write time. Fast (cached files are not read at all), but a file rewritten with
    /// the same size and time stamp would be served its old embedding.</summary>
    PathSizeTime,
}

/// <summary>A 256-bit cache key (a SHA-256).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct CacheKey(ulong A, ulong B, ulong C, ulong D)
{
    /// <summary>The key of some bytes.</summary>
    public static CacheKey FromBytes(ReadOnlySpan<byte> bytes)
    {
        Span<byte> h = stackalloc byte[32];
        SHA256.HashData(bytes, h);
        return FromHash(h);
    }

    /// <summary>The key of a text (UTF-8).</summary>
    public static CacheKey FromText(string text) => FromBytes(Encoding.UTF8.GetBytes(text));

    /// <summary>The fast identity of a file: full path, size and last-write time (UTC ticks).</summary>
    public static CacheKey FromFileStamp(string path)
    {
        var info = new FileInfo(path);
        return FromText($"stamp|{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}");
    }

    internal static CacheKey FromHash(ReadOnlySpan<byte> h) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(h), BinaryPrimitives.ReadUInt64LittleEndian(h[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(h[16..]), BinaryPrimitives.ReadUInt64LittleEndian(h[24..]));

    internal void Write(Span<byte> dst)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(dst, A);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[8..], B);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[16..], C);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[24..], D);
    }
}

/// <summary>
/// An append-only, crash-safe file of image embeddings for one model and one preprocessing setting (docs/embedding-cache.md).
/// Records are fixed-size and checksummed; each <see cref="Append"/> is flushed to disk before it returns, so a
/// process killed mid-run loses at most the batch being written, and a torn tail is cut off at the next open. One
/// writer per file (an exclusive lock file guards it); lookups are thread-safe.
/// </summary>
public sealed class EmbeddingCache : IDisposable
{
    /// <summary>File magic.</summary>
    public const string Magic = "VGEMBED1";

    /// <summary>Current format version.</summary>
    public const int FormatVersion = 1;

    private readonly FileStream _file;
    private readonly FileStream _lock;
    private readonly Dictionary<CacheKey, int> _index = new();
    private readonly List<float[]> _blocks = [];
    private readonly Lock _gate = new();
    private const int BlockRows = 4096;
    private readonly int _recordSize;
    private int _count;

    private EmbeddingCache(string path, FileStream file, FileStream lockFile, int dimension, string modelHash, string preprocessingKey)
    {
        FilePath = path;
        _file = file;
        _lock = lockFile;
        Dimension = dimension;
        ModelHash = modelHash;
        PreprocessingKey = preprocessingKey;
        _recordSize = 32 + 4 * dimension + 4;
    }

    /// <summary>The cache file.</summary>
    public string FilePath { get; }

    /// <summary>Embedding width.</summary>
    public int Dimension { get; }

    /// <summary>SHA-256 of the model's tower files.</summary>
    public string ModelHash { get; }

    /// <summary>The preprocessing settings the embeddings were made with.</summary>
    public string PreprocessingKey { get; }

    /// <summary>Number of cached embeddings.</summary>
    public int Count { get { lock (_gate) return _count; } }

    /// <summary>Bytes cut off a torn tail when the file was opened (0 after a clean run).</summary>
    public long RecoveredBytes { get; private set; }

    /// <summary>The file name for a model and preprocessing setting inside a cache folder.</summary>
    public static string FileFor(string directory, string modelHash, string preprocessingKey) =>
        Path.Combine(directory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(modelHash + "\n" + preprocessingKey)))[..24] + ".vemb");

    /// <summary>Opens (or creates) the cache file of a model + preprocessing setting in <paramref name="directory"/>.</summary>
    public static EmbeddingCache Open(string directory, string modelHash, string modelName, string preprocessingKey, int dimension)
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension));
        Directory.CreateDirectory(directory);
        string path = FileFor(directory, modelHash, preprocessingKey);
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new IOException($"The embedding cache '{path}' is in use by another process (lock file '{path}.lock'). Wait for it to finish, or use another --cache folder.", e);
        }
        FileStream? file = null;
        try
        {
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1 << 16);
            var cache = new EmbeddingCache(path, file, lockFile, dimension, modelHash, preprocessingKey);
            if (file.Length == 0) cache.WriteHeader(modelName);
            else cache.Load();
            return cache;
        }
        catch
        {
            file?.Dispose();
            lockFile.Dispose();
            throw;
        }
    }

    private void WriteHeader(string modelName)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["model"] = modelName,
            ["model_sha256"] = ModelHash,
            ["preprocessing"] = PreprocessingKey,
            ["dimension"] = Dimension,
            ["record"] = "32-byte key (SHA-256 of the image identity) + dimension × float32 LE + CRC-32 of both",
            ["created_utc"] = DateTime.UtcNow.ToString("O"),
        });
        var header = new byte[20 + json.Length + 4];
        Encoding.ASCII.GetBytes(Magic, header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), Dimension);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), json.Length);
        json.CopyTo(header, 20);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20 + json.Length), Crc32.Compute(header.AsSpan(0, 20 + json.Length)));
        _file.Write(header);
        _file.Flush(flushToDisk: true);
        _headerLength = header.Length;
    }

    private long _headerLength;

    private void Load()
    {
        string Fix = $"Delete '{FilePath}' (the embeddings will be recomputed).";
        _file.Position = 0;
        var fixedPart = new byte[20];
        if (_file.ReadAtLeast(fixedPart, 20, throwOnEndOfStream: false) < 20 || Encoding.ASCII.GetString(fixedPart, 0, 8) != Magic)
            throw new InvalidDataException($"'{FilePath}' is not a Vega.MLNet embedding cache (bad magic). {Fix}");
        int version = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(8));
        if (version != FormatVersion)
            throw new InvalidDataException($"The embedding cache '{FilePath}' has format version {version}; this Vega.MLNet reads version {FormatVersion}. {Fix}");
        int dim = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(12));
        int jsonLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(16));
        if (jsonLength < 2 || jsonLength > 1 << 20) throw new InvalidDataException($"The embedding cache '{FilePath}' has a corrupt header. {Fix}");
        var header = new byte[20 + jsonLength + 4];
        fixedPart.CopyTo(header, 0);
        if (_file.ReadAtLeast(header.AsSpan(20), jsonLength + 4, throwOnEndOfStream: false) < jsonLength + 4
            || Crc32.Compute(header.AsSpan(0, 20 + jsonLength)) != BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(20 + jsonLength)))
            throw new InvalidDataException($"The embedding cache '{FilePath}' has a corrupt header (checksum). {Fix}");
        using (var doc = JsonDocument.Parse(header.AsMemory(20, jsonLength)))
        {
            string? hash = doc.RootElement.TryGetProperty("model_sha256", out var h) ? h.GetString() : null;
            string? prep = doc.RootElement.TryGetProperty("preprocessing", out var p) ? p.GetString() : null;
            if (dim != Dimension || hash != ModelHash || prep != PreprocessingKey)
                throw new InvalidDataException(
                    $"The embedding cache '{FilePath}' belongs to another model or setting (dimension {dim}, model {hash}, preprocessing {prep}). {Fix}");
        }
        _headerLength = header.Length;

        // Records: keep every complete record with a valid checksum; cut the file at the first torn or bad one.
        long valid = _headerLength;
        var record = new byte[_recordSize];
        _file.Position = _headerLength;
        while (_file.ReadAtLeast(record, _recordSize, throwOnEndOfStream: false) == _recordSize)
        {
            if (Crc32.Compute(record.AsSpan(0, _recordSize - 4)) != BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(_recordSize - 4))) break;
            AddToIndex(CacheKey.FromHash(record.AsSpan(0, 32)), MemoryMarshal.Cast<byte, float>(record.AsSpan(32, 4 * Dimension)));
            valid += _recordSize;
        }
        if (_file.Length != valid)
        {
            RecoveredBytes = _file.Length - valid;
            _file.SetLength(valid);
            _file.Flush(flushToDisk: true);
        }
        _file.Position = valid;
    }

    private void AddToIndex(CacheKey key, ReadOnlySpan<float> row)
    {
        if (_index.ContainsKey(key)) return;
        int block = _count / BlockRows, offset = _count % BlockRows;
        if (block == _blocks.Count) _blocks.Add(new float[BlockRows * Dimension]);
        row.CopyTo(_blocks[block].AsSpan(offset * Dimension, Dimension));
        _index[key] = _count++;
    }

    /// <summary>Copies the cached embedding of <paramref name="key"/> into <paramref name="destination"/>; false when absent.</summary>
    public bool TryGet(CacheKey key, Span<float> destination)
    {
        lock (_gate)
        {
            if (!_index.TryGetValue(key, out int i)) return false;
            _blocks[i / BlockRows].AsSpan(i % BlockRows * Dimension, Dimension).CopyTo(destination);
            return true;
        }
    }

    /// <summary>Whether <paramref name="key"/> is cached.</summary>
    public bool Contains(CacheKey key)
    {
        lock (_gate) return _index.ContainsKey(key);
    }

    /// <summary>Appends rows (one per key; keys already present are skipped) and flushes them to disk.</summary>
    public void Append(ReadOnlySpan<CacheKey> keys, ReadOnlySpan<float> rows)
    {
        if (rows.Length != keys.Length * Dimension)
            throw new ArgumentException($"{keys.Length} keys need {keys.Length * Dimension} values, got {rows.Length}.", nameof(rows));
        var buffer = new byte[keys.Length * _recordSize];
        int written = 0;
        lock (_gate)
        {
            for (int r = 0; r < keys.Length; r++)
            {
                if (_index.ContainsKey(keys[r])) continue;
                var rec = buffer.AsSpan(written * _recordSize, _recordSize);
                keys[r].Write(rec);
                MemoryMarshal.AsBytes(rows.Slice(r * Dimension, Dimension)).CopyTo(rec[32..]);
                BinaryPrimitives.WriteUInt32LittleEndian(rec[(_recordSize - 4)..], Crc32.Compute(rec[..(_recordSize - 4)]));
                AddToIndex(keys[r], rows.Slice(r * Dimension, Dimension));
                written++;
            }
            if (written == 0) return;
            _file.Write(buffer, 0, written * _recordSize);
            _file.Flush(flushToDisk: true);
        }
    }

    /// <summary>Closes the file and releases the writer lock.</summary>
    public void Dispose()
    {
        _file.Dispose();
        _lock.Dispose();
    }
}
