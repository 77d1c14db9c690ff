using Vega.MLNet.Tensors;

namespace Vega.MLNet.Onnx;

/// <summary>
/// Rewrites of the execution plan that replace sub-graphs exported op by op with fused tensor-core kernels (one pass
/// forward, a fused backward), matched structurally on op types, constants and single-consumer intermediates:
/// <list type="bullet">
/// <item><c>vega.LayerNorm</c>: ReduceMean(x) → Sub → Pow(·, 2) → ReduceMean → Add(eps) → Sqrt → Div [→ Mul(γ) [→ Add(β)]]
/// over the last axis (PyTorch's export of LayerNorm before opset 17) → <see cref="Ops.LayerNorm"/>.</item>
/// <item><c>vega.Gelu</c>: Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(0.5) → <see cref="Ops.Gelu"/>.</item>
/// <item><c>vega.QuickGelu</c>: Mul(x, 1.702) → Sigmoid → Mul(x, ·) → <see cref="Ops.QuickGelu"/>.</item>
/// <item><c>vega.Linear</c>: MatMul(x, W) [→ Add(b)] and Gemm(x, W, b) (transA = 0, alpha = beta = 1) with constant W
/// and b → <see cref="Ops.FrozenLinear"/> (bias in the GEMM, row-sparse input gradient).</item>
/// </list>
/// An intermediate that another node, a graph output or a kept value reads blocks the fusion.
/// </summary>
internal static class OnnxFusion
{
    private sealed class Graph(List<OnnxInterpreter.Step> steps, OnnxValue?[] constants, bool[] pinned)
    {
        public readonly List<OnnxInterpreter.Step?> Steps = [.. steps];
        public readonly OnnxValue?[] Constants = constants;
        public readonly bool[] Pinned = pinned;
        public readonly Dictionary<int, int> Producer = [];
        public readonly int[] Consumers = new int[constants.Length];

        public void Index()
        {
            Producer.Clear();
            Array.Clear(Consumers);
            for (int i = 0; i < Steps.Count; i++)
            {
                var s = Steps[i];
                if (s is null) continue;
                foreach (int o in s.Outputs) if (o >= 0) Producer[o] = i;
                foreach (int x in s.Inputs) if (x >= 0) Consumers[x]++;
            }
        }

        /// <summary>The step producing <paramref name="slot"/> when it is <paramref name="op"/> and its only output.</summary>
        public OnnxInterpreter.Step? Op(int slot, string op) =>
            slot >= 0 && Producer.TryGetValue(slot, out int i) && Steps[i] is { } s && s.OpType == op ? s : null;

        /// <summary>The single step that reads <paramref name="slot"/> (when it is read once and not pinned).</summary>
        public (OnnxInterpreter.Step Step, int Index)? OnlyConsumer(int slot)
        {
            if (slot < 0 || Consumers[slot] != 1 || Pinned[slot]) return null;
            for (int i = 0; i < Steps.Count; i++)
                if (Steps[i] is { } s && s.Inputs.Contains(slot)) return (s, i);
            return null;
        }

        public List<(OnnxInterpreter.Step Step, int Index)> ConsumersOf(int slot)
        {
            var list = new List<(OnnxInterpreter.Step, int)>();
            for (int i = 0; i < Steps.Count; i++)
                if (Steps[i] is { } s && s.Inputs.Contains(slot)) list.Add((s, i));
            return list;
        }

        public bool IsScalar(int slot, out float value)
        {
            value = 0;
            if (slot < 0 || Constants[slot] is not { IsFloat: true, Length: 1 } c) return false;
            value = c.Tensor!.Data[c.Tensor.Offset];
            return true;
        }

        public Tensor? ConstTensor(int slot) => slot >= 0 && Constants[slot] is { IsFloat: true } c ? c.Tensor : null;

        /// <summary>For a commutative binary step with one operand <paramref name="known"/>, the other operand.</summary>
        public static int Other(OnnxInterpreter.Step s, int known) =>
            s.Inputs.Length == 2 ? s.Inputs[0] == known ? s.Inputs[1] : s.Inputs[1] == known ? s.Inputs[0] : -1 : -1;
    }

    public static int Apply(List<OnnxInterpreter.Step> steps, OnnxValue?[] constants, bool[] pinned, string source)
    {
        // The matchers read the inputs and outputs a well-formed node of each op type has; a graph with a malformed
        // node of those types is not fused (the node's kernel reports the problem when it runs).
        if (!steps.All(WellFormed)) return 0;
        var g = new Graph(steps, constants, pinned);
        int fused = 0;
        g.Index();
        fused += FuseAll(g, TryLayerNorm);
        fused += FuseAll(g, TryGelu);
        fused += FuseAll(g, TryQuickGelu);
        fused += FuseAll(g, TryLinear);
        steps.Clear();
        foreach (var s in g.Steps) if (s is not null) steps.Add(s);
        return fused;
    }

    private static bool WellFormed(OnnxInterpreter.Step s)
    {
        bool Out() => s.Outputs.Length >= 1 && s.Outputs[0] >= 0;
        bool In(int count) => s.Inputs.Length == count && s.Inputs.All(i => i >= 0);
        return s.OpType switch
        {
            "Div" or "Mul" or "Add" or "Sub" or "Pow" or "MatMul" => In(2) && Out(),
            "Erf" or "Sigmoid" or "Sqrt" => In(1) && Out(),
            "ReduceMean" => s.Inputs.Length >= 1 && s.Inputs[0] >= 0 && Out(),
            "Gemm" => s.Inputs.Length is 2 or 3 && s.Inputs[0] >= 0 && s.Inputs[1] >= 0 && Out(),
            _ => true,
        };
    }

    /// <summary>Runs a matcher at every step; a match returns (indices to remove, index to put the fused step at, the step).</summary>
    private static int FuseAll(Graph g, Func<Graph, int, (int[] Remove, int At, OnnxInterpreter.Step Fused)?> matcher)
    {
        int removed = 0;
        for (int i = 0; i < g.Steps.Count; i++)
        {
            if (g.Steps[i] is null) continue;
            var m = matcher(g, i);
            if (m is null) continue;
            foreach (int r in m.Value.Remove) g.Steps[r] = null;
            g.Steps[m.Value.At] = m.Value.Fused;
            removed += m.Value.Remove.Length + 1;
            g.Index();
        }
        return removed;
    }

    private static bool ReducesLastAxisKeepingDims(Graph g, OnnxInterpreter.Step s)
    {
        if (s.OpType != "ReduceMean" || s.Node is null) return false;
        if (s.Node.Int("keepdims", 1) != 1) return false;
        long[]? axes = s.Node.Opset < 18 ? s.Node.Ints("axes")
            : s.Inputs.Length > 1 && s.Inputs[1] >= 0 && g.Constants[s.Inputs[1]] is { Ints: { } a } ? a : null;
        return axes is [-1];
    }

    // ---------------------------------------------------------------- LayerNorm

    private static (int[], int, OnnxInterpreter.Step)? TryLayerNorm(Graph g, int index)
    {
        var mean = g.Steps[index]!;
        if (!ReducesLastAxisKeepingDims(g, mean)) return null;
        int x = mean.Inputs[0], m = mean.Outputs[0];
        if (g.OnlyConsumer(m) is not ({ } sub, var iSub) || sub.OpType != "Sub" || sub.Inputs[0] != x || sub.Inputs[1] != m) return null;
        int d = sub.Outputs[0];
        if (g.Pinned[d]) return null;
        var users = g.ConsumersOf(d);
        if (users.Count != 2) return null;
        var pow = users.FirstOrDefault(u => u.Step.OpType == "Pow");
        var div = users.FirstOrDefault(u => u.Step.OpType == "Div");
        if (pow.Step is null || div.Step is null || pow.Step.Inputs[0] != d || div.Step.Inputs[0] != d) return null;
        if (!g.IsScalar(pow.Step.Inputs[1], out float two) || two != 2f) return null;
        if (g.OnlyConsumer(pow.Step.Outputs[0]) is not ({ } var2, var iVar) || !ReducesLastAxisKeepingDims(g, var2)) return null;
        if (g.OnlyConsumer(var2.Outputs[0]) is not ({ } addEps, var iEps) || addEps.OpType != "Add") return null;
        if (!g.IsScalar(Graph.Other(addEps, var2.Outputs[0]), out float eps)) return null;
        if (g.OnlyConsumer(addEps.Outputs[0]) is not ({ } sqrt, var iSqrt) || sqrt.OpType != "Sqrt") return null;
        if (g.OnlyConsumer(sqrt.Outputs[0]) is not ({ } div2, var iDiv) || div2 != div.Step || div2.Inputs[1] != sqrt.Outputs[0]) return null;
        var remove = new List<int> { index, iSub, pow.Index, iVar, iEps, iSqrt, iDiv };
        int output = div2.Outputs[0], at = iDiv;
        Tensor? gamma = null, beta = null;
        if (g.OnlyConsumer(output) is ({ } mul, var iMul) && mul.OpType == "Mul" && g.ConstTensor(Graph.Other(mul, output)) is { Rank: 1 } gm)
        {
            gamma = gm;
            remove.Add(iMul);
            output = mul.Outputs[0];
            at = iMul;
            if (g.OnlyConsumer(output) is ({ } add, var iAdd) && add.OpType == "Add" && g.ConstTensor(Graph.Other(add, output)) is { Rank: 1 } bt && bt.Length == gm.Length)
            {
                beta = bt;
                remove.Add(iAdd);
                output = add.Outputs[0];
                at = iAdd;
            }
        }
        remove.Remove(at);
        string name = mean.Name;
        var step = new OnnxInterpreter.Step("vega.LayerNorm", name, [x], [output], (i, o) =>
        {
            var t = i[0]!.Tensor ?? throw new InvalidDataException($"Fused LayerNorm '{name}': the input is not float32.");
            int d = t.Rank >= 1 ? t.Shape[^1] : 1;
            if ((gamma is null || gamma.Length == d) && (beta is null || beta.Length == d))
                o[0] = OnnxValue.FromTensor(Ops.LayerNorm(t, gamma, beta, eps, 1));
            else
            {
                // γ/β that only broadcast (e.g. one value): normalise, then apply them as the graph does.
                var y = Ops.LayerNorm(t, null, null, eps, 1);
                if (gamma is not null) y = Ops.Mul(y, gamma);
                if (beta is not null) y = Ops.Add(y, beta);
                o[0] = OnnxValue.FromTensor(y);
            }
        }, null);
        return (remove.ToArray(), at, step);
    }

    // ---------------------------------------------------------------- GELU

    private static (int[], int, OnnxInterpreter.Step)? TryGelu(Graph g, int index)
    {
        var div = g.Steps[index]!;
        if (div.OpType != "Div" || !g.IsScalar(div.Inputs[1], out float sqrt2) || Math.Abs(sqrt2 - MathF.Sqrt(2f)) > 1e-6f) return null;
        int x = div.Inputs[0];
        if (g.OnlyConsumer(div.Outputs[0]) is not ({ } erf, var iErf) || erf.OpType != "Erf") return null;
        if (g.OnlyConsumer(erf.Outputs[0]) is not ({ } add, var iAdd) || add.OpType != "Add" || !g.IsScalar(Graph.Other(add, erf.Outputs[0]), out float one) || one != 1f) return null;
        if (g.OnlyConsumer(add.Outputs[0]) is not ({ } mul, var iMul) || mul.OpType != "Mul" || Graph.Other(mul, add.Outputs[0]) != x) return null;
        if (g.OnlyConsumer(mul.Outputs[0]) is not ({ } half, var iHalf) || half.OpType != "Mul" || !g.IsScalar(Graph.Other(half, mul.Outputs[0]), out float h) || h != 0.5f) return null;
        var step = new OnnxInterpreter.Step("vega.Gelu", div.Name, [x], [half.Outputs[0]],
            (i, o) => o[0] = OnnxValue.FromTensor(Ops.Gelu(i[0]!.Tensor ?? throw new InvalidDataException($"Fused GELU '{div.Name}': the input is not float32."))), null);
        return ([index, iErf, iAdd, iMul], iHalf, step);
    }

    private static (int[], int, OnnxInterpreter.Step)? TryQuickGelu(Graph g, int index)
    {
        var scale = g.Steps[index]!;
        if (scale.OpType != "Mul" || scale.Inputs.Length != 2) return null;
        int x;
        if (g.IsScalar(scale.Inputs[1], out float a) && a == 1.702f) x = scale.Inputs[0];
        else if (g.IsScalar(scale.Inputs[0], out a) && a == 1.702f) x = scale.Inputs[1];
        else return null;
        if (g.OnlyConsumer(scale.Outputs[0]) is not ({ } sig, var iSig) || sig.OpType != "Sigmoid") return null;
        if (g.OnlyConsumer(sig.Outputs[0]) is not ({ } mul, var iMul) || mul.OpType != "Mul" || Graph.Other(mul, sig.Outputs[0]) != x) return null;
        var step = new OnnxInterpreter.Step("vega.QuickGelu", scale.Name, [x], [mul.Outputs[0]],
            (i, o) => o[0] = OnnxValue.FromTensor(Ops.QuickGelu(i[0]!.Tensor ?? throw new InvalidDataException($"Fused QuickGELU '{scale.Name}': the input is not float32."))), null);
        return ([index, iSig], iMul, step);
    }

    // ---------------------------------------------------------------- Linear

    private static (int[], int, OnnxInterpreter.Step)? TryLinear(Graph g, int index)
    {
        var s = g.Steps[index]!;
        int x;
        Tensor? w, bias = null;
        bool transpose;
        var remove = new List<int>();
        int at = index, output;
        if (s.OpType == "MatMul")
        {
            x = s.Inputs[0];
            w = g.ConstTensor(s.Inputs[1]);
            if (w is not { Rank: 2 }) return null;
            transpose = false;
            output = s.Outputs[0];
            if (g.OnlyConsumer(output) is ({ } add, var iAdd) && add.OpType == "Add" && g.ConstTensor(Graph.Other(add, output)) is { Rank: 1 } b && b.Length == w.Shape[1])
            {
                bias = b;
                remove.Add(index);
                at = iAdd;
                output = add.Outputs[0];
            }
        }
        else if (s.OpType == "Gemm" && s.Node is { } n)
        {
            if (n.Int("transA", 0) != 0 || n.Float("alpha", 1f) != 1f || n.Float("beta", 1f) != 1f) return null;
            x = s.Inputs[0];
            w = g.ConstTensor(s.Inputs[1]);
            if (w is not { Rank: 2 }) return null;
            transpose = n.Int("transB", 0) != 0;
            int outN = transpose ? w.Shape[0] : w.Shape[1];
            if (s.Inputs.Length > 2 && s.Inputs[2] >= 0)
            {
                bias = g.ConstTensor(s.Inputs[2]);
                if (bias is null || bias.Length != outN || bias.Rank > 2 || (bias.Rank == 2 && bias.Shape[0] != 1)) return null;
            }
            output = s.Outputs[0];
        }
        else return null;
        string name = s.Name, op = s.OpType;
        bool gemm = op == "Gemm";
        var step = new OnnxInterpreter.Step("vega.Linear", name, [x], [output], (i, o) =>
        {
            var t = i[0]!.Tensor ?? throw new InvalidDataException($"Fused {op} '{name}': the input is not float32.");
            if (gemm && t.Rank != 2) throw new InvalidDataException($"Fused Gemm '{name}': A must be 2-D, got {t.ShapeString}.");
            if (t.Rank < 2) o[0] = OnnxValue.FromTensor(bias is null ? Ops.MatMul(t, w) : Ops.Add(Ops.MatMul(t, w), bias));
            else o[0] = OnnxValue.FromTensor(Ops.FrozenLinear(t, w, transpose, bias));
        }, null);
        return (remove.ToArray(), at, step);
    }
}
