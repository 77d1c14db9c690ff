using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Vega.MLNet.Tensors;

/// <summary>
/// Reads and writes the safetensors format (huggingface/safetensors): an unsigned 64-bit little-endian header length
/// N, N bytes of UTF-8 JSON, then the raw tensor data. The header maps each name to
/// <c>{"dtype":"F32","shape":[...],"data_offsets":[begin,end]}</c> (byte offsets into the data section) and may hold
/// <c>"__metadata__"</c>: a string→string map. Writing follows the reference library: compact JSON with
/// <c>__metadata__</c> first and tensors in name order (all F32, so alignment sorting changes nothing), data laid out
/// contiguously in that order, header padded with spaces to a multiple of 8 bytes. Reading accepts F32, F16, BF16 and
/// F64 (converted to float32) and validates like the reference: offsets in bounds, sizes matching shape × dtype, and
/// the tensors tiling the data section without holes or overlaps.
/// </summary>
internal static class SafeTensors
{
    private const long MaxHeader = 100_000_000;

    /// <summary>Writes <paramref name="tensors"/> (name → tensor) and optional metadata to <paramref name="path"/>.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var items = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in items)
        {
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("A safetensors entry needs a non-empty name.", nameof(tensors));
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor.", nameof(tensors));
            if (!names.Add(name)) throw new ArgumentException($"Tensor name '{name}' appears twice.", nameof(tensors));
            ArgumentNullException.ThrowIfNull(t, name);
        }
        items.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));

        using var headerStream = new MemoryStream();
        using (var w = new Utf8JsonWriter(headerStream, new JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in items)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += (long)t.Length * sizeof(float);
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        var header = headerStream.ToArray();
        int pad = (int)((8 - (header.Length % 8)) % 8);

        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(header.Length + pad));
        fs.Write(len);
        fs.Write(header);
        for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
        var buffer = new float[1 << 14];
        foreach (var (_, t) in items)
        {
            var c = Kernels.Contiguous(t).Span;
            for (int s = 0; s < c.Length; s += buffer.Length)
            {
                int n = Math.Min(buffer.Length, c.Length - s);
                var chunk = c.Slice(s, n);
                if (BitConverter.IsLittleEndian) fs.Write(MemoryMarshal.AsBytes(chunk));
                else
                {
                    for (int i = 0; i < n; i++) buffer[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(chunk[i])));
                    fs.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
                }
            }
        }
    }

    /// <summary>Writes named tensors (each needs <see cref="Tensor.Name"/>).</summary>
    public static void SaveParameters(string path, IEnumerable<Tensor> named, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, named.Select((t, i) => new KeyValuePair<string, Tensor>(t.Name ?? throw new ArgumentException($"Tensor {i} ({t.ShapeString}) has no Name.", nameof(named)), t)), metadata);

    /// <summary>The contents of a safetensors file: persistent tensors by name, plus the metadata map.</summary>
    public sealed record Contents(IReadOnlyDictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

    /// <summary>Reads every tensor of <paramref name="path"/> as float32 (persistent, not owned by any scope).</summary>
    public static Contents Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The safetensors file '{path}' does not exist.", path);
        var bytes = File.ReadAllBytes(path);
        return Parse(bytes, path);
    }

    internal static Contents Parse(byte[] bytes, string path)
    {
        string Bad(string why) => $"'{path}' is not a valid safetensors file: {why}";
        if (bytes.Length < 8) throw new InvalidDataException(Bad($"it has {bytes.Length} bytes, fewer than the 8-byte header length."));
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > MaxHeader) throw new InvalidDataException(Bad($"the header length {n} exceeds {MaxHeader} bytes."));
        if ((ulong)bytes.Length < 8 + n) throw new InvalidDataException(Bad($"the header length {n} runs past the end of the file ({bytes.Length} bytes)."));
        int dataStart = 8 + (int)n;
        long dataLength = bytes.Length - dataStart;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException(Bad($"the header is not valid JSON ({e.Message})."), e);
        }
        using (doc)
        {
            try
            {
                return ParseHeader(doc, bytes, dataStart, dataLength, Bad);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or OverflowException)
            {
                // JsonElement accessors throw these for text that is not valid UTF-8 or values of the wrong kind.
                throw new InvalidDataException(Bad($"the header cannot be read ({e.Message})."), e);
            }
        }
    }

    private static Contents ParseHeader(JsonDocument doc, byte[] bytes, int dataStart, long dataLength, Func<string, string> bad)
    {
        string Bad(string why) => bad(why);
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException(Bad("the header is not a JSON object."));
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var spans = new List<(long Begin, long End, string Name)>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException(Bad("__metadata__ is not an object."));
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw new InvalidDataException(Bad($"metadata value '{m.Name}' is not a string."));
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                var e = prop.Value;
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("dtype", out var dt) || !e.TryGetProperty("shape", out var sh) || !e.TryGetProperty("data_offsets", out var off))
                    throw new InvalidDataException(Bad($"tensor '{prop.Name}' lacks dtype, shape or data_offsets."));
                if (dt.ValueKind != JsonValueKind.String) throw new InvalidDataException(Bad($"the dtype of '{prop.Name}' is not a string."));
                string dtype = dt.GetString() ?? "";
                int size = dtype switch { "F32" => 4, "F16" => 2, "BF16" => 2, "F64" => 8, _ => 0 };
                if (size == 0) throw new InvalidDataException(Bad($"tensor '{prop.Name}' has dtype '{dtype}'; only F32, F16, BF16 and F64 can be read as float32."));
                if (sh.ValueKind != JsonValueKind.Array) throw new InvalidDataException(Bad($"the shape of '{prop.Name}' is not an array."));
                var shape = new int[sh.GetArrayLength()];
                long count = 1;
                int k = 0;
                foreach (var d in sh.EnumerateArray())
                {
                    if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0 || v > int.MaxValue) throw new InvalidDataException(Bad($"the shape of '{prop.Name}' has an invalid dimension."));
                    shape[k++] = (int)v;
                    count *= v;
                    if (count > int.MaxValue) throw new InvalidDataException(Bad($"'{prop.Name}' has more than {int.MaxValue} elements."));
                }
                if (off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2) throw new InvalidDataException(Bad($"data_offsets of '{prop.Name}' is not [begin, end]."));
                if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number ||
                    !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin || end > dataLength)
                    throw new InvalidDataException(Bad($"data_offsets of '{prop.Name}' ({off}) are outside the data section of {dataLength} bytes."));
                if (end - begin != count * size)
                    throw new InvalidDataException(Bad($"'{prop.Name}' has shape {Shapes.ToString(shape)} × {size} bytes = {count * size} bytes but data_offsets span {end - begin}."));
                if (tensors.ContainsKey(prop.Name)) throw new InvalidDataException(Bad($"tensor '{prop.Name}' appears twice in the header."));
                spans.Add((begin, end, prop.Name));
                var t = Tensor.Create(shape, zero: false, persistent: true);
                Decode(bytes.AsSpan(dataStart + (int)begin, (int)(end - begin)), dtype, t.Span);
                t.Name = prop.Name;
                tensors[prop.Name] = t;
            }
            spans.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            long expected = 0;
            foreach (var (b, e, name) in spans)
            {
                if (b != expected) throw new InvalidDataException(Bad($"the data of '{name}' starts at byte {b}, expected {expected} (tensors must tile the data section)."));
                expected = e;
            }
            if (expected != dataLength) throw new InvalidDataException(Bad($"the tensors cover {expected} bytes of a {dataLength}-byte data section."));
            return new Contents(tensors, metadata);
        }
    }

    private static void Decode(ReadOnlySpan<byte> src, string dtype, Span<float> dst)
    {
        switch (dtype)
        {
            case "F32":
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(i * 4)..]);
                break;
            case "F64":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(i * 8)..]);
                break;
            case "F16":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(i * 2)..]);
                break;
            case "BF16":
                for (int i = 0; i < dst.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(i * 2)..]) << 16);
                break;
        }
    }

    /// <summary>
    /// Copies the values stored in <paramref name="path"/> into <paramref name="parameters"/> by <see cref="Tensor.Name"/>;
    /// every parameter must be present with the same shape.
    /// </summary>
    public static void LoadInto(string path, IEnumerable<Tensor> parameters)
    {
        var contents = Load(path);
        foreach (var p in parameters)
        {
            string name = p.Name ?? throw new ArgumentException($"A parameter of shape {p.ShapeString} has no Name.", nameof(parameters));
            if (!contents.Tensors.TryGetValue(name, out var t))
                throw new InvalidDataException($"'{path}' has no tensor named '{name}' (it has: {string.Join(", ", contents.Tensors.Keys.Take(20))}).");
            if (!Shapes.SameShape(t.Shape, p.Shape))
                throw new InvalidDataException($"'{path}': tensor '{name}' has shape {t.ShapeString}, the parameter {p.ShapeString}.");
            t.Span.CopyTo(p.Span);
        }
    }
}
