using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Tensors;

public sealed class SpecialFunctionsTests
{
    // Reference values from CPython's math.erf / math.erfc (an independent implementation), 17 significant digits.
    public static TheoryData<double, double, double> Goldens() => new()
    {
        // x, erf(x), erfc(x)
        { 0.5, 0.5204998778130465, 0.4795001221869535 },
        { 1.0, 0.8427007929497149, 0.15729920705028513 },
        { 2.0, 0.9953222650189527, 0.004677734981047266 },
        { 2.5, 0.999593047982555, 0.0004069520174449589 },
        { 3.0, 0.9999779095030014, 2.209049699858544e-05 },
        { 5.0, 0.9999999999984626, 1.5374597944280351e-12 },
        { 1e-8, 1.1283791670955126e-08, 0.9999999887162083 },
    };

    [Theory]
    [MemberData(nameof(Goldens))]
    public void ScalarErfMatchesReferenceValues(double x, double erf, double erfc)
    {
        Assert.True(Math.Abs(SpecialFunctions.Erf(x) - erf) <= 2e-15 * Math.Abs(erf), $"erf({x}) = {SpecialFunctions.Erf(x):R}, expected {erf:R}");
        Assert.True(Math.Abs(SpecialFunctions.Erfc(x) - erfc) <= 1e-14 * Math.Abs(erfc), $"erfc({x}) = {SpecialFunctions.Erfc(x):R}, expected {erfc:R}");
        Assert.Equal(-SpecialFunctions.Erf(x), SpecialFunctions.Erf(-x));
        Assert.True(Math.Abs(SpecialFunctions.Erfc(-x) - (2 - erfc)) <= 1e-15 * 2);
    }

    [Fact]
    public void SeriesAndContinuedFractionAgreeWhereTheyOverlap()
    {
        // The series is used below 1, the continued fraction from 1 on; both are accurate on [1, 2]
        // (the series slowly accumulates rounding beyond, which is why it stops at 1).
        for (double x = 1; x <= 2.0; x += 0.03125)
        {
            double series = SpecialFunctions.ErfSeries(x);
            double cf = 1 - SpecialFunctions.ErfcContinuedFraction(x);
            Assert.True(Math.Abs(series - cf) <= 1.5e-15, $"x = {x}: series {series:R}, continued fraction {cf:R}");
        }
        // erfcx from the fraction equals e^(x²)·erfc(x) where the latter does not overflow, and ~1/(x√π) far out.
        Assert.True(Math.Abs(SpecialFunctions.Erfcx(3) - Math.Exp(9) * 2.209049699858544e-05) < 1e-15 * 0.2);
        double big = 1e6;
        Assert.True(Math.Abs(SpecialFunctions.Erfcx(big) * big * Math.Sqrt(Math.PI) - (1 - 0.5 / (big * big))) < 1e-15);
    }

    [Fact]
    public void ErfIsTheIntegralOfTheGaussian()
    {
        // erf(x) = 2/√π ∫₀ˣ e^(−t²) dt by composite Simpson with 20000 panels (error ~1e-16).
        foreach (double x in new[] { 0.1, 0.7, 1.3, 2.2, 3.1 })
        {
            int n = 20000;
            double h = x / n, s = 1 + Math.Exp(-x * x), comp = 0;
            for (int i = 1; i < n; i++)
            {
                // Neumaier summation keeps the rounding of 20000 terms below 1e-16.
                double term = (i % 2 == 1 ? 4 : 2) * Math.Exp(-(i * h) * (i * h));
                double t = s + term;
                comp += Math.Abs(s) >= Math.Abs(term) ? (s - t) + term : (term - t) + s;
                s = t;
            }
            s += comp;
            double integral = 2 / Math.Sqrt(Math.PI) * s * h / 3;
            Assert.True(Math.Abs(integral - SpecialFunctions.Erf(x)) < 1e-14, $"x = {x}: {integral:R} vs {SpecialFunctions.Erf(x):R}");
        }
    }

    [Fact]
    public void VectorKernelsAreWithin1e7RelativeOfTheFloat64Function()
    {
        var xs = new List<float>();
        for (double x = -12; x <= 12; x += 1.0 / 1024) xs.Add((float)x);
        xs.AddRange([0f, -0f, 1e-30f, -1e-30f, 3.9999f, 4f, 4.0001f, 0.99999f, 1.00001f, float.Epsilon]);
        var x32 = xs.ToArray();
        var erf = new float[x32.Length];
        var gelu = new float[x32.Length];
        var dgelu = new float[x32.Length];
        var ones = Enumerable.Repeat(1f, x32.Length).ToArray();
        SpecialFunctions.Apply(SpecialFunctions.Fn.Erf, x32, default, erf);
        SpecialFunctions.Apply(SpecialFunctions.Fn.Gelu, x32, default, gelu);
        SpecialFunctions.Apply(SpecialFunctions.Fn.GeluBackward, x32, ones, dgelu);
        for (int i = 0; i < x32.Length; i++)
        {
            double x = x32[i];
            double e = SpecialFunctions.Erf(x);
            double g = 0.5 * x * SpecialFunctions.Erfc(-x / Math.Sqrt(2)); // = ½x(1 + erf(x/√2)) without cancellation
            double dg = 0.5 * SpecialFunctions.Erfc(-x / Math.Sqrt(2)) + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);
            Assert.True(Math.Abs(erf[i] - e) <= 1e-7 * Math.Abs(e) + 1e-45, $"erf({x:R}) = {erf[i]:R}, float64 {e:R}");
            Assert.True(Math.Abs(gelu[i] - g) <= 1e-7 * Math.Abs(g) + 1e-38, $"gelu({x:R}) = {gelu[i]:R}, float64 {g:R}");
            Assert.True(Math.Abs(dgelu[i] - dg) <= 1e-7 * Math.Abs(dg) + 1e-38, $"gelu'({x:R}) = {dgelu[i]:R}, float64 {dg:R}");
        }
    }

    [Fact]
    public void SpecialValues()
    {
        float[] x = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, 30f, -30f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        var y = new float[x.Length];
        SpecialFunctions.Apply(SpecialFunctions.Fn.Erf, x, default, y);
        Assert.True(float.IsNaN(y[0]));
        Assert.Equal(1f, y[1]);
        Assert.Equal(-1f, y[2]);
        Assert.Equal(0f, y[3]);
        Assert.Equal(1f, y[4]);
        Assert.Equal(-1f, y[5]);
        Assert.True(double.IsNaN(SpecialFunctions.Erf(double.NaN)));
        Assert.Equal(1.0, SpecialFunctions.Erf(double.PositiveInfinity));
        Assert.Equal(0.0, SpecialFunctions.Erfc(double.PositiveInfinity));
    }
}
