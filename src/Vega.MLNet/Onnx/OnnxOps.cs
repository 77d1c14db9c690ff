using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>One supported operator: the lowest opset the implementation follows, its kernel factory and notes.</summary>
/// <param name="OpType">The op_type in the default (ai.onnx) domain.</param>
/// <param name="SinceVersion">Models importing an older opset are rejected for this op.</param>
/// <param name="Factory">Reads the node's attributes once and returns its kernel.</param>
/// <param name="Notes">Opset differences and limits (shown in docs/onnx-interpreter.md).</param>
internal sealed record OnnxOpInfo(string OpType, int SinceVersion, Func<OnnxNode, OnnxKernel> Factory, string Notes);

/// <summary>
/// The operator table of the interpreter: op_type → kernel factory, for the default ONNX domain. Kernels map float
/// values onto the differentiable tensor-core ops (<see cref="Ops"/>) and integer/bool values onto small host loops.
/// One file per op family (OnnxOps.Elementwise.cs, .Shape.cs, .Reduce.cs, .Nn.cs, .Pool.cs).
/// </summary>
internal static partial class OnnxOps
{
    private static readonly Dictionary<string, OnnxOpInfo> Table = Build();

    /// <summary>Every supported operator by op_type.</summary>
    public static IReadOnlyDictionary<string, OnnxOpInfo> Supported => Table;

    /// <summary>True when <paramref name="opType"/> is implemented for models importing <paramref name="opset"/>.</summary>
    public static bool IsSupported(string opType, int opset) => Table.TryGetValue(opType, out var info) && opset >= info.SinceVersion;

    private static Dictionary<string, OnnxOpInfo> Build()
    {
        var list = new List<OnnxOpInfo>();
        AddElementwise(list);
        AddShapeOps(list);
        AddReductions(list);
        AddNn(list);
        AddPooling(list);
        var table = new Dictionary<string, OnnxOpInfo>(StringComparer.Ordinal);
        foreach (var op in list) table.Add(op.OpType, op);
        return table;
    }

    // ---------------------------------------------------------------- helpers shared by the kernels

    /// <summary>The float tensor of an input, or an error naming the node when it holds integers.</summary>
    internal static Tensor Float(OnnxNode n, OnnxValue v, string what) =>
        v.Tensor ?? throw n.Error($"the {what} input must be float32, got {v.Type} {Shapes.ToString(v.Shape)}.");

    /// <summary>The integer elements of an input, or an error naming the node when it is a float tensor.</summary>
    internal static long[] Ints(OnnxNode n, OnnxValue v, string what) =>
        v.Ints ?? throw n.Error($"the {what} input must be an integer tensor, got float32 {Shapes.ToString(v.Shape)}.");

    /// <summary>A one-element integer input as a long.</summary>
    internal static long ScalarInt(OnnxNode n, OnnxValue v, string what)
    {
        var a = Ints(n, v, what);
        if (a.Length != 1) throw n.Error($"the {what} input must hold one value, got shape {Shapes.ToString(v.Shape)}.");
        return a[0];
    }

    internal static int NormalizeAxis(OnnxNode n, long axis, int rank, string what = "axis")
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= Math.Max(rank, 1) || (rank == 0 && a != 0))
            throw n.Error($"{what} {axis} is out of range for rank {rank} (valid {-rank}..{rank - 1}).");
        return (int)a;
    }

    internal static int[] ToIntShape(OnnxNode n, long[] dims, string what)
    {
        var r = new int[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] < int.MinValue || dims[i] > int.MaxValue) throw n.Error($"{what} value {dims[i]} does not fit a 32-bit dimension.");
            r[i] = (int)dims[i];
        }
        return r;
    }

    /// <summary>Element strides of <paramref name="shape"/> aligned to <paramref name="outShape"/> (0 where broadcast).</summary>
    internal static long[] BroadcastStrides(int[] shape, int[] outShape)
    {
        var s = new long[outShape.Length];
        int shift = outShape.Length - shape.Length;
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i + shift] = shape[i] == 1 ? 0 : acc;
            acc *= shape[i];
        }
        return s;
    }

    /// <summary>For every element of <paramref name="outShape"/> (row-major), the linear index into an input of <paramref name="shape"/>.</summary>
    internal static int[] BroadcastIndex(int[] shape, int[] outShape)
    {
        long n = Shapes.Product(outShape);
        var idx = new int[n];
        var st = BroadcastStrides(shape, outShape);
        int rank = outShape.Length;
        var pos = new int[rank];
        long off = 0;
        for (long i = 0; i < n; i++)
        {
            idx[i] = (int)off;
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++pos[d] < outShape[d]) { off += st[d]; break; }
                pos[d] = 0;
                off -= st[d] * (outShape[d] - 1);
            }
        }
        return idx;
    }

    /// <summary>Row-major float elements of a value (contiguous copy when needed).</summary>
    internal static ReadOnlySpan<float> FloatData(Tensor t) => Kernels.Contiguous(t).Span;
}
