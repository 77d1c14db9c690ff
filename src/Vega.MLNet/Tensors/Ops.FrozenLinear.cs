using System.Buffers;
using System.Runtime.Intrinsics;

namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>
    /// A linear layer with a frozen weight: x [..., K] · W → [..., N] (W [K, N], or [N, K] with
    /// <paramref name="transposeWeight"/>) plus an optional frozen bias [N], as one GEMM over all rows of x (the bias is
    /// written into the output first and accumulated with beta = 1). Only x may require a gradient. Its backward,
    /// dX = dY·Wᵀ, skips the rows of dY that are entirely zero (they give zero rows exactly): in a causal text tower
    /// pooled at the end token, every position after a prompt's end token has a zero gradient, so a short prompt in a
    /// fixed 77-token graph pays for its real tokens only.
    /// </summary>
    public static unsafe Tensor FrozenLinear(Tensor x, Tensor weight, bool transposeWeight, Tensor? bias)
    {
        if (weight.RequiresGrad || bias is { RequiresGrad: true })
            throw new ArgumentException("FrozenLinear: the weight and bias must not require a gradient (use MatMul/Linear to train them).");
        if (weight.Rank != 2) throw new ArgumentException($"FrozenLinear: the weight must be 2-D; got {weight.ShapeString}.", nameof(weight));
        int k = transposeWeight ? weight.Shape[1] : weight.Shape[0];
        int n = transposeWeight ? weight.Shape[0] : weight.Shape[1];
        if (x.Rank < 1 || x.Shape[^1] != k)
            throw new ArgumentException($"FrozenLinear: input {x.ShapeString} does not end in the weight's input size {k} ({weight.ShapeString}{(transposeWeight ? ", transposed" : "")}).", nameof(x));
        if (bias is not null && bias.Length != n)
            throw new ArgumentException($"FrozenLinear: the bias must have {n} values; got {bias.ShapeString}.", nameof(bias));
        var shape = (int[])x.Shape.Clone();
        shape[^1] = n;
        var y = Tensor.Empty(shape);
        int rows = (int)Shapes.Product(x.Shape.AsSpan(0, x.Rank - 1));
        var xc = Kernels.Contiguous(x);
        var wc = Kernels.Contiguous(weight);
        float beta = 0f;
        if (bias is not null && rows > 0)
        {
            var bc = Kernels.Contiguous(bias).Span;
            var ys = y.Span;
            for (int r = 0; r < rows; r++) bc.CopyTo(ys.Slice(r * n, n));
            beta = 1f;
        }
        fixed (float* px = xc.Data, pw = wc.Data, py = y.Data)
            Tensors.Gemm.Sgemm(false, transposeWeight, rows, n, k, 1f, px + xc.Offset, k, pw + wc.Offset, transposeWeight ? k : n, beta, py + y.Offset, n);
        if (Tape.Needs(x))
            Tape.Record("FrozenLinear", y, [x], g => Tape.Accumulate(x, FrozenLinearBackward(g, wc, transposeWeight, rows, n, k, x.Shape)));
        return y;
    }

    /// <summary>dX = dY·op(W)ᵀ over the nonzero rows of dY only (zero rows of dY give zero rows of dX).</summary>
    private static unsafe Tensor FrozenLinearBackward(Tensor g, Tensor wc, bool transposeWeight, int rows, int n, int k, int[] xShape)
    {
        var gc = Kernels.Contiguous(g);
        var dx = Tensor.Empty(xShape);
        if (rows == 0 || k == 0) return dx;
        float[] ga = gc.Data;
        int go = gc.Offset;
        var nonzero = ArrayPool<int>.Shared.Rent(rows);
        try
        {
            int count = 0;
            for (int r = 0; r < rows; r++)
                if (!IsZeroRow(ga.AsSpan(go + r * n, n))) nonzero[count++] = r;
            // op(W) is [K, N] (W [K, N]) or Wᵀ (W [N, K]); dX = dY [·, N] · op(W)ᵀ.
            bool transB = !transposeWeight;
            int ldw = transposeWeight ? k : n;
            fixed (float* pw = wc.Data, pd = dx.Data)
            {
                float* w = pw + wc.Offset;
                if (count * 10 >= rows * 9)
                {
                    // Dense enough: one GEMM over all rows.
                    fixed (float* pg = ga)
                        Tensors.Gemm.Sgemm(false, transB, rows, k, n, 1f, pg + go, n, w, ldw, 0f, pd + dx.Offset, k);
                    return dx;
                }
                dx.Span.Clear();
                if (count == 0) return dx;
                float[] packedG = TensorPool.Rent(count * n), packedX = TensorPool.Rent(count * k);
                try
                {
                    for (int i = 0; i < count; i++) Array.Copy(ga, go + nonzero[i] * n, packedG, i * n, n);
                    fixed (float* pg = packedG, px = packedX)
                        Tensors.Gemm.Sgemm(false, transB, count, k, n, 1f, pg, n, w, ldw, 0f, px, k);
                    float[] da = dx.Data;
                    for (int i = 0; i < count; i++) Array.Copy(packedX, i * k, da, dx.Offset + nonzero[i] * k, k);
                }
                finally
                {
                    TensorPool.Return(packedG);
                    TensorPool.Return(packedX);
                }
            }
            return dx;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(nonzero);
        }
    }

    /// <summary>True when every element of the row is ±0 (NaN and any nonzero value count as nonzero).</summary>
    private static unsafe bool IsZeroRow(ReadOnlySpan<float> row)
    {
        int i = 0;
        fixed (float* p = row)
        {
            if (Vector256.IsHardwareAccelerated)
            {
                // Clear the sign bit: a row is zero when every masked word is 0.
                var mask = Vector256.Create(0x7FFFFFFFu);
                for (; i <= row.Length - 8; i += 8)
                    if ((Vector256.Load((uint*)(p + i)) & mask) != Vector256<uint>.Zero) return false;
            }
            for (; i < row.Length; i++)
                if (row[i] != 0f) return false; // also true for NaN
        }
        return true;
    }
}
