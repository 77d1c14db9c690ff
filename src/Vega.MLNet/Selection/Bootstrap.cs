namespace Vega.MLNet.Selection;

/// <summary>What the bootstrap needs from one finished accumulator.</summary>
/// <param name="ClassCount">Number of classes C.</param>
/// <param name="GroupSums">Per image group (<see cref="ScoringAccumulator.Groups"/>): count and sums of the per-image contributions.</param>
/// <param name="Grams">Per Gram group: the upper triangle of PᵀP (C×C); null when C is too large for per-group Grams.</param>
/// <param name="Edges">The edges of VEGA's correlation; null when the edge term is degenerate.</param>
/// <param name="UndefinedEdgeScore">s_e when a replicate's correlation is undefined.</param>
internal sealed record BootstrapMaterial(int ClassCount, double[] GroupSums, double[][]? Grams, EdgeSample? Edges, double UndefinedEdgeScore);

/// <summary>
/// The paired bootstrap behind every score's interval and the chosen model's probability of being the best
/// (docs/vega.md, "Uncertainty"). Images are resampled by group: each replicate gives each of the 64 image groups a
/// Poisson(1) weight, the same for every candidate (groups come from a hash of the image index), so every per-image mean
/// is recomputed exactly from the group sums. Dispersity reweights per-group Gram matrices the same way. VEGA's edge
/// term is resampled over classes (Poisson(1) class multiplicities, the same for every candidate): its units are the
/// class pairs of the correlation, and re-estimating C Gaussians per image replicate would cost one full scoring each.
/// </summary>
internal static class Bootstrap
{
    private const ulong GroupStream = 0xB007_0001, GramStream = 0xB007_0002, ClassStream = 0xB007_0003;

    /// <summary>Most work the dispersity replicates may take per model (B·C³ flops); above it dispersity has no interval.</summary>
    private const double DispersityBudget = 4e9;

    /// <summary>A 64-bit hash of three words (SplitMix64 finaliser over a combination).</summary>
    internal static ulong Mix(ulong a, ulong b, ulong c)
    {
        ulong z = a * 0x9E3779B97F4A7C15UL ^ (b + 0x632BE59BD9B4E019UL) * 0xC2B2AE3D27D4EB4FUL ^ c * 0x165667B19E3779F9UL;
        z ^= z >> 30; z *= 0xBF58476D1CE4E5B9UL;
        z ^= z >> 27; z *= 0x94D049BB133111EBUL;
        z ^= z >> 31;
        z += 0x9E3779B97F4A7C15UL;
        z ^= z >> 30; z *= 0xBF58476D1CE4E5B9UL;
        z ^= z >> 27; z *= 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A Poisson(1) draw from a uniform hash (inverse CDF).</summary>
    internal static int Poisson1(ulong hash)
    {
        double u = (hash >> 11) * (1.0 / (1UL << 53));
        double p = Math.Exp(-1), cdf = p;
        int k = 0;
        while (u > cdf && k < 20) { k++; p /= k; cdf += p; }
        return k;
    }

    private static int Weight(int seed, ulong stream, int replicate, int unit) =>
        Poisson1(Mix((ulong)(uint)seed ^ stream << 32, (ulong)replicate, (ulong)unit));

    /// <summary>
    /// Replicate values of every metric (<see cref="SelectionMetrics.All"/> order) for one model: [metric][replicate],
    /// NaN where undefined (an empty replicate, or no dispersity interval).
    /// </summary>
    internal static double[][] Replicates(BootstrapMaterial m, BootstrapOptions o)
    {
        int b = o.Replicates, f = ScoringAccumulator.GroupFields, groups = ScoringAccumulator.Groups;
        var metrics = SelectionMetrics.All;
        var result = new double[metrics.Count][];
        for (int i = 0; i < result.Length; i++) result[i] = new double[b];
        int Index(SelectionMetric metric) => IndexOf(metrics, metric);
        int iVega = Index(SelectionMetric.Vega), iNode = Index(SelectionMetric.VegaNode), iEdge = Index(SelectionMetric.VegaEdge),
            iMsp = Index(SelectionMetric.MaxSoftmax), iEnt = Index(SelectionMetric.NegativeEntropy), iMargin = Index(SelectionMetric.Margin),
            iCos = Index(SelectionMetric.MaxCosine), iDisp = Index(SelectionMetric.Dispersity);
        bool dispersity = m.Grams is not null && (double)b * Math.Pow(m.ClassCount, 3) <= DispersityBudget;
        var weights = new int[groups];
        for (int r = 0; r < b; r++)
        {
            double n = 0, node = 0, msp = 0, ent = 0, margin = 0, cos = 0;
            for (int g = 0; g < groups; g++)
            {
                int w = weights[g] = Weight(o.Seed, GroupStream, r, g);
                if (w == 0) continue;
                ReadOnlySpan<double> s = m.GroupSums.AsSpan(g * f, f);
                n += w * s[0]; node += w * s[1]; msp += w * s[2]; ent += w * s[3]; margin += w * s[4]; cos += w * s[5];
            }
            double se = EdgeReplicate(m, o.Seed, r);
            if (n > 0)
            {
                result[iNode][r] = node / n;
                result[iMsp][r] = msp / n;
                result[iEnt][r] = -ent / n;
                result[iMargin][r] = margin / n;
                result[iCos][r] = cos / n;
                result[iVega][r] = node / n + se;
            }
            else
            {
                result[iNode][r] = result[iMsp][r] = result[iEnt][r] = result[iMargin][r] = result[iCos][r] = result[iVega][r] = double.NaN;
            }
            result[iEdge][r] = se;
            result[iDisp][r] = dispersity ? DispersityReplicate(m, o.Seed, r, weights) : double.NaN;
        }
        return result;
    }

    private static int IndexOf(IReadOnlyList<SelectionMetric> list, SelectionMetric metric)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == metric) return i;
        throw new ArgumentOutOfRangeException(nameof(metric));
    }

    private static double DispersityReplicate(BootstrapMaterial m, int seed, int replicate, int[] groupWeights)
    {
        var grams = m.Grams!;
        int h = grams.Length, c = m.ClassCount, groups = ScoringAccumulator.Groups, f = ScoringAccumulator.GroupFields;
        var g = new double[c * c];
        double n = 0;
        for (int k = 0; k < h; k++)
        {
            // With 64 Gram groups they are the image groups themselves (same weights); coarser ones get their own.
            int w = h == groups ? groupWeights[k] : Weight(seed, GramStream, replicate, k);
            if (w == 0) continue;
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(grams[k], w, g, g);
            for (int q = k; q < groups; q += h) n += w * m.GroupSums[q * f];
        }
        return n > 0 ? ScoringAccumulator.Dispersity(g, c, n) : double.NaN;
    }

    // s_e on a class replicate: Pearson over the valid pairs, each pair weighted by the product of its classes' multiplicities.
    private static double EdgeReplicate(BootstrapMaterial m, int seed, int replicate)
    {
        if (m.Edges is not { } e) return m.UndefinedEdgeScore;
        int v = e.Valid.Length;
        Span<double> mult = v <= 512 ? stackalloc double[v] : new double[v];
        int present = 0;
        for (int i = 0; i < v; i++) if ((mult[i] = Weight(seed, ClassStream, replicate, e.Valid[i])) > 0) present++;
        if (present < 3) return m.UndefinedEdgeScore;
        double sw = 0, sx = 0, sy = 0;
        for (int i = 0; i < v; i++)
        {
            if (mult[i] == 0) continue;
            for (int j = i + 1; j < v; j++)
            {
                double w = mult[i] * mult[j];
                if (w == 0) continue;
                sw += w; sx += w * e.Textual[i * v + j]; sy += w * e.Visual[i * v + j];
            }
        }
        double mx = sx / sw, my = sy / sw, sxx = 0, syy = 0, sxy = 0;
        for (int i = 0; i < v; i++)
        {
            if (mult[i] == 0) continue;
            for (int j = i + 1; j < v; j++)
            {
                double w = mult[i] * mult[j];
                if (w == 0) continue;
                double a = e.Textual[i * v + j] - mx, b = e.Visual[i * v + j] - my;
                sxx += w * a * a; syy += w * b * b; sxy += w * a * b;
            }
        }
        if (!(sxx > 0) || !(syy > 0) || !double.IsFinite(sxy)) return m.UndefinedEdgeScore;
        return (Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1, 1) + 1) / 2;
    }

    /// <summary>The percentile interval (linear interpolation between order statistics) of the finite replicates.</summary>
    internal static ScoreInterval? Interval(ReadOnlySpan<double> replicates, double level)
    {
        var finite = new List<double>(replicates.Length);
        foreach (double x in replicates) if (double.IsFinite(x)) finite.Add(x);
        if (finite.Count < 2) return null;
        finite.Sort();
        return new ScoreInterval(Quantile(finite, (1 - level) / 2), Quantile(finite, (1 + level) / 2));
    }

    private static double Quantile(List<double> sorted, double q)
    {
        double h = (sorted.Count - 1) * q;
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>
    /// Adds intervals and best-model probabilities (under <paramref name="metric"/>) to <paramref name="models"/>, from
    /// replicates paired across them; models without material (e.g. built by hand) are returned unchanged.
    /// </summary>
    internal static ModelScores[] Apply(IReadOnlyList<ModelScores> models, SelectionMetric metric, BootstrapOptions o)
    {
        var result = models.ToArray();
        if (o.Replicates == 0 || models.Count == 0 || models.Any(m => m.Material is null)) return result;
        var reps = new double[models.Count][][];
        Parallel.For(0, models.Count, i => reps[i] = Replicates(models[i].Material!, o));
        var metrics = SelectionMetrics.All;
        int mi = IndexOf(metrics, metric);
        // Each replicate's win goes to the model with the highest value; exact ties share it.
        var wins = new double[models.Count];
        int counted = 0;
        var tied = new List<int>();
        for (int r = 0; r < o.Replicates; r++)
        {
            double best = double.NegativeInfinity;
            tied.Clear();
            for (int i = 0; i < models.Count; i++)
            {
                double x = reps[i][mi][r];
                if (double.IsNaN(x) || x < best) continue;
                if (x > best) { best = x; tied.Clear(); }
                tied.Add(i);
            }
            if (tied.Count == 0) continue;
            foreach (int i in tied) wins[i] += 1.0 / tied.Count;
            counted++;
        }
        for (int i = 0; i < result.Length; i++)
        {
            var intervals = new Dictionary<string, ScoreInterval>();
            for (int k = 0; k < metrics.Count; k++)
                if (Interval(reps[i][k], o.Level) is { } iv) intervals[SelectionMetrics.Name(metrics[k])] = iv;
            result[i] = result[i] with { Intervals = intervals, TopProbability = counted > 0 ? wins[i] / counted : null };
        }
        return result;
    }
}
