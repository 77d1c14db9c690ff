using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Tensors;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// ONNX's own per-operator conformance tests (Debian package libonnx-testdata, installed by
/// <c>bash scripts/setup.sh --test</c>): every test under data/node whose nodes are all in the interpreter's supported-op
/// table (<see cref="OnnxOps.Supported"/>, at the test's opset) runs, including the <c>_expanded</c> function bodies.
/// The list is derived from the table, so a newly supported op is tested automatically. Tests that use a supported op
/// with an unsupported element type are listed in <see cref="Excluded"/> with the reason; nothing is skipped silently.
/// Outputs are compared with the ONNX backend-test tolerance (|a − b| ≤ 1e-7 + 1e-3·|b|) for float32 and exactly for
/// integers and bools, with equal shapes and element types. LayerNormalization tests have three outputs (Y, Mean,
/// InvStdDev); the interpreter computes all three when the node names them, so all are compared.
/// </summary>
public sealed class OnnxConformanceTests(ITestOutputHelper output)
{
    public const string DataRoot = "/usr/share/libonnx-testdata/data/node";

    /// <summary>Tests of supported ops that cannot run, with the reason (checked to exist and to stay accurate).</summary>
    internal static readonly Dictionary<string, string> Excluded = new(StringComparer.Ordinal)
    {
        ["test_cast_DOUBLE_to_FLOAT"] = "float64 input",
        ["test_cast_FLOAT_to_DOUBLE"] = "float64 output",
        ["test_cast_FLOAT16_to_FLOAT"] = "float16 input",
        ["test_cast_FLOAT_to_FLOAT16"] = "float16 output",
        ["test_cast_DOUBLE_to_FLOAT16"] = "float64/float16",
        ["test_cast_FLOAT16_to_DOUBLE"] = "float16/float64",
        ["test_cast_BFLOAT16_to_FLOAT"] = "bfloat16 input",
        ["test_cast_FLOAT_to_BFLOAT16"] = "bfloat16 output",
        ["test_cast_FLOAT_to_STRING"] = "string output",
        ["test_cast_STRING_to_FLOAT"] = "string input",
        ["test_castlike_STRING_to_FLOAT_expanded"] = "string tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT16_to_FLOAT_expanded"] = "float16 tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT_to_BFLOAT16_expanded"] = "bfloat16 tensors (the expanded body is a Cast)",
        ["test_castlike_BFLOAT16_to_FLOAT_expanded"] = "bfloat16 tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT_to_DOUBLE_expanded"] = "float64 tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT_to_FLOAT16_expanded"] = "float16 tensors (the expanded body is a Cast)",
        ["test_castlike_DOUBLE_to_FLOAT_expanded"] = "float64 tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT16_to_DOUBLE_expanded"] = "float16/float64 tensors (the expanded body is a Cast)",
        ["test_castlike_FLOAT_to_STRING_expanded"] = "string tensors (the expanded body is a Cast)",
        ["test_castlike_DOUBLE_to_FLOAT16_expanded"] = "float64/float16 tensors (the expanded body is a Cast)",
        ["test_identity_opt"] = "optional-typed value (the interpreter handles tensors only)",
        ["test_identity_sequence"] = "sequence-typed value (the interpreter handles tensors only)",
        ["test_batchnorm_epsilon_training_mode"] = "training_mode = 1 (BatchNormalization runs in inference mode)",
        ["test_batchnorm_example_training_mode"] = "training_mode = 1 (BatchNormalization runs in inference mode)",
    };

    private static bool DataPresent => Directory.Exists(DataRoot);

    /// <summary>The op types of a test model and its default-domain opset.</summary>
    internal static (HashSet<string> Ops, int Opset, bool OtherDomain) Describe(ModelProto model)
    {
        int opset = (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 0);
        var ops = model.Graph.Node.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        bool other = model.Graph.Node.Any(n => n.Domain is not ("" or "ai.onnx"));
        return (ops, opset, other);
    }

    /// <summary>Every test under data/node whose ops are all supported, with its op types.</summary>
    internal static List<(string Test, HashSet<string> Ops)> SupportedTests()
    {
        var list = new List<(string, HashSet<string>)>();
        foreach (var dir in Directory.GetDirectories(DataRoot).Order(StringComparer.Ordinal))
        {
            var model = OnnxModelFile.Load(Path.Combine(dir, "model.onnx"));
            var (ops, opset, other) = Describe(model);
            if (other || ops.Count == 0) continue;
            if (ops.All(op => OnnxOps.IsSupported(op, opset))) list.Add((Path.GetFileName(dir), ops));
        }
        return list;
    }

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        if (!DataPresent)
        {
            data.Add("<libonnx-testdata missing>");
            return data;
        }
        foreach (var (test, _) in SupportedTests())
            if (!Excluded.ContainsKey(test)) data.Add(test);
        return data;
    }

    private static void RequireData() =>
        Assert.True(DataPresent, $"ONNX's operator tests are missing at {DataRoot}: install them with `bash scripts/setup.sh --test` (Debian package libonnx-testdata). These tests never skip.");

    [Theory]
    [MemberData(nameof(Cases))]
    public void OperatorTestPasses(string test)
    {
        RequireData();
        string dir = Path.Combine(DataRoot, test);
        var model = OnnxModelFile.Load(Path.Combine(dir, "model.onnx"));
        var interp = OnnxInterpreter.Create(model, test);
        string data = Path.Combine(dir, "test_data_set_0");
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        var graphInputs = model.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        var feeds = new Dictionary<string, OnnxValue>();
        for (int k = 0; k < graphInputs.Count; k++)
        {
            string file = Path.Combine(data, $"input_{k}.pb");
            if (!File.Exists(file)) continue; // an optional input left out by the test
            feeds[graphInputs[k].Name] = ReadValue(file);
        }
        var result = interp.Run(feeds);
        for (int k = 0; k < model.Graph.Output.Count; k++)
        {
            string name = model.Graph.Output[k].Name;
            var expected = ReadValue(Path.Combine(data, $"output_{k}.pb"));
            var actual = result[name];
            Assert.True(expected.Type == actual.Type, $"{test}/{name}: element type {actual.Type}, expected {expected.Type}");
            Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{test}/{name}: shape {Shapes.ToString(actual.Shape)}, expected {Shapes.ToString(expected.Shape)}");
            if (expected.IsFloat)
            {
                var e = expected.ToFloatArray();
                var a = actual.ToFloatArray();
                for (int i = 0; i < e.Length; i++)
                {
                    bool ok = float.IsNaN(e[i]) ? float.IsNaN(a[i])
                        : float.IsInfinity(e[i]) ? e[i] == a[i]
                        : Math.Abs((double)a[i] - e[i]) <= 1e-7 + 1e-3 * Math.Abs(e[i]);
                    Assert.True(ok, $"{test}/{name}[{i}]: {a[i]:R}, expected {e[i]:R}");
                }
            }
            else Assert.Equal(expected.Ints!, actual.Ints!);
        }
    }

    internal static OnnxValue ReadValue(string file) =>
        OnnxValue.FromProto(TensorProto.Parser.ParseFrom(File.ReadAllBytes(file)), file);

    [Fact]
    public void ExclusionsAreCurrentAndEverySupportedOpHasConformanceTests()
    {
        RequireData();
        var tests = SupportedTests();
        var names = tests.Select(t => t.Test).ToHashSet();
        foreach (var (test, reason) in Excluded)
        {
            Assert.True(names.Contains(test), $"Excluded test '{test}' ({reason}) is no longer selected: remove it from the list.");
            // The reason must be real: loading its inputs/outputs or running it fails.
            Assert.ThrowsAny<Exception>(() => OperatorTestPasses(test));
        }
        var perOp = OnnxOps.Supported.Keys.ToDictionary(op => op, _ => 0);
        foreach (var (test, ops) in tests)
            if (!Excluded.ContainsKey(test))
                foreach (var op in ops) perOp[op]++;
        foreach (var (op, count) in perOp.OrderBy(p => p.Key, StringComparer.Ordinal))
            output.WriteLine($"{op}: {count} conformance tests");
        output.WriteLine($"total: {tests.Count - Excluded.Count} tests run, {Excluded.Count} excluded");
        var untested = perOp.Where(p => p.Value == 0).Select(p => p.Key).ToList();
        Assert.True(untested.Count == 0, $"Supported ops without a conformance test: {string.Join(", ", untested)}");
    }
}
