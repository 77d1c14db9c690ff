using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>Convolutional-network ops beyond Conv: batch normalisation (inference), average pooling and padding.</summary>
internal static partial class OnnxOps
{
    private static void AddPooling(List<OnnxOpInfo> list)
    {
        list.Add(new("BatchNormalization", 7, BatchNormKernel,
            "inference mode: Y = (X − mean)/√(var + ε)·scale + B with the given running statistics, differentiable in every input; training_mode = 1 and the training outputs are rejected; spatial = 0 (opset 7–8) is rejected"));
        list.Add(new("AveragePool", 1, AveragePoolKernel,
            "1-D to 3-D; kernel_shape, strides, pads (asymmetric allowed), auto_pad (NOTSET, VALID, SAME_UPPER, SAME_LOWER), ceil_mode (opset 10), count_include_pad (opset 7); dilations other than 1 (opset 19) are rejected; float64 sums"));
        list.Add(new("GlobalAveragePool", 1, GlobalAveragePoolKernel, "mean over every axis after the first two, kept as size 1"));
        list.Add(new("Pad", 2, PadKernel,
            "modes constant, reflect, edge (wrap, opset 19, is rejected); pads and value attributes before opset 11, pads / constant_value inputs from 11, axes input from 18; negative pads crop; float32 differentiable (the gradient goes back to the copied element), integer and bool types on the host"));
    }

    private static OnnxKernel BatchNormKernel(OnnxNode n)
    {
        float eps = n.Float("epsilon", 1e-5f);
        if (n.Int("training_mode", 0) != 0)
            throw n.Error("training_mode = 1 is not supported: the interpreter runs BatchNormalization in inference mode (export the model in eval mode).");
        if (n.Opset < 9 && n.Int("spatial", 1) != 1)
            throw n.Error("spatial = 0 (per-element statistics) is not supported.");
        for (int k = 1; k < n.OutputCount; k++)
            if (n.HasOutput(k)) throw n.Error("the running-mean/variance outputs belong to training mode, which is not supported (export the model in eval mode).");
        return (i, o) =>
        {
            var x = Float(n, n.Required(i, 0, "X"), "X");
            var scale = Float(n, n.Required(i, 1, "scale"), "scale");
            var bias = Float(n, n.Required(i, 2, "B"), "B");
            var mean = Float(n, n.Required(i, 3, "input_mean"), "input_mean");
            var variance = Float(n, n.Required(i, 4, "input_var"), "input_var");
            if (x.Rank < 2) throw n.Error($"X must be [N, C, …], got {x.ShapeString}.");
            int c = x.Shape[1];
            foreach (var (t, what) in new[] { (scale, "scale"), (bias, "B"), (mean, "input_mean"), (variance, "input_var") })
                if (t.Rank != 1 || t.Shape[0] != c) throw n.Error($"{what} must be [{c}] (one value per channel of X {x.ShapeString}), got {t.ShapeString}.");
            // y = x·a + b with a = scale/√(var + ε), b = B − mean·a (per channel, broadcast over N and the spatial axes).
            var a = Ops.Div(scale, Ops.Sqrt(Ops.AddScalar(variance, eps)));
            var b = Ops.Sub(bias, Ops.Mul(mean, a));
            var shape = new int[x.Rank];
            Array.Fill(shape, 1);
            shape[1] = c;
            o[0] = OnnxValue.FromTensor(Ops.Add(Ops.Mul(x, Ops.Reshape(a, shape)), Ops.Reshape(b, shape)));
        };
    }

    private static OnnxKernel AveragePoolKernel(OnnxNode n)
    {
        var kernel = n.Ints("kernel_shape") ?? throw n.Error("the kernel_shape attribute is required.");
        var strides = n.Ints("strides");
        var pads = n.Ints("pads");
        var dilations = n.Ints("dilations");
        string autoPad = n.String("auto_pad") ?? "NOTSET";
        bool ceil = n.Int("ceil_mode", 0) != 0;
        bool includePad = n.Int("count_include_pad", 0) != 0;
        int k = kernel.Length;
        if (k is < 1 or > 3) throw n.Error($"kernel_shape has {k} axes; 1 to 3 spatial axes are supported.");
        if (kernel.Any(v => v < 1 || v > int.MaxValue)) throw n.Error($"kernel_shape [{string.Join(", ", kernel)}] must be positive.");
        if (strides is not null && (strides.Length != k || strides.Any(v => v < 1 || v > int.MaxValue)))
            throw n.Error($"strides [{string.Join(", ", strides)}] must have {k} positive values.");
        if (pads is not null && (pads.Length != 2 * k || pads.Any(v => v < 0 || v > int.MaxValue)))
            throw n.Error($"pads [{string.Join(", ", pads)}] must have {2 * k} values ≥ 0.");
        if (dilations is not null && dilations.Any(d => d != 1)) throw n.Error($"dilations [{string.Join(", ", dilations)}]; only 1 is supported.");
        if (autoPad is not ("NOTSET" or "VALID" or "SAME_UPPER" or "SAME_LOWER")) throw n.Error($"auto_pad '{autoPad}' is not supported.");
        return (i, o) =>
        {
            var x = Float(n, n.Required(i, 0, "X"), "X");
            if (x.Rank != k + 2) throw n.Error($"X {x.ShapeString} must have {k + 2} axes for a {k}-D kernel.");
            var ks = new int[k];
            var ss = new int[k];
            var pb = new int[k];
            var pe = new int[k];
            var outs = new int[k];
            for (int d = 0; d < k; d++)
            {
                long input = x.Shape[2 + d], kk = kernel[d], s = strides?[d] ?? 1;
                long begin, end, size;
                switch (autoPad)
                {
                    case "VALID":
                        begin = end = 0;
                        size = input >= kk ? (input - kk) / s + 1 : 0;
                        break;
                    case "SAME_UPPER" or "SAME_LOWER":
                        {
                            size = (input + s - 1) / s;
                            long total = Math.Max(0, (size - 1) * s + kk - input);
                            begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                            end = total - begin;
                            break;
                        }
                    default:
                        begin = pads?[d] ?? 0;
                        end = pads?[d + k] ?? 0;
                        long span = input + begin + end - kk;
                        if (span < 0) { size = 0; break; }
                        size = (ceil ? (span + s - 1) / s : span / s) + 1;
                        // ceil_mode: the last window must start inside the input or its leading padding.
                        if (ceil && (size - 1) * s >= input + begin) size--;
                        break;
                }
                if (size < 1) throw n.Error($"the kernel {kk} does not fit axis {d} of X {x.ShapeString} with pads ({begin}, {end}).");
                if (size > int.MaxValue || begin > int.MaxValue || end > int.MaxValue) throw n.Error($"axis {d} would have {size} positions.");
                ks[d] = (int)kk;
                ss[d] = (int)s;
                pb[d] = (int)begin;
                pe[d] = (int)end;
                outs[d] = (int)size;
            }
            n.CheckElements([x.Shape[0], x.Shape[1], .. outs]);
            o[0] = OnnxValue.FromTensor(Ops.AveragePool(x, ks, ss, pb, pe, outs, includePad));
        };
    }

    private static OnnxKernel GlobalAveragePoolKernel(OnnxNode n) => (i, o) =>
    {
        var x = Float(n, n.Required(i, 0, "X"), "X");
        if (x.Rank < 3) throw n.Error($"X must be [N, C, spatial…], got {x.ShapeString}.");
        o[0] = OnnxValue.FromTensor(Ops.Mean(x, Enumerable.Range(2, x.Rank - 2).ToArray(), keepDims: true));
    };

    private static OnnxKernel PadKernel(OnnxNode n)
    {
        bool legacy = n.Opset < 11;
        string modeName = n.String("mode") ?? "constant";
        var mode = modeName switch
        {
            "constant" => PadMode.Constant,
            "reflect" => PadMode.Reflect,
            "edge" => PadMode.Edge,
            _ => throw n.Error($"mode '{modeName}' is not supported (constant, reflect and edge are)."),
        };
        var attrPads = legacy ? n.Ints("pads") ?? throw n.Error("the pads attribute is required before opset 11.") : null;
        float attrValue = n.Float("value", 0f);
        return (i, o) =>
        {
            var data = n.Required(i, 0, "data");
            int rank = data.Rank;
            long[] pads = legacy ? attrPads! : Ints(n, n.Required(i, 1, "pads"), "pads");
            int[] axes;
            if (!legacy && i.Length > 3 && i[3] is { } axesValue)
            {
                var raw = Ints(n, axesValue, "axes");
                axes = new int[raw.Length];
                for (int k = 0; k < raw.Length; k++) axes[k] = NormalizeAxis(n, raw[k], rank, "axes value");
                if (axes.Distinct().Count() != axes.Length) throw n.Error($"axes [{string.Join(", ", raw)}] repeat an axis.");
            }
            else axes = Enumerable.Range(0, rank).ToArray();
            if (pads.Length != 2 * axes.Length)
                throw n.Error($"pads has {pads.Length} values; {axes.Length} padded axes need {2 * axes.Length} (all begins, then all ends).");
            var begin = new int[rank];
            var end = new int[rank];
            for (int k = 0; k < axes.Length; k++)
            {
                if (Math.Abs(pads[k]) > int.MaxValue || Math.Abs(pads[k + axes.Length]) > int.MaxValue)
                    throw n.Error($"pads [{string.Join(", ", pads)}] do not fit 32-bit sizes.");
                begin[axes[k]] = (int)pads[k];
                end[axes[k]] = (int)pads[k + axes.Length];
            }
            var outDims = new int[rank];
            for (int d = 0; d < rank; d++)
            {
                long size = (long)data.Shape[d] + begin[d] + end[d];
                if (size < 0) throw n.Error($"pads ({begin[d]}, {end[d]}) remove more than the {data.Shape[d]} elements of axis {d}.");
                outDims[d] = (int)Math.Min(size, int.MaxValue);
            }
            n.CheckElements(outDims);
            OnnxValue? constant = !legacy && i.Length > 2 ? i[2] : null;
            if (constant is not null && constant.Length != 1) throw n.Error($"constant_value must be a scalar, got shape {Shapes.ToString(constant.Shape)}.");
            try
            {
                if (data.IsFloat)
                {
                    float value = constant is null ? attrValue : constant.ToFloatArray()[0];
                    o[0] = OnnxValue.FromTensor(Ops.Pad(data.Tensor!, begin, end, mode, value));
                }
                else
                {
                    if (constant is not null && constant.Type != data.Type) throw n.Error($"constant_value is {constant.Type}, data is {data.Type}.");
                    long value = constant is null ? OnnxValue.Wrap((long)attrValue, data.Type) : constant.Ints![0];
                    var index = Ops.PadSourceIndex(data.Shape, begin, end, mode, out var shape);
                    var src = data.Ints!;
                    var result = new long[index.Length];
                    for (int e = 0; e < index.Length; e++) result[e] = index[e] < 0 ? value : src[index[e]];
                    o[0] = OnnxValue.FromInts(result, shape, data.Type);
                }
            }
            catch (ArgumentException e) { throw n.Error(e.Message); }
        };
    }
}
