using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

internal static partial class OnnxOps
{
    private static void AddNn(List<OnnxOpInfo> list)
    {
        list.Add(new("MatMul", 1, MatMulKernel, "numpy semantics (1-D operands, broadcast batch dimensions); float32 through the tensor core's GEMM (OpenBLAS or the managed kernel, see VEGA_GEMM)"));
        list.Add(new("Gemm", 7, GemmKernel, "alpha, beta, transA, transB; C optional from opset 11, broadcast to [M, N]"));
        list.Add(new("Softmax", 1, n => SoftmaxKernel(n, log: false), "opset < 13: input coerced to 2-D at axis (default 1); from 13: along axis (default −1)"));
        list.Add(new("LogSoftmax", 1, n => SoftmaxKernel(n, log: true), "as Softmax"));
        list.Add(new("LayerNormalization", 17, LayerNormKernel, "axis, epsilon; Y fused with its backward; the optional Mean and InvStdDev outputs are computed (differentiably) only when the node names them"));
        list.Add(new("Conv", 1, ConvKernel, "2-D only, group 1, dilations 1, symmetric pads (explicit, VALID or SAME_* when the padding comes out symmetric)"));
    }

    private static OnnxKernel MatMulKernel(OnnxNode n) => (i, o) =>
    {
        var a = Float(n, n.Required(i, 0, "A"), "A");
        var b = Float(n, n.Required(i, 1, "B"), "B");
        if (a.Rank >= 1 && b.Rank >= 1)
        {
            // [batch…, M, K] · [batch…, K, N]: the broadcast batch times M·N (1-D operands contribute no M or N).
            var batchA = a.Rank > 2 ? a.Shape[..^2] : [];
            var batchB = b.Rank > 2 ? b.Shape[..^2] : [];
            int m = a.Rank >= 2 ? a.Shape[^2] : 1, cols = b.Rank >= 2 ? b.Shape[^1] : 1;
            CheckBroadcast(n, [.. batchA, m, 1], [.. batchB, 1, cols]);
        }
        try { o[0] = OnnxValue.FromTensor(Ops.MatMul(a, b)); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
    };

    private static OnnxKernel GemmKernel(OnnxNode n)
    {
        float alpha = n.Float("alpha", 1f), beta = n.Float("beta", 1f);
        bool transA = n.Int("transA", 0) != 0, transB = n.Int("transB", 0) != 0;
        return (i, o) =>
        {
            var a = Float(n, n.Required(i, 0, "A"), "A");
            var b = Float(n, n.Required(i, 1, "B"), "B");
            var c = i.Length > 2 && i[2] is { } cv ? Float(n, cv, "C") : null;
            if (a.Rank != 2 || b.Rank != 2) throw n.Error($"A and B must be 2-D, got {a.ShapeString} and {b.ShapeString}.");
            n.CheckElements((long)a.Shape[transA ? 1 : 0] * b.Shape[transB ? 0 : 1]);
            try { o[0] = OnnxValue.FromTensor(Ops.Gemm(a, b, c, alpha, beta, transA, transB)); }
            catch (ArgumentException e) { throw n.Error(e.Message); }
        };
    }

    private static OnnxKernel SoftmaxKernel(OnnxNode n, bool log)
    {
        bool legacy = n.Opset < 13;
        long axis = n.Int("axis", legacy ? 1 : -1);
        return (i, o) =>
        {
            var x = Float(n, n.Required(i, 0, "input"), "input");
            int ax = NormalizeAxis(n, axis, x.Rank);
            Tensor y;
            if (legacy && ax != x.Rank - 1)
            {
                // Opset < 13: softmax over the flattened trailing block [axis, rank).
                int outer = (int)Shapes.Product(x.Shape.AsSpan(0, ax));
                int inner = (int)Shapes.Product(x.Shape.AsSpan(ax));
                var flat = Ops.Reshape(x, outer, inner);
                y = Ops.Reshape(log ? Ops.LogSoftmax(flat, -1) : Ops.Softmax(flat, -1), x.Shape);
            }
            else y = log ? Ops.LogSoftmax(x, ax) : Ops.Softmax(x, ax);
            o[0] = OnnxValue.FromTensor(y);
        };
    }

    private static OnnxKernel LayerNormKernel(OnnxNode n)
    {
        long axis = n.Int("axis", -1);
        float eps = n.Float("epsilon", 1e-5f);
        bool wantMean = n.HasOutput(1), wantInvStd = n.HasOutput(2);
        return (i, o) =>
        {
            var x = Float(n, n.Required(i, 0, "X"), "X");
            var scale = Float(n, n.Required(i, 1, "Scale"), "Scale");
            var bias = i.Length > 2 && i[2] is { } b ? Float(n, b, "B") : null;
            int ax = NormalizeAxis(n, axis, x.Rank);
            int normDims = x.Rank - ax;
            var normShape = x.Shape[ax..];
            bool exact = Shapes.SameShape(scale.Shape, normShape) && (bias is null || Shapes.SameShape(bias.Shape, normShape));
            Tensor y;
            if (exact) y = Ops.LayerNorm(x, scale, bias, eps, normDims);
            else
            {
                // Scale/B broadcastable to the normalised shape: normalise, then apply them with broadcasting.
                y = Ops.Mul(Ops.LayerNorm(x, null, null, eps, normDims), scale);
                if (bias is not null) y = Ops.Add(y, bias);
            }
            o[0] = OnnxValue.FromTensor(y);
            if (wantMean || wantInvStd)
            {
                var axes = Enumerable.Range(ax, normDims).ToArray();
                var mean = Ops.Mean(x, axes, keepDims: true);
                if (wantMean) o[1] = OnnxValue.FromTensor(mean);
                if (wantInvStd)
                {
                    var centered = Ops.Sub(x, mean);
                    var variance = Ops.Mean(Ops.Mul(centered, centered), axes, keepDims: true);
                    o[2] = OnnxValue.FromTensor(Ops.Reciprocal(Ops.Sqrt(Ops.AddScalar(variance, eps))));
                }
            }
        };
    }

    private static OnnxKernel ConvKernel(OnnxNode n)
    {
        long group = n.Int("group", 1);
        var dilations = n.Ints("dilations");
        var strides = n.Ints("strides");
        var pads = n.Ints("pads");
        string autoPad = n.String("auto_pad") ?? "NOTSET";
        if (group != 1) throw n.Error($"group = {group}; only group 1 is supported.");
        if (dilations is not null && dilations.Any(d => d != 1)) throw n.Error($"dilations [{string.Join(", ", dilations)}]; only 1 is supported.");
        return (i, o) =>
        {
            var x = Float(n, n.Required(i, 0, "X"), "X");
            var w = Float(n, n.Required(i, 1, "W"), "W");
            var bias = i.Length > 2 && i[2] is { } b ? Float(n, b, "B") : null;
            if (x.Rank != 4 || w.Rank != 4) throw n.Error($"only 2-D convolutions are supported (X {x.ShapeString}, W {w.ShapeString}).");
            int sh = strides is { Length: 2 } ? (int)strides[0] : 1, sw = strides is { Length: 2 } ? (int)strides[1] : 1;
            int kh = w.Shape[2], kw = w.Shape[3];
            long pt, pl, pb, pr;
            switch (autoPad)
            {
                case "NOTSET":
                    pt = pads?[0] ?? 0; pl = pads?[1] ?? 0; pb = pads?[2] ?? 0; pr = pads?[3] ?? 0;
                    break;
                case "VALID":
                    pt = pl = pb = pr = 0;
                    break;
                case "SAME_UPPER" or "SAME_LOWER":
                    {
                        long th = Math.Max(0, ((x.Shape[2] + sh - 1) / sh - 1) * sh + kh - x.Shape[2]);
                        long tw = Math.Max(0, ((x.Shape[3] + sw - 1) / sw - 1) * sw + kw - x.Shape[3]);
                        bool upper = autoPad == "SAME_UPPER";
                        pt = upper ? th / 2 : th - th / 2; pb = th - pt;
                        pl = upper ? tw / 2 : tw - tw / 2; pr = tw - pl;
                        break;
                    }
                default: throw n.Error($"auto_pad '{autoPad}' is not supported.");
            }
            if (pt != pb || pl != pr) throw n.Error($"asymmetric padding [{pt}, {pl}, {pb}, {pr}] is not supported.");
            if (sh < 1 || sw < 1) throw n.Error($"strides ({sh}, {sw}) must be positive.");
            if (pt < 0 || pl < 0 || pt > int.MaxValue / 4 || pl > int.MaxValue / 4) throw n.Error($"pads ({pt}, {pl}) must be ≥ 0 and reasonably small.");
            long oh = (x.Shape[2] + 2 * pt - kh) / sh + 1, ow = (x.Shape[3] + 2 * pl - kw) / sw + 1;
            if (oh > 0 && ow > 0) n.CheckElements(Math.Min(long.MaxValue / 4, (long)x.Shape[0] * w.Shape[0] * oh * ow));
            try { o[0] = OnnxValue.FromTensor(Ops.Conv2d(x, w, bias, sh, sw, (int)pt, (int)pl)); }
            catch (ArgumentException e) { throw n.Error(e.Message); }
        };
    }
}
