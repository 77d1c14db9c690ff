using System.Buffers;
using System.Numerics.Tensors;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Selection;

/// <summary>
/// Streaming, mergeable per-class sufficient statistics of one model on one task: everything VEGA and the label-free
/// baselines need, in memory that does not grow with the number of images. Images arrive in batches of any size
/// (<see cref="Add(EmbeddingMatrix)"/>); accumulators over disjoint shards combine with <see cref="Merge"/> in any order
/// (sums in float64: equal up to rounding); <see cref="Finish"/> turns the statistics into scores.
/// </summary>
/// <remarks>
/// Per pseudo-class k (argmax cosine): the image count n_k, Σx (float64, D), Σ‖x‖², Σ of the node softmax probability
/// and, for the covariance mode, Σx² per dimension (diagonal) or Σxxᵀ as a packed upper triangle (full). Globally: Σ
/// of the max softmax probability, entropy, top-1/top-2 margin and max cosine. Rows are L2-normalised first.
/// </remarks>
internal sealed class ScoringAccumulator
{
    internal const int ChunkRows = 1024;
    private const int BlockRows = 64;
    private const int PendingRows = 32;

    private readonly string _model;
    private readonly SelectionOptions _options;
    private readonly float[] _texts;   // C×D, L2-normalised
    private readonly bool _diagonal, _full;

    private readonly long[] _count;
    private readonly double[] _sum;          // C×D
    private readonly double[] _sumSquaredNorm;
    private readonly double[] _nodeSum;
    private readonly double[]? _sumSquares;  // C×D, diagonal mode
    private readonly double[]?[]? _scatter;  // per class, packed upper triangle of Σxxᵀ, full modes
    private readonly float[]?[]? _pending;   // per class, up to PendingRows rows waiting for a rank update
    private readonly int[]? _pendingCount;

    private long _images;
    private double _sumMaxProbability, _sumEntropy, _sumMargin, _sumMaxCosine;

    // Chunk buffers (reused).
    private float[]? _normalized, _cosines;
    private SimilarityKernel.RowStatistics[]? _rowStats;

    public ScoringAccumulator(string modelName, EmbeddingMatrix classTexts, SelectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(classTexts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _model = modelName;
        _options = options;
        ClassCount = classTexts.Count;
        Dimension = classTexts.Dimension;
        if (ClassCount < 2)
            throw new ArgumentException($"Model '{modelName}': {ClassCount} class text embedding(s); ranking by zero-shot accuracy needs at least 2 classes (check the --classes file).", nameof(classTexts));
        _texts = (float[])classTexts.Data.Clone();
        for (int k = 0; k < ClassCount; k++)
        {
            Span<float> t = _texts.AsSpan(k * Dimension, Dimension);
            double ss = SquaredNorm(t);
            if (!double.IsFinite(ss))
                throw new ArgumentException($"Model '{modelName}': class text embedding {k} contains NaN or infinity; check the text tower's output.", nameof(classTexts));
            if (ss == 0)
                throw new ArgumentException($"Model '{modelName}': class text embedding {k} is all zeros; its cosine similarity is undefined.", nameof(classTexts));
            TensorPrimitives.Multiply(t, (float)(1.0 / Math.Sqrt(ss)), t);
        }

        var vega = options.Vega;
        bool moments = vega.EdgeKind != VisualEdgeKind.MeanCosine;
        _diagonal = moments && vega.Covariance == CovarianceMode.Diagonal;
        _full = moments && vega.Covariance is CovarianceMode.FullLedoitWolf or CovarianceMode.FullFixedShrinkage;
        _count = new long[ClassCount];
        _sum = new double[ClassCount * Dimension];
        _sumSquaredNorm = new double[ClassCount];
        _nodeSum = new double[ClassCount];
        if (_diagonal) _sumSquares = new double[ClassCount * Dimension];
        if (_full)
        {
            _scatter = new double[ClassCount][];
            _pending = new float[ClassCount][];
            _pendingCount = new int[ClassCount];
        }
    }

    public string ModelName => _model;
    public int ClassCount { get; }
    public int Dimension { get; }
    public long ImageCount => _images;
    internal ReadOnlySpan<float> NormalizedTexts => _texts;
    internal SelectionOptions Options => _options;

    /// <summary>Bytes held by the statistics (what grows with C and D, not with N).</summary>
    public long StateBytes
    {
        get
        {
            long b = (long)ClassCount * Dimension * (8 + 4) + ClassCount * 24L;
            if (_sumSquares is not null) b += _sumSquares.LongLength * 8;
            if (_scatter is not null)
                for (int k = 0; k < ClassCount; k++)
                    b += (_scatter[k]?.LongLength ?? 0) * 8 + (_pending![k]?.LongLength ?? 0) * 4;
            return b;
        }
    }

    /// <summary>Adds a batch of image embeddings (any size; rows need not be normalised).</summary>
    public void Add(EmbeddingMatrix images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Dimension != Dimension)
            throw new ArgumentException($"Model '{_model}': image embeddings have dimension {images.Dimension} but the class text embeddings have {Dimension}; the image and text towers of one model must share one embedding space.", nameof(images));
        for (int start = 0; start < images.Count; start += ChunkRows)
            AddChunk(images.Data, start, Math.Min(ChunkRows, images.Count - start));
    }

    private void AddChunk(float[] data, int firstRow, int rows)
    {
        int d = Dimension, c = ClassCount;
        _normalized ??= new float[ChunkRows * d];
        _cosines ??= new float[ChunkRows * c];
        _rowStats ??= new SimilarityKernel.RowStatistics[ChunkRows];
        float[] normalized = _normalized, cosines = _cosines;
        var stats = _rowStats;
        double tVega = _options.Vega.Temperature, tBase = _options.BaselineTemperature;
        int blocks = (rows + BlockRows - 1) / BlockRows;
        long badRow = long.MaxValue;
        string badWhat = "";
        var po = new ParallelOptions { MaxDegreeOfParallelism = _options.Threads };

        Parallel.For(0, blocks, po, b =>
        {
            int r0 = b * BlockRows, r1 = Math.Min(rows, r0 + BlockRows);
            for (int r = r0; r < r1; r++)
            {
                ReadOnlySpan<float> src = data.AsSpan((firstRow + r) * d, d);
                Span<float> dst = normalized.AsSpan(r * d, d);
                double ss = SquaredNorm(src);
                if (!double.IsFinite(ss) || ss == 0)
                {
                    // _images already counts the earlier chunks of this batch, so _images + r is the row's index in the stream.
                    lock (stats)
                        if (_images + r < badRow) { badRow = _images + r; badWhat = ss == 0 ? "is all zeros" : "contains NaN or infinity"; }
                    dst.Clear();
                    continue;
                }
                TensorPrimitives.Multiply(src, (float)(1.0 / Math.Sqrt(ss)), dst);
            }
            SimilarityKernel.MultiplyTransposed(normalized.AsSpan(r0 * d, (r1 - r0) * d), r1 - r0, _texts, c, d, cosines.AsSpan(r0 * c, (r1 - r0) * c));
            float[] scratch = ArrayPool<float>.Shared.Rent(c);
            for (int r = r0; r < r1; r++)
                stats[r] = SimilarityKernel.Row(cosines.AsSpan(r * c, c), tVega, tBase, scratch);
            ArrayPool<float>.Shared.Return(scratch);
        });
        if (badRow != long.MaxValue)
            throw new ArgumentException($"Model '{_model}': image embedding row {badRow} {badWhat}; check the image tower's output for that image.");

        // Global sums in row order (deterministic), and a counting sort of the rows by pseudo-label.
        var starts = new int[c + 1];
        for (int r = 0; r < rows; r++)
        {
            ref var s = ref stats[r];
            _sumMaxProbability += s.MaxProbability;
            _sumEntropy += s.Entropy;
            _sumMargin += s.Margin;
            _sumMaxCosine += s.MaxCosine;
            starts[s.Label + 1]++;
        }
        for (int k = 0; k < c; k++) starts[k + 1] += starts[k];
        var order = new int[rows];
        var fill = (int[])starts.Clone();
        for (int r = 0; r < rows; r++) order[fill[stats[r].Label]++] = r;
        _images += rows;

        // Per-class updates: classes are independent, each processes its rows in row order (deterministic).
        int parts = Math.Min(_options.Threads * 4, c);
        Parallel.For(0, parts, po, part =>
        {
            int k0 = (int)((long)c * part / parts), k1 = (int)((long)c * (part + 1) / parts);
            for (int k = k0; k < k1; k++)
            {
                if (starts[k] == starts[k + 1]) continue;
                Span<double> sum = _sum.AsSpan(k * d, d);
                Span<double> sq = _sumSquares is null ? default : _sumSquares.AsSpan(k * d, d);
                for (int o = starts[k]; o < starts[k + 1]; o++)
                {
                    int r = order[o];
                    ReadOnlySpan<float> x = normalized.AsSpan(r * d, d);
                    double norm2 = 0;
                    if (_diagonal)
                        for (int i = 0; i < d; i++) { double v = x[i]; sum[i] += v; sq[i] += v * v; norm2 += v * v; }
                    else
                        for (int i = 0; i < d; i++) { double v = x[i]; sum[i] += v; norm2 += v * v; }
                    _count[k]++;
                    _sumSquaredNorm[k] += norm2;
                    _nodeSum[k] += stats[r].NodeProbability;
                    if (_full)
                    {
                        var pending = _pending![k] ??= new float[PendingRows * d];
                        x.CopyTo(pending.AsSpan(_pendingCount![k] * d, d));
                        if (++_pendingCount[k] == PendingRows) Flush(k);
                    }
                }
            }
        });
    }

    private void Flush(int k)
    {
        int n = _pendingCount![k];
        if (n == 0) return;
        int d = Dimension;
        var scatter = _scatter![k] ??= new double[DenseMath.PackedLength(d)];
        double[] rows = ArrayPool<double>.Shared.Rent(n * d);
        ReadOnlySpan<float> src = _pending![k].AsSpan(0, n * d);
        for (int i = 0; i < n * d; i++) rows[i] = src[i];
        DenseMath.PackedRankUpdate(scatter, d, rows, n);
        ArrayPool<double>.Shared.Return(rows);
        _pendingCount[k] = 0;
    }

    private void FlushAll()
    {
        if (!_full) return;
        var po = new ParallelOptions { MaxDegreeOfParallelism = _options.Threads };
        Parallel.For(0, ClassCount, po, Flush);
    }

    /// <summary>Adds the statistics of <paramref name="other"/> (a disjoint shard of the same model and task) to this one.</summary>
    public void Merge(ScoringAccumulator other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(other, this)) throw new ArgumentException("An accumulator cannot be merged with itself.", nameof(other));
        if (other.ClassCount != ClassCount || other.Dimension != Dimension || !other._texts.AsSpan().SequenceEqual(_texts)
            || other._options.Vega != _options.Vega || other._options.BaselineTemperature != _options.BaselineTemperature)
            throw new ArgumentException($"Cannot merge statistics of '{other._model}' into '{_model}': shards must share the class text embeddings and the options.", nameof(other));
        FlushAll();
        other.FlushAll();
        int d = Dimension;
        for (int k = 0; k < ClassCount; k++)
        {
            _count[k] += other._count[k];
            _sumSquaredNorm[k] += other._sumSquaredNorm[k];
            _nodeSum[k] += other._nodeSum[k];
            if (_full && other._scatter![k] is { } s)
            {
                var mine = _scatter![k] ??= new double[DenseMath.PackedLength(d)];
                TensorPrimitives.Add(mine, s, mine);
            }
        }
        TensorPrimitives.Add(_sum, other._sum, _sum);
        if (_sumSquares is not null) TensorPrimitives.Add(_sumSquares, other._sumSquares!, _sumSquares);
        _images += other._images;
        _sumMaxProbability += other._sumMaxProbability;
        _sumEntropy += other._sumEntropy;
        _sumMargin += other._sumMargin;
        _sumMaxCosine += other._sumMaxCosine;
    }

    /// <summary>The baseline metrics and VEGA, from the statistics so far.</summary>
    public FinishedScores Finish()
    {
        if (_images == 0)
            throw new InvalidOperationException($"Model '{_model}': no image embeddings were given; scoring needs at least one image (check the --images folder or CSV).");
        FlushAll();
        double n = _images;
        var vega = VisualGraph.Compute(new ClassStatistics(this), _options.Vega, _options.Threads);
        return new FinishedScores(
            vega,
            MaxSoftmax: _sumMaxProbability / n,
            NegativeEntropy: -_sumEntropy / n,
            Margin: _sumMargin / n,
            MaxCosine: _sumMaxCosine / n);
    }

    private static double SquaredNorm(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (float x in v) s += (double)x * x;
        return s;
    }

    /// <summary>A read-only view of the per-class statistics for <see cref="VisualGraph"/>.</summary>
    internal readonly struct ClassStatistics(ScoringAccumulator a)
    {
        public int ClassCount => a.ClassCount;
        public int Dimension => a.Dimension;
        public long Images => a._images;
        public ReadOnlySpan<float> Texts => a._texts;
        public long Count(int k) => a._count[k];
        public ReadOnlySpan<double> Sum(int k) => a._sum.AsSpan(k * a.Dimension, a.Dimension);
        public double SumSquaredNorm(int k) => a._sumSquaredNorm[k];
        public double NodeSum(int k) => a._nodeSum[k];
        public ReadOnlySpan<double> SumSquares(int k) => a._sumSquares.AsSpan(k * a.Dimension, a.Dimension);
        public double[]? Scatter(int k) => a._scatter?[k];
        public bool HasDiagonal => a._diagonal;
        public bool HasFull => a._full;
    }
}

/// <summary>The scores from one finished accumulator.</summary>
internal sealed record FinishedScores(VegaResult Vega, double MaxSoftmax, double NegativeEntropy, double Margin, double MaxCosine);
