namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>
    /// numpy/ONNX MatMul: [..., M, K] · [..., K, N] → [..., M, N] with broadcast batch dimensions; a 1-D operand is
    /// a vector (its dimension is removed from the result). Operands whose last two dimensions are a transposed view
    /// are passed to GEMM with the transpose flag (no copy). A 2-D right operand (a weight) is multiplied with the
    /// whole batch in one GEMM.
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        if (a.Rank == 0 || b.Rank == 0) throw new ArgumentException($"MatMul needs operands of rank ≥ 1; got {a.ShapeString} and {b.ShapeString}.");
        if (a.Rank == 1 || b.Rank == 1)
        {
            // numpy: a vector on the left is a row [1, K], on the right a column [K, 1]; the added dims are removed.
            var r = MatMul(a.Rank == 1 ? Unsqueeze(a, 0) : a, b.Rank == 1 ? Unsqueeze(b, 1) : b);
            if (b.Rank == 1) r = Squeeze(r, -1);
            if (a.Rank == 1) r = Squeeze(r, b.Rank == 1 ? -1 : -2);
            return r;
        }
        int m = a.Shape[^2], k = a.Shape[^1], k2 = b.Shape[^2], n = b.Shape[^1];
        if (k != k2) throw new ArgumentException($"MatMul: inner dimensions differ: {a.ShapeString} · {b.ShapeString} ({k} vs {k2}).");
        var batch = Shapes.Broadcast(a.Shape[..^2], b.Shape[..^2], "MatMul batch");
        var shape = new int[batch.Length + 2];
        batch.CopyTo(shape, 0);
        shape[^2] = m;
        shape[^1] = n;
        var y = Tensor.Empty(shape);
        BatchedGemm(a, false, b, false, y, 0f);
        if (Tape.Needs(a, b))
            Tape.Record("MatMul", y, [a, b], g =>
            {
                var gc = Kernels.Contiguous(g);
                if (a.RequiresGrad)
                {
                    // dA = dC · Bᵀ, summed over A's broadcast batch dimensions.
                    var buf = Tape.GradBuffer(a)!;
                    BatchedGemm(gc, false, b, true, buf, 1f);
                }
                if (b.RequiresGrad)
                {
                    // dB = Aᵀ · dC
                    var buf = Tape.GradBuffer(b)!;
                    BatchedGemm(a, true, gc, false, buf, 1f);
                }
            });
        return y;
    }

    /// <summary>
    /// A fully connected layer: x [..., in] · Wᵀ + bias with W [out, in] (PyTorch nn.Linear layout), bias [out] or null.
    /// One GEMM over all leading dimensions, the bias pre-filled into the output (β = 1); backward: dx = g·W,
    /// dW = gᵀ·x (one GEMM over the folded batch), db = column sums of g.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (weight.Rank != 2) throw new ArgumentException($"Linear: the weight must be [out, in]; got {weight.ShapeString}.", nameof(weight));
        if (x.Rank == 0 || x.Shape[^1] != weight.Shape[1])
            throw new ArgumentException($"Linear: input {x.ShapeString} does not end in the weight's input size {weight.Shape[1]} ({weight.ShapeString}).", nameof(x));
        if (bias is not null && (bias.Rank != 1 || bias.Shape[0] != weight.Shape[0]))
            throw new ArgumentException($"Linear: the bias must be [{weight.Shape[0]}]; got {bias.ShapeString}.", nameof(bias));
        if (x.Rank == 1) return Squeeze(Linear(Unsqueeze(x, 0), weight, bias), 0);
        int outDim = weight.Shape[0];
        var shape = (int[])x.Shape.Clone();
        shape[^1] = outDim;
        var y = Tensor.Empty(shape);
        float beta = 0f;
        if (bias is not null)
        {
            Kernels.Copy(bias, y);
            beta = 1f;
        }
        BatchedGemm(x, false, weight, true, y, beta);
        var inputs = bias is null ? new[] { x, weight } : new[] { x, weight, bias };
        if (Tape.Needs(inputs))
            Tape.Record("Linear", y, inputs, g =>
            {
                var gc = Kernels.Contiguous(g);
                if (x.RequiresGrad) BatchedGemm(gc, false, weight, false, Tape.GradBuffer(x)!, 1f);
                if (weight.RequiresGrad)
                {
                    // dW[out, in] = Σ over all leading positions of gᵀ·x: fold everything into one [rows, ·] matrix.
                    int rows = x.Length / x.Shape[^1];
                    var x2 = Reshape(x, rows, x.Shape[^1]);
                    var g2 = gc.View(gc.Offset, [rows, outDim], [outDim, 1]);
                    BatchedGemm(g2, true, x2, false, Tape.GradBuffer(weight)!, 1f);
                }
                if (bias is { RequiresGrad: true }) Tape.Accumulate(bias, SumToShape(gc, bias.Shape));
            });
        return y;
    }

    /// <summary>ONNX Gemm: alpha·op(A)·op(B) + beta·C for 2-D A and B, C broadcast to [M, N] (or null).</summary>
    public static Tensor Gemm(Tensor a, Tensor b, Tensor? c = null, float alpha = 1f, float beta = 1f, bool transA = false, bool transB = false)
    {
        if (a.Rank != 2 || b.Rank != 2) throw new ArgumentException($"Gemm needs 2-D operands; got {a.ShapeString} and {b.ShapeString}.");
        var opA = transA ? SwapAxes(a, 0, 1) : a;
        var opB = transB ? SwapAxes(b, 0, 1) : b;
        var y = MatMul(opA, opB);
        if (alpha != 1f) y = MulScalar(y, alpha);
        if (c is null || beta == 0f) return y;
        return Add(y, beta == 1f ? c : MulScalar(c, beta));
    }

    // ---------------------------------------------------------------- batched GEMM on strided operands

    /// <summary>Describes the last two dimensions of a tensor as a BLAS matrix (possibly transposed).</summary>
    private readonly record struct MatrixView(Tensor T, bool Trans, int Ld);

    /// <summary>The BLAS view of t's last two dims, or a contiguous copy when they are not a (transposed) row-major matrix.</summary>
    private static MatrixView AsMatrix(Tensor t)
    {
        int rows = t.Shape[^2], cols = t.Shape[^1];
        int sr = t.Strides[^2], sc = t.Strides[^1];
        if ((cols <= 1 || sc == 1) && (rows <= 1 || sr >= Math.Max(cols, 1)))
            return new MatrixView(t, false, rows <= 1 ? Math.Max(cols, 1) : sr);
        if ((rows <= 1 || sr == 1) && (cols <= 1 || sc >= Math.Max(rows, 1)))
            return new MatrixView(t, true, cols <= 1 ? Math.Max(rows, 1) : sc);
        var c = Kernels.Contiguous(t);
        return new MatrixView(c, false, Math.Max(cols, 1));
    }

    /// <summary>
    /// out[batch] = op(A[batch])·op(B[batch]) + beta·out[batch], where op transposes the last two dims when the flag is
    /// set, batch dims broadcast between A and B and out's batch shape may be smaller (a broadcast operand's gradient):
    /// then the products of all batches that map to one out batch are accumulated (beta must be 1 in that case).
    /// out must be contiguous.
    /// </summary>
    internal static unsafe void BatchedGemm(Tensor a, bool transA, Tensor b, bool transB, Tensor output, float beta)
    {
        var ma = AsMatrix(a);
        var mb = AsMatrix(b);
        bool ta = ma.Trans ^ transA, tb = mb.Trans ^ transB;
        int m = transA ? a.Shape[^1] : a.Shape[^2];
        int k = transA ? a.Shape[^2] : a.Shape[^1];
        int n = transB ? b.Shape[^2] : b.Shape[^1];
        if (!output.IsContiguous) throw new InvalidOperationException("Internal error: BatchedGemm needs a contiguous output.");
        if (output.Shape[^2] != m || output.Shape[^1] != n)
            throw new InvalidOperationException($"Internal error: BatchedGemm output {output.ShapeString} for {m}×{n}.");
        var batch = Shapes.Broadcast(a.Shape[..^2], b.Shape[..^2], "MatMul batch");
        int rank = batch.Length;
        long batches = Shapes.Product(batch);
        var outBatch = output.Shape[..^2];
        var sa = BatchStrides(ma.T, batch);
        var sb = BatchStrides(mb.T, batch);
        var so = BatchStridesOf(outBatch, Shapes.ContiguousStrides(output.Shape)[..^2], batch);
        bool reducing = Shapes.Product(outBatch) != batches;
        if (reducing && beta != 1f) throw new InvalidOperationException("Internal error: a reducing BatchedGemm must accumulate (beta = 1).");

        fixed (float* pa = ma.T.Data, pb = mb.T.Data, po = output.Data)
        {
            float* a0 = pa + ma.T.Offset, b0 = pb + mb.T.Offset, o0 = po + output.Offset;
            if (batches == 0 || m == 0 || n == 0) return;

            // Fast path 1: B is the same matrix for every batch and A's batch+row dims fold into one row dimension.
            if (!ta && AllZero(sb) && !reducing && FoldsIntoRows(ma.T, rank, m, ma.Ld, sa, batch))
            {
                Tensors.Gemm.Sgemm(false, tb, (int)(batches * m), n, k, 1f, a0, ma.Ld, b0, mb.Ld, beta, o0, n);
                return;
            }
            // Fast path 2 (weight gradient dB = Σ_batch A[batch]ᵀ·dC[batch]): when A and dC fold their batch into rows,
            // the sum over batches is one GEMM with inner dimension batches·k.
            if (ta && transA && !ma.Trans && AllZero(so) && FoldsIntoRows(ma.T, rank, k, ma.Ld, sa, batch) &&
                !tb && FoldsIntoRows(mb.T, rank, k, mb.Ld, sb, batch))
            {
                // op(A) = A'ᵀ where A' is [batch·k, m] row-major, op(B) = B' [batch·k, n].
                Tensors.Gemm.Sgemm(true, false, m, n, (int)(batches * k), 1f, a0, ma.Ld, b0, mb.Ld, beta, o0, n);
                return;
            }

            // General: one GEMM per batch index.
            var offA = new long[batches];
            var offB = new long[batches];
            var offO = new long[batches];
            var idx = new int[rank];
            long oa = 0, ob = 0, oo = 0;
            for (long it = 0; it < batches; it++)
            {
                offA[it] = oa; offB[it] = ob; offO[it] = oo;
                for (int d = rank - 1; d >= 0; d--)
                {
                    if (++idx[d] < batch[d])
                    {
                        oa += sa[d]; ob += sb[d]; oo += so[d];
                        break;
                    }
                    idx[d] = 0;
                    oa -= (long)(batch[d] - 1) * sa[d];
                    ob -= (long)(batch[d] - 1) * sb[d];
                    oo -= (long)(batch[d] - 1) * so[d];
                }
            }
            int lda = ma.Ld, ldb = mb.Ld;
            double flops = 2.0 * m * n * k;
            if (!reducing && batches >= 2 && flops < 8e6 && Parallelism.ThreadCount > 1)
            {
                // Many small products (attention heads): one single-threaded kernel call per matrix, matrices in parallel.
                nint na = (nint)a0, nb = (nint)b0, no = (nint)o0;
                Parallelism.For((int)batches, (long)flops, (s0, s1) =>
                {
                    for (int it = s0; it < s1; it++)
                        ManagedGemm.Sgemm(ta, tb, m, n, k, 1f, (float*)na + offA[it], lda, (float*)nb + offB[it], ldb, beta, (float*)no + offO[it], n, threads: 1);
                });
                return;
            }
            for (long it = 0; it < batches; it++)
                Tensors.Gemm.Sgemm(ta, tb, m, n, k, 1f, a0 + offA[it], lda, b0 + offB[it], ldb, beta, o0 + offO[it], n);
        }
    }

    private static bool AllZero(int[] s)
    {
        foreach (int v in s) if (v != 0) return false;
        return true;
    }

    /// <summary>Batch strides of t aligned to <paramref name="batch"/> (0 where t is broadcast).</summary>
    private static int[] BatchStrides(Tensor t, int[] batch)
    {
        int rank = batch.Length, tb = t.Rank - 2;
        var s = new int[rank];
        for (int i = 0; i < tb; i++)
        {
            int d = i + rank - tb;
            s[d] = t.Shape[i] == 1 ? 0 : t.Strides[i];
        }
        return s;
    }

    private static int[] BatchStridesOf(int[] shape, int[] strides, int[] batch)
    {
        int rank = batch.Length, tb = shape.Length;
        var s = new int[rank];
        for (int i = 0; i < tb; i++)
        {
            int d = i + rank - tb;
            s[d] = shape[i] == 1 ? 0 : strides[i];
        }
        return s;
    }

    /// <summary>
    /// True when t (not broadcast over <paramref name="batch"/>) has batch dims and <paramref name="rows"/> rows of row
    /// stride <paramref name="ld"/> that together form one matrix of batches·rows rows with the same stride.
    /// </summary>
    private static bool FoldsIntoRows(Tensor t, int rank, int rows, int ld, int[] strides, int[] batch)
    {
        // Every batch dimension must be real (no broadcast) and nest: stride[d] = stride[d+1]·batch[d+1], last = rows·ld.
        long expected = (long)rows * ld;
        for (int d = rank - 1; d >= 0; d--)
        {
            if (batch[d] == 1) continue;
            if (strides[d] != expected) return false;
            expected *= batch[d];
        }
        return true;
    }
}
