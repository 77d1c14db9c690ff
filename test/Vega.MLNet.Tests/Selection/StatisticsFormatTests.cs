using Vega.MLNet.Embedding;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Selection;

/// <summary>Shards serialised to bytes and merged score like one pass; bad blobs are clear errors.</summary>
public sealed class StatisticsFormatTests
{
    private static EmbeddingMatrix Slice(EmbeddingMatrix m, int start, int count) =>
        new(m.Data.AsSpan(start * m.Dimension, count * m.Dimension).ToArray(), count, m.Dimension);

    private static long[] Ids(int start, int count) => Enumerable.Range(start, count).Select(i => (long)i).ToArray();

    public static TheoryData<string> Presets() => new() { "default", "paper", "paper-p4", "isotropic", "mean-cosine" };

    private static SelectionOptions Options(string preset) => new()
    {
        Vega = preset switch
        {
            "paper" => VegaOptions.Paper,
            "paper-p4" => VegaOptions.Paper with { FullSubspaceDimension = 4 },
            "isotropic" => new VegaOptions { Covariance = CovarianceMode.Isotropic },
            "mean-cosine" => new VegaOptions { EdgeKind = VisualEdgeKind.MeanCosine },
            _ => new VegaOptions(),
        },
    };

    [Theory]
    [MemberData(nameof(Presets))]
    public void ShardsThroughBytesMergeIntoTheScoresOfOnePassTo1e12(string preset)
    {
        var (images, texts, _) = Synthetic.Task(seed: 12, n: 1800, c: 9, d: 20, imageNoise: 1.1);
        var o = Options(preset);
        var one = SelectionStatistics.Create("m", texts, o);
        one.Add(images);
        var expected = one.Score();

        // Three machines, uneven shards, bytes shipped, merged in another order.
        byte[] Shard(int start, int count)
        {
            var s = SelectionStatistics.Create("m", texts, o);
            s.Add(Slice(images, start, count), Ids(start, count));
            return s.ToBytes();
        }
        var blobs = new[] { Shard(0, 700), Shard(700, 1), Shard(701, 1099) };
        var merged = SelectionStatistics.FromBytes(blobs[2]);
        merged.Merge(SelectionStatistics.FromBytes(blobs[0]));
        merged.Merge(SelectionStatistics.FromBytes(blobs[1]));
        Assert.Equal(images.Count, merged.ImageCount);
        var got = merged.Score();
        foreach (var (name, value) in expected.Metrics)
            Assert.True(Math.Abs(value - got.Metrics[name]) <= 1e-12, $"{name}: {value} vs {got.Metrics[name]} (diff {Math.Abs(value - got.Metrics[name]):G3})");
        Assert.Equal(expected.Vega.Classes.Select(c => c.ImageCount), got.Vega.Classes.Select(c => c.ImageCount));

        // The bootstrap groups are sums too: intervals of the merged statistics equal those of one pass.
        var rankOne = ModelSelector.RankScores([expected, Renamed(one, "n")], o);
        var rankMerged = ModelSelector.RankScores([got, Renamed(one, "n")], o);
        var a = rankOne.Models.Single(m => m.ModelName == "m").Intervals!;
        var b = rankMerged.Models.Single(m => m.ModelName == "m").Intervals!;
        foreach (var (name, iv) in a)
        {
            Assert.Equal(iv.Lower, b[name].Lower, 1e-12);
            Assert.Equal(iv.Upper, b[name].Upper, 1e-12);
        }

        // A round trip is exact: the same bytes again.
        Assert.Equal(blobs[0], SelectionStatistics.FromBytes(blobs[0]).ToBytes());
    }

    private static ModelScores Renamed(SelectionStatistics s, string name) => s.Score() with { ModelName = name };

    [Fact]
    public void BadBlobsAreClearErrors()
    {
        var (images, texts, _) = Synthetic.Task(seed: 2, n: 200, c: 4, d: 6, imageNoise: 0.8);
        var s = SelectionStatistics.Create("m", texts);
        s.Add(images);
        var blob = s.ToBytes();

        Assert.Contains("not Vega selection statistics", Assert.Throws<FormatException>(() => SelectionStatistics.FromBytes("hello world, not a blob"u8)).Message);
        var version = (byte[])blob.Clone();
        version[8] = 9;
        Assert.Contains("format version 9", Assert.Throws<FormatException>(() => SelectionStatistics.FromBytes(version)).Message);
        var flipped = (byte[])blob.Clone();
        flipped[blob.Length / 2] ^= 0x10;
        Assert.Contains("corrupted or truncated", Assert.Throws<FormatException>(() => SelectionStatistics.FromBytes(flipped)).Message);
        Assert.Contains("corrupted or truncated", Assert.Throws<FormatException>(() => SelectionStatistics.FromBytes(blob.AsSpan(0, blob.Length - 100))).Message);

        // Mismatched shards name what differs.
        var otherSeed = SelectionStatistics.Create("m", texts, new SelectionOptions { Bootstrap = new BootstrapOptions { Seed = 5 } });
        Assert.Contains("bootstrap seeds differ", Assert.Throws<ArgumentException>(() => s.Merge(otherSeed)).Message);
        var otherTexts = SelectionStatistics.Create("m", new EmbeddingMatrix(texts.Data.Select(x => x + 0.01f).ToArray(), texts.Count, texts.Dimension));
        Assert.Contains("class text embeddings differ", Assert.Throws<ArgumentException>(() => s.Merge(otherTexts)).Message);
        var otherOptions = SelectionStatistics.Create("m", texts, new SelectionOptions { Vega = VegaOptions.Paper });
        Assert.Contains("VEGA options differ", Assert.Throws<ArgumentException>(() => s.Merge(otherOptions)).Message);
        Assert.Contains("ids for", Assert.Throws<ArgumentException>(() => s.Add(images, [1, 2])).Message);
    }
}
