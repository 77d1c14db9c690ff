using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Vega.MLNet.Common;

namespace Vega.MLNet.Embedding;

/// <summary>How images are identified in the embedding cache.</summary>
internal enum ImageIdentity
{
    /// <summary>SHA-256 of the file's bytes (or of the pixels for IDX / in-memory images). Safe; reads every file.</summary>
    Content,
    /// <summary>Full path + size + last-write time. Fast (cached files are not read at all), but a file rewritten with
    /// the same size and time stamp would be served its old embedding.</summary>
    PathSizeTime,
}

/// <summary>A 256-bit cache key (a SHA-256).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CacheKey(ulong A, ulong B, ulong C, ulong D)
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
/// An append-only, crash-safe file of image embeddings for one model and one preprocessing setting (docs/embedding.md).
/// Records are fixed-size and each carries its own CRC-32; each <see cref="Append"/> is flushed to disk before it
/// returns, so a process killed mid-run loses at most the batch being written, and a torn tail is cut off at the next
/// open. A damaged record elsewhere (a flipped bit) costs only that record: it is reported
/// (<see cref="DamagedRecords"/>), overwritten by a tombstone and its image is recomputed; every other record is kept.
/// One writer per file (an exclusive lock file guards it); lookups are thread-safe. A cache folder that cannot be
/// written (read-only file system or permissions) is opened read-only: cached rows are served, new rows are not saved
/// (<see cref="IsReadOnly"/>).
/// </summary>
internal sealed class EmbeddingCache : IDisposable
{
    /// <summary>File magic.</summary>
    public const string Magic = "VGEMBED1";

    /// <summary>Current format version (2: damaged records are skipped and tombstoned instead of ending the file).</summary>
    public const int FormatVersion = 2;

    private readonly FileStream? _file;
    private readonly FileStream? _lock;
    private readonly Dictionary<CacheKey, int> _index = new();
    private readonly List<float[]> _blocks = [];
    private readonly Lock _gate = new();
    private const int BlockRows = 4096;
    private readonly int _recordSize;
    private int _count;

    /// <summary>The key of a tombstone record (all bits set): written over a damaged record, never looked up.</summary>
    internal static readonly CacheKey Tombstone = new(ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue);

    private EmbeddingCache(string path, FileStream? file, FileStream? lockFile, int dimension, string modelHash, string preprocessingKey)
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

    /// <summary>Complete records with a wrong checksum found when the file was opened (not at its end); each was
    /// dropped (and, when writable, overwritten by a tombstone) and its image is recomputed.</summary>
    public int DamagedRecords { get; private set; }

    /// <summary>True when the cache could not be opened for writing: lookups work, <see cref="Append"/> saves nothing.</summary>
    public bool IsReadOnly => _lock is null;

    /// <summary>Why the cache is read-only (null when it is writable).</summary>
    public string? ReadOnlyReason { get; private set; }

    /// <summary>Rows <see cref="Append"/> could not save because the cache is read-only.</summary>
    public int UnsavedRows { get { lock (_gate) return _unsaved; } }

    private int _unsaved;

    /// <summary>The file name for a model and preprocessing setting inside a cache folder.</summary>
    public static string FileFor(string directory, string modelHash, string preprocessingKey) =>
        Path.Combine(directory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(modelHash + "\n" + preprocessingKey)))[..24] + ".vemb");

    /// <summary>
    /// Opens (or creates) the cache file of a model + preprocessing setting in <paramref name="directory"/>; read-only
    /// when the folder or file cannot be written. Errors (<see cref="IOException"/>, <see cref="InvalidDataException"/>)
    /// name the file and the fix.
    /// </summary>
    public static EmbeddingCache Open(string directory, string modelHash, string modelName, string preprocessingKey, int dimension)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension));
        if (File.Exists(directory))
            throw new IOException($"The cache folder '{directory}' is a file; give a folder (--cache).");
        string path = FileFor(directory, modelHash, preprocessingKey);
        if (!Directory.Exists(directory))
        {
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Cannot create the cache folder '{directory}' ({e.Message}); give a writable folder (--cache).", e);
            }
        }
        FileStream? lockFile = null;
        string? readOnlyReason = null;
        try
        {
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (UnauthorizedAccessException e)
        {
            readOnlyReason = e.Message;
        }
        catch (IOException e)
        {
            if (CanCreateFileIn(directory))
                throw new IOException($"The embedding cache '{path}' is in use by another process (lock file '{path}.lock'). Wait for it to finish, or use another --cache folder.", e);
            readOnlyReason = e.Message;
        }
        if (lockFile is null) return OpenReadOnly(directory, path, modelHash, preprocessingKey, dimension, readOnlyReason!);

        FileStream? file = null;
        try
        {
            try
            {
                file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1 << 16);
            }
            catch (UnauthorizedAccessException e)
            {
                lockFile.Dispose();
                lockFile = null;
                return OpenReadOnly(directory, path, modelHash, preprocessingKey, dimension, e.Message);
            }
            var cache = new EmbeddingCache(path, file, lockFile, dimension, modelHash, preprocessingKey);
            try
            {
                if (file.Length == 0) cache.WriteHeader(modelName);
                else cache.Load(writable: true);
            }
            catch (Exception e) when (e is IOException and not FileNotFoundException or ArgumentOutOfRangeException)
            {
                throw cache.WriteError(e);
            }
            return cache;
        }
        catch
        {
            file?.Dispose();
            lockFile?.Dispose();
            throw;
        }
    }

    private static bool CanCreateFileIn(string directory)
    {
        try
        {
            using var probe = new FileStream(Path.Combine(directory, $".vega-write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}"),
                FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static EmbeddingCache OpenReadOnly(string directory, string path, string modelHash, string preprocessingKey, int dimension, string reason)
    {
        FileStream? file = null;
        try
        {
            if (File.Exists(path)) file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"The embedding cache '{path}' can be neither written nor read ({e.Message}); fix its permissions or use another --cache folder.", e);
        }
        var cache = new EmbeddingCache(path, file, null, dimension, modelHash, preprocessingKey)
        {
            ReadOnlyReason = $"the cache folder '{directory}' cannot be written ({reason})",
        };
        try
        {
            if (file is not null && file.Length > 0) cache.Load(writable: false);
        }
        catch
        {
            file?.Dispose();
            throw;
        }
        return cache;
    }

    private IOException WriteError(Exception e) => new(
        $"Cannot write to the embedding cache '{FilePath}' ({e.Message}). Free disk space (or raise the file-size limit), or use another --cache folder; the records written so far are kept.", e);

    private void WriteHeader(string modelName)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["model"] = modelName,
            ["model_sha256"] = ModelHash,
            ["preprocessing"] = PreprocessingKey,
            ["dimension"] = Dimension,
            ["record"] = "32-byte key (SHA-256 of the image identity; all 0xFF = tombstone) + dimension × float32 LE + CRC-32 of both",
            ["created_utc"] = DateTime.UtcNow.ToString("O"),
        });
        var header = new byte[20 + json.Length + 4];
        Encoding.ASCII.GetBytes(Magic, header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), Dimension);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), json.Length);
        json.CopyTo(header, 20);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20 + json.Length), Crc32.Compute(header.AsSpan(0, 20 + json.Length)));
        _file!.Write(header);
        _file.Flush(flushToDisk: true);
        _headerLength = header.Length;
    }

    private long _headerLength;

    private void Load(bool writable)
    {
        var file = _file!;
        string Fix = $"Delete '{FilePath}' (the embeddings will be recomputed).";
        file.Position = 0;
        var fixedPart = new byte[20];
        if (file.ReadAtLeast(fixedPart, 20, throwOnEndOfStream: false) < 20 || Encoding.ASCII.GetString(fixedPart, 0, 8) != Magic)
            throw new InvalidDataException($"'{FilePath}' is not a Vega.MLNet embedding cache (bad magic). {Fix}");
        int version = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(8));
        if (version < FormatVersion)
            throw new InvalidDataException(
                $"The embedding cache '{FilePath}' was written by an older Vega.MLNet (format version {version}); this version reads format {FormatVersion}, " +
                $"which keeps every intact record when one is damaged. {Fix}");
        if (version != FormatVersion)
            throw new InvalidDataException($"The embedding cache '{FilePath}' has format version {version}, newer than this Vega.MLNet reads ({FormatVersion}); update Vega.MLNet or delete the file.");
        int dim = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(12));
        int jsonLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(16));
        if (jsonLength < 2 || jsonLength > 1 << 20) throw new InvalidDataException($"The embedding cache '{FilePath}' has a corrupt header. {Fix}");
        var header = new byte[20 + jsonLength + 4];
        fixedPart.CopyTo(header, 0);
        if (file.ReadAtLeast(header.AsSpan(20), jsonLength + 4, throwOnEndOfStream: false) < jsonLength + 4
            || Crc32.Compute(header.AsSpan(0, 20 + jsonLength)) != BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(20 + jsonLength)))
            throw new InvalidDataException($"The embedding cache '{FilePath}' has a corrupt header (checksum). {Fix}");
        try
        {
            using var doc = JsonDocument.Parse(header.AsMemory(20, jsonLength));
            string? hash = doc.RootElement.TryGetProperty("model_sha256", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString() : null;
            string? prep = doc.RootElement.TryGetProperty("preprocessing", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
            if (dim != Dimension || hash != ModelHash || prep != PreprocessingKey)
                throw new InvalidDataException(
                    $"The embedding cache '{FilePath}' belongs to another model or setting (dimension {dim}, model {hash}, preprocessing {prep}). {Fix}");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The embedding cache '{FilePath}' has a corrupt header ({e.Message}). {Fix}", e);
        }
        _headerLength = header.Length;

        // Records: index every complete record with a valid checksum. Bad records followed by a good one are damage
        // (reported, tombstoned, recomputed); bad or incomplete records at the end are a torn tail (cut off).
        long position = _headerLength, goodEnd = _headerLength;
        var damaged = new List<long>();
        var pending = new List<long>(); // bad records since the last good one
        var record = new byte[_recordSize];
        var tombstone = new byte[32];
        Tombstone.Write(tombstone);
        file.Position = _headerLength;
        while (file.ReadAtLeast(record, _recordSize, throwOnEndOfStream: false) == _recordSize)
        {
            if (Crc32.Compute(record.AsSpan(0, _recordSize - 4)) == BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(_recordSize - 4)))
            {
                damaged.AddRange(pending);
                pending.Clear();
                if (!record.AsSpan(0, 32).SequenceEqual(tombstone))
                    AddToIndex(CacheKey.FromHash(record.AsSpan(0, 32)), MemoryMarshal.Cast<byte, float>(record.AsSpan(32, 4 * Dimension)));
                goodEnd = position + _recordSize;
            }
            else pending.Add(position);
            position += _recordSize;
        }
        DamagedRecords = damaged.Count;
        RecoveredBytes = file.Length - goodEnd;
        if (!writable)
        {
            _file!.Position = goodEnd;
            return;
        }
        if (damaged.Count > 0)
        {
            var stone = new byte[_recordSize];
            Tombstone.Write(stone);
            BinaryPrimitives.WriteUInt32LittleEndian(stone.AsSpan(_recordSize - 4), Crc32.Compute(stone.AsSpan(0, _recordSize - 4)));
            foreach (long at in damaged)
            {
                file.Position = at;
                file.Write(stone);
            }
        }
        if (file.Length != goodEnd) file.SetLength(goodEnd);
        if (damaged.Count > 0 || RecoveredBytes > 0) file.Flush(flushToDisk: true);
        file.Position = goodEnd;
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

    /// <summary>
    /// Appends rows (one per key; keys already present are skipped) and flushes them to disk. On a read-only cache the
    /// rows are kept in memory for this run only (<see cref="UnsavedRows"/>). A failed write (full disk) is an
    /// <see cref="IOException"/> naming the file; the records written before stay valid.
    /// </summary>
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
            if (_lock is null)
            {
                _unsaved += written;
                return;
            }
            try
            {
                _file!.Write(buffer, 0, written * _recordSize);
                _file.Flush(flushToDisk: true);
            }
            catch (Exception e) when (e is IOException or ArgumentOutOfRangeException) // EFBIG is an ArgumentOutOfRangeException
            {
                throw WriteError(e);
            }
        }
    }

    /// <summary>Closes the file and releases the writer lock. Never throws: every append was flushed already, so the
    /// only bytes a close could still write are those of an append that failed (and was reported).</summary>
    public void Dispose()
    {
        try
        {
            _file?.Dispose();
        }
        catch (Exception e) when (e is IOException or ArgumentOutOfRangeException)
        {
            // The failed append's bytes: its error was thrown by Append; at worst they form a torn tail, cut at the next open.
        }
        finally
        {
            _lock?.Dispose();
        }
    }
}
