using System.Numerics.Tensors;

namespace Vega.MLNet.Tensors;

/// <summary>Differentiable operations the ONNX interpreter needs beyond the core set (kept in their own file).</summary>
internal static partial class Ops
{
    /// <summary>sin(x).</summary>
    public static Tensor Sin(Tensor x)
    {
        var y = MapUnaryRaw(x, (s, d) => TensorPrimitives.Sin(s, d));
        if (Tape.Needs(x))
            Tape.Record("Sin", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) =>
            {
                TensorPrimitives.Cos(xs, d);
                TensorPrimitives.Multiply(d, gs, d);
            })));
        return y;
    }

    /// <summary>cos(x).</summary>
    public static Tensor Cos(Tensor x)
    {
        var y = MapUnaryRaw(x, (s, d) => TensorPrimitives.Cos(s, d));
        if (Tape.Needs(x))
            Tape.Record("Cos", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(x, g, (xs, gs, d) =>
            {
                TensorPrimitives.Sin(xs, d);
                TensorPrimitives.Multiply(d, gs, d);
                TensorPrimitives.Negate(d, d);
            })));
        return y;
    }

    /// <summary>1/x.</summary>
    public static Tensor Reciprocal(Tensor x)
    {
        var y = MapUnaryRaw(x, (s, d) => TensorPrimitives.Reciprocal(s, d));
        if (Tape.Needs(x))
            Tape.Record("Reciprocal", y, [x], g => Tape.Accumulate(x, MapBinaryRaw(y, g, (ys, gs, d) =>
            {
                // d(1/x) = −y²·g
                TensorPrimitives.Multiply(ys, ys, d);
                TensorPrimitives.Multiply(d, gs, d);
                TensorPrimitives.Negate(d, d);
            })));
        return y;
    }
}
