using Vega.MLNet.Common;
using Vega.MLNet.Embedding;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Embedding;

public sealed class EmbeddingCacheTests
{
    private static float[] Rows(int n, int d, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n * d).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    private static CacheKey[] Keys(int n, int offset = 0) => Enumerable.Range(offset, n).Select(i => CacheKey.FromText("image-" + i)).ToArray();

    [Fact]
    public void AppendedRowsSurviveReopeningBitExactly()
    {
        string dir = Fixtures.TempDir();
        var rows = Rows(10, 8, 1);
        using (var c = EmbeddingCache.Open(dir, "hash", "m", "prep", 8))
        {
            c.Append(Keys(4), rows.AsSpan(0, 32));
            c.Append(Keys(6, 4), rows.AsSpan(32));
            c.Append(Keys(2), Rows(2, 8, 9)); // duplicates are ignored: first write wins
            Assert.Equal(10, c.Count);
        }
        using var reopened = EmbeddingCache.Open(dir, "hash", "m", "prep", 8);
        Assert.Equal(10, reopened.Count);
        Assert.Equal(0, reopened.RecoveredBytes);
        var got = new float[8];
        var keys = Keys(10);
        for (int i = 0; i < 10; i++)
        {
            Assert.True(reopened.TryGet(keys[i], got));
            Assert.Equal(rows.AsSpan(i * 8, 8).ToArray(), got);
        }
        Assert.False(reopened.TryGet(CacheKey.FromText("other"), got));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(67)]
    public void ATornTailIsCutOffAndEverythingBeforeItKept(int bytesLost)
    {
        string dir = Fixtures.TempDir();
        string path;
        using (var c = EmbeddingCache.Open(dir, "hash", "m", "prep", 16))
        {
            c.Append(Keys(5), Rows(5, 16, 2));
            path = c.FilePath;
        }
        long full = new FileInfo(path).Length;
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(full - bytesLost); // a write cut short by a crash
        using var reopened = EmbeddingCache.Open(dir, "hash", "m", "prep", 16);
        Assert.Equal(4, reopened.Count);
        Assert.True(reopened.RecoveredBytes > 0);
        Assert.Equal(full - (32 + 64 + 4), new FileInfo(path).Length);
        reopened.Append(Keys(1, 4), Rows(1, 16, 3)); // and appending continues from the cut
        Assert.Equal(5, reopened.Count);
    }

    [Fact]
    public void ACorruptRecordIsDetectedByItsChecksum()
    {
        string dir = Fixtures.TempDir();
        string path;
        using (var c = EmbeddingCache.Open(dir, "hash", "m", "prep", 4)) { c.Append(Keys(3), Rows(3, 4, 4)); path = c.FilePath; }
        var bytes = File.ReadAllBytes(path);
        bytes[^10] ^= 0x40; // flip a bit in the last record's data
        File.WriteAllBytes(path, bytes);
        using var reopened = EmbeddingCache.Open(dir, "hash", "m", "prep", 4);
        Assert.Equal(2, reopened.Count);
    }

    [Fact]
    public void AForeignOrDamagedHeaderIsAClearError()
    {
        string dir = Fixtures.TempDir();
        string path = EmbeddingCache.FileFor(dir, "hash", "prep");
        File.WriteAllText(path, "garbage that is not a cache");
        var e = Assert.Throws<InvalidDataException>(() => EmbeddingCache.Open(dir, "hash", "m", "prep", 4));
        Assert.Contains(path, e.Message);
        Assert.Contains("Delete", e.Message);

        File.Delete(path);
        using (var c = EmbeddingCache.Open(dir, "hash", "m", "prep", 4)) c.Append(Keys(1), Rows(1, 4, 5));
        var e2 = Assert.Throws<InvalidDataException>(() => EmbeddingCache.Open(dir, "hash", "m", "prep", 8));
        Assert.Contains("another model", e2.Message);
    }

    [Fact]
    public void OnlyOneWriterAtATime()
    {
        string dir = Fixtures.TempDir();
        using var first = EmbeddingCache.Open(dir, "hash", "m", "prep", 4);
        var e = Assert.Throws<IOException>(() => EmbeddingCache.Open(dir, "hash", "m", "prep", 4));
        Assert.Contains("in use", e.Message);
    }

    [Fact]
    public void Crc32MatchesTheStandardCheckValue()
    {
        // The CRC-32/ISO-HDLC check value of "123456789" is 0xCBF43926 (the catalogue's standard test vector).
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
    }

    [Fact]
    public void FileStampKeysChangeWhenTheFileChanges()
    {
        string dir = Fixtures.TempDir();
        string f = Path.Combine(dir, "a.bin");
        File.WriteAllBytes(f, [1, 2, 3]);
        var k1 = CacheKey.FromFileStamp(f);
        Assert.Equal(k1, CacheKey.FromFileStamp(f));
        File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddMinutes(-5));
        Assert.NotEqual(k1, CacheKey.FromFileStamp(f));
        Assert.NotEqual(CacheKey.FromBytes([1, 2, 3]), CacheKey.FromBytes([1, 2, 4]));
    }
}
