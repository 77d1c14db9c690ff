using System.Buffers.Binary;
using System.Text;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>The safetensors format, checked against byte layouts written out here from the format specification.</summary>
public sealed class SafeTensorsTests
{
    private static byte[] File(string header, byte[] data, bool pad = true)
    {
        var h = Encoding.UTF8.GetBytes(header);
        int padding = pad ? (8 - h.Length % 8) % 8 : 0;
        var bytes = new byte[8 + h.Length + padding + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(h.Length + padding));
        h.CopyTo(bytes, 8);
        for (int i = 0; i < padding; i++) bytes[8 + h.Length + i] = (byte)' ';
        data.CopyTo(bytes, 8 + h.Length + padding);
        return bytes;
    }

    private static byte[] F32(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    [Fact]
    public void WritesTheReferenceLayoutByteForByte()
    {
        // What the reference library writes for {"b": [1, 2], "a": [[3]]} with metadata {"format": "pt"}: compact JSON,
        // __metadata__ first, tensors in name order with contiguous offsets, header padded with spaces to 8 bytes.
        string dir = Fixtures.TempDir();
        string path = Path.Combine(dir, "t.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["b"] = Tensor.FromArray([1f, 2f], 2), ["a"] = Tensor.FromArray([3f], 1, 1) },
            new Dictionary<string, string> { ["format"] = "pt" });
        string header = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]}," +
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        var expected = File(header, F32(3f, 1f, 2f));
        Assert.Equal(expected, System.IO.File.ReadAllBytes(path));
        Assert.Equal(0, (expected.Length - 12) % 8);
    }

    [Fact]
    public void ReadsHandWrittenFilesWithOtherDtypesAndOrdering()
    {
        // Pretty-printed header, entries not in data order, F16 and BF16 data, no padding, no metadata.
        string header = "{\n  \"x16\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [8, 12]},\n" +
                        "  \"y\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [12, 14]},\n" +
                        "  \"z\": {\"dtype\": \"F32\", \"shape\": [1, 2], \"data_offsets\": [0, 8]}\n}";
        var data = new List<byte>(F32(1.5f, -2f));
        data.AddRange([0x00, 0x38, 0x00, 0xC2]); // F16 0.5 (0x3800), −3 (0xC200), little-endian
        data.AddRange([0x49, 0x40]);             // BF16 0x4049 = 3.140625
        string dir = Fixtures.TempDir();
        string path = Path.Combine(dir, "hand.safetensors");
        System.IO.File.WriteAllBytes(path, File(header, data.ToArray(), pad: false));
        var c = SafeTensors.Load(path);
        Assert.Empty(c.Metadata);
        Assert.Equal(new[] { 1, 2 }, c.Tensors["z"].Shape);
        Assert.Equal(new[] { 1.5f, -2f }, c.Tensors["z"].ToArray());
        Assert.Equal(new[] { 0.5f, -3f }, c.Tensors["x16"].ToArray());
        Assert.Empty(c.Tensors["y"].Shape);
        Assert.Equal(3.140625f, c.Tensors["y"].Item());
        Assert.Equal("x16", c.Tensors["x16"].Name);
    }

    [Fact]
    public void RoundTripIsBitExact()
    {
        var rng = new Rng(5);
        var special = new[]
        {
            BitConverter.Int32BitsToSingle(0x7FC00123), BitConverter.Int32BitsToSingle(unchecked((int)0xFF800001)), -0f, 0f,
            float.Epsilon, -float.Epsilon, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, float.MinValue, 1e-40f,
        };
        var big = new float[3 * 50 * 7];
        rng.FillNormal(big);
        var tensors = new Dictionary<string, Tensor>
        {
            ["special"] = Tensor.FromArray(special, special.Length),
            ["layers.0.weight"] = Tensor.FromArray(big, 3, 50, 7),
            ["scalar"] = Tensor.Scalar(-1.25f),
            ["empty"] = Tensor.Zeros(0, 3),
            ["view"] = Ops.SwapAxes(Tensor.FromArray(big[..6], 2, 3), 0, 1), // a strided view is written in row-major order
            ["名前"] = Tensor.FromArray([7f], 1),
        };
        string path = Path.Combine(Fixtures.TempDir(), "rt.safetensors");
        var meta = new Dictionary<string, string> { ["epoch"] = "3", ["note"] = "a \"quoted\" value" };
        SafeTensors.Save(path, tensors, meta);
        var back = SafeTensors.Load(path);
        Assert.Equal(meta, back.Metadata);
        Assert.Equal(tensors.Keys.Order(), back.Tensors.Keys.Order());
        foreach (var (name, t) in tensors)
        {
            var r = back.Tensors[name];
            Assert.Equal(t.Shape, r.Shape);
            var expectedBits = t.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
            var actualBits = r.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
            Assert.Equal(expectedBits, actualBits);
        }
    }

    [Fact]
    public void LoadIntoRestoresNamedParameters()
    {
        var w = Tensor.Parameter([1f, 2f, 3f, 4f], [2, 2], "w");
        var b = Tensor.Parameter([5f], [1], "b");
        string path = Path.Combine(Fixtures.TempDir(), "p.safetensors");
        SafeTensors.SaveParameters(path, [w, b]);
        var w2 = Tensor.Parameter([2, 2], "w");
        var b2 = Tensor.Parameter([1], "b");
        SafeTensors.LoadInto(path, [w2, b2]);
        Assert.Equal(w.ToArray(), w2.ToArray());
        Assert.Equal(b.ToArray(), b2.ToArray());
        var wrong = Tensor.Parameter([3], "w");
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.LoadInto(path, [wrong]));
        Assert.Contains("shape", e.Message);
        Assert.Throws<InvalidDataException>(() => SafeTensors.LoadInto(path, [Tensor.Parameter([1], "missing")]));
    }

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "truncated", "fewer than the 8-byte" },
        { "header past end", "runs past the end" },
        { "bad json", "not valid JSON" },
        { "out of range", "outside the data section" },
        { "size mismatch", "data_offsets span" },
        { "hole", "must tile the data section" },
        { "dtype", "only F32, F16, BF16 and F64" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadFilesAreRejectedWithAReason(string kind, string message)
    {
        string T(string dtype, string shape, int b, int e) => $"{{\"t\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{b},{e}]}}}}";
        byte[] bytes = kind switch
        {
            "truncated" => [1, 2, 3],
            "header past end" => File(T("F32", "[1]", 0, 4), F32(1))[..20],
            "bad json" => File("{\"t\": [", F32(1)),
            "out of range" => File(T("F32", "[2]", 0, 8), F32(1)),
            "size mismatch" => File(T("F32", "[2]", 0, 4), F32(1)),
            "hole" => File(T("F32", "[1]", 4, 8), F32(1, 2)),
            _ => File(T("I64", "[1]", 0, 8), F32(1, 2)),
        };
        string path = Path.Combine(Fixtures.TempDir(), "bad.safetensors");
        System.IO.File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(message, ex.Message);
    }
}
