using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Tensors;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>The tensor-core ops added for the interpreter and prompt learning, checked by finite differences and against compositions of existing ops.</summary>
public sealed class InterpreterTensorOpsTests
{
    [Fact]
    public void SinCosReciprocalHaveCorrectGradients()
    {
        GradCheck.Check(x => Ops.Sin(x[0]), GradCheck.Input.Random(1, 3, 5));
        GradCheck.Check(x => Ops.Cos(x[0]), GradCheck.Input.Random(2, 4, 4));
        GradCheck.Check(x => Ops.Reciprocal(x[0]), GradCheck.Input.AwayFromZero(3, 0.5, 2, 3, 4));
        var v = new float[] { 0.5f, -1.25f, 3f };
        var t = Tensor.FromArray(v, 3);
        Assert.Equal(v.Select(a => MathF.Sin(a)), Ops.Sin(t).ToArray());
        Assert.Equal(v.Select(a => MathF.Cos(a)), Ops.Cos(t).ToArray());
        Assert.Equal(v.Select(a => 1f / a), Ops.Reciprocal(t).ToArray());
    }

    [Fact]
    public void PlaceRowsReplacesRowsAndSplitsTheGradient()
    {
        int[] dest = [1, 4, 5], src = [0, 2, 0];
        GradCheck.Check(x => Ops.PlaceRows(x[0], x[1], dest, src), GradCheck.Input.Random(4, 2, 3, 5), GradCheck.Input.Random(5, 3, 5));
        var baseValues = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();
        var rows = new float[] { -1, -2, -3, -4 };
        var y = Ops.PlaceRows(Tensor.FromArray(baseValues, 3, 2, 2), Tensor.FromArray(rows, 2, 2), [0, 5], [1, 0]).ToArray();
        Assert.Equal(new float[] { -3, -4, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2 }, y);
        Assert.Throws<ArgumentException>(() => Ops.PlaceRows(Tensor.Zeros(4, 2), Tensor.Zeros(1, 2), [1, 1], [0, 0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.PlaceRows(Tensor.Zeros(4, 2), Tensor.Zeros(1, 2), [4], [0]));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void FrozenLinearEqualsMatMulPlusBiasAndChecksGradients(bool transpose, bool bias)
    {
        var rng = new Rng(8);
        var w = new float[6 * 4];
        rng.FillUniform(w, -1, 1);
        var b = new float[4];
        rng.FillUniform(b, -1, 1);
        var wt = transpose ? Tensor.FromArray(w, 4, 6) : Tensor.FromArray(w, 6, 4);
        var bt = bias ? Tensor.FromArray(b, 4) : null;
        GradCheck.Check(x => Ops.FrozenLinear(x[0], wt, transpose, bt), GradCheck.Input.Random(9, 2, 3, 6));
        var xv = new float[2 * 3 * 6];
        rng.FillUniform(xv, -1, 1);
        var xt = Tensor.FromArray(xv, 2, 3, 6);
        var reference = Ops.MatMul(xt, transpose ? Ops.Transpose(wt, 1, 0) : wt);
        if (bt is not null) reference = Ops.Add(reference, bt);
        var ours = Ops.FrozenLinear(xt, wt, transpose, bt);
        Assert.Equal(reference.Shape, ours.Shape);
        Assert.True(Tests.Infrastructure.Fixtures.MaxAbsDiff(reference.ToArray(), ours.ToArray()) <= 1e-5);
        var trainable = Tensor.Parameter(w, [6, 4]);
        Assert.Throws<ArgumentException>(() => Ops.FrozenLinear(xt, trainable, false, null));
    }

    /// <summary>
    /// The row-sparse backward (rows of dY that are exactly zero are skipped) gives the dense result: zero rows of dX
    /// exactly, the others equal to dY·Wᵀ computed by MatMul.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(37)]
    [InlineData(40)]
    public void FrozenLinearBackwardSkipsZeroRowsExactly(int nonzeroRows)
    {
        const int rows = 40, k = 24, n = 20;
        var rng = new Rng(21);
        var w = new float[k * n];
        rng.FillUniform(w, -1, 1);
        var wt = Tensor.FromArray(w, k, n);
        var seed = new float[rows * n];
        var chosen = rng.Permutation(rows).Take(nonzeroRows).ToHashSet();
        for (int r = 0; r < rows; r++)
            if (chosen.Contains(r))
                for (int j = 0; j < n; j++) seed[r * n + j] = (float)rng.NextDouble() - 0.5f;
        if (nonzeroRows > 0) seed[chosen.First() * n] = -0f; // a negative zero inside a nonzero row changes nothing
        var x = Tensor.Parameter(new float[rows * k], [4, 10, k]);
        float[] dx;
        using (var tape = new Tape())
        {
            var y = Ops.FrozenLinear(x, wt, false, null);
            tape.Backward(y, Tensor.FromArray(seed, 4, 10, n));
            dx = x.Grad!.ToArray();
        }
        var expected = Ops.MatMul(Tensor.FromArray(seed, rows, n), Ops.Transpose(wt, 1, 0)).ToArray();
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < k; c++)
            {
                if (!chosen.Contains(r)) Assert.Equal(0f, dx[r * k + c]);
                else Assert.True(Math.Abs(dx[r * k + c] - expected[r * k + c]) <= 1e-5, $"row {r}: {dx[r * k + c]} vs {expected[r * k + c]}");
            }
    }
}
