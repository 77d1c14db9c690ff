using System.Text;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>
/// Finite-difference gradient checks. The function is evaluated in float32 by the tensor core; the scalar objective
/// L = Σ w⊙f(x) (w fixed random weights) is accumulated in float64, and the derivative along each checked coordinate
/// is the fourth-order central difference (8(L(+h) − L(−h)) − (L(+2h) − L(−2h)))/(12h), with h the actual float32
/// perturbation (truncation O(h⁴), so a comparatively large h keeps float32 rounding noise small). The analytic
/// gradient comes from the tape with seed w.
/// </summary>
internal static class GradCheck
{
    public sealed record Input(float[] Values, int[] Shape, bool RequiresGrad = true)
    {
        public static Input Random(ulong seed, params int[] shape) => Between(seed, -1, 1, shape);

        /// <summary>Uniform values in [low, high).</summary>
        public static Input Between(ulong seed, double low, double high, params int[] shape)
        {
            var rng = new Rng(seed);
            var v = new float[(int)Shapes.Product(shape)];
            rng.FillUniform(v, low, high);
            return new Input(v, shape);
        }

        /// <summary>Values whose magnitude is at least <paramref name="minAbs"/> (away from kinks at 0).</summary>
        public static Input AwayFromZero(ulong seed, double minAbs, double maxAbs, params int[] shape)
        {
            var rng = new Rng(seed);
            var v = new float[(int)Shapes.Product(shape)];
            for (int i = 0; i < v.Length; i++)
            {
                double m = minAbs + (maxAbs - minAbs) * rng.NextDouble();
                v[i] = (float)(rng.NextDouble() < 0.5 ? -m : m);
            }
            return new Input(v, shape);
        }

        /// <summary>A permutation of evenly spaced values in [−1, 1] (spacing 2/n): maxima are unique and stay unique under ±2h for h ≤ 1/(2n).</summary>
        public static Input Distinct(ulong seed, params int[] shape)
        {
            int n = (int)Shapes.Product(shape);
            var perm = new Rng(seed).Permutation(n);
            return new Input(perm.Select(v => v * (2f / n) - 1f).ToArray(), shape);
        }

        public Input Fixed() => this with { RequiresGrad = false };
    }

    public static void Check(Func<Tensor[], Tensor> f, params Input[] inputs) => Check(f, inputs, h: 1e-2);

    public static void Check(Func<Tensor[], Tensor> f, Input[] inputs, double h = 1e-2, double atol = 1e-4, double rtol = 1e-3, int maxCoordinates = 48, ulong seed = 7)
    {
        // Analytic gradients.
        float[][] analytic = new float[inputs.Length][];
        float[] weights;
        int[] outShape;
        using (var tape = new Tape())
        {
            var leaves = inputs.Select(i => Leaf(i)).ToArray();
            var y = f(leaves);
            outShape = y.Shape;
            weights = new float[y.Length];
            new Rng(seed).FillUniform(weights, -1, 1);
            Assert.True(y.RequiresGrad || inputs.All(i => !i.RequiresGrad), "the output is recorded on the tape");
            tape.Backward(y, Tensor.FromArray(weights, y.Shape));
            for (int i = 0; i < inputs.Length; i++)
            {
                if (!inputs[i].RequiresGrad) continue;
                analytic[i] = leaves[i].Grad?.ToArray() ?? new float[leaves[i].Length];
            }
        }

        var failures = new StringBuilder();
        int checkedCount = 0;
        double worst = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            if (!inputs[i].RequiresGrad) continue;
            var values = inputs[i].Values;
            var coords = Enumerable.Range(0, values.Length).ToArray();
            if (coords.Length > maxCoordinates)
            {
                new Rng(seed + (ulong)i).Shuffle<int>(coords);
                coords = coords[..maxCoordinates];
            }
            foreach (int j in coords)
            {
                float x0 = values[j];
                double step = h * Math.Max(1.0, Math.Abs(x0));
                double Eval(double delta, out double actual)
                {
                    var perturbed = inputs.Select(inp => inp with { Values = (float[])inp.Values.Clone() }).ToArray();
                    float xp = (float)(x0 + delta);
                    actual = (double)xp - x0;
                    perturbed[i].Values[j] = xp;
                    return Objective(f, perturbed, weights, outShape);
                }
                double lp1 = Eval(step, out double dp1), lm1 = Eval(-step, out double dm1);
                double lp2 = Eval(2 * step, out double dp2), lm2 = Eval(-2 * step, out double dm2);
                // Use the actual (rounded) perturbations: fit with a symmetric average of the two step sizes.
                double h1 = 0.5 * (dp1 - dm1), h2 = 0.5 * (dp2 - dm2);
                double d1 = (lp1 - lm1) / (2 * h1), d2 = (lp2 - lm2) / (2 * h2);
                double numeric = (4 * d1 - d2) / 3; // Richardson: cancels the h² term
                double a = analytic[i][j];
                double err = Math.Abs(a - numeric);
                worst = Math.Max(worst, err / (atol + rtol * Math.Abs(numeric)));
                checkedCount++;
                if (err > atol + rtol * Math.Abs(numeric) && failures.Length < 4000)
                    failures.AppendLine($"input {i} {Shapes.ToString(inputs[i].Shape)} element {j}: analytic {a:G7}, numeric {numeric:G7}, |diff| {err:G3}");
            }
        }
        Assert.True(checkedCount > 0, "at least one coordinate was checked");
        Assert.True(failures.Length == 0, $"Gradient check failed (worst error/tolerance {worst:G3}):\n{failures}");
    }

    private static Tensor Leaf(Input i)
    {
        var t = Tensor.FromArray(i.Values, i.Shape);
        t.RequiresGrad = i.RequiresGrad;
        return t;
    }

    private static double Objective(Func<Tensor[], Tensor> f, Input[] inputs, float[] weights, int[] outShape)
    {
        using var scope = new TensorScope();
        var leaves = inputs.Select(i => Tensor.FromArray(i.Values, i.Shape)).ToArray();
        var y = f(leaves);
        Assert.Equal(outShape, y.Shape);
        var v = y.ToArray();
        double s = 0;
        for (int k = 0; k < v.Length; k++) s += (double)weights[k] * v[k];
        return s;
    }
}
