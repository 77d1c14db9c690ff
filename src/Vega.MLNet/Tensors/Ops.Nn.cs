using System.Buffers;
using System.Numerics.Tensors;

namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>Runs body(chunk, startRow, endRow) over row chunks in parallel; returns the number of chunks.</summary>
    private static int ForRowChunks(int rows, long costPerRow, Action<int, int, int> body)
    {
        int chunks = Parallelism.Chunks(rows, costPerRow);
        if (chunks <= 1)
        {
            if (rows > 0) body(0, 0, rows);
            return 1;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, c =>
        {
            int s = (int)((long)rows * c / chunks), e = (int)((long)rows * (c + 1) / chunks);
            if (e > s) body(c, s, e);
        });
        return chunks;
    }

    private static Tensor AlongLastAxis(Tensor x, int axis, Func<Tensor, Tensor> f)
    {
        int ax = Shapes.NormalizeAxis(axis, x.Rank, nameof(axis));
        if (ax == x.Rank - 1) return f(x);
        return SwapAxes(f(SwapAxes(x, ax, -1)), ax, -1);
    }

    // ---------------------------------------------------------------- softmax

    /// <summary>Softmax along <paramref name="axis"/> (max-subtracted, float64 normaliser).</summary>
    public static Tensor Softmax(Tensor x, int axis = -1) => AlongLastAxis(x, axis, SoftmaxLast);

    private static Tensor SoftmaxLast(Tensor x)
    {
        var xc = Kernels.Contiguous(x);
        int n = x.Shape[^1];
        int rows = n == 0 ? 0 : x.Length / n;
        var y = Tensor.Empty(x.Shape);
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        ForRowChunks(rows, 4L * n, (_, s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var src = xa.AsSpan(xo + r * n, n);
                var dst = ya.AsSpan(r * n, n);
                float max = TensorPrimitives.Max(src);
                TensorPrimitives.Subtract(src, max, dst);
                TensorPrimitives.Exp(dst, dst);
                TensorPrimitives.Multiply(dst, (float)(1.0 / Kernels.SumDouble(dst)), dst);
            }
        });
        if (Tape.Needs(x))
            Tape.Record("Softmax", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var dx = Tensor.Empty(x.Shape);
                float[] ga = gc.Data, da = dx.Data;
                int go = gc.Offset;
                ForRowChunks(rows, 3L * n, (_, s, e) =>
                {
                    for (int r = s; r < e; r++)
                    {
                        var gr = ga.AsSpan(go + r * n, n);
                        var yr = ya.AsSpan(r * n, n);
                        var dr = da.AsSpan(r * n, n);
                        float dot = (float)Kernels.DotDouble(gr, yr);
                        TensorPrimitives.Subtract(gr, dot, dr);
                        TensorPrimitives.Multiply(dr, yr, dr);
                    }
                });
                Tape.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>log(softmax(x)) along <paramref name="axis"/>, computed as x − max − log Σ exp(x − max).</summary>
    public static Tensor LogSoftmax(Tensor x, int axis = -1) => AlongLastAxis(x, axis, LogSoftmaxLast);

    private static Tensor LogSoftmaxLast(Tensor x)
    {
        var xc = Kernels.Contiguous(x);
        int n = x.Shape[^1];
        int rows = n == 0 ? 0 : x.Length / n;
        var y = Tensor.Empty(x.Shape);
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        ForRowChunks(rows, 4L * n, (_, s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var src = xa.AsSpan(xo + r * n, n);
                var dst = ya.AsSpan(r * n, n);
                float lse = LogSumExp(src, dst);
                TensorPrimitives.Subtract(src, lse, dst);
            }
        });
        if (Tape.Needs(x))
            Tape.Record("LogSoftmax", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var dx = Tensor.Empty(x.Shape);
                float[] ga = gc.Data, da = dx.Data;
                int go = gc.Offset;
                ForRowChunks(rows, 3L * n, (_, s, e) =>
                {
                    for (int r = s; r < e; r++)
                    {
                        var gr = ga.AsSpan(go + r * n, n);
                        var dr = da.AsSpan(r * n, n);
                        float sum = (float)Kernels.SumDouble(gr);
                        TensorPrimitives.Exp(ya.AsSpan(r * n, n), dr);
                        TensorPrimitives.Multiply(dr, -sum, dr);
                        TensorPrimitives.Add(dr, gr, dr);
                    }
                });
                Tape.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>log Σ exp(src), using <paramref name="scratch"/> (same length) as workspace.</summary>
    private static float LogSumExp(ReadOnlySpan<float> src, Span<float> scratch)
    {
        float max = TensorPrimitives.Max(src);
        if (float.IsNegativeInfinity(max)) return max;
        TensorPrimitives.Subtract(src, max, scratch);
        TensorPrimitives.Exp(scratch, scratch);
        return (float)(max + Math.Log(Kernels.SumDouble(scratch)));
    }

    // ---------------------------------------------------------------- layer norm

    /// <summary>
    /// Layer normalisation over the last <paramref name="normalizedDims"/> dimensions:
    /// (x − mean)/√(var + eps)·gamma + beta (biased variance, float64 statistics). gamma/beta have the normalised shape
    /// or are null.
    /// </summary>
    public static Tensor LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps = 1e-5f, int normalizedDims = 1)
    {
        if (normalizedDims < 1 || normalizedDims > x.Rank)
            throw new ArgumentOutOfRangeException(nameof(normalizedDims), normalizedDims, $"LayerNorm over {normalizedDims} trailing dims of {x.ShapeString}.");
        var normShape = x.Shape[^normalizedDims..];
        if (gamma is not null && !Shapes.SameShape(gamma.Shape, normShape))
            throw new ArgumentException($"LayerNorm: gamma {gamma.ShapeString} must have the normalised shape {Shapes.ToString(normShape)}.", nameof(gamma));
        if (beta is not null && !Shapes.SameShape(beta.Shape, normShape))
            throw new ArgumentException($"LayerNorm: beta {beta.ShapeString} must have the normalised shape {Shapes.ToString(normShape)}.", nameof(beta));
        int d = (int)Shapes.Product(normShape);
        int rows = d == 0 ? 0 : x.Length / d;
        var xc = Kernels.Contiguous(x);
        var gc = gamma is null ? null : Kernels.Contiguous(gamma);
        var bc = beta is null ? null : Kernels.Contiguous(beta);
        var y = Tensor.Empty(x.Shape);
        var mean = new float[rows];
        var rstd = new float[rows];
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        ForRowChunks(rows, 5L * d, (_, s, e) =>
        {
            var gs = gc is null ? default : gc.Data.AsSpan(gc.Offset, d);
            var bs = bc is null ? default : bc.Data.AsSpan(bc.Offset, d);
            for (int r = s; r < e; r++)
            {
                var src = xa.AsSpan(xo + r * d, d);
                var dst = ya.AsSpan(r * d, d);
                double mu = Kernels.SumDouble(src) / d;
                TensorPrimitives.Subtract(src, (float)mu, dst);
                double var = Kernels.DotDouble(dst, dst) / d;
                float rs = (float)(1.0 / Math.Sqrt(var + eps));
                mean[r] = (float)mu;
                rstd[r] = rs;
                TensorPrimitives.Multiply(dst, rs, dst);
                if (gc is not null) TensorPrimitives.Multiply(dst, gs, dst);
                if (bc is not null) TensorPrimitives.Add(dst, bs, dst);
            }
        });
        var inputList = new List<Tensor> { x };
        if (gamma is not null) inputList.Add(gamma);
        if (beta is not null) inputList.Add(beta);
        var inputs = inputList.ToArray();
        if (Tape.Needs(inputs))
            Tape.Record("LayerNorm", y, inputs, g => LayerNormBackward(x, xc, gamma, gc, beta, g, mean, rstd, rows, d));
        return y;
    }

    private static void LayerNormBackward(Tensor x, Tensor xc, Tensor? gamma, Tensor? gc, Tensor? beta, Tensor g, float[] mean, float[] rstd, int rows, int d)
    {
        var gcont = Kernels.Contiguous(g);
        bool needX = x.RequiresGrad, needG = gamma is { RequiresGrad: true }, needB = beta is { RequiresGrad: true };
        var dx = needX ? Tensor.Empty(x.Shape) : null;
        int maxChunks = Parallelism.Chunks(rows, 6L * d);
        var dGamma = needG ? new double[maxChunks][] : null;
        var dBeta = needB ? new double[maxChunks][] : null;
        float[] xa = xc.Data, ga = gcont.Data;
        int xo = xc.Offset, go = gcont.Offset;
        int chunks = ForRowChunks(rows, 6L * d, (c, s, e) =>
        {
            var xhat = ArrayPool<float>.Shared.Rent(d);
            var dxhat = ArrayPool<float>.Shared.Rent(d);
            double[]? pg = needG ? dGamma![c] = new double[d] : null;
            double[]? pb = needB ? dBeta![c] = new double[d] : null;
            var gs = gc is null ? default : gc.Data.AsSpan(gc.Offset, d);
            for (int r = s; r < e; r++)
            {
                var xr = xa.AsSpan(xo + r * d, d);
                var gr = ga.AsSpan(go + r * d, d);
                var xh = xhat.AsSpan(0, d);
                TensorPrimitives.Subtract(xr, mean[r], xh);
                TensorPrimitives.Multiply(xh, rstd[r], xh);
                if (pg is not null) for (int i = 0; i < d; i++) pg[i] += (double)gr[i] * xh[i];
                if (pb is not null) for (int i = 0; i < d; i++) pb[i] += gr[i];
                if (dx is null) continue;
                var dh = dxhat.AsSpan(0, d);
                if (gc is not null) TensorPrimitives.Multiply(gr, gs, dh);
                else gr.CopyTo(dh);
                float a = (float)(Kernels.SumDouble(dh) / d);
                float b = (float)(Kernels.DotDouble(dh, xh) / d);
                var dr = dx.Data.AsSpan(r * d, d);
                // dx = rstd · (dxhat − a − xhat·b)
                TensorPrimitives.Multiply(xh, -b, dr);
                TensorPrimitives.Add(dr, dh, dr);
                TensorPrimitives.Subtract(dr, a, dr);
                TensorPrimitives.Multiply(dr, rstd[r], dr);
            }
            ArrayPool<float>.Shared.Return(xhat);
            ArrayPool<float>.Shared.Return(dxhat);
        });
        if (dx is not null) Tape.Accumulate(x, dx);
        if (needG) Tape.Accumulate(gamma!, SumPartials(dGamma!, chunks, gamma!.Shape, d));
        if (needB) Tape.Accumulate(beta!, SumPartials(dBeta!, chunks, beta!.Shape, d));
    }

    private static Tensor SumPartials(double[][] partials, int chunks, int[] shape, int d)
    {
        var total = new double[d];
        for (int c = 0; c < chunks; c++)
        {
            var p = partials[c];
            if (p is null) continue;
            for (int i = 0; i < d; i++) total[i] += p[i];
        }
        var t = Tensor.Empty(shape);
        var span = t.Span;
        for (int i = 0; i < d; i++) span[i] = (float)total[i];
        return t;
    }

    // ---------------------------------------------------------------- losses

    /// <summary>Mean cross-entropy of logits [N, C] against class indices (0 ≤ target &lt; C).</summary>
    public static Tensor CrossEntropy(Tensor logits, int[] targets)
    {
        if (logits.Rank != 2) throw new ArgumentException($"CrossEntropy expects logits [N, C]; got {logits.ShapeString}.", nameof(logits));
        int n = logits.Shape[0], c = logits.Shape[1];
        if (targets.Length != n) throw new ArgumentException($"CrossEntropy: {targets.Length} targets for {n} rows.", nameof(targets));
        for (int i = 0; i < n; i++)
            if ((uint)targets[i] >= (uint)c) throw new ArgumentOutOfRangeException(nameof(targets), targets[i], $"Target {targets[i]} of row {i} is not a class index in [0, {c}).");
        if (n == 0) throw new ArgumentException("CrossEntropy of an empty batch is undefined.", nameof(logits));
        var xc = Kernels.Contiguous(logits);
        var lse = new float[n];
        var losses = new double[n];
        float[] xa = xc.Data;
        int xo = xc.Offset;
        ForRowChunks(n, 3L * c, (_, s, e) =>
        {
            var scratch = ArrayPool<float>.Shared.Rent(c);
            for (int r = s; r < e; r++)
            {
                var row = xa.AsSpan(xo + r * c, c);
                lse[r] = LogSumExp(row, scratch.AsSpan(0, c));
                losses[r] = (double)lse[r] - row[targets[r]];
            }
            ArrayPool<float>.Shared.Return(scratch);
        });
        double total = 0;
        for (int i = 0; i < n; i++) total += losses[i];
        var y = Tensor.Scalar((float)(total / n));
        if (Tape.Needs(logits))
            Tape.Record("CrossEntropy", y, [logits], g =>
            {
                float scale = g.Item() / n;
                var dx = Tensor.Empty(logits.Shape);
                float[] da = dx.Data;
                ForRowChunks(n, 2L * c, (_, s, e) =>
                {
                    for (int r = s; r < e; r++)
                    {
                        var row = xa.AsSpan(xo + r * c, c);
                        var dr = da.AsSpan(r * c, c);
                        TensorPrimitives.Subtract(row, lse[r], dr);
                        TensorPrimitives.Exp(dr, dr);
                        dr[targets[r]] -= 1f;
                        TensorPrimitives.Multiply(dr, scale, dr);
                    }
                });
                Tape.Accumulate(logits, dx);
            });
        return y;
    }

    /// <summary>
    /// Mean cross-entropy of logits [N, C] against soft targets q [N, C]: mean over rows of −Σ_c q·log softmax(x).
    /// Differentiable in both arguments.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        if (logits.Rank != 2) throw new ArgumentException($"CrossEntropy expects logits [N, C]; got {logits.ShapeString}.", nameof(logits));
        if (!Shapes.SameShape(logits.Shape, targets.Shape))
            throw new ArgumentException($"CrossEntropy: soft targets {targets.ShapeString} must have the logits' shape {logits.ShapeString}.", nameof(targets));
        int n = logits.Shape[0], c = logits.Shape[1];
        if (n == 0) throw new ArgumentException("CrossEntropy of an empty batch is undefined.", nameof(logits));
        var xc = Kernels.Contiguous(logits);
        var qc = Kernels.Contiguous(targets);
        var lse = new float[n];
        var losses = new double[n];
        float[] xa = xc.Data, qa = qc.Data;
        int xo = xc.Offset, qo = qc.Offset;
        ForRowChunks(n, 4L * c, (_, s, e) =>
        {
            var scratch = ArrayPool<float>.Shared.Rent(c);
            for (int r = s; r < e; r++)
            {
                var row = xa.AsSpan(xo + r * c, c);
                var q = qa.AsSpan(qo + r * c, c);
                lse[r] = LogSumExp(row, scratch.AsSpan(0, c));
                // Σ q·(lse − x)
                losses[r] = lse[r] * Kernels.SumDouble(q) - Kernels.DotDouble(q, row);
            }
            ArrayPool<float>.Shared.Return(scratch);
        });
        double total = 0;
        for (int i = 0; i < n; i++) total += losses[i];
        var y = Tensor.Scalar((float)(total / n));
        if (Tape.Needs(logits, targets))
            Tape.Record("SoftCrossEntropy", y, [logits, targets], g =>
            {
                float scale = g.Item() / n;
                if (logits.RequiresGrad)
                {
                    var dx = Tensor.Empty(logits.Shape);
                    float[] da = dx.Data;
                    ForRowChunks(n, 3L * c, (_, s, e) =>
                    {
                        for (int r = s; r < e; r++)
                        {
                            var row = xa.AsSpan(xo + r * c, c);
                            var q = qa.AsSpan(qo + r * c, c);
                            var dr = da.AsSpan(r * c, c);
                            float qs = (float)Kernels.SumDouble(q);
                            // (softmax·Σq − q)·scale
                            TensorPrimitives.Subtract(row, lse[r], dr);
                            TensorPrimitives.Exp(dr, dr);
                            TensorPrimitives.Multiply(dr, qs, dr);
                            TensorPrimitives.Subtract(dr, q, dr);
                            TensorPrimitives.Multiply(dr, scale, dr);
                        }
                    });
                    Tape.Accumulate(logits, dx);
                }
                if (targets.RequiresGrad)
                {
                    var dq = Tensor.Empty(targets.Shape);
                    float[] da = dq.Data;
                    for (int r = 0; r < n; r++)
                    {
                        var row = xa.AsSpan(xo + r * c, c);
                        var dr = da.AsSpan(r * c, c);
                        // (lse − x)·scale
                        TensorPrimitives.Subtract(row, lse[r], dr);
                        TensorPrimitives.Multiply(dr, -scale, dr);
                    }
                    Tape.Accumulate(targets, dq);
                }
            });
        return y;
    }

    // ---------------------------------------------------------------- normalisation and similarity

    /// <summary>x / max(‖x‖₂, eps) along <paramref name="axis"/> (PyTorch F.normalize).</summary>
    public static Tensor L2Normalize(Tensor x, int axis = -1, float eps = 1e-12f) => AlongLastAxis(x, axis, t => L2NormalizeLast(t, eps));

    private static Tensor L2NormalizeLast(Tensor x, float eps)
    {
        var xc = Kernels.Contiguous(x);
        int n = x.Shape[^1];
        int rows = n == 0 ? 0 : x.Length / n;
        var y = Tensor.Empty(x.Shape);
        var denom = new float[rows];
        var clamped = new bool[rows];
        float[] xa = xc.Data, ya = y.Data;
        int xo = xc.Offset;
        ForRowChunks(rows, 2L * n, (_, s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var src = xa.AsSpan(xo + r * n, n);
                double norm = Math.Sqrt(Kernels.DotDouble(src, src));
                clamped[r] = norm <= eps;
                float dd = (float)Math.Max(norm, eps);
                denom[r] = dd;
                TensorPrimitives.Divide(src, dd, ya.AsSpan(r * n, n));
            }
        });
        if (Tape.Needs(x))
            Tape.Record("L2Normalize", y, [x], g =>
            {
                var gc = Kernels.Contiguous(g);
                var dx = Tensor.Empty(x.Shape);
                float[] ga = gc.Data, da = dx.Data;
                int go = gc.Offset;
                ForRowChunks(rows, 3L * n, (_, s, e) =>
                {
                    for (int r = s; r < e; r++)
                    {
                        var gr = ga.AsSpan(go + r * n, n);
                        var dr = da.AsSpan(r * n, n);
                        if (clamped[r])
                        {
                            TensorPrimitives.Divide(gr, denom[r], dr);
                            continue;
                        }
                        var yr = ya.AsSpan(r * n, n);
                        float dot = (float)Kernels.DotDouble(gr, yr);
                        // (g − y·(g·y)) / ‖x‖
                        TensorPrimitives.Multiply(yr, -dot, dr);
                        TensorPrimitives.Add(dr, gr, dr);
                        TensorPrimitives.Divide(dr, denom[r], dr);
                    }
                });
                Tape.Accumulate(x, dx);
            });
        return y;
    }

    /// <summary>
    /// Cosine similarity along <paramref name="axis"/> (inputs broadcast): Σ â·b̂ with â = a / max(‖a‖, eps).
    /// (Each norm is clamped separately; for non-degenerate vectors this equals PyTorch's cosine_similarity.)
    /// </summary>
    public static Tensor CosineSimilarity(Tensor a, Tensor b, int axis = -1, float eps = 1e-8f)
    {
        var shape = Shapes.Broadcast(a.Shape, b.Shape, "CosineSimilarity");
        int ax = Shapes.NormalizeAxis(axis, shape.Length, nameof(axis));
        int axA = ax - (shape.Length - a.Rank), axB = ax - (shape.Length - b.Rank);
        if (axA < 0 || axB < 0) throw new ArgumentException($"CosineSimilarity: axis {axis} does not exist in both {a.ShapeString} and {b.ShapeString}.", nameof(axis));
        var na = L2Normalize(a, axA, eps);
        var nb = L2Normalize(b, axB, eps);
        return Sum(Mul(na, nb), [ax]);
    }

    /// <summary>
    /// Inverted dropout: zeroes each element with probability <paramref name="p"/> (drawn from <paramref name="rng"/>)
    /// and scales the rest by 1/(1−p). Identity when not <paramref name="training"/> or p = 0.
    /// </summary>
    public static Tensor Dropout(Tensor x, float p, Rng rng, bool training = true)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "The dropout probability must be in [0, 1).");
        if (!training || p == 0) return x;
        var mask = Tensor.Empty(x.Shape);
        var ms = mask.Span;
        float keep = 1f / (1f - p);
        for (int i = 0; i < ms.Length; i++) ms[i] = rng.NextDouble() < p ? 0f : keep;
        var y = Kernels.Binary(BinaryOp.Mul, x, mask);
        if (Tape.Needs(x)) Tape.Record("Dropout", y, [x], g => Tape.Accumulate(x, Kernels.Binary(BinaryOp.Mul, g, mask)));
        return y;
    }
}
