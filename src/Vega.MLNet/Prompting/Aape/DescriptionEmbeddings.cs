using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// The text-tower embeddings of every class's descriptions: one L2-normalised matrix (sentences × D) per class, in
/// the order of <see cref="ClassNames"/>. Made by <see cref="ClassDescriptions.Embed"/> or, for embeddings computed
/// elsewhere, <see cref="Create"/>.
/// </summary>
internal sealed class DescriptionEmbeddings
{
    private readonly EmbeddingMatrix[] _perClass;

    private DescriptionEmbeddings(IReadOnlyList<string> classNames, EmbeddingMatrix[] perClass, bool fromCache, string? cacheFile)
    {
        ClassNames = classNames;
        _perClass = perClass;
        Dimension = perClass[0].Dimension;
        FromCache = fromCache;
        CacheFile = cacheFile;
    }

    /// <summary>The classes.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Embedding width D.</summary>
    public int Dimension { get; }

    /// <summary>True when the embeddings were read from the cache instead of computed.</summary>
    public bool FromCache { get; }

    /// <summary>The cache file (.npy) used, if any.</summary>
    public string? CacheFile { get; }

    /// <summary>The description embeddings of class <paramref name="classIndex"/> (nᶜ × D).</summary>
    public EmbeddingMatrix For(int classIndex) => _perClass[classIndex];

    /// <summary>
    /// Wraps precomputed embeddings (one matrix of at least one row per class, all of the same width); rows are
    /// L2-normalised in place.
    /// </summary>
    public static DescriptionEmbeddings Create(IReadOnlyList<string> classNames, IReadOnlyList<EmbeddingMatrix> perClass)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(perClass);
        if (classNames.Count == 0 || classNames.Count != perClass.Count)
            throw new ArgumentException($"{perClass.Count} description matrices for {classNames.Count} classes; give one (non-empty) matrix per class.", nameof(perClass));
        int d = perClass[0].Dimension;
        for (int c = 0; c < perClass.Count; c++)
        {
            if (perClass[c].Count == 0) throw new ArgumentException($"Class \"{classNames[c]}\" has no description embeddings; give at least one.", nameof(perClass));
            if (perClass[c].Dimension != d)
                throw new ArgumentException($"Class \"{classNames[c]}\" has description embeddings of width {perClass[c].Dimension}, class \"{classNames[0]}\" of {d}.", nameof(perClass));
            perClass[c].NormalizeRows();
        }
        return new DescriptionEmbeddings(classNames.ToArray(), perClass.ToArray(), fromCache: false, cacheFile: null);
    }

    /// <summary>The embeddings of a subset of the classes (by index, in the given order; rows shared).</summary>
    internal DescriptionEmbeddings Subset(IReadOnlyList<int> classIndices) =>
        new(classIndices.Select(i => ClassNames[i]).ToArray(), classIndices.Select(i => _perClass[i]).ToArray(), FromCache, CacheFile);

    /// <summary>The mean description embedding of each class, renormalised (C × D): the mean-p̄ summary.</summary>
    internal float[] NormalizedMeans()
    {
        int d = Dimension;
        var result = new float[_perClass.Length * d];
        var acc = new double[d];
        for (int c = 0; c < _perClass.Length; c++)
        {
            Array.Clear(acc);
            var m = _perClass[c];
            for (int r = 0; r < m.Count; r++)
            {
                var row = m.Row(r);
                for (int k = 0; k < d; k++) acc[k] += row[k];
            }
            var dst = result.AsSpan(c * d, d);
            for (int k = 0; k < d; k++) dst[k] = (float)(acc[k] / m.Count);
            EmbeddingMatrix.NormalizeInPlace(dst);
        }
        return result;
    }

    // ---------------------------------------------------------------- embedding + cache

    private const string Format = "vega-aape-descriptions";

    internal static DescriptionEmbeddings EmbedCached(ClassDescriptions descriptions, ClipModel model, string? cacheDirectory, CancellationToken ct)
    {
        var counts = descriptions.Sentences.Select(s => s.Count).ToArray();
        string? npy = null, sidecar = null;
        if (cacheDirectory is not null)
        {
            string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{model.ContentHash}\n{descriptions.ContentHash}\ntruncate")))[..24];
            Directory.CreateDirectory(cacheDirectory);
            npy = Path.Combine(cacheDirectory, $"aape-desc-{key}.npy");
            sidecar = Path.ChangeExtension(npy, ".json");
            if (TryRead(npy, sidecar, model.ContentHash, descriptions, counts, model.EmbeddingDimension) is { } cached)
                return new DescriptionEmbeddings(descriptions.ClassNames, Split(cached, counts, model.EmbeddingDimension), fromCache: true, npy);
        }
        var texts = descriptions.Sentences.SelectMany(s => s).ToList();
        var all = model.EmbedTexts(texts, new TextEmbeddingOptions { Truncate = true }, ct);
        if (npy is not null)
        {
            string tmp = npy + ".tmp";
            Npy.WriteFloat32(tmp, all.Data, all.Count, all.Dimension);
            File.Move(tmp, npy, overwrite: true);
            var meta = new JsonObject
            {
                ["format"] = Format,
                ["version"] = 1,
                ["model"] = model.Name,
                ["model_hash"] = model.ContentHash,
                ["descriptions_hash"] = descriptions.ContentHash,
                ["source"] = descriptions.Source,
                ["dimension"] = all.Dimension,
                ["classes"] = new JsonArray(descriptions.ClassNames.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
                ["counts"] = new JsonArray(counts.Select(n => (JsonNode)JsonValue.Create(n)).ToArray()),
            };
            File.WriteAllText(sidecar!, meta.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        return new DescriptionEmbeddings(descriptions.ClassNames, Split(all.Data, counts, all.Dimension), fromCache: false, npy);
    }

    private static float[]? TryRead(string npy, string sidecar, string modelHash, ClassDescriptions descriptions, int[] counts, int dimension)
    {
        if (!File.Exists(npy) || !File.Exists(sidecar)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(sidecar));
            var root = doc.RootElement;
            if (root.GetProperty("format").GetString() != Format || root.GetProperty("model_hash").GetString() != modelHash ||
                root.GetProperty("descriptions_hash").GetString() != descriptions.ContentHash || root.GetProperty("dimension").GetInt32() != dimension)
                return null;
            var stored = root.GetProperty("counts").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            if (!stored.SequenceEqual(counts)) return null;
            var (data, rows, cols) = Npy.ReadFloat32(npy);
            if (rows != counts.Sum() || cols != dimension) return null;
            return data;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or KeyNotFoundException or InvalidOperationException or FormatException or IOException)
        {
            return null; // a damaged cache entry is recomputed and overwritten
        }
    }

    private static EmbeddingMatrix[] Split(float[] data, int[] counts, int d)
    {
        var result = new EmbeddingMatrix[counts.Length];
        int offset = 0;
        for (int c = 0; c < counts.Length; c++)
        {
            result[c] = new EmbeddingMatrix(data.AsSpan(offset * d, counts[c] * d).ToArray(), counts[c], d);
            offset += counts[c];
        }
        return result;
    }
}
