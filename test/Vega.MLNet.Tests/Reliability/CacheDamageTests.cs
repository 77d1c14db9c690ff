using System.Buffers.Binary;
using Vega.MLNet.Common;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>Issue 17 item 9: a damaged record of the embedding cache costs that record only, and is reported.</summary>
public sealed class CacheDamageTests
{
    private const int D = 16;
    private static CacheKey[] Keys(int n) => Enumerable.Range(0, n).Select(i => CacheKey.FromText("image-" + i)).ToArray();

    private static float[] Rows(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n * D).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    private static (string Dir, string Path, long Header) Written(int n, float[] rows)
    {
        string dir = Fixtures.TempDir();
        using var c = EmbeddingCache.Open(dir, "hash", "m", "prep", D);
        for (int start = 0; start < n; start += 100)
        {
            int count = Math.Min(100, n - start);
            c.Append(Keys(n).AsSpan(start, count), rows.AsSpan(start * D, count * D));
        }
        long header = new FileInfo(c.FilePath).Length - (long)n * Record;
        return (dir, c.FilePath, header);
    }

    private const int Record = 32 + 4 * D + 4;

    private static void FlipBit(string path, long offset, int bit)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        int b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ (1 << bit)));
    }

    [Theory]
    [InlineData(0, 3)]        // a bit of the first record's key
    [InlineData(0, 40)]       // a bit of the first record's values
    [InlineData(0, Record - 1)] // a bit of the first record's checksum
    [InlineData(4321, 60)]    // a record in the middle
    public void OneFlippedBitCostsOneRecordAndIsReported(int recordIndex, int byteInRecord)
    {
        const int n = 10000;
        var rows = Rows(n, 1);
        var (dir, path, header) = Written(n, rows);
        long length = new FileInfo(path).Length;
        FlipBit(path, header + (long)recordIndex * Record + byteInRecord, 5);

        using (var c = EmbeddingCache.Open(dir, "hash", "m", "prep", D))
        {
            Assert.Equal(n - 1, c.Count);
            Assert.Equal(1, c.DamagedRecords);
            Assert.Equal(0, c.RecoveredBytes);
            var got = new float[D];
            var keys = Keys(n);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(i != recordIndex, c.TryGet(keys[i], got));
                if (i != recordIndex) Assert.Equal(rows.AsSpan(i * D, D).ToArray(), got);
            }
            c.Append(keys.AsSpan(recordIndex, 1), rows.AsSpan(recordIndex * D, D)); // recomputed and appended
        }
        Assert.Equal(length + Record, new FileInfo(path).Length); // nothing cut, one record added
        using var again = EmbeddingCache.Open(dir, "hash", "m", "prep", D);
        Assert.Equal(n, again.Count);
        Assert.Equal(0, again.DamagedRecords); // the damaged record was replaced by a tombstone: reported once
    }

    [Fact]
    public void TheEngineRecomputesTheDamagedRecordAndWarns()
    {
        using var model = ClipModel.Load(TinyClip.Create());
        var source = ImageSource.FromIdx(TinyClip.Idx(300));
        string cacheDir = Fixtures.TempDir();
        var options = new ImageEmbeddingOptions { CacheDirectory = cacheDir, BatchSize = 16 };
        var first = ImageEmbedder.Embed(model, source, options);
        Assert.Empty(first.Warnings);
        string path = first.CacheFile!;
        int record = 32 + 4 * model.EmbeddingDimension + 4;
        long header = new FileInfo(path).Length - 300L * record;
        FlipBit(path, header + 50, 0);

        var second = ImageEmbedder.Embed(model, source, options);
        Assert.Equal(299, second.FromCache);
        Assert.Equal(1, second.Computed);
        Assert.Equal(first.Embeddings.Data, second.Embeddings.Data);
        var warning = Assert.Single(second.Warnings);
        Assert.Contains("1 damaged record", warning);
        Assert.Contains(path, warning);
        var third = ImageEmbedder.Embed(model, source, options);
        Assert.Equal(300, third.FromCache);
        Assert.Empty(third.Warnings);
    }

    [Fact]
    public void ATornTailIsStillCutAndAppendingContinues()
    {
        var rows = Rows(50, 2);
        var (dir, path, header) = Written(50, rows);
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(f.Length - 10);
        FlipBit(path, header + 48L * Record + 7, 1); // the record before the torn one is bad too: both are the tail
        using var c = EmbeddingCache.Open(dir, "hash", "m", "prep", D);
        Assert.Equal(48, c.Count);
        Assert.Equal(0, c.DamagedRecords);
        Assert.Equal(2L * Record - 10, c.RecoveredBytes);
        Assert.Equal(header + 48L * Record, new FileInfo(path).Length);
    }

    [Fact]
    public void AnOldFormatFileGetsAClearMessage()
    {
        var (dir, path, header) = Written(3, Rows(3, 3));
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), 1);
        int json = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(16));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(20 + json), Crc32.Compute(bytes.AsSpan(0, 20 + json)));
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => EmbeddingCache.Open(dir, "hash", "m", "prep", D));
        Assert.Contains("older Vega.MLNet (format version 1)", e.Message);
        Assert.Contains($"Delete '{path}'", e.Message);
        Assert.Equal(header + 3L * Record, new FileInfo(path).Length); // untouched
    }
}
