using System.Globalization;
using System.Text;

namespace Vega.MLNet.Text;

/// <summary>
/// The text clean-up the reference CLIP tokenizer applies before pre-tokenisation:
/// <c>fix_text</c> (a documented subset of ftfy, see <see cref="FixText"/>), HTML unescape twice, strip, every run of
/// (Python) whitespace to one space, strip, Python's full Unicode lower-casing.
/// </summary>
internal static class TextCleaner
{
    /// <summary>
    /// Cleans <paramref name="text"/> into <paramref name="buffer"/> (grown when needed) and returns the length
    /// written. Plain ASCII text without '&amp;' or control characters takes a single pass.
    /// </summary>
    public static int Clean(string text, bool fixText, ref char[] buffer)
    {
        string s = text;
        if (!IsPlainAscii(text))
        {
            if (fixText) s = FixText(s);
            s = HtmlUnescape.Unescape(HtmlUnescape.Unescape(s));
            s = LowerPython(s);
        }
        return CollapseWhitespaceLower(s, ref buffer);
    }

    private static bool IsPlainAscii(string text)
    {
        foreach (char c in text)
        {
            if (c >= 0x7F || c == '&') return false;
            if (c < 0x20 && c is not ('\t' or '\n' or '\r' or '\f')) return false;
        }
        return true;
    }

    // Python's str.isspace(): bidirectional class WS, B or S, or category Zs. Includes U+001C..U+001F.
    internal static bool IsPythonSpace(char c) => c switch
    {
        >= '\t' and <= '\r' => true,
        >= '\u001C' and <= ' ' => true,
        '\u0085' or '\u00A0' or '\u1680' or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000' => true,
        >= '\u2000' and <= '\u200A' => true,
        _ => false,
    };

    // Collapses whitespace runs to one space, strips both ends, and lower-cases ASCII (non-ASCII text was already
    // lower-cased by LowerPython, which is idempotent on ASCII).
    private static int CollapseWhitespaceLower(string s, ref char[] buffer)
    {
        if (buffer.Length < s.Length) buffer = new char[Math.Max(s.Length, buffer.Length * 2)];
        int n = 0;
        bool pendingSpace = false;
        foreach (char ch in s)
        {
            if (IsPythonSpace(ch)) { pendingSpace = n > 0; continue; }
            if (pendingSpace) { buffer[n++] = ' '; pendingSpace = false; }
            buffer[n++] = ch is >= 'A' and <= 'Z' ? (char)(ch | 0x20) : ch;
        }
        return n;
    }

    /// <summary>
    /// Python's <c>str.lower()</c>: Unicode simple lower-case mapping per code point, plus the unconditional
    /// special casing U+0130 → "i̇" and the Final_Sigma rule for U+03A3.
    /// </summary>
    internal static string LowerPython(string s)
    {
        var sb = new StringBuilder(s.Length);
        Span<char> tmp = stackalloc char[2];
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used);
            if (r.Value == 0x130) sb.Append("i\u0307");
            else if (r.Value == 0x3A3) sb.Append(IsFinalSigma(s, i) ? '\u03C2' : '\u03C3');
            else
            {
                int w = Rune.ToLowerInvariant(r).EncodeToUtf16(tmp);
                sb.Append(tmp[..w]);
            }
            i += used;
        }
        return sb.ToString();
    }

    // Final_Sigma (Unicode 3.13): preceded by a cased letter and not followed by one, skipping case-ignorables.
    private static bool IsFinalSigma(string s, int index)
    {
        int j = index - 1;
        while (j >= 0 && IsCaseIgnorable(s[j])) j--;
        if (j < 0 || !IsCased(s[j])) return false;
        j = index + 1;
        while (j < s.Length && IsCaseIgnorable(s[j])) j++;
        return j == s.Length || !IsCased(s[j]);
    }

    private static bool IsCased(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(char c) =>
        c is '\'' or '.' or ':' or '^' or '`' or '\u00B7' or '\u2018' or '\u2019' or '\u2024' or '\u2027' or '\uFE13'
            or '\uFE52' or '\uFE55' or '\uFF07' or '\uFF0E' or '\uFF1A'
        || char.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;

    /// <summary>
    /// The subset of ftfy 6's <c>fix_text</c> that changes text-to-token results for CLIP, applied until the text no
    /// longer changes: HTML unescape of ';'-terminated references when the text has no '&lt;', removal of ANSI
    /// terminal escapes, UTF-8-read-as-Windows-1252 mojibake repair, Latin ligatures, full/half-width forms, curly
    /// quotes, removal of control characters, NFC. Not ported: ftfy's badness heuristics for partial mojibake,
    /// C1-control repair and lossy-sequence replacement.
    /// </summary>
    internal static string FixText(string text)
    {
        for (int round = 0; round < 8; round++)
        {
            string before = text;
            if (text.Contains('&') && !text.Contains('<')) text = UnescapeTerminatedEntities(text);
            text = RemoveTerminalEscapes(text);
            text = FixMojibake(text);
            text = MapCharacters(text);
            if (!text.IsNormalized(NormalizationForm.FormC)) text = text.Normalize(NormalizationForm.FormC);
            if (text == before) break;
        }
        return text;
    }

    // ftfy's HTML_ENTITY_RE: &#?[0-9A-Za-z]{1,24};
    private static string UnescapeTerminatedEntities(string s)
    {
        var sb = new StringBuilder(s.Length);
        int i = 0;
        while (i < s.Length)
        {
            if (s[i] == '&')
            {
                int p = i + 1;
                if (p < s.Length && s[p] == '#') p++;
                int start = p;
                while (p < s.Length && p - start < 24 && char.IsAsciiLetterOrDigit(s[p])) p++;
                if (p > start && p < s.Length && s[p] == ';')
                {
                    sb.Append(HtmlUnescape.Unescape(s.Substring(i, p + 1 - i)));
                    i = p + 1;
                    continue;
                }
            }
            sb.Append(s[i++]);
        }
        return sb.ToString();
    }

    // ESC '[' (digits | ';')* letter
    private static string RemoveTerminalEscapes(string s)
    {
        int esc = s.IndexOf('\u001B');
        if (esc < 0) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            if (s[i] == '\u001B' && i + 1 < s.Length && s[i + 1] == '[')
            {
                int p = i + 2;
                while (p < s.Length && (char.IsAsciiDigit(s[p]) || s[p] == ';')) p++;
                if (p < s.Length && char.IsAsciiLetter(s[p])) { i = p + 1; continue; }
            }
            sb.Append(s[i++]);
        }
        return sb.ToString();
    }

    private static readonly Lazy<Dictionary<char, byte>> Cp1252Reverse = new(() =>
    {
        var map = new Dictionary<char, byte>();
        for (int b = 0; b < 256; b++)
        {
            char c = b is >= 0x80 and <= 0x9F ? Cp1252High[b - 0x80] : (char)b;
            map[c] = (byte)b;
        }
        return map;
    });

    // Windows-1252 0x80..0x9F; the five undefined bytes map to the C1 control of the same value ("sloppy" codec).
    private const string Cp1252High =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    // If the whole text is representable in (sloppy) Windows-1252 and those bytes are valid UTF-8 containing at
    // least one multi-byte sequence, the text was UTF-8 decoded with the wrong codec: decode it again correctly.
    private static string FixMojibake(string s)
    {
        bool hasHigh = false;
        foreach (char c in s) if (c >= 0x80) { hasHigh = true; break; }
        if (!hasHigh) return s;
        var map = Cp1252Reverse.Value;
        var bytes = new byte[s.Length];
        for (int i = 0; i < s.Length; i++)
        {
            if (!map.TryGetValue(s[i], out bytes[i])) return s;
        }
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return s;
        }
    }

    // Ligatures, width forms, curly quotes and control characters in one pass.
    private static string MapCharacters(string s)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            string? replacement = c switch
            {
                >= '\u2018' and <= '\u201B' or '\u02BC' => "'",
                >= '\u201C' and <= '\u201F' => "\"",
                '\u3000' => " ",
                >= '\uFF01' and <= '\uFFEF' or '\u0132' or '\u0133' or '\u0149' or >= '\u01C4' and <= '\u01CC'
                    or >= '\uFB00' and <= '\uFB06' => NfkcOrNull(c),
                _ when IsControl(c) => "",
                _ => null,
            };
            if (replacement is null) { sb?.Append(c); continue; }
            sb ??= new StringBuilder(s, 0, i, s.Length + 8);
            sb.Append(replacement);
        }
        return sb?.ToString() ?? s;
    }

    private static string? NfkcOrNull(char c)
    {
        string one = c.ToString();
        string k = one.Normalize(NormalizationForm.FormKC);
        return k == one ? null : k;
    }

    // ftfy's remove_control_chars (BMP part): C0 controls except \t \n \f \r, DEL, deprecated format characters,
    // BOM / zero-width no-break space, interlinear annotation and object replacement characters.
    private static bool IsControl(char c) =>
        c is <= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or >= '\u206A' and <= '\u206F'
            or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';
}
