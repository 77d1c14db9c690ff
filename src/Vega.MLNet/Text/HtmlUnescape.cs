using System.Globalization;
using System.Reflection;
using System.Text;

namespace Vega.MLNet.Text;

/// <summary>
/// HTML character-reference decoding with the semantics of the HTML5 specification as Python's
/// <c>html.unescape</c> applies them (which the reference CLIP tokenizer calls twice): all 2231 named references of
/// the WHATWG table (legacy names also without the trailing semicolon, longest-prefix match), decimal and hexadecimal
/// numeric references with the spec's replacement table for C1 controls and its rules for surrogates, out-of-range
/// and non-character code points.
/// </summary>
internal static class HtmlUnescape
{
    private static readonly Lazy<Dictionary<string, string>> Named = new(LoadNamed);
    private static readonly Lazy<int> LongestName = new(() => Named.Value.Keys.Max(k => k.Length));

    // The HTML spec's "numeric character reference end state" replacement table.
    private static readonly Dictionary<int, string> Replacements = new()
    {
        [0x00] = "\uFFFD", [0x0D] = "\r", [0x80] = "\u20AC", [0x81] = "\u0081", [0x82] = "\u201A", [0x83] = "\u0192",
        [0x84] = "\u201E", [0x85] = "\u2026", [0x86] = "\u2020", [0x87] = "\u2021", [0x88] = "\u02C6", [0x89] = "\u2030",
        [0x8A] = "\u0160", [0x8B] = "\u2039", [0x8C] = "\u0152", [0x8D] = "\u008D", [0x8E] = "\u017D", [0x8F] = "\u008F",
        [0x90] = "\u0090", [0x91] = "\u2018", [0x92] = "\u2019", [0x93] = "\u201C", [0x94] = "\u201D", [0x95] = "\u2022",
        [0x96] = "\u2013", [0x97] = "\u2014", [0x98] = "\u02DC", [0x99] = "\u2122", [0x9A] = "\u0161", [0x9B] = "\u203A",
        [0x9C] = "\u0153", [0x9D] = "\u009D", [0x9E] = "\u017E", [0x9F] = "\u0178",
    };

    /// <summary>Decodes every character reference in <paramref name="text"/>; returns the input when it has no '&amp;'.</summary>
    public static string Unescape(string text) { Origins? none = null; return Unescape(text, ref none); }

    /// <summary>Decodes every character reference, carrying provenance along (the decoded characters cover the
    /// reference).</summary>
    public static string Unescape(string text, ref Origins? origins)
    {
        int amp = text.IndexOf('&');
        if (amp < 0) return text;
        var rw = new Rewriter(text, origins);
        for (int i = amp; i < text.Length; i++)
        {
            if (text[i] != '&') continue;
            var (consumed, value) = TryReference(text, i + 1);
            if (consumed == 0) continue;
            rw.Replace(i, i + 1 + consumed, value);
            i += consumed;
        }
        return rw.Finish(ref origins);
    }

    /// <summary>Looks up a named reference exactly as written (with or without its ';').</summary>
    public static bool TryGetNamed(ReadOnlySpan<char> name, out string value)
    {
        if (Named.Value.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out var v)) { value = v; return true; }
        value = "";
        return false;
    }

    // Returns the number of characters after '&' that were consumed (0 when nothing matched) and what they stand for.
    private static (int Consumed, string Value) TryReference(string s, int start)
    {
        if (start >= s.Length) return (0, "");
        if (s[start] == '#')
        {
            int p = start + 1;
            bool hex = p < s.Length && (s[p] == 'x' || s[p] == 'X');
            if (hex) p++;
            int digitsStart = p;
            long value = 0;
            while (p < s.Length && (hex ? char.IsAsciiHexDigit(s[p]) : char.IsAsciiDigit(s[p])))
            {
                int d = hex ? int.Parse(s.AsSpan(p, 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture) : s[p] - '0';
                value = Math.Min(value * (hex ? 16 : 10) + d, 0x7FFFFFFF);
                p++;
            }
            if (p == digitsStart) return (0, "");
            if (p < s.Length && s[p] == ';') p++;
            return (p - start, NumericReference(value));
        }

        // Named: up to 32 characters from the class [^\t\n\f <&#;], optionally followed by ';'.
        int q = start;
        while (q < s.Length && q - start < 32 && s[q] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';')) q++;
        if (q == start) return (0, "");
        if (q < s.Length && s[q] == ';') q++;
        var lookup = Named.Value.GetAlternateLookup<ReadOnlySpan<char>>();
        ReadOnlySpan<char> name = s.AsSpan(start, q - start);
        if (lookup.TryGetValue(name, out var whole)) return (name.Length, whole);
        // Longest prefix (at least 2 characters) that is a name by itself; the rest stays as text.
        for (int x = Math.Min(name.Length - 1, LongestName.Value); x > 1; x--)
        {
            if (lookup.TryGetValue(name[..x], out var prefix)) return (name.Length, prefix + name[x..].ToString());
        }
        return (0, "");
    }

    private static string NumericReference(long n)
    {
        if (Replacements.TryGetValue((int)n, out var r)) return r;
        if (n is >= 0xD800 and <= 0xDFFF || n > 0x10FFFF) return "\uFFFD";
        if (IsInvalidCodePoint((int)n)) return "";
        return char.ConvertFromUtf32((int)n);
    }

    private static bool IsInvalidCodePoint(int n) =>
        n is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or >= 0x7F and <= 0x9F or >= 0xFDD0 and <= 0xFDEF
        || (n & 0xFFFE) == 0xFFFE;

    private static Dictionary<string, string> LoadNamed()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Vega.MLNet.Text.html5-entities.tsv")
            ?? throw new InvalidOperationException("The embedded HTML5 entity table is missing from the Vega.MLNet assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var map = new Dictionary<string, string>(2300, StringComparer.Ordinal);
        while (reader.ReadLine() is { } line)
        {
            int tab = line.IndexOf('\t');
            var sb = new StringBuilder(2);
            foreach (var hex in line[(tab + 1)..].Split(' '))
                sb.Append(char.ConvertFromUtf32(int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
            map[line[..tab]] = sb.ToString();
        }
        return map;
    }
}
