using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Tensors;

/// <summary>
/// The error function, accurate in float64, and vectorised float32 kernels built on it (Erf, exact GELU and their
/// derivatives).
/// <para>
/// Scalar <see cref="Erf(double)"/>: for |x| &lt; 1 the everywhere-positive series
/// erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1)) (no cancellation, ≤ 25 terms);
/// for |x| ≥ 1 the Laplace continued fraction erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …)))), evaluated
/// bottom-up with 250 levels at x = 1 down to 40 beyond 3 (converged to ~1e-16; the two methods agree to that where
/// both apply, which a test checks). erfc and the scaled erfcx(x) = e^(x²)·erfc(x) come from the same fraction, so they
/// keep full relative accuracy in the tail.
/// </para>
/// <para>
/// Vector kernels compute in float64 lanes: |u| &lt; 1: the Maclaurin series of erf to degree 27 (truncation
/// &lt; 1e-12 relative); 1 ≤ |u| &lt; 4: erfc(|u|) = e^(−u²)·erfcx(|u|) with erfcx approximated by a Chebyshev
/// expansion on [1, 4]; |u| ≥ 4: erfcx(|u|) = h(4/|u|)/(|u|√π) with h(s) smooth on [0, 1] (h(0) = 1), also a Chebyshev
/// expansion. The coefficients are computed at start-up from the scalar functions (sampling at Chebyshev nodes).
/// 1 + erf(u) for u ≤ −1 is taken as erfc(|u|) directly, so GELU keeps its relative accuracy in the negative tail.
/// Relative error against the scalar float64 function ≤ 1e-7 in float32 output (tested).
/// </para>
/// </summary>
internal static class SpecialFunctions
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private const double OneOverSqrtPi = 0.5641895835477563;
    internal const double InvSqrt2 = 0.7071067811865476;
    internal const double InvSqrt2Pi = 0.3989422804014327;

    /// <summary>erf(x) in float64 (~1e-16 relative).</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double a = Math.Abs(x);
        if (a < 1) return ErfSeries(x);
        return Math.CopySign(1.0 - ErfcContinuedFraction(a), x);
    }

    /// <summary>erfc(x) = 1 − erf(x) in float64, with full relative accuracy in the right tail.</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x >= 1) return ErfcContinuedFraction(x);
        if (x <= -1) return 2.0 - ErfcContinuedFraction(-x);
        return 1.0 - ErfSeries(x);
    }

    /// <summary>erfcx(x) = e^(x²)·erfc(x) for x ≥ 0 (no overflow for large x).</summary>
    public static double Erfcx(double x)
    {
        if (x < 0) throw new ArgumentOutOfRangeException(nameof(x), x, "Erfcx is implemented for x ≥ 0.");
        if (x < 1) return Math.Exp(x * x) * (1.0 - ErfSeries(x));
        if (double.IsPositiveInfinity(x)) return 0;
        return OneOverSqrtPi / ContinuedFraction(x);
    }

    internal static double ErfSeries(double x)
    {
        double x2 = x * x;
        double term = x, sum = x;
        for (int n = 1; n < 80; n++)
        {
            term *= 2 * x2 / (2 * n + 1);
            sum += term;
            if (Math.Abs(term) < 1e-17 * Math.Abs(sum)) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    internal static double ErfcContinuedFraction(double x)
    {
        if (double.IsPositiveInfinity(x)) return 0;
        return Math.Exp(-x * x) * OneOverSqrtPi / ContinuedFraction(x);
    }

    // x + ½/(x + 1/(x + 3/2/(x + …))) for x ≥ 1, bottom-up.
    private static double ContinuedFraction(double x)
    {
        int levels = x < 1.5 ? 250 : x < 2 ? 120 : x < 3 ? 70 : 40;
        double t = x;
        for (int k = levels; k >= 1; k--) t = x + 0.5 * k / t;
        return t;
    }

    // ---------------------------------------------------------------- vector kernels

    private const double MidLo = 1.0, MidHi = 4.0;
    private static readonly double[] ChebMid = Chebyshev(u => Erfcx(u), MidLo, MidHi, 48, 1e-15);
    // h(s) = a·√π·erfcx(a) with a = 4/s, s ∈ (0, 1]; h(0) = 1.
    private static readonly double[] ChebTail = Chebyshev(s => s <= 0 ? 1.0 : (MidHi / s) * Math.Sqrt(Math.PI) * Erfcx(MidHi / s), 0, 1, 48, 1e-15);
    private static readonly double[] Maclaurin = BuildMaclaurin(16); // erf(u) = u · Σ c_n u^(2n)

    /// <summary>Chebyshev coefficients of f on [lo, hi] from <paramref name="nodes"/> samples, trailing ones below the tolerance dropped.</summary>
    private static double[] Chebyshev(Func<double, double> f, double lo, double hi, int nodes, double tolerance)
    {
        var fx = new double[nodes];
        for (int j = 0; j < nodes; j++)
        {
            double t = Math.Cos(Math.PI * (j + 0.5) / nodes);
            fx[j] = f(0.5 * (hi - lo) * t + 0.5 * (hi + lo));
        }
        var c = new double[nodes];
        for (int k = 0; k < nodes; k++)
        {
            double s = 0;
            for (int j = 0; j < nodes; j++) s += fx[j] * Math.Cos(Math.PI * k * (j + 0.5) / nodes);
            c[k] = 2.0 * s / nodes;
        }
        int keep = nodes;
        while (keep > 2 && Math.Abs(c[keep - 1]) < tolerance) keep--;
        return c[..keep];
    }

    private static double[] BuildMaclaurin(int terms)
    {
        var c = new double[terms];
        double fact = 1;
        for (int n = 0; n < terms; n++)
        {
            if (n > 0) fact *= n;
            c[n] = (n % 2 == 0 ? 1 : -1) * TwoOverSqrtPi / (fact * (2 * n + 1));
        }
        return c;
    }

    /// <summary>erf(u) and 1 + erf(u) of 8 float64 lanes (the latter without cancellation for u ≤ −1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ErfParts(Vector512<double> u, out Vector512<double> erf, out Vector512<double> onePlusErf)
    {
        var a = Vector512.Abs(u);
        var small = Vector512.LessThan(a, Vector512<double>.One);
        var u2 = u * u;
        var p = Vector512.Create(Maclaurin[^1]);
        for (int i = Maclaurin.Length - 2; i >= 0; i--) p = Vector512.FusedMultiplyAdd(p, u2, Vector512.Create(Maclaurin[i]));
        erf = p * u;
        onePlusErf = Vector512<double>.One + erf;
        if (Vector512.EqualsAll(small, Vector512<double>.AllBitsSet)) return;

        // erfcx(a) for a in [1, 4) and a ≥ 4.
        var tm = (Vector512.Min(a, Vector512.Create(MidHi)) * 2.0 - Vector512.Create(MidHi + MidLo)) * (1.0 / (MidHi - MidLo));
        var mid = Clenshaw(ChebMid, tm);
        var s = Vector512.Create(MidHi) / Vector512.Max(a, Vector512.Create(MidHi)); // (0, 1]
        var tail = Clenshaw(ChebTail, s * 2.0 - Vector512<double>.One) * OneOverSqrtPi / Vector512.Max(a, Vector512.Create(MidHi));
        var erfcx = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(MidHi)), mid, tail);
        var erfc = Vector512.Exp(-(a * a)) * erfcx; // erfc(|u|)
        var negative = Vector512.LessThan(u, Vector512<double>.Zero);
        var bigErf = Vector512.ConditionalSelect(negative, erfc - Vector512<double>.One, Vector512<double>.One - erfc);
        var bigOne = Vector512.ConditionalSelect(negative, erfc, Vector512.Create(2.0) - erfc);
        erf = Vector512.ConditionalSelect(small, erf, bigErf);
        onePlusErf = Vector512.ConditionalSelect(small, onePlusErf, bigOne);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Clenshaw(double[] c, Vector512<double> t)
    {
        var t2 = t * 2.0;
        var b1 = Vector512<double>.Zero;
        var b2 = Vector512<double>.Zero;
        for (int k = c.Length - 1; k >= 1; k--)
        {
            var b0 = Vector512.FusedMultiplyAdd(t2, b1, Vector512.Create(c[k]) - b2);
            b2 = b1;
            b1 = b0;
        }
        return Vector512.FusedMultiplyAdd(t, b1, Vector512.Create(0.5 * c[0]) - b2);
    }

    /// <summary>erf(u) and 1 + erf(u) of 4 float64 lanes (AVX2 path; same method).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ErfParts(Vector256<double> u, out Vector256<double> erf, out Vector256<double> onePlusErf)
    {
        var a = Vector256.Abs(u);
        var small = Vector256.LessThan(a, Vector256<double>.One);
        var u2 = u * u;
        var p = Vector256.Create(Maclaurin[^1]);
        for (int i = Maclaurin.Length - 2; i >= 0; i--) p = Vector256.FusedMultiplyAdd(p, u2, Vector256.Create(Maclaurin[i]));
        erf = p * u;
        onePlusErf = Vector256<double>.One + erf;
        if (Vector256.EqualsAll(small, Vector256<double>.AllBitsSet)) return;
        var tm = (Vector256.Min(a, Vector256.Create(MidHi)) * 2.0 - Vector256.Create(MidHi + MidLo)) * (1.0 / (MidHi - MidLo));
        var mid = Clenshaw(ChebMid, tm);
        var s = Vector256.Create(MidHi) / Vector256.Max(a, Vector256.Create(MidHi));
        var tail = Clenshaw(ChebTail, s * 2.0 - Vector256<double>.One) * OneOverSqrtPi / Vector256.Max(a, Vector256.Create(MidHi));
        var erfcx = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(MidHi)), mid, tail);
        var erfc = Vector256.Exp(-(a * a)) * erfcx;
        var negative = Vector256.LessThan(u, Vector256<double>.Zero);
        var bigErf = Vector256.ConditionalSelect(negative, erfc - Vector256<double>.One, Vector256<double>.One - erfc);
        var bigOne = Vector256.ConditionalSelect(negative, erfc, Vector256.Create(2.0) - erfc);
        erf = Vector256.ConditionalSelect(small, erf, bigErf);
        onePlusErf = Vector256.ConditionalSelect(small, onePlusErf, bigOne);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Clenshaw(double[] c, Vector256<double> t)
    {
        var t2 = t * 2.0;
        var b1 = Vector256<double>.Zero;
        var b2 = Vector256<double>.Zero;
        for (int k = c.Length - 1; k >= 1; k--)
        {
            var b0 = Vector256.FusedMultiplyAdd(t2, b1, Vector256.Create(c[k]) - b2);
            b2 = b1;
            b1 = b0;
        }
        return Vector256.FusedMultiplyAdd(t, b1, Vector256.Create(0.5 * c[0]) - b2);
    }

    /// <summary>Which elementwise function <see cref="Apply"/> computes.</summary>
    internal enum Fn
    {
        /// <summary>y = erf(x)</summary>
        Erf,
        /// <summary>y = x·Φ(x) = ½x(1 + erf(x/√2))</summary>
        Gelu,
        /// <summary>y = g·(Φ(x) + x·φ(x)) (second input g)</summary>
        GeluBackward,
        /// <summary>y = g·2/√π·e^(−x²) (second input g)</summary>
        ErfBackward,
    }

    /// <summary>Applies <paramref name="fn"/> elementwise: y[i] = fn(x[i], g[i]) (g only for the backward functions).</summary>
    public static unsafe void Apply(Fn fn, ReadOnlySpan<float> x, ReadOnlySpan<float> g, Span<float> y)
    {
        int n = x.Length;
        if (y.Length < n || (fn is Fn.GeluBackward or Fn.ErfBackward && g.Length < n)) throw new ArgumentException("Span lengths differ.");
        int i = 0;
        fixed (float* px = x, pg = g, py = y)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i <= n - 16; i += 16)
                {
                    var (lo, hi) = Vector512.Widen(Vector512.Load(px + i));
                    Vector512<double> glo = default, ghi = default;
                    if (fn is Fn.GeluBackward or Fn.ErfBackward) (glo, ghi) = Vector512.Widen(Vector512.Load(pg + i));
                    Vector512.Store(Vector512.Narrow(Eval(fn, lo, glo), Eval(fn, hi, ghi)), py + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= n - 8; i += 8)
                {
                    var (lo, hi) = Vector256.Widen(Vector256.Load(px + i));
                    Vector256<double> glo = default, ghi = default;
                    if (fn is Fn.GeluBackward or Fn.ErfBackward) (glo, ghi) = Vector256.Widen(Vector256.Load(pg + i));
                    Vector256.Store(Vector256.Narrow(Eval(fn, lo, glo), Eval(fn, hi, ghi)), py + i);
                }
            }
            for (; i < n; i++)
            {
                double v = px[i];
                double gv = fn is Fn.GeluBackward or Fn.ErfBackward ? pg[i] : 0;
                py[i] = (float)(fn switch
                {
                    Fn.Erf => Erf(v),
                    Fn.Gelu => 0.5 * v * Erfc(-v * InvSqrt2),
                    Fn.GeluBackward => gv * (0.5 * Erfc(-v * InvSqrt2) + v * InvSqrt2Pi * Math.Exp(-0.5 * v * v)),
                    _ => gv * TwoOverSqrtPi * Math.Exp(-v * v),
                });
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Eval(Fn fn, Vector512<double> x, Vector512<double> g)
    {
        switch (fn)
        {
            case Fn.Erf:
                ErfParts(x, out var e, out _);
                return e;
            case Fn.Gelu:
                ErfParts(x * InvSqrt2, out _, out var ope);
                return x * 0.5 * ope;
            case Fn.GeluBackward:
                ErfParts(x * InvSqrt2, out _, out var ope2);
                return g * Vector512.FusedMultiplyAdd(x * InvSqrt2Pi, Vector512.Exp(x * x * -0.5), ope2 * 0.5);
            default:
                return g * TwoOverSqrtPi * Vector512.Exp(-(x * x));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Eval(Fn fn, Vector256<double> x, Vector256<double> g)
    {
        switch (fn)
        {
            case Fn.Erf:
                ErfParts(x, out var e, out _);
                return e;
            case Fn.Gelu:
                ErfParts(x * InvSqrt2, out _, out var ope);
                return x * 0.5 * ope;
            case Fn.GeluBackward:
                ErfParts(x * InvSqrt2, out _, out var ope2);
                return g * Vector256.FusedMultiplyAdd(x * InvSqrt2Pi, Vector256.Exp(x * x * -0.5), ope2 * 0.5);
            default:
                return g * TwoOverSqrtPi * Vector256.Exp(-(x * x));
        }
    }
}
