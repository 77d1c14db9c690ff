namespace Vega.MLNet.Selection;

/// <summary>How the visual graph's edge between two pseudo-classes is computed. See docs/vega.md.</summary>
public enum VisualEdgeKind
{
    /// <summary>
    /// −D_B, the negated Bhattacharyya distance between the two class Gaussians (default). It is a similarity
    /// (larger = closer), it never underflows, and Pearson correlation is invariant to its affine changes.
    /// </summary>
    NegativeBhattacharyya,

    /// <summary>
    /// exp(−D_B), the Bhattacharyya coefficient. Computed in the log domain and shifted by the smallest distance
    /// (a constant factor that Pearson correlation ignores); it still spans hundreds of orders of magnitude in high
    /// dimensions, which the result reports.
    /// </summary>
    ExpNegativeBhattacharyya,

    /// <summary>Cosine similarity of the two class means; ignores the covariances.</summary>
    MeanCosine,
}

/// <summary>How each pseudo-class's covariance is estimated for the Bhattacharyya distance. See docs/vega.md.</summary>
public enum CovarianceMode
{
    /// <summary>
    /// Per-dimension variances, shrunk towards the class's mean variance by <see cref="VegaOptions.FixedShrinkage"/>
    /// (default). O(C·D) memory and O(C²·D) time.
    /// </summary>
    Diagonal,

    /// <summary>One variance per class (the mean of the per-dimension variances). O(C·D) memory, O(C²·D) time.</summary>
    Isotropic,

    /// <summary>
    /// Full covariance with Ledoit–Wolf shrinkage towards a scaled identity; the shrinkage intensity is never below
    /// <see cref="VegaOptions.ShrinkageFloor"/>. O(C·D²) memory. See <see cref="VegaOptions.FullSubspaceDimension"/>.
    /// </summary>
    FullLedoitWolf,

    /// <summary>Full covariance shrunk towards a scaled identity by <see cref="VegaOptions.FixedShrinkage"/>. O(C·D²) memory.</summary>
    FullFixedShrinkage,
}

/// <summary>
/// Hyper-parameters of the VEGA score (Visual-tExtual Graph Alignment, arXiv 2412.20682). Every default is documented
/// with its reason in docs/vega.md.
/// </summary>
public sealed record VegaOptions
{
    /// <summary>Softmax temperature on cosine similarities for the node score s_n. Default 0.05.</summary>
    public double Temperature { get; init; } = 0.05;

    /// <summary>How visual edges are computed. Default <see cref="VisualEdgeKind.NegativeBhattacharyya"/>.</summary>
    public VisualEdgeKind EdgeKind { get; init; } = VisualEdgeKind.NegativeBhattacharyya;

    /// <summary>How class covariances are estimated. Default <see cref="CovarianceMode.Diagonal"/>.</summary>
    public CovarianceMode Covariance { get; init; } = CovarianceMode.Diagonal;

    /// <summary>
    /// Shrinkage intensity α in [0, 1] towards the scaled identity, Σ = (1−α)·S + α·(tr S / D)·I, used by
    /// <see cref="CovarianceMode.FullFixedShrinkage"/> and (per dimension) by <see cref="CovarianceMode.Diagonal"/>.
    /// Default 0.1.
    /// </summary>
    public double FixedShrinkage { get; init; } = 0.1;

    /// <summary>Lower bound on the Ledoit–Wolf shrinkage intensity, in [0, 1]. Default 0.01.</summary>
    public double ShrinkageFloor { get; init; } = 0.01;

    /// <summary>
    /// Added to every covariance's diagonal, relative to the pooled mean per-dimension variance of all classes, so that
    /// every covariance is positive definite. Default 1e-6.
    /// </summary>
    public double VarianceFloor { get; init; } = 1e-6;

    /// <summary>
    /// Full covariance modes only: the number p of pooled within-class principal directions (the top eigenvectors of the
    /// pooled within-class covariance, from a deterministic eigen-decomposition) in which covariances are kept in full;
    /// the remaining D−p directions get one variance per class. p ≥ D (or null) is the exact full covariance, whose
    /// pairwise cost is O(C²·D³/3). Default 32. The measured error of this approximation is in docs/vega.md.
    /// </summary>
    public int? FullSubspaceDimension { get; init; } = 32;

    /// <summary>Classes with fewer pseudo-labelled images than this are left out of the edge term (≥ 2). Default 2.</summary>
    public int MinImagesPerClass { get; init; } = 2;

    /// <summary>Keep the C×C textual and visual edge matrices in the result (for the report's heatmaps). Default true.</summary>
    public bool KeepEdgeMatrices { get; init; } = true;

    /// <summary>
    /// The edge score s_e when the edge correlation is undefined (fewer than 3 classes in the edge term, a constant or
    /// non-finite side, no covariance): 0.5 (r = 0, no evidence either way) by default, 0 in <see cref="Paper"/>.
    /// </summary>
    public double UndefinedEdgeScore { get; init; } = 0.5;

    /// <summary>
    /// The published definition of VEGA (arXiv 2412.20682), as specified for this library: full covariance in the full
    /// embedding dimension (<see cref="FullSubspaceDimension"/> = null), Ledoit–Wolf shrinkage towards (tr S/D)·I with
    /// intensity max(α_LW, 0.1), no variance floor, visual edges exp(−D_B), node temperature 0.05, classes with fewer
    /// than 2 pseudo-labelled images left out, s_e = (r + 1)/2 and 0 when r is undefined, VEGA = s_n + s_e.
    /// Deterministic: nothing depends on a seed. See docs/vega.md.
    /// </summary>
    public static VegaOptions Paper { get; } = new()
    {
        Temperature = 0.05,
        EdgeKind = VisualEdgeKind.ExpNegativeBhattacharyya,
        Covariance = CovarianceMode.FullLedoitWolf,
        ShrinkageFloor = 0.1,
        VarianceFloor = 0,
        FullSubspaceDimension = null,
        MinImagesPerClass = 2,
        UndefinedEdgeScore = 0,
    };

    /// <summary>The named presets: <c>default</c> (<c>new VegaOptions()</c>) and <c>paper</c> (<see cref="Paper"/>).</summary>
    /// <exception cref="ArgumentException">An unknown name; the message lists the presets.</exception>
    public static VegaOptions Preset(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "default" => new VegaOptions(),
            "paper" => Paper,
            _ => throw new ArgumentException($"Unknown VEGA preset '{name}'; use default or paper.", nameof(name)),
        };
    }

    internal void Validate()
    {
        if (!(Temperature > 0) || double.IsInfinity(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "The VEGA softmax temperature must be a positive finite number (default 0.05).");
        if (!(FixedShrinkage >= 0 && FixedShrinkage <= 1))
            throw new ArgumentOutOfRangeException(nameof(FixedShrinkage), FixedShrinkage, "The fixed shrinkage intensity must lie in [0, 1] (default 0.1).");
        if (!(ShrinkageFloor >= 0 && ShrinkageFloor <= 1))
            throw new ArgumentOutOfRangeException(nameof(ShrinkageFloor), ShrinkageFloor, "The Ledoit–Wolf shrinkage floor must lie in [0, 1] (default 0.01).");
        if (!(VarianceFloor >= 0) || double.IsInfinity(VarianceFloor))
            throw new ArgumentOutOfRangeException(nameof(VarianceFloor), VarianceFloor, "The variance floor must be a finite number ≥ 0 (default 1e-6).");
        if (FullSubspaceDimension is < 1)
            throw new ArgumentOutOfRangeException(nameof(FullSubspaceDimension), FullSubspaceDimension, "The full-covariance subspace dimension must be ≥ 1, or null for the exact full covariance (default 32).");
        if (MinImagesPerClass < 2)
            throw new ArgumentOutOfRangeException(nameof(MinImagesPerClass), MinImagesPerClass, "A class needs at least 2 images for a covariance; MinImagesPerClass must be ≥ 2 (default 2).");
        if (!(UndefinedEdgeScore >= 0 && UndefinedEdgeScore <= 1))
            throw new ArgumentOutOfRangeException(nameof(UndefinedEdgeScore), UndefinedEdgeScore, "The edge score used when the correlation is undefined must lie in [0, 1] (default 0.5; the paper preset uses 0).");
        if (!Enum.IsDefined(EdgeKind)) throw new ArgumentOutOfRangeException(nameof(EdgeKind), EdgeKind, "Unknown visual edge kind.");
        if (!Enum.IsDefined(Covariance)) throw new ArgumentOutOfRangeException(nameof(Covariance), Covariance, "Unknown covariance mode.");
    }
}
