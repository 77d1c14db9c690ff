using Vega.MLNet.Imaging;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.PartialLabel;

/// <summary>
/// Candidate-label sets of a training set: for each sample a set of classes that contains its (unknown) true class,
/// stored as a dense 0/1 mask [samples, classes].
/// </summary>
internal sealed class CandidateLabels
{
    private readonly byte[] _mask;

    private CandidateLabels(byte[] mask, int count, int classCount)
    {
        _mask = mask;
        Count = count;
        ClassCount = classCount;
    }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>Number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>Whether class <paramref name="c"/> is a candidate of sample <paramref name="i"/>.</summary>
    public bool Contains(int i, int c) => _mask[i * ClassCount + c] != 0;

    /// <summary>The 0/1 mask row of sample <paramref name="i"/>.</summary>
    public ReadOnlySpan<byte> Row(int i) => _mask.AsSpan(i * ClassCount, ClassCount);

    /// <summary>Size of sample <paramref name="i"/>'s set.</summary>
    public int SetSize(int i)
    {
        int n = 0;
        foreach (byte b in Row(i)) n += b;
        return n;
    }

    /// <summary>Mean candidate-set size (1 + q(C − 1) in expectation for <see cref="Generate"/>).</summary>
    public double MeanSetSize()
    {
        long n = 0;
        foreach (byte b in _mask) n += b;
        return Count == 0 ? 0 : (double)n / Count;
    }

    /// <summary>Whether every sample has exactly one candidate (ordinary supervised labels).</summary>
    public bool IsSingleLabel
    {
        get
        {
            for (int i = 0; i < Count; i++) if (SetSize(i) != 1) return false;
            return true;
        }
    }

    /// <summary>Samples restricted to <paramref name="indices"/>, in that order.</summary>
    public CandidateLabels Subset(IReadOnlyList<int> indices)
    {
        var mask = new byte[indices.Count * ClassCount];
        for (int k = 0; k < indices.Count; k++) Row(indices[k]).CopyTo(mask.AsSpan(k * ClassCount, ClassCount));
        return new CandidateLabels(mask, indices.Count, ClassCount);
    }

    /// <summary>
    /// Uniform ("symmetric") candidate sets: the true label always, every other label independently with
    /// probability <paramref name="q"/> (seeded). q = 0 gives ordinary labels.
    /// </summary>
    public static CandidateLabels Generate(ReadOnlySpan<int> trueLabels, int classCount, double q, ulong seed)
    {
        if (classCount < 2) throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "At least two classes are needed.");
        if (!(q >= 0 && q <= 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "The flipping probability q must be in [0, 1].");
        var rng = new Rng(seed);
        var mask = new byte[trueLabels.Length * classCount];
        for (int i = 0; i < trueLabels.Length; i++)
        {
            int y = trueLabels[i];
            if ((uint)y >= (uint)classCount) throw new ArgumentOutOfRangeException(nameof(trueLabels), y, $"Label {y} of sample {i} is outside 0..{classCount - 1}.");
            for (int c = 0; c < classCount; c++)
                mask[i * classCount + c] = (byte)(c == y || rng.NextDouble() < q ? 1 : 0);
        }
        return new CandidateLabels(mask, trueLabels.Length, classCount);
    }

    /// <summary>Ordinary labels as single-candidate sets.</summary>
    public static CandidateLabels FromLabels(ReadOnlySpan<int> labels, int classCount) => Generate(labels, classCount, 0, 0);

    /// <summary>From explicit masks (row-major [count, classCount] of 0/1); every row must have a candidate.</summary>
    public static CandidateLabels FromMask(ReadOnlySpan<byte> mask, int count, int classCount)
    {
        if (mask.Length != count * classCount) throw new ArgumentException($"A mask of {count} × {classCount} needs {count * classCount} entries, got {mask.Length}.", nameof(mask));
        var copy = mask.ToArray();
        for (int i = 0; i < count; i++)
        {
            int n = 0;
            for (int c = 0; c < classCount; c++) { if (copy[i * classCount + c] > 1) throw new ArgumentException("Mask entries must be 0 or 1.", nameof(mask)); n += copy[i * classCount + c]; }
            if (n == 0) throw new ArgumentException($"Sample {i} has an empty candidate set.", nameof(mask));
        }
        return new CandidateLabels(copy, count, classCount);
    }

    /// <summary>
    /// The candidate sets of image items (CSV column <c>candidates</c> = "a|b|c", or the <c>label</c> column as a single
    /// candidate). Every name must be one of <paramref name="classNames"/>; errors name the item's line.
    /// </summary>
    public static CandidateLabels FromItems(IReadOnlyList<ImageItem> items, IReadOnlyList<string> classNames)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < classNames.Count; c++) index[classNames[c]] = c;
        var mask = new byte[items.Count * classNames.Count];
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            string where = item.Origin ?? item.Path ?? item.Id;
            IReadOnlyList<string> names = item.Candidates ?? (item.Label is { } l ? [l] : []);
            if (names.Count == 0)
                throw new InvalidDataException($"{where}: the image has no candidate labels (fill the \"candidates\" column, e.g. \"cat|dog\", or the \"label\" column).");
            foreach (var raw in names)
            {
                string name = raw.Trim();
                if (name.Length == 0) throw new InvalidDataException($"{where}: an empty class name in the candidate set \"{string.Join('|', names)}\".");
                if (!index.TryGetValue(name, out int c))
                    throw new InvalidDataException($"{where}: \"{name}\" is not one of the {classNames.Count} classes ({string.Join(", ", classNames.Take(8))}{(classNames.Count > 8 ? ", …" : "")}).");
                mask[i * classNames.Count + c] = 1;
            }
        }
        return new CandidateLabels(mask, items.Count, classNames.Count);
    }

    /// <summary>
    /// k samples per class (by the true label), chosen with a seed; classes with fewer samples give all they have.
    /// Returns indices in increasing order.
    /// </summary>
    public static int[] SampleShots(ReadOnlySpan<int> labels, int classCount, int shots, ulong seed)
    {
        if (shots < 1) throw new ArgumentOutOfRangeException(nameof(shots), shots, "At least one shot per class.");
        var byClass = new List<int>[classCount];
        for (int c = 0; c < classCount; c++) byClass[c] = [];
        for (int i = 0; i < labels.Length; i++) byClass[labels[i]].Add(i);
        var rng = new Rng(seed);
        var chosen = new List<int>(classCount * shots);
        foreach (var list in byClass)
        {
            var arr = list.ToArray();
            rng.Shuffle(arr.AsSpan());
            chosen.AddRange(arr.Take(shots));
        }
        chosen.Sort();
        return chosen.ToArray();
    }
}
