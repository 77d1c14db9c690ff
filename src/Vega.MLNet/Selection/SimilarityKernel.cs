using System.Numerics;
using System.Numerics.Tensors;

namespace Vega.MLNet.Selection;

/// <summary>The hot path of every scorer: the image × class cosine matrix (a GEMM A·Bᵀ) and per-row softmax statistics.</summary>
internal static unsafe class SimilarityKernel
{
    private const int ColumnBlock = 64;

    /// <summary>
    /// c[i·cols + j] = ⟨a_i, b_j⟩ for the row-major matrices a (rows×dim) and b (cols×dim), in float32 with 4×4 register
    /// tiles over blocks of 64 columns (so a block of b stays in the L2 cache).
    /// </summary>
    public static void MultiplyTransposed(ReadOnlySpan<float> a, int rows, ReadOnlySpan<float> b, int cols, int dim, Span<float> c)
    {
        if (a.Length < rows * dim || b.Length < cols * dim || c.Length < rows * cols) throw new ArgumentException("Matrix spans are too short.");
        fixed (float* pa = a, pb = b, pc = c)
        {
            for (int j0 = 0; j0 < cols; j0 += ColumnBlock)
            {
                int j1 = Math.Min(cols, j0 + ColumnBlock);
                int i = 0;
                for (; i + 4 <= rows; i += 4)
                {
                    int j = j0;
                    for (; j + 4 <= j1; j += 4) Tile4x4(pa + (long)i * dim, pb + (long)j * dim, dim, pc + (long)i * cols + j, cols);
                    for (; j < j1; j++)
                        for (int r = 0; r < 4; r++)
                            pc[(long)(i + r) * cols + j] = TensorPrimitives.Dot(a.Slice((i + r) * dim, dim), b.Slice(j * dim, dim));
                }
                for (; i < rows; i++)
                    for (int j = j0; j < j1; j++)
                        pc[(long)i * cols + j] = TensorPrimitives.Dot(a.Slice(i * dim, dim), b.Slice(j * dim, dim));
            }
        }
    }

    private static void Tile4x4(float* a, float* b, int dim, float* c, int ldc)
    {
        float* a0 = a, a1 = a + dim, a2 = a + 2 * dim, a3 = a + 3 * dim;
        float* b0 = b, b1 = b + dim, b2 = b + 2 * dim, b3 = b + 3 * dim;
        Vector<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int w = Vector<float>.Count, k = 0;
        for (; k + w <= dim; k += w)
        {
            var vb0 = Vector.Load(b0 + k); var vb1 = Vector.Load(b1 + k); var vb2 = Vector.Load(b2 + k); var vb3 = Vector.Load(b3 + k);
            var va = Vector.Load(a0 + k);
            c00 = Vector.FusedMultiplyAdd(va, vb0, c00); c01 = Vector.FusedMultiplyAdd(va, vb1, c01); c02 = Vector.FusedMultiplyAdd(va, vb2, c02); c03 = Vector.FusedMultiplyAdd(va, vb3, c03);
            va = Vector.Load(a1 + k);
            c10 = Vector.FusedMultiplyAdd(va, vb0, c10); c11 = Vector.FusedMultiplyAdd(va, vb1, c11); c12 = Vector.FusedMultiplyAdd(va, vb2, c12); c13 = Vector.FusedMultiplyAdd(va, vb3, c13);
            va = Vector.Load(a2 + k);
            c20 = Vector.FusedMultiplyAdd(va, vb0, c20); c21 = Vector.FusedMultiplyAdd(va, vb1, c21); c22 = Vector.FusedMultiplyAdd(va, vb2, c22); c23 = Vector.FusedMultiplyAdd(va, vb3, c23);
            va = Vector.Load(a3 + k);
            c30 = Vector.FusedMultiplyAdd(va, vb0, c30); c31 = Vector.FusedMultiplyAdd(va, vb1, c31); c32 = Vector.FusedMultiplyAdd(va, vb2, c32); c33 = Vector.FusedMultiplyAdd(va, vb3, c33);
        }
        float* r0 = c, r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        r0[0] = Vector.Sum(c00); r0[1] = Vector.Sum(c01); r0[2] = Vector.Sum(c02); r0[3] = Vector.Sum(c03);
        r1[0] = Vector.Sum(c10); r1[1] = Vector.Sum(c11); r1[2] = Vector.Sum(c12); r1[3] = Vector.Sum(c13);
        r2[0] = Vector.Sum(c20); r2[1] = Vector.Sum(c21); r2[2] = Vector.Sum(c22); r2[3] = Vector.Sum(c23);
        r3[0] = Vector.Sum(c30); r3[1] = Vector.Sum(c31); r3[2] = Vector.Sum(c32); r3[3] = Vector.Sum(c33);
        for (; k < dim; k++)
        {
            float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k], y0 = b0[k], y1 = b1[k], y2 = b2[k], y3 = b3[k];
            r0[0] += x0 * y0; r0[1] += x0 * y1; r0[2] += x0 * y2; r0[3] += x0 * y3;
            r1[0] += x1 * y0; r1[1] += x1 * y1; r1[2] += x1 * y2; r1[3] += x1 * y3;
            r2[0] += x2 * y0; r2[1] += x2 * y1; r2[2] += x2 * y2; r2[3] += x2 * y3;
            r3[0] += x3 * y0; r3[1] += x3 * y1; r3[2] += x3 * y2; r3[3] += x3 * y3;
        }
    }

    /// <summary>Per-image quantities every scorer needs, from one row of cosines.</summary>
    public struct RowStatistics
    {
        public int Label;              // argmax cosine (lowest index on ties)
        public double MaxCosine;
        public double NodeProbability; // softmax probability of Label at the VEGA temperature
        public double MaxProbability;  // at the baseline temperature
        public double Entropy;         // at the baseline temperature, nats
        public double Margin;          // top-1 minus top-2 probability at the baseline temperature
    }

    /// <summary>
    /// Softmax statistics of one row of float64 cosines at two temperatures, in float64 (exponentials after subtracting
    /// the maximum). <paramref name="probabilities"/> receives the softmax at the baseline temperature;
    /// <paramref name="scratch"/> must hold the row's length.
    /// </summary>
    public static RowStatistics Row(ReadOnlySpan<double> cosines, double vegaTemperature, double baselineTemperature, Span<double> probabilities, Span<double> scratch)
    {
        int c = cosines.Length;
        int label = 0;
        double max = cosines[0], second = double.NegativeInfinity;
        for (int k = 1; k < c; k++)
        {
            double v = cosines[k];
            if (v > max) { second = max; max = v; label = k; }
            else if (v > second) second = v;
        }
        Span<double> z = scratch[..c], p = probabilities[..c];

        // VEGA node probability: 1 / Σ_k exp((c_k − max)/T) (the argmax term is exp(0) = 1).
        TensorPrimitives.Subtract(cosines, max, z);
        TensorPrimitives.Divide(z, vegaTemperature, p);
        TensorPrimitives.Exp(p, p);
        double sNode = TensorPrimitives.Sum<double>(p);

        // Baselines: z_k = (c_k − max)/T_b, p = e^z / S, H = ln S − Σ p_k z_k.
        TensorPrimitives.Divide(z, baselineTemperature, z);
        TensorPrimitives.Exp(z, p);
        double s = TensorPrimitives.Sum<double>(p);
        TensorPrimitives.Divide(p, s, p);
        double pz = TensorPrimitives.Dot<double>(p, z);
        double secondProb = c > 1 ? Math.Exp((second - max) / baselineTemperature) / s : 0;
        return new RowStatistics
        {
            Label = label,
            MaxCosine = max,
            NodeProbability = 1.0 / sNode,
            MaxProbability = 1.0 / s,
            Entropy = Math.Log(s) - pz,
            Margin = 1.0 / s - secondProb,
        };
    }
}
