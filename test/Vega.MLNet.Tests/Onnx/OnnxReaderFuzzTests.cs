using Google.Protobuf;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Onnx;

/// <summary>
/// Seeded fuzzing of the ONNX reader and the interpreter's load: mutated model bytes (byte-level) and mutated graphs
/// (op types, inputs, attributes, initializers, opsets, graph inputs, node order) of ONNX's own node-test models, a
/// ResNet-style graph and a fixture text tower. Every mutant must parse and compile, or fail with
/// <see cref="InvalidDataException"/> naming the model (the documented load error); a compiled mutant run once with
/// generated feeds may also fail with <see cref="ArgumentException"/> (feeds that do not match its declared inputs,
/// the documented run error). Nothing else escapes, nothing hangs, no tensor beyond the element limit is allocated.
/// </summary>
public sealed class OnnxReaderFuzzTests
{
    private const long Limit = 1 << 22; // OnnxInterpreterOptions.MaxTensorElements for the mutants (16 MiB of float32)

    private static List<(string Name, ModelProto Model)> Seeds(int conformanceModels)
    {
        Assert.True(Directory.Exists(OnnxConformanceTests.DataRoot), $"ONNX's node tests are missing at {OnnxConformanceTests.DataRoot} (bash scripts/setup.sh --test).");
        var seeds = new List<(string, ModelProto)> { ("resnet-style", ConvNetOpsTests.ResNetStyle(smooth: false)) };
        var tests = OnnxConformanceTests.SupportedTests().Where(t => !OnnxConformanceTests.Excluded.ContainsKey(t.Test)).ToList();
        // An even spread over the supported node tests (every op family).
        for (int k = 0; k < conformanceModels; k++)
        {
            var (test, _) = tests[(int)((long)k * tests.Count / conformanceModels)];
            seeds.Add((test, OnnxModelFile.Load(Path.Combine(OnnxConformanceTests.DataRoot, test, "model.onnx"))));
        }
        return seeds;
    }

    private static readonly long[] InterestingInts = [0, 1, -1, 2, -2, 3, 7, 64, 255, 65536, int.MaxValue, int.MinValue, long.MaxValue, long.MinValue, 1L << 31, 1L << 40];
    private static readonly float[] InterestingFloats = [0f, -0f, 1f, -1f, 0.5f, 1e-30f, 1e30f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon];
    private static readonly string[] InterestingStrings = ["", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "constant", "reflect", "edge", "wrap", "bogus", "\u0000", "é"];
    private static readonly string[] AttributeNames = ["axis", "axes", "keepdims", "perm", "to", "kernel_shape", "pads", "strides", "dilations", "mode", "value", "epsilon",
        "transA", "transB", "alpha", "beta", "group", "auto_pad", "ceil_mode", "count_include_pad", "training_mode", "spatial", "select_last_index", "noop_with_empty_axes",
        "allowzero", "start", "end", "value_float", "value_ints", "min", "max", "starts", "ends", "split"];

    /// <summary>1 to 3 structural mutations of a copy of <paramref name="model"/>.</summary>
    private static ModelProto MutateGraph(ModelProto model, Rng rng, out string what)
    {
        var m = model.Clone();
        var g = m.Graph;
        var notes = new List<string>();
        var values = g.Input.Select(v => v.Name).Concat(g.Initializer.Select(t => t.Name)).Concat(g.Node.SelectMany(n => n.Output)).Distinct().ToList();
        string AnyValue() => values.Count == 0 || rng.NextInt(8) == 0 ? (rng.NextInt(2) == 0 ? "" : "no_such_value") : values[rng.NextInt(values.Count)];
        int count = 1 + rng.NextInt(3);
        for (int c = 0; c < count; c++)
        {
            NodeProto? node = g.Node.Count > 0 ? g.Node[rng.NextInt(g.Node.Count)] : null;
            switch (rng.NextInt(11))
            {
                case 0 when node is not null:
                    {
                        var ops = OnnxOps.Supported.Keys.Order(StringComparer.Ordinal).ToArray();
                        node.OpType = rng.NextInt(10) == 0 ? "NoSuchOp" : ops[rng.NextInt(ops.Length)];
                        notes.Add($"node {node.Name} op := {node.OpType}");
                        break;
                    }
                case 1 when node is not null && node.Input.Count > 0:
                    {
                        int k = rng.NextInt(node.Input.Count);
                        node.Input[k] = AnyValue();
                        notes.Add($"node {node.Name} input {k} := '{node.Input[k]}'");
                        break;
                    }
                case 2 when node is not null:
                    if (node.Input.Count > 0 && rng.NextInt(2) == 0)
                    {
                        node.Input.RemoveAt(rng.NextInt(node.Input.Count));
                        notes.Add($"node {node.Name} drops an input");
                    }
                    else
                    {
                        node.Input.Add(AnyValue());
                        notes.Add($"node {node.Name} gains an input");
                    }
                    break;
                case 3 when node is not null && node.Attribute.Count > 0:
                    {
                        var a = node.Attribute[rng.NextInt(node.Attribute.Count)];
                        MutateAttribute(a, rng);
                        notes.Add($"node {node.Name} attribute {a.Name} mutated");
                        break;
                    }
                case 4 when node is not null:
                    {
                        var a = new AttributeProto { Name = AttributeNames[rng.NextInt(AttributeNames.Length)] };
                        a.Type = (AttributeProto.Types.AttributeType)(1 + rng.NextInt(8));
                        MutateAttribute(a, rng);
                        node.Attribute.Add(a);
                        notes.Add($"node {node.Name} gains attribute {a.Name} ({a.Type})");
                        break;
                    }
                case 5 when node is not null && node.Attribute.Count > 0:
                    node.Attribute.RemoveAt(rng.NextInt(node.Attribute.Count));
                    notes.Add($"node {node.Name} loses an attribute");
                    break;
                case 6 when g.Initializer.Count > 0:
                    {
                        var t = g.Initializer[rng.NextInt(g.Initializer.Count)];
                        MutateTensor(t, rng);
                        notes.Add($"initializer {t.Name} mutated");
                        break;
                    }
                case 7 when g.Node.Count > 0:
                    {
                        int a = rng.NextInt(g.Node.Count);
                        switch (rng.NextInt(3))
                        {
                            case 0: g.Node.RemoveAt(a); notes.Add($"node {a} removed"); break;
                            case 1: g.Node.Insert(rng.NextInt(g.Node.Count + 1), g.Node[a].Clone()); notes.Add($"node {a} duplicated"); break;
                            default:
                                int b = rng.NextInt(g.Node.Count);
                                (g.Node[a], g.Node[b]) = (g.Node[b], g.Node[a]);
                                notes.Add($"nodes {a} and {b} swapped");
                                break;
                        }
                        break;
                    }
                case 8:
                    {
                        long[] versions = [0, 1, 6, 7, 9, 10, 11, 12, 13, 14, 17, 18, 19, 99, -1];
                        var o = m.OpsetImport.FirstOrDefault(x => x.Domain is "" or "ai.onnx");
                        long v = versions[rng.NextInt(versions.Length)];
                        if (o is not null) o.Version = v;
                        if (rng.NextInt(6) == 0 && m.OpsetImport.Count > 0) { m.OpsetImport[0].Domain = "com.example"; notes.Add("opset domain changed"); }
                        notes.Add($"opset := {v}");
                        break;
                    }
                case 9 when g.Input.Count > 0:
                    {
                        var input = g.Input[rng.NextInt(g.Input.Count)];
                        if (input.Type?.TensorType is { } tt)
                        {
                            if (rng.NextInt(2) == 0) tt.ElemType = rng.NextInt(18);
                            else if (tt.Shape is { } shape && shape.Dim.Count > 0)
                            {
                                var d = shape.Dim[rng.NextInt(shape.Dim.Count)];
                                if (rng.NextInt(3) == 0) d.DimParam = "n";
                                else d.DimValue = InterestingInts[rng.NextInt(InterestingInts.Length)];
                            }
                        }
                        notes.Add($"graph input {input.Name} type mutated");
                        break;
                    }
                default:
                    if (g.Output.Count > 0)
                    {
                        g.Output[rng.NextInt(g.Output.Count)].Name = AnyValue();
                        notes.Add("a graph output renamed");
                    }
                    break;
            }
        }
        what = string.Join("; ", notes);
        return m;
    }

    private static void MutateAttribute(AttributeProto a, Rng rng)
    {
        switch (a.Type)
        {
            case AttributeProto.Types.AttributeType.Int: a.I = InterestingInts[rng.NextInt(InterestingInts.Length)]; break;
            case AttributeProto.Types.AttributeType.Float: a.F = InterestingFloats[rng.NextInt(InterestingFloats.Length)]; break;
            case AttributeProto.Types.AttributeType.String: a.S = ByteString.CopyFromUtf8(InterestingStrings[rng.NextInt(InterestingStrings.Length)]); break;
            case AttributeProto.Types.AttributeType.Ints:
                a.Ints.Clear();
                for (int k = rng.NextInt(6); k > 0; k--) a.Ints.Add(rng.NextInt(3) == 0 ? InterestingInts[rng.NextInt(InterestingInts.Length)] : rng.NextInt(5) - 1);
                break;
            case AttributeProto.Types.AttributeType.Floats:
                a.Floats.Clear();
                for (int k = rng.NextInt(6); k > 0; k--) a.Floats.Add(InterestingFloats[rng.NextInt(InterestingFloats.Length)]);
                break;
            case AttributeProto.Types.AttributeType.Tensor:
                a.T ??= TensorProtoData.FromFloats("t", [1], [1f]);
                MutateTensor(a.T, rng);
                break;
            default:
                a.I = InterestingInts[rng.NextInt(InterestingInts.Length)];
                a.Type = AttributeProto.Types.AttributeType.Int;
                break;
        }
    }

    private static void MutateTensor(TensorProto t, Rng rng)
    {
        switch (rng.NextInt(4))
        {
            case 0:
                if (t.Dims.Count > 0) t.Dims[rng.NextInt(t.Dims.Count)] = InterestingInts[rng.NextInt(InterestingInts.Length)];
                else t.Dims.Add(rng.NextInt(4));
                break;
            case 1: t.DataType = rng.NextInt(18); break;
            case 2:
                if (!t.RawData.IsEmpty) t.RawData = ByteString.CopyFrom(t.RawData.Span[..rng.NextInt(t.RawData.Length)]);
                else t.RawData = ByteString.CopyFrom(new byte[rng.NextInt(16)]);
                break;
            default:
                t.DataLocation = TensorProto.Types.DataLocation.External;
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = rng.NextInt(2) == 0 ? "../../etc/passwd" : "missing.bin" });
                break;
        }
    }

    /// <summary>Feeds for every declared input: small shapes (symbolic dimensions 2), small values (valid indices mostly).</summary>
    private static Dictionary<string, OnnxValue> Feeds(OnnxInterpreter interp, Rng rng)
    {
        var feeds = new Dictionary<string, OnnxValue>();
        foreach (var input in interp.Inputs)
        {
            var shape = input.Dims is null ? [2] : input.Dims.Select(d => d is int v ? Math.Clamp(v, 0, 8) : 2).ToArray();
            long n = Shapes.Product(shape);
            if (input.Type is Vega.MLNet.Runtime.OnnxElementType.Float or Vega.MLNet.Runtime.OnnxElementType.Undefined)
            {
                var values = new float[n];
                rng.FillNormal(values);
                feeds[input.Name] = OnnxValue.FromTensor(Tensor.Wrap(values, shape));
            }
            else
            {
                var v = new long[n];
                for (long k = 0; k < n; k++) v[k] = OnnxValue.Wrap(rng.NextInt(3), input.Type);
                feeds[input.Name] = OnnxValue.FromInts(v, shape, input.Type);
            }
        }
        return feeds;
    }

    /// <summary>Parse, compile and run a mutant; null when it behaved.</summary>
    private static string? Exercise(Func<ModelProto> parse, string name, Rng rng, ref int compiled)
    {
        OnnxInterpreter interp;
        try
        {
            var model = parse();
            interp = OnnxInterpreter.Create(model, name, new OnnxInterpreterOptions { MaxTensorElements = Limit });
        }
        catch (InvalidDataException e)
        {
            return e.Message.Contains(name, StringComparison.Ordinal) ? null : $"the load error does not name the model: {e.Message}";
        }
        catch (Exception e)
        {
            return "load: " + Fuzz.Undocumented(e);
        }
        compiled++;
        try
        {
            using var scope = new TensorScope();
            var result = interp.Run(Feeds(interp, rng));
            foreach (var (key, v) in result)
                if (v.Length > Limit) return $"output '{key}' has {v.Length} elements, above the limit";
            return null;
        }
        catch (Exception e)
        {
            string? u = Fuzz.Undocumented(e, typeof(InvalidDataException), typeof(ArgumentException));
            return u is null ? null : "run: " + u;
        }
    }

    [Fact]
    public void MutatedModelBytesParseAndCompileOrFailWithInvalidDataException()
    {
        var seeds = Seeds(60).Select(s => (s.Name, Bytes: s.Model.ToByteArray())).ToList();
        var rng = new Rng(Fuzz.Seed(17));
        int compiled = 0;
        Fuzz.Run(Fuzz.Iterations(4000), TimeSpan.FromSeconds(Fuzz.Iterations(55)), (i, describe) =>
        {
            var (seedName, bytes) = seeds[i % seeds.Count];
            var mutant = Fuzz.MutateBytes(bytes, rng, out var what);
            describe($"{seedName}: {what}");
            string name = $"mutant-{i}.onnx";
            return Exercise(() => OnnxModelFile.Parse(mutant, name), name, rng, ref compiled);
        });
        Assert.True(compiled > 100, $"only {compiled} mutants compiled: the mutations should exercise compilation and runs too");
    }

    [Fact]
    public void MutatedGraphsCompileOrFailWithInvalidDataException()
    {
        var seeds = Seeds(120);
        var rng = new Rng(Fuzz.Seed(23));
        int compiled = 0;
        Fuzz.Run(Fuzz.Iterations(6000), TimeSpan.FromSeconds(Fuzz.Iterations(55)), (i, describe) =>
        {
            var (seedName, model) = seeds[i % seeds.Count];
            var mutant = MutateGraph(model, rng, out var what);
            describe($"{seedName}: {what}");
            string name = $"mutant-{i}.onnx";
            // Through the bytes, as a reader sees a file.
            var bytes = mutant.ToByteArray();
            return Exercise(() => OnnxModelFile.Parse(bytes, name), name, rng, ref compiled);
        });
        Assert.True(compiled > 200, $"only {compiled} mutants compiled");
    }

    [Fact]
    public void MutatedFixtureTextTowersCompileOrFailWithInvalidDataException()
    {
        // A real tower (223 nodes, a 49408 × 64 token table): fewer, more expensive iterations.
        var tower = OnnxModelFile.Load(Path.Combine(Fixtures.Onnx, "hf", "text_model.onnx"));
        var rng = new Rng(Fuzz.Seed(29));
        int compiled = 0;
        Fuzz.Run(Fuzz.Iterations(30), TimeSpan.FromSeconds(Fuzz.Iterations(55)), (i, describe) =>
        {
            var mutant = MutateGraph(tower, rng, out var what);
            describe(what);
            string name = $"tower-mutant-{i}.onnx";
            return Exercise(() => mutant, name, rng, ref compiled);
        });
        Assert.True(compiled > 0);
    }

    [Fact]
    public void DamagedExternalDataReferencesAreInvalidDataOrAMissingFile()
    {
        string dir = Fixtures.TempDir("vega-ext-fuzz");
        string path = Path.Combine(dir, "model.onnx");
        var model = ConvNetOpsTests.ResNetStyle(false);
        OnnxModelFile.MoveToExternalData(model, path, "weights.bin", minimumBytes: 64);
        OnnxModelFile.Save(model, path);
        OnnxInterpreter.Load(path); // intact
        string[] values = ["", "-1", "abc", "1e3", "99999999999999999999", "9223372036854775807", "4096", "0", " 12", "../model.onnx", "/etc/passwd",
            "../../weights.bin", "weights.bin\u0000x", "missing.bin", "sub/../weights.bin", Path.GetFileName(dir) + "x/weights.bin"];
        var rng = new Rng(Fuzz.Seed(31));
        Fuzz.Run(Fuzz.Iterations(300), TimeSpan.FromSeconds(Fuzz.Iterations(50)), (i, describe) =>
        {
            var m = model.Clone();
            var external = m.Graph.Initializer.Where(t => t.ExternalData.Count > 0).ToList();
            var t = external[rng.NextInt(external.Count)];
            var entry = t.ExternalData[rng.NextInt(t.ExternalData.Count)];
            entry.Value = values[rng.NextInt(values.Length)];
            describe($"{t.Name}.{entry.Key} := '{entry.Value}'");
            string mutant = Path.Combine(dir, $"mutant-{i}.onnx");
            OnnxModelFile.Save(m, mutant);
            try
            {
                OnnxInterpreter.Load(mutant);
                return null;
            }
            catch (InvalidDataException e) { return e.Message.Contains(mutant, StringComparison.Ordinal) ? null : $"the error does not name the model: {e.Message}"; }
            catch (FileNotFoundException) { return null; }
            catch (Exception e) { return Fuzz.Undocumented(e); }
            finally { File.Delete(mutant); }
        });
    }

    [Fact]
    public void ALoadErrorFromAFileNamesTheFile()
    {
        string dir = Fixtures.TempDir();
        string path = Path.Combine(dir, "broken.onnx");
        var bytes = ConvNetOpsTests.ResNetStyle(false).ToByteArray();
        File.WriteAllBytes(path, bytes[..(bytes.Length / 3)]);
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => OnnxInterpreter.Load(path)).Message);
    }
}
