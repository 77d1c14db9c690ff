using System.Buffers;
using System.Numerics.Tensors;
using Vega.MLNet.Embedding;

namespace Vega.MLNet.Selection;

/// <summary>
/// Streaming, mergeable per-class sufficient statistics of one model on one task: everything VEGA, the label-free
/// baselines and their bootstrap need, in memory that does not grow with the number of images. Images arrive in batches
/// of any size (<see cref="Add"/>); accumulators over disjoint shards combine with <see cref="Merge"/> in any order
/// (float64 sums: equal up to rounding) and travel as bytes (<see cref="StatisticsFormat"/>); <see cref="Finish"/>
/// turns the statistics into scores. Everything is computed in float64 (docs/vega.md, "Precision").
/// </summary>
/// <remarks>
/// Per pseudo-class k (argmax cosine): n_k, Σx (D), Σ‖x‖², Σ of the node softmax probability and, for the covariance
/// mode, Σx² per dimension (diagonal) or Σxxᵀ as a packed upper triangle (full). Per bootstrap group of images (64,
/// by a hash of the image index): the image count and the sums of the per-image contributions (node probability, max
/// probability, entropy, margin, max cosine). Per Gram group: PᵀP (C×C, upper triangle) of the baseline softmax
/// predictions, for the nuclear norm. Rows are L2-normalised first.
/// </remarks>
internal sealed class ScoringAccumulator
{
    internal const int ChunkRows = 1024;
    internal const int Groups = 64;
    internal const int GroupFields = 6; // count, node, max probability, entropy, margin, max cosine
    private const int BlockRows = 64;
    private const long PendingBudgetBytes = 64L << 20;
    private const long GramBudgetBytes = 16L << 20;

    private readonly string _model;
    private readonly SelectionOptions _options;
    private readonly double[] _texts;    // C×D, L2-normalised
    private readonly double[] _textsT;   // D × Padded(C): the transposed texts for the cosine product
    private readonly bool _diagonal, _full;
    private readonly int _ldd, _ldc, _pendingCapacity;
    private readonly long[] _packedRowBase;

    internal readonly long[] _count;
    internal readonly double[] _sum;             // C×D
    internal readonly double[] _sumSquaredNorm;
    internal readonly double[] _nodeSum;
    internal readonly double[]? _sumSquares;     // C×D, diagonal mode
    internal readonly double[]?[]? _scatter;     // per class, packed upper triangle of Σxxᵀ, full modes
    private readonly double[]?[]? _pending;      // per class, rows waiting for a rank-k update (stride Padded(D))
    private readonly int[]? _pendingCount;
    internal readonly double[] _groupSums;       // Groups × GroupFields
    internal readonly double[] _totals = new double[GroupFields]; // the same sums over all images, in row order (seed-free)
    internal readonly double[][] _gram;          // per Gram group (for the bootstrap): C×C, upper triangle of PᵀP; empty with one group
    internal readonly double[] _gramTotal;       // C×C, upper triangle of PᵀP over all images (seed-free)

    internal long _images;

    // Chunk buffers (reused).
    private double[]? _normalized, _cosines, _probabilities, _sorted;
    private SimilarityKernel.RowStatistics[]? _rowStats;

    public ScoringAccumulator(string modelName, EmbeddingMatrix classTexts, SelectionOptions options)
        : this(modelName, Normalize(modelName, classTexts), classTexts.Count, classTexts.Dimension, options)
    {
    }

    internal ScoringAccumulator(string modelName, double[] normalizedTexts, int classCount, int dimension, SelectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _model = modelName;
        _options = options;
        ClassCount = classCount;
        Dimension = dimension;
        if (ClassCount < 2)
            throw new ArgumentException($"Model '{modelName}': {ClassCount} class text embedding(s); ranking by zero-shot accuracy needs at least 2 classes (check the --classes file).");
        int c = ClassCount, d = Dimension;
        _texts = normalizedTexts;
        _ldd = Float64Kernels.Padded(d);
        _ldc = Float64Kernels.Padded(c);
        _textsT = new double[d * _ldc];
        for (int k = 0; k < c; k++)
            for (int a = 0; a < d; a++) _textsT[a * _ldc + k] = _texts[k * d + a];

        var vega = options.Vega;
        bool moments = vega.EdgeKind != VisualEdgeKind.MeanCosine;
        _diagonal = moments && vega.Covariance == CovarianceMode.Diagonal;
        _full = moments && vega.Covariance is CovarianceMode.FullLedoitWolf or CovarianceMode.FullFixedShrinkage;
        _count = new long[c];
        _sum = new double[c * d];
        _sumSquaredNorm = new double[c];
        _nodeSum = new double[c];
        _groupSums = new double[Groups * GroupFields];
        int gramGroups = GramGroupCount(c);
        _gram = new double[gramGroups > 1 ? gramGroups : 0][];
        for (int g = 0; g < _gram.Length; g++) _gram[g] = new double[c * c];
        _gramTotal = new double[c * c];
        if (_diagonal) _sumSquares = new double[c * d];
        _packedRowBase = [];
        if (_full)
        {
            _scatter = new double[c][];
            _pending = new double[c][];
            _pendingCount = new int[c];
            _pendingCapacity = (int)Math.Clamp(PendingBudgetBytes / ((long)c * _ldd * 8), 16, 256) & ~7;
            _packedRowBase = new long[d];
            for (int i = 0; i < d; i++) _packedRowBase[i] = DenseMath.PackedRowOffset(i, d) - i;
        }
    }

    /// <summary>Gram groups for the dispersity bootstrap: 64, 32 or 16 when their C×C matrices fit 16 MiB, else 1 (none kept: no interval).</summary>
    internal static int GramGroupCount(int classes)
    {
        foreach (int g in (int[])[64, 32, 16])
            if ((long)g * classes * classes * 8 <= GramBudgetBytes) return g;
        return 1;
    }

    private static double[] Normalize(string modelName, EmbeddingMatrix classTexts)
    {
        ArgumentNullException.ThrowIfNull(classTexts);
        int c = classTexts.Count, d = classTexts.Dimension;
        var texts = new double[c * d];
        for (int k = 0; k < c; k++)
        {
            ReadOnlySpan<float> t = classTexts.Data.AsSpan(k * d, d);
            double ss = 0;
            foreach (float x in t) ss += (double)x * x;
            if (!double.IsFinite(ss))
                throw new ArgumentException($"Model '{modelName}': class text embedding {k} contains NaN or infinity; check the text tower's output.", nameof(classTexts));
            if (ss == 0)
                throw new ArgumentException($"Model '{modelName}': class text embedding {k} is all zeros; its cosine similarity is undefined.", nameof(classTexts));
            double inv = 1 / Math.Sqrt(ss);
            for (int a = 0; a < d; a++) texts[k * d + a] = t[a] * inv;
        }
        return texts;
    }

    public string ModelName => _model;
    public int ClassCount { get; }
    public int Dimension { get; }
    public long ImageCount => _images;
    internal ReadOnlySpan<double> NormalizedTexts => _texts;
    internal SelectionOptions Options => _options;
    internal bool HasDiagonal => _diagonal;
    internal bool HasFull => _full;

    /// <summary>Bytes held by the statistics (what grows with C and D, not with N).</summary>
    public long StateBytes
    {
        get
        {
            long b = (long)ClassCount * Dimension * 8 * 2 + ClassCount * 32L + (_groupSums.LongLength + GroupFields + _gramTotal.LongLength) * 8;
            foreach (var g in _gram) b += g.LongLength * 8;
            if (_sumSquares is not null) b += _sumSquares.LongLength * 8;
            if (_scatter is not null)
                for (int k = 0; k < ClassCount; k++)
                    b += (_scatter[k]?.LongLength ?? 0) * 8 + (_pending![k]?.LongLength ?? 0) * 8;
            return b;
        }
    }

    /// <summary>The bootstrap group of an image: a hash of its index and the bootstrap seed.</summary>
    internal static int GroupOf(long imageIndex, int seed) => (int)(Bootstrap.Mix((ulong)imageIndex, (ulong)(uint)seed, 0x5EED_6A0B) % Groups);

    /// <summary>
    /// Adds a batch of image embeddings (any size; rows need not be normalised). <paramref name="imageIds"/> gives each
    /// row's index in the image source (it decides the row's bootstrap group, so the same image lands in the same group
    /// for every model and every sharding); empty means the running position in the stream.
    /// </summary>
    public void Add(EmbeddingMatrix images, ReadOnlySpan<long> imageIds = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Dimension != Dimension)
            throw new ArgumentException($"Model '{_model}': image embeddings have dimension {images.Dimension} but the class text embeddings have {Dimension}; the image and text towers of one model must share one embedding space.", nameof(images));
        if (!imageIds.IsEmpty && imageIds.Length != images.Count)
            throw new ArgumentException($"Model '{_model}': {imageIds.Length} image ids for {images.Count} image embeddings; give one id per row or none.", nameof(imageIds));
        for (int start = 0; start < images.Count; start += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, images.Count - start);
            AddChunk(images.Data, start, rows, imageIds.IsEmpty ? default : imageIds.Slice(start, rows));
        }
    }

    private unsafe void AddChunk(float[] data, int firstRow, int rows, ReadOnlySpan<long> ids)
    {
        int d = Dimension, c = ClassCount, ldd = _ldd, ldc = _ldc;
        _normalized ??= new double[(ChunkRows + Float64Kernels.TileRows) * ldd];
        _cosines ??= new double[ChunkRows * c];
        _probabilities ??= new double[ChunkRows * ldc];
        _rowStats ??= new SimilarityKernel.RowStatistics[ChunkRows];
        double[] normalized = _normalized, cosines = _cosines, probabilities = _probabilities;
        var stats = _rowStats;
        double tVega = _options.Vega.Temperature, tBase = _options.BaselineTemperature;
        int blocks = (rows + BlockRows - 1) / BlockRows;
        long badRow = long.MaxValue;
        string badWhat = "";
        var po = new ParallelOptions { MaxDegreeOfParallelism = _options.Threads };

        // 1. Normalise every row in float64 (padding columns stay zero).
        Parallel.For(0, blocks, po, b =>
        {
            int r0 = b * BlockRows, r1 = Math.Min(rows, r0 + BlockRows);
            for (int r = r0; r < r1; r++)
            {
                ReadOnlySpan<float> src = data.AsSpan((firstRow + r) * d, d);
                Span<double> dst = normalized.AsSpan(r * ldd, d);
                double ss = 0;
                foreach (float x in src) ss += (double)x * x;
                if (!double.IsFinite(ss) || ss == 0)
                {
                    // _images already counts the earlier chunks of this batch, so _images + r is the row's index in the stream.
                    lock (stats)
                        if (_images + r < badRow) { badRow = _images + r; badWhat = ss == 0 ? "is all zeros" : "contains NaN or infinity"; }
                    dst.Clear();
                    continue;
                }
                double inv = 1 / Math.Sqrt(ss);
                for (int a = 0; a < d; a++) dst[a] = src[a] * inv;
            }
        });
        if (badRow != long.MaxValue)
            throw new ArgumentException($"Model '{_model}': image embedding row {badRow} {badWhat}; check the image tower's output for that image.");

        // 2. Cosines (float64 product against the transposed texts) and per-row softmax statistics.
        fixed (double* pn = normalized, pt = _textsT, pc = cosines)
        {
            nint xn = (nint)pn, xt = (nint)pt, xc = (nint)pc;
            Parallel.For(0, blocks, po, () => ArrayPool<double>.Shared.Rent(c), (b, _, local) =>
            {
                int r0 = b * BlockRows, r1 = Math.Min(rows, r0 + BlockRows);
                Float64Kernels.MultiplyRowsByColumns((double*)xn + (long)r0 * ldd, ldd, r1 - r0, (double*)xt, ldc, c, d, (double*)xc + (long)r0 * c, c);
                for (int r = r0; r < r1; r++)
                    stats[r] = SimilarityKernel.Row(cosines.AsSpan(r * c, c), tVega, tBase, probabilities.AsSpan(r * ldc, c), local.AsSpan(0, c));
                return local;
            }, local => ArrayPool<double>.Shared.Return(local));
        }

        // 3. Group sums in row order (deterministic) and a counting sort of the rows by pseudo-label.
        int seed = _options.Bootstrap.Seed;
        int gramGroups = Math.Max(1, _gram.Length);
        var groupOf = new int[rows];
        var starts = new int[c + 1];
        var gramStarts = new int[gramGroups + 1];
        for (int r = 0; r < rows; r++)
        {
            ref var s = ref stats[r];
            int g = GroupOf(ids.IsEmpty ? _images + r : ids[r], seed);
            groupOf[r] = g;
            for (int part = 0; part < 2; part++)
            {
                Span<double> gs = part == 0 ? _groupSums.AsSpan(g * GroupFields, GroupFields) : _totals;
                gs[0] += 1;
                gs[1] += s.NodeProbability;
                gs[2] += s.MaxProbability;
                gs[3] += s.Entropy;
                gs[4] += s.Margin;
                gs[5] += s.MaxCosine;
            }
            starts[s.Label + 1]++;
            gramStarts[g % gramGroups + 1]++;
        }
        for (int k = 0; k < c; k++) starts[k + 1] += starts[k];
        var order = new int[rows];
        var fill = (int[])starts.Clone();
        for (int r = 0; r < rows; r++) order[fill[stats[r].Label]++] = r;
        _images += rows;

        // 4. Per-class updates: classes are independent, each processes its rows in row order (deterministic).
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
                    ReadOnlySpan<double> x = normalized.AsSpan(r * ldd, d);
                    TensorPrimitives.Add(sum, x, sum);
                    if (_diagonal) TensorPrimitives.MultiplyAdd(x, x, sq, sq);
                    _count[k]++;
                    _sumSquaredNorm[k] += TensorPrimitives.SumOfSquares(x);
                    _nodeSum[k] += stats[r].NodeProbability;
                    if (_full)
                    {
                        var pending = _pending![k] ??= new double[_pendingCapacity * ldd];
                        normalized.AsSpan(r * ldd, ldd).CopyTo(pending.AsSpan(_pendingCount![k] * ldd, ldd));
                        if (++_pendingCount[k] == _pendingCapacity) Flush(k);
                    }
                }
            }
        });

        // 5. Gram matrices PᵀP of the baseline predictions: over all images, and per Gram group for the bootstrap.
        fixed (double* pp = probabilities, pg = _gramTotal)
        {
            long* rowBase = stackalloc long[c];
            for (int i = 0; i < c; i++) rowBase[i] = (long)i * c;
            Float64Kernels.SyrkUpperParallel(pp, ldc, rows, c, 1, pg, rowBase, _options.Threads);
        }
        if (_gram.Length > 0)
        {
            _sorted ??= new double[ChunkRows * ldc];
            double[] sorted = _sorted;
            for (int g = 0; g < gramGroups; g++) gramStarts[g + 1] += gramStarts[g];
            var gfill = (int[])gramStarts.Clone();
            for (int r = 0; r < rows; r++)
                probabilities.AsSpan(r * ldc, ldc).CopyTo(sorted.AsSpan(gfill[groupOf[r] % gramGroups]++ * ldc, ldc));
            Parallel.For(0, gramGroups, po, g =>
            {
                int k = gramStarts[g + 1] - gramStarts[g];
                if (k == 0) return;
                fixed (double* ps = sorted, pg = _gram[g])
                {
                    long* rowBase = stackalloc long[c];
                    for (int i = 0; i < c; i++) rowBase[i] = (long)i * c;
                    Float64Kernels.SyrkUpper(ps + (long)gramStarts[g] * ldc, ldc, k, c, 1, pg, rowBase);
                }
            });
        }
    }

    private unsafe void Flush(int k)
    {
        int n = _pendingCount![k];
        if (n == 0) return;
        int d = Dimension;
        var scatter = _scatter![k] ??= new double[DenseMath.PackedLength(d)];
        fixed (double* px = _pending![k], ps = scatter)
        fixed (long* pr = _packedRowBase)
            Float64Kernels.SyrkUpper(px, _ldd, n, d, 1, ps, pr);
        _pendingCount[k] = 0;
    }

    internal void FlushAll()
    {
        if (!_full) return;
        var po = new ParallelOptions { MaxDegreeOfParallelism = _options.Threads };
        Parallel.For(0, ClassCount, po, Flush);
    }

    /// <summary>Why <paramref name="other"/> cannot be merged into this accumulator, or null when it can.</summary>
    internal string? MergeMismatch(ScoringAccumulator other)
    {
        if (other.ClassCount != ClassCount || other.Dimension != Dimension)
            return $"'{other._model}' has {other.ClassCount} classes × dimension {other.Dimension}, '{_model}' has {ClassCount} × {Dimension}";
        if (!other._texts.AsSpan().SequenceEqual(_texts)) return "the class text embeddings differ";
        if (other._options.Vega != _options.Vega) return $"the VEGA options differ ({other._options.Vega} vs {_options.Vega})";
        if (other._options.BaselineTemperature != _options.BaselineTemperature)
            return $"the baseline temperatures differ ({other._options.BaselineTemperature} vs {_options.BaselineTemperature})";
        if (other._options.Bootstrap.Seed != _options.Bootstrap.Seed)
            return $"the bootstrap seeds differ ({other._options.Bootstrap.Seed} vs {_options.Bootstrap.Seed}); they decide the image groups";
        if (other._gram.Length != _gram.Length) return "the Gram group counts differ";
        return null;
    }

    /// <summary>Adds the statistics of <paramref name="other"/> (a disjoint shard of the same model and task) to this one.</summary>
    public void Merge(ScoringAccumulator other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(other, this)) throw new ArgumentException("An accumulator cannot be merged with itself.", nameof(other));
        if (MergeMismatch(other) is { } why)
            throw new ArgumentException($"Cannot merge statistics of '{other._model}' into '{_model}': {why}. Shards must share the class text embeddings and the options.", nameof(other));
        FlushAll();
        other.FlushAll();
        for (int k = 0; k < ClassCount; k++)
        {
            _count[k] += other._count[k];
            _sumSquaredNorm[k] += other._sumSquaredNorm[k];
            _nodeSum[k] += other._nodeSum[k];
            if (_full && other._scatter![k] is { } s)
            {
                var mine = _scatter![k] ??= new double[DenseMath.PackedLength(Dimension)];
                TensorPrimitives.Add(mine, s, mine);
            }
        }
        TensorPrimitives.Add(_sum, other._sum, _sum);
        if (_sumSquares is not null) TensorPrimitives.Add(_sumSquares, other._sumSquares!, _sumSquares);
        TensorPrimitives.Add(_groupSums, other._groupSums, _groupSums);
        TensorPrimitives.Add(_totals, other._totals, _totals);
        for (int g = 0; g < _gram.Length; g++) TensorPrimitives.Add(_gram[g], other._gram[g], _gram[g]);
        TensorPrimitives.Add(_gramTotal, other._gramTotal, _gramTotal);
        _images += other._images;
    }

    /// <summary>The scores and the bootstrap material, from the statistics so far.</summary>
    public FinishedScores Finish()
    {
        if (_images == 0)
            throw new InvalidOperationException($"Model '{_model}': no image embeddings were given; scoring needs at least one image (check the --images folder or CSV).");
        FlushAll();
        double n = _images;
        var (vega, edges) = VisualGraph.Compute(new ClassStatistics(this), _options.Vega, _options.Threads);
        var totals = _totals;
        return new FinishedScores(
            vega,
            MaxSoftmax: totals[2] / n,
            NegativeEntropy: -totals[3] / n,
            Margin: totals[4] / n,
            MaxCosine: totals[5] / n,
            Dispersity: Dispersity(_gramTotal, ClassCount, n),
            Material: new BootstrapMaterial(ClassCount, (double[])_groupSums.Clone(), _gram.Length > 0 ? _gram.Select(g => (double[])g.Clone()).ToArray() : null, edges,
                _options.Vega.UndefinedEdgeScore));
    }

    /// <summary>
    /// ‖P‖_* / √(N·min(N, C)) from the upper triangle of the Gram matrix G = PᵀP: the singular values of P are the
    /// square roots of G's eigenvalues.
    /// </summary>
    internal static double Dispersity(ReadOnlySpan<double> gramUpper, int c, double n)
    {
        if (!(n > 0)) return double.NaN;
        var full = new double[c * c];
        for (int i = 0; i < c; i++)
            for (int j = i; j < c; j++) full[i * c + j] = full[j * c + i] = gramUpper[i * c + j];
        var values = new double[c];
        DenseMath.SymmetricEigenTridiagonal(full, c, values, default);
        double nuclear = 0;
        foreach (double v in values) nuclear += Math.Sqrt(Math.Max(v, 0));
        return nuclear / Math.Sqrt(n * Math.Min(n, c));
    }

    /// <summary>A read-only view of the per-class statistics for <see cref="VisualGraph"/>.</summary>
    internal readonly struct ClassStatistics(ScoringAccumulator a)
    {
        public int ClassCount => a.ClassCount;
        public int Dimension => a.Dimension;
        public long Images => a._images;
        public ReadOnlySpan<double> Texts => a._texts;
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

/// <summary>The scores from one finished accumulator, with what the bootstrap needs.</summary>
internal sealed record FinishedScores(VegaResult Vega, double MaxSoftmax, double NegativeEntropy, double Margin, double MaxCosine, double Dispersity,
    BootstrapMaterial Material);
