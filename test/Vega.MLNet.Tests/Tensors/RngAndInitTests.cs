using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Tensors;

public sealed class RngAndInitTests
{
    [Fact]
    public void XoshiroMatchesAnIndependentImplementation()
    {
        // First outputs of xoshiro256** seeded through SplitMix64, from a separate Python implementation of both
        // reference algorithms (whose SplitMix64 also reproduces the published sequence e220a8397b1dcdaf, 6e789e6aa1b965f4, …).
        var r0 = new Rng(0);
        Assert.Equal(new ulong[] { 0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0, 0x6aa594f1262d2d2c },
            new[] { r0.NextUInt64(), r0.NextUInt64(), r0.NextUInt64(), r0.NextUInt64() });
        var r42 = new Rng(42);
        Assert.Equal(new ulong[] { 0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1, 0xecb8ad4703b360a1 },
            new[] { r42.NextUInt64(), r42.NextUInt64(), r42.NextUInt64(), r42.NextUInt64() });
    }

    [Fact]
    public void DistributionsHaveTheRightMomentsAndRanges()
    {
        var rng = new Rng(123);
        const int n = 200_000;
        double sum = 0, sumSq = 0, uSum = 0;
        int below = 0;
        var counts = new int[7];
        for (int i = 0; i < n; i++)
        {
            double z = rng.NextNormal();
            sum += z;
            sumSq += z * z;
            if (z < -1) below++;
            double u = rng.NextDouble();
            Assert.InRange(u, 0, 1 - 1e-17);
            uSum += u;
            counts[rng.NextInt(7)]++;
        }
        double mean = sum / n, var = sumSq / n - mean * mean;
        Assert.InRange(mean, -5 / Math.Sqrt(n), 5 / Math.Sqrt(n));
        Assert.InRange(var, 1 - 5 * Math.Sqrt(2.0 / n), 1 + 5 * Math.Sqrt(2.0 / n));
        // P(Z < −1) = 0.158655…
        Assert.InRange(below / (double)n, 0.158655 - 5 * 0.00082, 0.158655 + 5 * 0.00082);
        Assert.InRange(uSum / n, 0.5 - 5 * Math.Sqrt(1.0 / 12 / n), 0.5 + 5 * Math.Sqrt(1.0 / 12 / n));
        foreach (int c in counts) Assert.InRange(c, n / 7.0 - 5 * Math.Sqrt(n / 7.0), n / 7.0 + 5 * Math.Sqrt(n / 7.0));
    }

    [Fact]
    public void SameSeedSameValues()
    {
        var a = Init.Normal(Tensor.Empty(1000), new Rng(9)).ToArray();
        var b = Init.Normal(Tensor.Empty(1000), new Rng(9)).ToArray();
        var c = Init.Normal(Tensor.Empty(1000), new Rng(10)).ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        var p = new Rng(3).Permutation(50);
        Assert.Equal(Enumerable.Range(0, 50), p.OrderBy(v => v));
    }

    [Fact]
    public void InitialisersFollowTheirVarianceFormulas()
    {
        var rng = new Rng(77);
        // [out=300, in=200]: fan_in 200, fan_out 300.
        double Std(Tensor t) { var v = t.ToArray(); double m = v.Average(x => (double)x); return Math.Sqrt(v.Average(x => (x - m) * (x - m))); }
        double MaxAbs(Tensor t) => t.ToArray().Max(x => Math.Abs((double)x));
        var xu = Init.XavierUniform(Tensor.Empty(300, 200), rng);
        Assert.True(MaxAbs(xu) <= Math.Sqrt(6.0 / 500));
        Assert.InRange(Std(xu), 0.98 * Math.Sqrt(2.0 / 500), 1.02 * Math.Sqrt(2.0 / 500));
        Assert.InRange(Std(Init.XavierNormal(Tensor.Empty(300, 200), rng)), 0.98 * Math.Sqrt(2.0 / 500), 1.02 * Math.Sqrt(2.0 / 500));
        var ku = Init.KaimingUniform(Tensor.Empty(300, 200), rng);
        Assert.True(MaxAbs(ku) <= Math.Sqrt(6.0 / 200));
        Assert.InRange(Std(ku), 0.98 * Math.Sqrt(2.0 / 200), 1.02 * Math.Sqrt(2.0 / 200));
        Assert.InRange(Std(Init.KaimingNormal(Tensor.Empty(300, 200), rng)), 0.98 * Math.Sqrt(2.0 / 200), 1.02 * Math.Sqrt(2.0 / 200));
        // Convolution weight [64, 16, 3, 3]: fan_in = 144, fan_out = 576.
        Assert.Equal((144, 576), Init.Fans([64, 16, 3, 3]));
        Assert.InRange(Std(Init.KaimingNormal(Tensor.Empty(64, 16, 3, 3), rng, fanOut: true)), 0.97 * Math.Sqrt(2.0 / 576), 1.03 * Math.Sqrt(2.0 / 576));
        Assert.Throws<ArgumentException>(() => Init.Fans([5]));
    }
}
