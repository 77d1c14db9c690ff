using System.Runtime.InteropServices;
using System.Text;

namespace Vega.MLNet.Embedding;

/// <summary>Writes and reads NumPy .npy files (format version 1.0, little-endian float32, C order).</summary>
internal static class Npy
{
    /// <summary>Writes a float32 [rows, columns] array.</summary>
    public static void WriteFloat32(string path, ReadOnlySpan<float> data, int rows, int columns)
    {
        if ((long)rows * columns != data.Length) throw new ArgumentException($"{rows} × {columns} needs {(long)rows * columns} values, got {data.Length}.", nameof(data));
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}";
        int total = 10 + dict.Length + 1;
        int pad = (64 - total % 64) % 64;
        string header = dict + new string(' ', pad) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        f.Write(BitConverter.GetBytes((ushort)header.Length));
        f.Write(Encoding.ASCII.GetBytes(header));
        f.Write(MemoryMarshal.AsBytes(data));
    }

    /// <summary>Reads a float32 [rows, columns] array written by <see cref="WriteFloat32"/> (or NumPy).</summary>
    public static (float[] Data, int Rows, int Columns) ReadFloat32(string path)
    {
        var bytes = Common.SafeFile.ReadAllBytesOrInvalid(path, Array.MaxLength, ".npy file");
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"'{path}' is not a .npy file.");
        int headerLength = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : BitConverter.ToInt32(bytes, 8);
        int start = (bytes[6] == 1 ? 10 : 12) + headerLength;
        string header = Encoding.ASCII.GetString(bytes, bytes[6] == 1 ? 10 : 12, headerLength);
        if (!header.Contains("'<f4'", StringComparison.Ordinal) || header.Contains("'fortran_order': True", StringComparison.Ordinal))
            throw new InvalidDataException($"'{path}' is not a C-order little-endian float32 array ({header.Trim()}).");
        int open = header.IndexOf('(', StringComparison.Ordinal), close = header.IndexOf(')', StringComparison.Ordinal);
        var dims = header[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        if (dims.Length != 2) throw new InvalidDataException($"'{path}' is not a 2-D array.");
        var data = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(start)).ToArray();
        if (data.Length != dims[0] * dims[1]) throw new InvalidDataException($"'{path}' is truncated.");
        return (data, dims[0], dims[1]);
    }
}
