namespace Vega.MLNet.Tensors;

/// <summary>
/// Seeded parameter initialisers (PyTorch conventions). Fans: a 2-D weight [out, in] has fan_in = in, fan_out = out;
/// a convolution weight [O, C, k…] has fan_in = C·Πk, fan_out = O·Πk. The values depend only on the generator state.
/// </summary>
internal static class Init
{
    public static (int FanIn, int FanOut) Fans(int[] shape)
    {
        if (shape.Length < 2) throw new ArgumentException($"Fan in/out need a weight of rank ≥ 2; got {Shapes.ToString(shape)}.", nameof(shape));
        int receptive = 1;
        for (int i = 2; i < shape.Length; i++) receptive *= shape[i];
        return (shape[1] * receptive, shape[0] * receptive);
    }

    /// <summary>N(mean, std²).</summary>
    public static Tensor Normal(Tensor t, Rng rng, double mean = 0, double std = 1)
    {
        rng.FillNormal(t.Span, mean, std);
        return t;
    }

    /// <summary>U[low, high).</summary>
    public static Tensor Uniform(Tensor t, Rng rng, double low, double high)
    {
        rng.FillUniform(t.Span, low, high);
        return t;
    }

    /// <summary>Glorot uniform: U(±gain·√(6/(fan_in + fan_out))).</summary>
    public static Tensor XavierUniform(Tensor t, Rng rng, double gain = 1)
    {
        var (fi, fo) = Fans(t.Shape);
        double a = gain * Math.Sqrt(6.0 / (fi + fo));
        return Uniform(t, rng, -a, a);
    }

    /// <summary>Glorot normal: N(0, gain²·2/(fan_in + fan_out)).</summary>
    public static Tensor XavierNormal(Tensor t, Rng rng, double gain = 1)
    {
        var (fi, fo) = Fans(t.Shape);
        return Normal(t, rng, 0, gain * Math.Sqrt(2.0 / (fi + fo)));
    }

    /// <summary>He uniform for a leaky-ReLU slope <paramref name="a"/> (0 = ReLU): U(±√(2/(1+a²))·√(3/fan)).</summary>
    public static Tensor KaimingUniform(Tensor t, Rng rng, double a = 0, bool fanOut = false)
    {
        var (fi, fo) = Fans(t.Shape);
        double bound = Math.Sqrt(2.0 / (1 + a * a)) * Math.Sqrt(3.0 / (fanOut ? fo : fi));
        return Uniform(t, rng, -bound, bound);
    }

    /// <summary>He normal: N(0, (2/(1+a²))/fan).</summary>
    public static Tensor KaimingNormal(Tensor t, Rng rng, double a = 0, bool fanOut = false)
    {
        var (fi, fo) = Fans(t.Shape);
        return Normal(t, rng, 0, Math.Sqrt(2.0 / (1 + a * a)) / Math.Sqrt(fanOut ? fo : fi));
    }
}
