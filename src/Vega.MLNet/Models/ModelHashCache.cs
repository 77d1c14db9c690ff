using System.Text;
using Vega.MLNet.Common;

namespace Vega.MLNet.Models;

/// <summary>
/// Remembers the content hash of a model's tower files in <c>model-hashes.tsv</c> of a cache folder, keyed by every
/// file's full path and <see cref="SafeFile.Stamp"/> (device, inode, size, modification and change times), so a large
/// model is hashed once and later runs only stat its files. A file changed in any way gets a new stamp and is hashed
/// again. Best effort: an unreadable or read-only cache folder just means the hash is computed.
/// </summary>
internal static class ModelHashCache
{
    public const string FileName = "model-hashes.tsv";

    /// <summary>The key of <paramref name="files"/> in their current state, or null when a file cannot be stat'ed.</summary>
    public static string? Key(IReadOnlyList<string> files)
    {
        var sb = new StringBuilder();
        foreach (var f in files)
        {
            if (SafeFile.Stamp(f) is not { } stamp) return null;
            if (sb.Length > 0) sb.Append(';');
            sb.Append(Path.GetFullPath(f).Replace('\t', ' ').Replace('\n', ' ')).Append('|').Append(stamp);
        }
        return sb.ToString();
    }

    public static string? TryGet(string directory, string key)
    {
        try
        {
            string path = Path.Combine(directory, FileName);
            if (!File.Exists(path) || new FileInfo(path).Length > 16 << 20) return null;
            string? found = null;
            foreach (var line in File.ReadLines(path))
            {
                int tab = line.IndexOf('\t');
                if (tab == 64 && line.AsSpan(tab + 1).SequenceEqual(key) && IsHex(line.AsSpan(0, 64))) found = line[..64];
            }
            return found;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void TryStore(string directory, string key, string hash)
    {
        try
        {
            Directory.CreateDirectory(directory);
            File.AppendAllText(Path.Combine(directory, FileName), $"{hash}\t{key}\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only cache folder: the hash is computed again next time.
        }
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        return true;
    }
}
