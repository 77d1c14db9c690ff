using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

internal static partial class OnnxOps
{
    private static void AddElementwise(List<OnnxOpInfo> list)
    {
        const string bcast = "numpy broadcasting (opset ≥ 7); float32 differentiable, integer types on the host with C wrap-around";
        list.Add(new("Add", 7, n => Arithmetic(n, BinaryOp.Add), bcast));
        list.Add(new("Sub", 7, n => Arithmetic(n, BinaryOp.Sub), bcast));
        list.Add(new("Mul", 7, n => Arithmetic(n, BinaryOp.Mul), bcast));
        list.Add(new("Div", 7, n => Arithmetic(n, BinaryOp.Div), bcast + "; integer division truncates toward zero"));
        list.Add(new("Pow", 7, PowKernel, "float base with float or integer exponent (differentiable in both); integer base on the host"));

        list.Add(new("Sqrt", 6, n => Unary(n, Ops.Sqrt), "float32"));
        list.Add(new("Exp", 6, n => Unary(n, Ops.Exp), "float32"));
        list.Add(new("Log", 6, n => Unary(n, Ops.Log), "float32"));
        list.Add(new("Erf", 9, n => Unary(n, Ops.Erf), "float32, float64-accurate"));
        list.Add(new("Sigmoid", 6, n => Unary(n, Ops.Sigmoid), "float32"));
        list.Add(new("Tanh", 6, n => Unary(n, Ops.Tanh), "float32"));
        list.Add(new("Relu", 6, n => Unary(n, Ops.Relu), "float32"));
        list.Add(new("Sin", 7, n => Unary(n, Ops.Sin), "float32"));
        list.Add(new("Cos", 7, n => Unary(n, Ops.Cos), "float32"));
        list.Add(new("Reciprocal", 6, n => Unary(n, Ops.Reciprocal), "float32"));
        list.Add(new("Neg", 6, n => Unary(n, Ops.Neg, v => -v), "float32 and signed integers"));
        list.Add(new("Abs", 6, n => Unary(n, Ops.Abs, Math.Abs), "float32 and integers"));
        list.Add(new("Identity", 1, n => (i, o) => o[0] = n.Required(i, 0, "input"), "any tensor (no copy)"));
        list.Add(new("Clip", 6, ClipKernel, "min/max as attributes (opset < 11) or optional inputs (≥ 11); gradient passes where min ≤ x ≤ max"));

        list.Add(new("Equal", 7, n => Compare(n, (a, b) => a == b, (a, b) => a == b), "float32, integers, bool → bool"));
        list.Add(new("Greater", 7, n => Compare(n, (a, b) => a > b, (a, b) => a > b), "→ bool"));
        list.Add(new("Less", 7, n => Compare(n, (a, b) => a < b, (a, b) => a < b), "→ bool"));
        list.Add(new("GreaterOrEqual", 12, n => Compare(n, (a, b) => a >= b, (a, b) => a >= b), "→ bool"));
        list.Add(new("LessOrEqual", 12, n => Compare(n, (a, b) => a <= b, (a, b) => a <= b), "→ bool"));
        list.Add(new("And", 7, n => Logical(n, (a, b) => a & b), "bool"));
        list.Add(new("Or", 7, n => Logical(n, (a, b) => a | b), "bool"));
        list.Add(new("Xor", 7, n => Logical(n, (a, b) => a ^ b), "bool"));
        list.Add(new("Not", 1, NotKernel, "bool"));
        list.Add(new("Where", 9, WhereKernel, "three-way broadcasting; float32 branches differentiable, the condition is not"));
    }

    // ---------------------------------------------------------------- arithmetic

    private static OnnxKernel Arithmetic(OnnxNode n, BinaryOp op) => (i, o) =>
    {
        var a = n.Required(i, 0, "A");
        var b = n.Required(i, 1, "B");
        CheckBroadcast(n, a.Shape, b.Shape);
        if (a.IsFloat && b.IsFloat) o[0] = OnnxValue.FromTensor(FloatArithmetic(op, a.Tensor!, b.Tensor!));
        else if (!a.IsFloat && !b.IsFloat)
        {
            if (a.Type != b.Type) throw n.Error($"the inputs have different types ({a.Type} and {b.Type}).");
            o[0] = IntBinary(n, a, b, a.Type, op switch
            {
                BinaryOp.Add => (x, y) => x + y,
                BinaryOp.Sub => (x, y) => x - y,
                BinaryOp.Mul => (x, y) => x * y,
                _ => (x, y) => y == 0 ? throw n.Error("integer division by zero.") : a.Type == OnnxElementType.UInt64 ? (long)((ulong)x / (ulong)y) : x / y,
            });
        }
        else throw n.Error($"cannot mix {a.Type} and {b.Type} inputs (insert a Cast).");
    };

    /// <summary>Refuses a broadcast result above the node's element limit (an impossible broadcast is left to the op's own error).</summary>
    internal static void CheckBroadcast(OnnxNode n, params int[][] shapes)
    {
        int rank = shapes.Max(s => s.Length);
        var dims = new int[rank];
        foreach (var s in shapes)
            for (int k = 0; k < s.Length; k++)
            {
                int d = rank - s.Length + k;
                dims[d] = s[k] == 0 || dims[d] == 0 ? 0 : Math.Max(dims[d], s[k]);
            }
        n.CheckElements(dims);
    }

    /// <summary>a op b for float tensors; a constant one-element right operand that does not grow the shape uses the scalar ops.</summary>
    internal static Tensor FloatArithmetic(BinaryOp op, Tensor a, Tensor b)
    {
        if (b.Length == 1 && !b.RequiresGrad && b.Rank <= a.Rank)
        {
            float s = b.Data[b.Offset];
            switch (op)
            {
                case BinaryOp.Add: return Ops.AddScalar(a, s);
                case BinaryOp.Sub: return Ops.AddScalar(a, -s);
                case BinaryOp.Mul: return Ops.MulScalar(a, s);
                case BinaryOp.Div: return Ops.DivScalar(a, s);
            }
        }
        if (a.Length == 1 && !a.RequiresGrad && a.Rank <= b.Rank)
        {
            float s = a.Data[a.Offset];
            switch (op)
            {
                case BinaryOp.Add: return Ops.AddScalar(b, s);
                case BinaryOp.Mul: return Ops.MulScalar(b, s);
            }
        }
        return op switch
        {
            BinaryOp.Add => Ops.Add(a, b),
            BinaryOp.Sub => Ops.Sub(a, b),
            BinaryOp.Mul => Ops.Mul(a, b),
            BinaryOp.Div => Ops.Div(a, b),
            BinaryOp.Pow => Ops.Pow(a, b),
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };
    }

    private static OnnxKernel PowKernel(OnnxNode n) => (i, o) =>
    {
        var a = n.Required(i, 0, "X");
        var b = n.Required(i, 1, "Y");
        CheckBroadcast(n, a.Shape, b.Shape);
        if (a.IsFloat)
        {
            var x = a.Tensor!;
            var y = b.AsTensor();
            if (y.Length == 1 && !y.RequiresGrad && y.Rank <= x.Rank) o[0] = OnnxValue.FromTensor(Ops.PowScalar(x, y.Data[y.Offset]));
            else o[0] = OnnxValue.FromTensor(Ops.Pow(x, y));
        }
        else if (b.IsFloat)
        {
            var shape = Shapes.Broadcast(a.Shape, b.Shape, "Pow");
            var ia = BroadcastIndex(a.Shape, shape);
            var yb = FloatData(b.Tensor!).ToArray();
            var ib = BroadcastIndex(b.Shape, shape);
            var r = new long[ia.Length];
            for (int k = 0; k < r.Length; k++) r[k] = OnnxValue.Wrap((long)Math.Pow(a.Ints![ia[k]], yb[ib[k]]), a.Type);
            o[0] = OnnxValue.FromInts(r, shape, a.Type);
        }
        else o[0] = IntBinary(n, a, b, a.Type, (x, y) => y < 0 ? (long)Math.Pow(x, y) : IntPow(x, y));
    };

    private static long IntPow(long x, long y)
    {
        long r = 1;
        while (y > 0)
        {
            if ((y & 1) != 0) r = unchecked(r * x);
            x = unchecked(x * x);
            y >>= 1;
        }
        return r;
    }

    internal static OnnxValue IntBinary(OnnxNode n, OnnxValue a, OnnxValue b, OnnxElementType resultType, Func<long, long, long> f)
    {
        int[] shape;
        try { shape = Shapes.Broadcast(a.Shape, b.Shape, n.OpType); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        var xa = a.Ints!;
        var xb = b.Ints!;
        long count = Shapes.Product(shape);
        var r = new long[count];
        if (xa.Length == count && xb.Length == count)
            for (int k = 0; k < count; k++) r[k] = OnnxValue.Wrap(f(xa[k], xb[k]), resultType);
        else
        {
            var ia = BroadcastIndex(a.Shape, shape);
            var ib = BroadcastIndex(b.Shape, shape);
            for (int k = 0; k < count; k++) r[k] = OnnxValue.Wrap(f(xa[ia[k]], xb[ib[k]]), resultType);
        }
        return OnnxValue.FromInts(r, shape, resultType);
    }

    // ---------------------------------------------------------------- unary

    private static OnnxKernel Unary(OnnxNode n, Func<Tensor, Tensor> f, Func<long, long>? onInts = null) => (i, o) =>
    {
        var x = n.Required(i, 0, "X");
        if (x.IsFloat) o[0] = OnnxValue.FromTensor(f(x.Tensor!));
        else if (onInts is not null)
        {
            var r = new long[x.Ints!.Length];
            for (int k = 0; k < r.Length; k++) r[k] = OnnxValue.Wrap(onInts(x.Ints[k]), x.Type);
            o[0] = OnnxValue.FromInts(r, x.Shape, x.Type);
        }
        else throw n.Error($"expects a float32 input, got {x.Type}.");
    };

    private static OnnxKernel ClipKernel(OnnxNode n)
    {
        float attrMin = n.Float("min", float.NegativeInfinity), attrMax = n.Float("max", float.PositiveInfinity);
        return (i, o) =>
        {
            var x = n.Required(i, 0, "input");
            if (n.Opset < 11)
            {
                o[0] = OnnxValue.FromTensor(Ops.Clamp(Float(n, x, "input"), attrMin, attrMax));
                return;
            }
            var lo = i.Length > 1 ? i[1] : null;
            var hi = i.Length > 2 ? i[2] : null;
            if (x.IsFloat)
            {
                float min = lo is null ? float.NegativeInfinity : FloatData(Float(n, lo, "min"))[0];
                float max = hi is null ? float.PositiveInfinity : FloatData(Float(n, hi, "max"))[0];
                if (min > max)
                {
                    // ONNX: all values become max when min > max.
                    var full = Tensor.Full(max, x.Shape);
                    o[0] = OnnxValue.FromTensor(full);
                    return;
                }
                o[0] = OnnxValue.FromTensor(Ops.Clamp(x.Tensor!, min, max));
            }
            else
            {
                long min = lo is null ? long.MinValue : ScalarInt(n, lo, "min");
                long max = hi is null ? long.MaxValue : ScalarInt(n, hi, "max");
                var r = new long[x.Ints!.Length];
                for (int k = 0; k < r.Length; k++) r[k] = Math.Min(Math.Max(x.Ints[k], min), max);
                o[0] = OnnxValue.FromInts(r, x.Shape, x.Type);
            }
        };
    }

    // ---------------------------------------------------------------- comparisons and logic

    private static OnnxKernel Compare(OnnxNode n, Func<float, float, bool> onFloats, Func<long, long, bool> onInts) => (i, o) =>
    {
        var a = n.Required(i, 0, "A");
        var b = n.Required(i, 1, "B");
        if (a.IsFloat != b.IsFloat) throw n.Error($"cannot compare {a.Type} with {b.Type}.");
        CheckBroadcast(n, a.Shape, b.Shape);
        if (!a.IsFloat)
        {
            o[0] = IntBinary(n, a, b, OnnxElementType.Bool, (x, y) => onInts(x, y) ? 1 : 0);
            return;
        }
        int[] shape;
        try { shape = Shapes.Broadcast(a.Shape, b.Shape, n.OpType); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        var fa = FloatData(a.Tensor!);
        var fb = FloatData(b.Tensor!);
        var ia = BroadcastIndex(a.Shape, shape);
        var ib = BroadcastIndex(b.Shape, shape);
        var r = new long[ia.Length];
        for (int k = 0; k < r.Length; k++) r[k] = onFloats(fa[ia[k]], fb[ib[k]]) ? 1 : 0;
        o[0] = OnnxValue.FromInts(r, shape, OnnxElementType.Bool);
    };

    private static OnnxKernel Logical(OnnxNode n, Func<long, long, long> f) => (i, o) =>
    {
        var a = n.Required(i, 0, "A");
        var b = n.Required(i, 1, "B");
        if (a.Type != OnnxElementType.Bool || b.Type != OnnxElementType.Bool) throw n.Error($"expects bool inputs, got {a.Type} and {b.Type}.");
        CheckBroadcast(n, a.Shape, b.Shape);
        o[0] = IntBinary(n, a, b, OnnxElementType.Bool, f);
    };

    private static OnnxKernel NotKernel(OnnxNode n) => (i, o) =>
    {
        var x = n.Required(i, 0, "X");
        if (x.Type != OnnxElementType.Bool) throw n.Error($"expects a bool input, got {x.Type}.");
        var r = new long[x.Ints!.Length];
        for (int k = 0; k < r.Length; k++) r[k] = x.Ints[k] == 0 ? 1 : 0;
        o[0] = OnnxValue.FromInts(r, x.Shape, OnnxElementType.Bool);
    };

    private static OnnxKernel WhereKernel(OnnxNode n) => (i, o) =>
    {
        var c = n.Required(i, 0, "condition");
        var x = n.Required(i, 1, "X");
        var y = n.Required(i, 2, "Y");
        if (c.IsFloat) throw n.Error("the condition must be bool.");
        CheckBroadcast(n, c.Shape, x.Shape, y.Shape);
        if (x.IsFloat && y.IsFloat)
        {
            try { o[0] = OnnxValue.FromTensor(Ops.Where(c.AsTensor(), x.Tensor!, y.Tensor!)); }
            catch (ArgumentException e) { throw n.Error(e.Message); }
            return;
        }
        if (x.IsFloat || y.IsFloat || x.Type != y.Type) throw n.Error($"X and Y must have the same type, got {x.Type} and {y.Type}.");
        int[] shape;
        try { shape = Shapes.Broadcast(c.Shape, x.Shape, y.Shape, "Where"); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        var ic = BroadcastIndex(c.Shape, shape);
        var ix = BroadcastIndex(x.Shape, shape);
        var iy = BroadcastIndex(y.Shape, shape);
        var r = new long[ic.Length];
        for (int k = 0; k < r.Length; k++) r[k] = c.Ints![ic[k]] != 0 ? x.Ints![ix[k]] : y.Ints![iy[k]];
        o[0] = OnnxValue.FromInts(r, shape, x.Type);
    };
}
