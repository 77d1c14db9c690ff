using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>
/// Seeded fuzzing of the safetensors reader: mutated files (byte-level mutations, and header-aware ones: numbers,
/// dtypes, the length prefix, duplicated keys) either load — with every tensor's data matching its shape — or fail
/// with <see cref="InvalidDataException"/> naming the file (the documented error); nothing else escapes, nothing
/// hangs.
/// </summary>
public sealed partial class SafeTensorsFuzzTests
{
    private static byte[] Seed(int which)
    {
        string dir = Fixtures.TempDir("vega-st-fuzz");
        string path = Path.Combine(dir, "seed.safetensors");
        if (which == 0)
        {
            var rng = new Rng(5);
            var a = Tensor.Empty(3, 4);
            rng.FillNormal(a.Span);
            SafeTensors.Save(path, [new("param.0", a), new("bias", Tensor.FromArray([1f, 2f, 3f, 4f, 5f], 5)), new("scalar", Tensor.Scalar(7f)), new("empty", Tensor.Zeros(0, 3))],
                new Dictionary<string, string> { ["fingerprint"] = "abc", ["epochs_done"] = "3", ["sha256"] = new string('0', 64) });
            return File.ReadAllBytes(path);
        }
        // Hand-written header with the other dtypes the reader accepts.
        var data = new List<byte>();
        data.AddRange(BitConverter.GetBytes(1.5).Concat(BitConverter.GetBytes(-2.25)));                          // F64 [2]
        data.AddRange(BitConverter.GetBytes((Half)0.5).Concat(BitConverter.GetBytes((Half)(-3))));                // F16 [2]
        data.AddRange(new byte[] { 0x80, 0x3F, 0x00, 0xC0 });                                                     // BF16 [2] = 1, −2
        string header = "{\"__metadata__\":{\"format\":\"pt\"},\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}," +
                        "\"h\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[16,20]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]}}";
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Count];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    [GeneratedRegex("-?[0-9]+")]
    private static partial Regex Number();

    private static readonly string[] InterestingNumbers = ["0", "-1", "1", "7", "8", "24", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "18446744073709551615", "99999999999999999999999", "1.5", "1e308", "-0"];
    private static readonly string[] Dtypes = ["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "", "f32", "F32 "];

    /// <summary>A header-aware mutation: a number, a dtype, the length prefix, a duplicated entry, or a wrong JSON kind.</summary>
    private static byte[] MutateHeader(byte[] file, Rng rng, out string what)
    {
        ulong len = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (len > (ulong)(file.Length - 8)) { what = "header length already broken"; return file; }
        string header = Encoding.UTF8.GetString(file, 8, (int)len);
        var rest = file[(8 + (int)len)..];
        switch (rng.NextInt(5))
        {
            case 0:
                {
                    var numbers = Number().Matches(header);
                    if (numbers.Count == 0) { what = "no number"; return file; }
                    var m = numbers[rng.NextInt(numbers.Count)];
                    string replacement = InterestingNumbers[rng.NextInt(InterestingNumbers.Length)];
                    header = header[..m.Index] + replacement + header[(m.Index + m.Length)..];
                    what = $"number at {m.Index} := {replacement}";
                    break;
                }
            case 1:
                {
                    var dtypes = Regex.Matches(header, "\"(F32|F16|BF16|F64)\"");
                    if (dtypes.Count == 0) { what = "no dtype"; return file; }
                    var m = dtypes[rng.NextInt(dtypes.Count)];
                    string d = Dtypes[rng.NextInt(Dtypes.Length)];
                    header = header[..m.Index] + "\"" + d + "\"" + header[(m.Index + m.Length)..];
                    what = $"dtype := '{d}'";
                    break;
                }
            case 2:
                {
                    ulong[] lengths = [0, 1, 7, len - 1, len + 1, len + 8, (ulong)file.Length, 100_000_000, 100_000_001, ulong.MaxValue, 1UL << 63];
                    var copy = (byte[])file.Clone();
                    ulong l = lengths[rng.NextInt(lengths.Length)];
                    BinaryPrimitives.WriteUInt64LittleEndian(copy, l);
                    what = $"length prefix := {l}";
                    return copy;
                }
            case 3:
                {
                    // A wrong JSON kind where a value is expected.
                    string[] kinds = ["null", "true", "\"x\"", "[]", "{}", "[1,2,3]", "{\"a\":1}", "[[1]]"];
                    var keys = Regex.Matches(header, "\"(dtype|shape|data_offsets|__metadata__|format|fingerprint)\":");
                    if (keys.Count == 0) { what = "no key"; return file; }
                    var m = keys[rng.NextInt(keys.Count)];
                    int valueStart = m.Index + m.Length;
                    int valueEnd = valueStart;
                    int depth = 0;
                    bool inString = false;
                    for (; valueEnd < header.Length; valueEnd++)
                    {
                        char c = header[valueEnd];
                        if (inString) { if (c == '"' && header[valueEnd - 1] != '\\') inString = false; if (depth == 0 && !inString) { valueEnd++; break; } continue; }
                        if (c == '"') { inString = true; continue; }
                        if (c is '[' or '{') depth++;
                        else if (c is ']' or '}') { if (depth == 0) break; depth--; if (depth == 0) { valueEnd++; break; } }
                        else if (c == ',' && depth == 0) break;
                    }
                    string kind = kinds[rng.NextInt(kinds.Length)];
                    header = header[..valueStart] + kind + header[valueEnd..];
                    what = $"value of {m.Value} := {kind}";
                    break;
                }
            default:
                {
                    // Duplicate the first tensor entry under the same name.
                    var entry = Regex.Match(header, ",\"[^\"_]+\":\\{[^{}]*\\}");
                    if (!entry.Success) { what = "no entry"; return file; }
                    header = header.Insert(entry.Index + entry.Length, entry.Value);
                    what = "duplicated entry " + entry.Value;
                    break;
                }
        }
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + rest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        rest.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    [Fact]
    public void MutatedFilesLoadOrFailWithInvalidDataExceptionNamingTheFile()
    {
        var seeds = new[] { Seed(0), Seed(1) };
        foreach (var s in seeds) SafeTensors.Parse(s, "seed"); // the seeds are valid
        var rng = new Rng(Fuzz.Seed(20261205));
        int loaded = 0, rejected = 0;
        Fuzz.Run(Fuzz.Iterations(6000), TimeSpan.FromSeconds(Fuzz.Iterations(50)), (i, describe) =>
        {
            var seed = seeds[i % seeds.Length];
            string what;
            byte[] bytes = rng.NextInt(2) == 0 ? Fuzz.MutateBytes(seed, rng, out what) : MutateHeader(seed, rng, out what);
            if (rng.NextInt(4) == 0)
            {
                bytes = Fuzz.MutateBytes(bytes, rng, out var second);
                what += "; " + second;
            }
            describe(what);
            string name = $"fuzz-{i}.safetensors";
            try
            {
                var contents = SafeTensors.Parse(bytes, name);
                foreach (var (key, t) in contents.Tensors)
                    if (t.Length != Shapes.Product(t.Shape) || t.Name != key) return $"tensor '{key}' is inconsistent ({t.ShapeString}, {t.Length} values)";
                loaded++;
                return null;
            }
            catch (InvalidDataException e)
            {
                rejected++;
                return e.Message.Contains(name, StringComparison.Ordinal) ? null : $"the error does not name the file: {e.Message}";
            }
            catch (Exception e)
            {
                return Fuzz.Undocumented(e);
            }
        });
        Assert.True(rejected > 1000 && loaded > 100, $"{loaded} mutants loaded, {rejected} rejected: the mutations should exercise both outcomes");
    }
}
