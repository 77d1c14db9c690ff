using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Vega.MLNet.Common;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Selection;

/// <summary>
/// The streaming statistics of one model on one task — per-class counts, sums and co-moments in float64, the bootstrap
/// group sums and the Gram matrices of the predictions — that every score is computed from. Statistics of disjoint
/// shards of the images merge into the statistics of their union (<see cref="Merge"/>; float64 sums, so the scores agree
/// with one pass to rounding), and travel between processes or machines as bytes (<see cref="ToBytes"/>: a versioned
/// binary format with a CRC-32, docs/vega.md "Statistics format").
/// </summary>
internal sealed class SelectionStatistics
{
    /// <summary>The version of the binary format written by <see cref="ToBytes"/>; <see cref="FromBytes"/> reads only this version.</summary>
    public const int FormatVersion = 1;

    private readonly ScoringAccumulator _acc;
    private TimeSpan _statisticsTime;

    private SelectionStatistics(ScoringAccumulator acc) => _acc = acc;

    /// <summary>Empty statistics of <paramref name="modelName"/> for the classes <paramref name="classTexts"/> (C×D, C ≥ 2).</summary>
    /// <exception cref="ArgumentException">Fewer than 2 classes, a NaN/infinite or all-zero class text embedding, bad options.</exception>
    public static SelectionStatistics Create(string modelName, EmbeddingMatrix classTexts, SelectionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);
        ArgumentNullException.ThrowIfNull(classTexts);
        return new SelectionStatistics(new ScoringAccumulator(modelName, classTexts, options ?? new SelectionOptions()));
    }

    /// <summary>The model's name.</summary>
    public string ModelName => _acc.ModelName;

    /// <summary>Number of images added (over all merged shards).</summary>
    public long ImageCount => _acc.ImageCount;

    /// <summary>Number of classes C.</summary>
    public int ClassCount => _acc.ClassCount;

    /// <summary>Embedding dimension D.</summary>
    public int Dimension => _acc.Dimension;

    /// <summary>The options the statistics were made with.</summary>
    public SelectionOptions Options => _acc.Options;

    internal ScoringAccumulator Accumulator => _acc;

    /// <summary>
    /// Adds image embeddings (N×D, rows need not be normalised). <paramref name="imageIds"/> are the images' indices in
    /// the task's image list: they put each image into the same bootstrap group for every model and every shard, which
    /// is what pairs the bootstrap across models. Without ids, the running position is used (right for one pass over
    /// the images in order; shards should pass ids).
    /// </summary>
    /// <exception cref="ArgumentException">Dimension mismatch, an id count different from the row count, a NaN/infinite or all-zero row.</exception>
    public void Add(EmbeddingMatrix images, ReadOnlySpan<long> imageIds = default)
    {
        long t0 = Stopwatch.GetTimestamp();
        _acc.Add(images, imageIds);
        _statisticsTime += Stopwatch.GetElapsedTime(t0);
    }

    /// <summary>Adds the statistics of a disjoint shard of the same model, classes and options.</summary>
    /// <exception cref="ArgumentException">The shard has other classes, class texts, options or bootstrap seed (the message names the difference).</exception>
    public void Merge(SelectionStatistics other)
    {
        ArgumentNullException.ThrowIfNull(other);
        long t0 = Stopwatch.GetTimestamp();
        _acc.Merge(other._acc);
        _statisticsTime += other._statisticsTime + Stopwatch.GetElapsedTime(t0);
    }

    /// <summary>Every score of the model from the statistics so far (without intervals: rank several with <see cref="ModelSelector.RankScores"/>).</summary>
    /// <exception cref="InvalidOperationException">No image was added.</exception>
    public ModelScores Score() => ModelSelector.Finish(_acc, _statisticsTime);

    /// <summary>The statistics as bytes (format <see cref="FormatVersion"/>, little-endian, CRC-32 at the end).</summary>
    public byte[] ToBytes() => StatisticsFormat.Write(_acc);

    /// <summary>Statistics from <see cref="ToBytes"/> (e.g. computed on another machine).</summary>
    /// <exception cref="FormatException">Not a statistics blob, another format version, a checksum mismatch (corrupted or truncated bytes), or inconsistent sizes.</exception>
    public static SelectionStatistics FromBytes(ReadOnlySpan<byte> bytes) => new(StatisticsFormat.Read(bytes));
}

/// <summary>
/// The binary form of <see cref="ScoringAccumulator"/>: magic "VGSTATS\0", u16 version, then the options, the sizes, the
/// normalised class texts and every sum, all little-endian; a CRC-32 of everything before it closes the blob.
/// </summary>
internal static class StatisticsFormat
{
    private static ReadOnlySpan<byte> Magic => "VGSTATS\0"u8;

    public static byte[] Write(ScoringAccumulator a)
    {
        a.FlushAll();
        var w = new Writer();
        w.Bytes(Magic);
        w.U16((ushort)SelectionStatistics.FormatVersion);
        w.String(a.ModelName);
        var o = a.Options;
        var v = o.Vega;
        w.F64(v.Temperature); w.I32((int)v.EdgeKind); w.I32((int)v.Covariance); w.F64(v.FixedShrinkage); w.F64(v.ShrinkageFloor);
        w.F64(v.VarianceFloor); w.I32(v.FullSubspaceDimension ?? -1); w.I32(v.MinImagesPerClass); w.U8(v.KeepEdgeMatrices ? (byte)1 : (byte)0);
        w.F64(v.UndefinedEdgeScore);
        w.I32((int)o.Metric); w.F64(o.BaselineTemperature); w.I32(o.MaxDegreeOfParallelism);
        w.I32(o.Bootstrap.Replicates); w.F64(o.Bootstrap.Level); w.I32(o.Bootstrap.Seed);
        int c = a.ClassCount, d = a.Dimension;
        w.I32(c); w.I32(d);
        w.Doubles(a.NormalizedTexts);
        w.I64(a._images);
        w.I32(ScoringAccumulator.Groups); w.Doubles(a._groupSums); w.Doubles(a._totals);
        w.Longs(a._count); w.Doubles(a._sum); w.Doubles(a._sumSquaredNorm); w.Doubles(a._nodeSum);
        w.U8(a._sumSquares is null ? (byte)0 : (byte)1);
        if (a._sumSquares is not null) w.Doubles(a._sumSquares);
        w.U8(a._scatter is null ? (byte)0 : (byte)1);
        if (a._scatter is not null)
            foreach (var s in a._scatter)
            {
                w.U8(s is null ? (byte)0 : (byte)1);
                if (s is not null) w.Doubles(s);
            }
        w.Doubles(a._gramTotal);
        w.I32(a._gram.Length);
        foreach (var g in a._gram) w.Doubles(g);
        return w.Finish();
    }

    public static ScoringAccumulator Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Magic.Length + 2 + 4 || !bytes[..Magic.Length].SequenceEqual(Magic))
            throw new FormatException("These bytes are not Vega selection statistics (the blob must start with \"VGSTATS\"); pass what SelectionStatistics.ToBytes wrote.");
        int version = BinaryPrimitives.ReadUInt16LittleEndian(bytes[Magic.Length..]);
        if (version != SelectionStatistics.FormatVersion)
            throw new FormatException($"Selection statistics in format version {version}; this library reads version {SelectionStatistics.FormatVersion}. Recompute them with the same Vega.MLNet version on every machine.");
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(bytes[^4..]);
        uint actual = Crc32.Compute(bytes[..^4]);
        if (stored != actual)
            throw new FormatException($"Selection statistics are corrupted or truncated: CRC-32 {actual:x8} of {bytes.Length - 4} bytes does not match the stored {stored:x8}.");
        var r = new Reader(bytes[..^4]) { Position = Magic.Length + 2 };
        try
        {
            string model = r.String();
            var vega = new VegaOptions
            {
                Temperature = r.F64(), EdgeKind = (VisualEdgeKind)r.I32(), Covariance = (CovarianceMode)r.I32(), FixedShrinkage = r.F64(),
                ShrinkageFloor = r.F64(), VarianceFloor = r.F64(), FullSubspaceDimension = r.I32() is var p && p >= 0 ? p : null,
                MinImagesPerClass = r.I32(), KeepEdgeMatrices = r.U8() != 0, UndefinedEdgeScore = r.F64(),
            };
            var options = new SelectionOptions
            {
                Vega = vega, Metric = (SelectionMetric)r.I32(), BaselineTemperature = r.F64(), MaxDegreeOfParallelism = r.I32(),
                Bootstrap = new BootstrapOptions { Replicates = r.I32(), Level = r.F64(), Seed = r.I32() },
            };
            int c = r.I32(), d = r.I32();
            if (c < 2 || d < 1 || (long)c * d > int.MaxValue / 8)
                throw new FormatException($"Selection statistics declare {c} classes × dimension {d}, which is not a valid task.");
            var texts = r.Doubles(c * d);
            var a = new ScoringAccumulator(model, texts, c, d, options);
            a._images = r.I64();
            int groups = r.I32();
            if (groups != ScoringAccumulator.Groups) throw new FormatException($"Selection statistics with {groups} bootstrap groups; this library uses {ScoringAccumulator.Groups}.");
            r.Doubles(a._groupSums);
            r.Doubles(a._totals);
            r.Longs(a._count); r.Doubles(a._sum); r.Doubles(a._sumSquaredNorm); r.Doubles(a._nodeSum);
            if ((r.U8() != 0) != (a._sumSquares is not null)) throw new FormatException("Selection statistics: the diagonal co-moments do not match the covariance mode.");
            if (a._sumSquares is not null) r.Doubles(a._sumSquares);
            if ((r.U8() != 0) != (a._scatter is not null)) throw new FormatException("Selection statistics: the full co-moments do not match the covariance mode.");
            if (a._scatter is not null)
                for (int k = 0; k < c; k++)
                    if (r.U8() != 0)
                    {
                        var s = new double[DenseMath.PackedLength(d)];
                        r.Doubles(s);
                        a._scatter[k] = s;
                    }
            r.Doubles(a._gramTotal);
            int gramGroups = r.I32();
            if (gramGroups != a._gram.Length) throw new FormatException($"Selection statistics with {gramGroups} Gram groups; {a._gram.Length} expected for {c} classes.");
            foreach (var g in a._gram) r.Doubles(g);
            if (r.Position != r.Length) throw new FormatException($"Selection statistics have {r.Length - r.Position} unexpected trailing bytes.");
            long counted = 0;
            foreach (long n in a._count) counted += n;
            if (counted != a._images || a._images < 0) throw new FormatException($"Selection statistics are inconsistent: {a._images} images but the classes count {counted}.");
            return a;
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"Selection statistics hold invalid options or texts: {e.Message}", e);
        }
    }

    private sealed class Writer
    {
        private readonly MemoryStream _s = new();

        public void Bytes(ReadOnlySpan<byte> b) => _s.Write(b);
        public void U8(byte v) => _s.WriteByte(v);
        public void U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); _s.Write(b); }
        public void I32(int v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); _s.Write(b); }
        public void I64(long v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteInt64LittleEndian(b, v); _s.Write(b); }
        public void F64(double v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteDoubleLittleEndian(b, v); _s.Write(b); }

        public void String(string v)
        {
            var b = Encoding.UTF8.GetBytes(v);
            I32(b.Length);
            _s.Write(b);
        }

        public void Doubles(ReadOnlySpan<double> v)
        {
            if (BitConverter.IsLittleEndian) _s.Write(MemoryMarshal.AsBytes(v));
            else foreach (double x in v) F64(x);
        }

        public void Longs(ReadOnlySpan<long> v)
        {
            if (BitConverter.IsLittleEndian) _s.Write(MemoryMarshal.AsBytes(v));
            else foreach (long x in v) I64(x);
        }

        public byte[] Finish()
        {
            uint crc = Crc32.Compute(_s.GetBuffer().AsSpan(0, (int)_s.Length));
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, crc);
            _s.Write(b);
            return _s.ToArray();
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _b = bytes;
        public int Position;
        public readonly int Length => _b.Length;

        private ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || Position + n > _b.Length)
                throw new FormatException($"Selection statistics are truncated: {n} more bytes needed at offset {Position} of {_b.Length}.");
            var s = _b.Slice(Position, (int)n);
            Position += (int)n;
            return s;
        }

        public byte U8() => Take(1)[0];
        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public double F64() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

        public string String()
        {
            int n = I32();
            if (n < 0 || n > 1 << 20) throw new FormatException($"Selection statistics: a model name of {n} bytes is not plausible.");
            return Encoding.UTF8.GetString(Take(n));
        }

        public double[] Doubles(int count)
        {
            var v = new double[count];
            Doubles(v);
            return v;
        }

        public void Doubles(Span<double> into)
        {
            var src = Take(8L * into.Length);
            if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, double>(src).CopyTo(into);
            else for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
        }

        public void Longs(Span<long> into)
        {
            var src = Take(8L * into.Length);
            if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, long>(src).CopyTo(into);
            else for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadInt64LittleEndian(src[(8 * i)..]);
        }
    }
}
