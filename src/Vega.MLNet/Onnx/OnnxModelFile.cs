using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>Reads and writes ONNX model files with the project's own protobuf subset, including tensors stored as
/// external data (ONNX "location / offset / length" entries relative to the model's folder).</summary>
internal static class OnnxModelFile
{
    public static ModelProto Load(string path, bool loadExternalData = true)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The ONNX model '{path}' does not exist.", path);
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable ONNX model (protobuf: {e.Message}). Re-export it or check that the file is complete.", e);
        }
        if (model.Graph is null)
            throw new InvalidDataException($"'{path}' has no graph: it is not an ONNX model.");
        if (loadExternalData) LoadExternalData(model, Path.GetDirectoryName(Path.GetFullPath(path))!, path);
        return model;
    }

    public static ModelProto Parse(ReadOnlySpan<byte> bytes, string nameForErrors)
    {
        try { return ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{nameForErrors}' is not a readable ONNX model (protobuf: {e.Message}).", e);
        }
    }

    public static void Save(ModelProto model, string path)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + ".tmp";
        using (var stream = File.Create(tmp)) model.WriteTo(stream);
        File.Move(tmp, full, overwrite: true);
    }

    /// <summary>Every tensor of the model: initializers and tensor attributes of nodes, in sub-graphs too.</summary>
    public static IEnumerable<TensorProto> AllTensors(GraphProto graph)
    {
        foreach (var t in graph.Initializer) yield return t;
        foreach (var node in graph.Node)
            foreach (var a in node.Attribute)
            {
                if (a.T is not null) yield return a.T;
                foreach (var t in a.Tensors) yield return t;
                if (a.G is not null) foreach (var t in AllTensors(a.G)) yield return t;
                foreach (var g in a.Graphs) foreach (var t in AllTensors(g)) yield return t;
            }
    }

    private static void LoadExternalData(ModelProto model, string directory, string modelPath)
    {
        foreach (var t in AllTensors(model.Graph))
        {
            if (t.DataLocation != TensorProto.Types.DataLocation.External) continue;
            string? location = null;
            long offset = 0, length = -1;
            foreach (var e in t.ExternalData)
            {
                switch (e.Key)
                {
                    case "location": location = e.Value; break;
                    case "offset" when !long.TryParse(e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out offset):
                    case "length" when !long.TryParse(e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out length):
                        throw new InvalidDataException($"Tensor '{t.Name}' in '{modelPath}' has an external-data {e.Key} '{e.Value}' that is not a non-negative integer.");
                }
            }
            if (string.IsNullOrEmpty(location) || location.Contains('\0'))
                throw new InvalidDataException($"Tensor '{t.Name}' in '{modelPath}' is stored externally but names no valid \"location\".");
            string file = Path.GetFullPath(Path.Combine(directory, location));
            if (!file.StartsWith(directory.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new InvalidDataException($"Tensor '{t.Name}' in '{modelPath}' points outside the model folder ('{location}').");
            if (!File.Exists(file))
                throw new FileNotFoundException($"The external data file '{file}' of tensor '{t.Name}' is missing; keep it beside the model.", file);
            using var stream = File.OpenRead(file);
            if (length < 0) length = stream.Length - offset;
            if (offset < 0 || length < 0 || offset > stream.Length || length > stream.Length - offset || length > int.MaxValue)
                throw new InvalidDataException($"Tensor '{t.Name}' in '{modelPath}' wants bytes {offset}..{offset + length} of '{file}', which has {stream.Length}.");
            var bytes = new byte[length];
            stream.Position = offset;
            stream.ReadExactly(bytes);
            t.RawData = ByteString.CopyFrom(bytes);
            t.ExternalData.Clear();
            t.ClearDataLocation();
        }
    }

    /// <summary>Moves every initializer of at least <paramref name="minimumBytes"/> into <paramref name="dataFile"/>
    /// (beside the model) as ONNX external data, each at a 4096-aligned offset.</summary>
    public static void MoveToExternalData(ModelProto model, string modelPath, string dataFile, int minimumBytes = 1024)
    {
        string path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, dataFile);
        using var stream = File.Create(path);
        foreach (var t in model.Graph.Initializer)
        {
            if (t.RawData.Length < minimumBytes) continue;
            long pad = (4096 - stream.Position % 4096) % 4096;
            stream.Write(new byte[pad]);
            long offset = stream.Position;
            t.RawData.WriteTo(stream);
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataFile });
            t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
            t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString(CultureInfo.InvariantCulture) });
            t.DataLocation = TensorProto.Types.DataLocation.External;
            t.ClearRawData();
        }
    }
}

/// <summary>Conversions between <see cref="TensorProto"/> and arrays (raw_data or the typed fields).</summary>
internal static class TensorProtoData
{
    public static long ElementCount(TensorProto t)
    {
        long n = 1;
        foreach (long d in t.Dims) n *= d;
        return n;
    }

    public static float[] ToFloats(TensorProto t)
    {
        Expect(t, TensorProto.Types.DataType.Float);
        if (!t.RawData.IsEmpty) return CheckedCast<float>(t, 4);
        var r = new float[t.FloatData.Count];
        t.FloatData.CopyTo(r, 0);
        return CheckCount(t, r);
    }

    public static long[] ToInt64s(TensorProto t)
    {
        var type = (TensorProto.Types.DataType)t.DataType;
        switch (type)
        {
            case TensorProto.Types.DataType.Int64:
                if (!t.RawData.IsEmpty) return CheckedCast<long>(t, 8);
                return CheckCount(t, t.Int64Data.ToArray());
            case TensorProto.Types.DataType.Int32:
                if (!t.RawData.IsEmpty) return Array.ConvertAll(CheckedCast<int>(t, 4), v => (long)v);
                return CheckCount(t, t.Int32Data.Select(v => (long)v).ToArray());
            case TensorProto.Types.DataType.Bool:
            case TensorProto.Types.DataType.Uint8:
                if (!t.RawData.IsEmpty) return CheckCount(t, t.RawData.Span.ToArray().Select(v => (long)v).ToArray());
                return CheckCount(t, t.Int32Data.Select(v => (long)v).ToArray());
            default:
                throw new InvalidDataException($"Tensor '{t.Name}' has data type {type}, not an integer type.");
        }
    }

    public static TensorProto FromFloats(string name, ReadOnlySpan<long> dims, ReadOnlySpan<float> data)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        t.Dims.AddRange(dims.ToArray());
        return t;
    }

    public static TensorProto FromRaw(string name, TensorProto.Types.DataType type, ReadOnlySpan<long> dims, ReadOnlySpan<byte> data)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        t.Dims.AddRange(dims.ToArray());
        return t;
    }

    public static TensorProto FromInt64s(string name, ReadOnlySpan<long> dims, ReadOnlySpan<long> data)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        t.Dims.AddRange(dims.ToArray());
        return t;
    }

    private static void Expect(TensorProto t, TensorProto.Types.DataType type)
    {
        if (t.DataType != (int)type)
            throw new InvalidDataException($"Tensor '{t.Name}' has data type {(TensorProto.Types.DataType)t.DataType}, expected {type}.");
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"Tensor '{t.Name}' is stored externally and was not loaded.");
    }

    private static T[] CheckedCast<T>(TensorProto t, int size) where T : unmanaged
    {
        var span = t.RawData.Span;
        if (span.Length % size != 0) throw new InvalidDataException($"Tensor '{t.Name}' has {span.Length} raw bytes, not a multiple of {size}.");
        return CheckCount(t, MemoryMarshal.Cast<byte, T>(span).ToArray());
    }

    private static T[] CheckCount<T>(TensorProto t, T[] data)
    {
        if (data.Length != ElementCount(t))
            throw new InvalidDataException($"Tensor '{t.Name}' of shape [{string.Join(", ", t.Dims)}] holds {data.Length} values instead of {ElementCount(t)}.");
        return data;
    }
}
