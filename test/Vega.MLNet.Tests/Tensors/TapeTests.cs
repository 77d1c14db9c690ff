using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>
/// The tape, scopes, gradient accumulation and buffer pooling. Runs alone (its pool-reuse assertions would be disturbed
/// by other tests returning and taking pooled buffers at the same time).
/// </summary>
[Collection(nameof(PoolSensitive))]
public sealed class TapeTests
{
    [Fact]
    public void ParameterGradientsAccumulateAcrossTapesUntilZeroed()
    {
        var w = Tensor.Parameter([2f, -1f], [2], "w");
        var x = new float[] { 3f, 5f };
        for (int pass = 1; pass <= 3; pass++)
        {
            using var tape = new Tape();
            var loss = Ops.Sum(Ops.Mul(w, Tensor.FromArray(x, 2))); // dL/dw = x
            tape.Backward(loss);
            Assert.Equal(new[] { 3f * pass, 5f * pass }, w.Grad!.ToArray());
        }
        Tape.ZeroGrad([w]);
        Assert.Equal(new[] { 0f, 0f }, w.Grad!.ToArray());
        // The parameter gradient is persistent: it survived the three tapes.
        Assert.False(w.Grad.IsDisposed);
    }

    [Fact]
    public void SharedSubexpressionsSumTheirContributions()
    {
        // y = (a·a)·b + a → dy/da = 2ab + 1, dy/db = a²
        using var tape = new Tape();
        var a = Tensor.FromArray([3f], 1);
        a.RequiresGrad = true;
        var b = Tensor.FromArray([-2f], 1);
        b.RequiresGrad = true;
        var aa = Ops.Mul(a, a);
        var y = Ops.Add(Ops.Mul(aa, b), a);
        tape.Backward(Ops.Sum(y));
        Assert.Equal(2 * 3 * -2 + 1, a.Grad!.Item());
        Assert.Equal(9f, b.Grad!.Item());
        // Intermediates drop their gradient once propagated.
        Assert.Null(aa.Grad);
        Assert.Null(y.Grad);
    }

    [Fact]
    public void NoGradScopesDoNotRecord()
    {
        var w = Tensor.Parameter([1f, 2f], [2]);
        using var tape = new Tape();
        Tensor y;
        using (Tape.NoGrad()) y = Ops.Mul(w, w);
        Assert.False(y.RequiresGrad);
        Assert.Equal(0, tape.NodeCount);
        var e = Assert.Throws<InvalidOperationException>(() => tape.Backward(Ops.Sum(y)));
        Assert.Contains("does not depend on anything that requires a gradient", e.Message);
        var z = Ops.Sum(Ops.Mul(w, w));
        Assert.True(z.RequiresGrad);
        tape.Backward(z);
        Assert.Equal(new[] { 2f, 4f }, w.Grad!.ToArray());
    }

    [Fact]
    public void BackwardNeedsAScalarOrASeed()
    {
        var w = Tensor.Parameter([1f, 2f], [2]);
        using var tape = new Tape();
        var y = Ops.Mul(w, w);
        var e = Assert.Throws<ArgumentException>(() => tape.Backward(y));
        Assert.Contains("seed", e.Message);
        tape.Backward(y, Tensor.FromArray([1f, 10f], 2));
        Assert.Equal(new[] { 2f, 40f }, w.Grad!.ToArray());
    }

    [Fact]
    public void ScopeReleasesBuffersAndKeepDetaches()
    {
        Tensor inner, kept;
        using (var scope = new TensorScope())
        {
            inner = Tensor.Ones(100);
            kept = Ops.MulScalar(Tensor.Ones(100), 2f).Keep();
            Assert.Equal(2, scope.OwnedCount);
        }
        var e = Assert.Throws<ObjectDisposedException>(() => inner.ToArray());
        Assert.Contains("Keep()", e.Message);
        Assert.All(kept.ToArray(), v => Assert.Equal(2f, v));
        Assert.Null(TensorScope.Current);
    }

    [Fact]
    public void TapeReleasesActivationsAtDispose()
    {
        var w = Tensor.Parameter([1f, 2f, 3f], [3]);
        Tensor act;
        using (var tape = new Tape())
        {
            act = Ops.Exp(w);
            tape.Backward(Ops.Sum(act));
        }
        Assert.True(act.IsDisposed);
        Assert.False(act.RequiresGrad);
        Assert.False(w.IsDisposed);
        Assert.Equal(MathF.Exp(2f), w.Grad![1], 6);
    }

    [Fact]
    public void ScopesMustBeDisposedInnermostFirst()
    {
        var outer = new TensorScope();
        var inner = new TensorScope();
        Assert.Throws<InvalidOperationException>(() => outer.Dispose());
        inner.Dispose();
        outer.Dispose();
    }

    [Fact]
    public void SteadyStateTrainingStepsReuseEveryBuffer()
    {
        // A small MLP step; after the first step every tensor buffer must come from the pool.
        var rng = new Rng(1);
        var w1 = Init.KaimingUniform(Tensor.Parameter([32, 16], "w1"), rng);
        var b1 = Tensor.Parameter([32], "b1");
        var w2 = Init.XavierUniform(Tensor.Parameter([5, 32], "w2"), rng);
        var opt = new AdamW([w1, b1, w2], new AdamWOptions(1e-2));
        var x = new float[64 * 16];
        rng.FillNormal(x);
        var labels = Enumerable.Range(0, 64).Select(i => i % 5).ToArray();
        void Step()
        {
            using var tape = new Tape();
            var h = Ops.Relu(Ops.Linear(Tensor.FromArray(x, 64, 16), w1, b1));
            var loss = Ops.CrossEntropy(Ops.Linear(h, w2), labels);
            opt.ZeroGrad();
            tape.Backward(loss);
            opt.Step();
        }
        Step();
        Step();
        var (rented0, reused0) = TensorPool.ThreadStatistics;
        Step();
        var (rented1, reused1) = TensorPool.ThreadStatistics;
        Assert.True(rented1 > rented0, "the step rents buffers");
        // Every rent of this step (on this thread) was served from the pool.
        Assert.Equal(rented1 - rented0, reused1 - reused0);
    }

    [Fact]
    public void TrainingIsDeterministicGivenASeed()
    {
        float[] Train()
        {
            var rng = new Rng(42);
            var w1 = Init.KaimingNormal(Tensor.Parameter([64, 20], "w1"), rng);
            var w2 = Init.XavierNormal(Tensor.Parameter([3, 64], "w2"), rng);
            var opt = new AdamW([w1, w2], new AdamWOptions(1e-2));
            var x = new float[300 * 20];
            rng.FillNormal(x);
            var labels = Enumerable.Range(0, 300).Select(i => i % 3).ToArray();
            for (int step = 0; step < 5; step++)
            {
                using var tape = new Tape();
                var h = Ops.Dropout(Ops.Gelu(Ops.Linear(Tensor.FromArray(x, 300, 20), w1)), 0.2f, rng);
                var loss = Ops.CrossEntropy(Ops.LayerNorm(Ops.Linear(h, w2), null, null), labels);
                opt.ZeroGrad();
                tape.Backward(loss);
                opt.Step();
            }
            return [.. w1.ToArray(), .. w2.ToArray()];
        }
        Assert.Equal(Train(), Train());
    }

    [Fact]
    public void GradientTemporariesAreReleasedDuringBackward()
    {
        // A long chain: intermediate gradients go back to the pool as soon as they have been propagated,
        // so the backward pass of a 50-op chain (one new gradient buffer per Tanh) reuses a handful of buffers.
        var w = Tensor.Parameter(new float[4096], [4096]);
        using var tape = new Tape();
        var y = w;
        for (int i = 0; i < 50; i++) y = Ops.Tanh(Ops.AddScalar(y, 0.01f));
        var loss = Ops.Sum(y);
        var before = TensorPool.ThreadStatistics;
        tape.Backward(loss);
        var after = TensorPool.ThreadStatistics;
        long rents = after.Rented - before.Rented;
        long fresh = rents - (after.Reused - before.Reused);
        Assert.True(rents >= 50, $"the backward pass rents a buffer per Tanh ({rents})");
        Assert.True(fresh <= 6, $"only a few fresh buffers ({fresh} of {rents} rents)");
        Assert.True(w.Grad!.ToArray().All(float.IsFinite));
    }
}

/// <summary>Tests that measure pool reuse run without other tests in parallel.</summary>
[CollectionDefinition(nameof(PoolSensitive), DisableParallelization = true)]
public sealed class PoolSensitive;
