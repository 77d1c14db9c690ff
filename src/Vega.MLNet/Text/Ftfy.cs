using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Vega.MLNet.Text;

/// <summary>
/// A port of ftfy 6.3.1's <c>fix_text</c> with its default configuration, as the reference CLIP tokenizer calls it
/// (ftfy is Apache-2.0; its rules and character classes are followed, the code is this project's):
/// the text is fixed in segments that end after each line feed; per segment, until nothing changes: HTML references
/// (ftfy's rules; off from the first segment containing '&lt;' on), mojibake repair (the badness heuristic, re-decoding
/// as UTF-8 from ten single-byte encodings, restoring U+00A0 lost as a space, lossy sequences, inconsistent UTF-8,
/// Latin-1 as Windows-1252, C1 controls), C1 controls as Windows-1252, Latin ligatures, width forms, curly quotes,
/// line breaks, surrogates, terminal escapes, control characters, NFC.
/// Every step can carry provenance (<see cref="Origins"/>) for token offsets.
/// </summary>
internal static class Ftfy
{
    private const int MaxSegmentCodePoints = 1_000_000;
    private const int MaxRounds = 32; // ftfy loops until nothing changes; a cap guarantees termination

    public static string FixText(string text) { Origins? none = null; return FixText(text, ref none); }

    public static string FixText(string text, ref Origins? origins)
    {
        if (text.Length == 0) return text;
        bool unescape = true;
        if (text.IndexOf('\n') < 0 && text.Length <= MaxSegmentCodePoints)
            return FixSegment(text, !text.Contains('<'), ref origins);
        var sb = new StringBuilder(text.Length);
        var org = origins is null ? null : new OriginsBuilder(text.Length);
        int pos = 0;
        while (pos < text.Length)
        {
            int brk = text.IndexOf('\n', pos) + 1;
            if (brk == 0) brk = text.Length;
            brk = LimitCodePoints(text, pos, brk);
            string segment = text[pos..brk];
            if (unescape && segment.Contains('<')) unescape = false;
            Origins? so = origins?.Slice(pos, brk);
            string fixedSegment = FixSegment(segment, unescape, ref so);
            sb.Append(fixedSegment);
            org?.AddRange(so!, 0, so!.Length);
            pos = brk;
        }
        if (org is not null) origins = org.Build();
        return sb.ToString();
    }

    private static int LimitCodePoints(string s, int from, int to)
    {
        if (to - from <= MaxSegmentCodePoints) return to;
        int i = from, n = 0;
        while (i < to && n < MaxSegmentCodePoints)
        {
            i += char.IsHighSurrogate(s[i]) && i + 1 < to && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            n++;
        }
        return i;
    }

    private static string FixSegment(string s, bool unescape, ref Origins? o)
    {
        for (int round = 0; round < MaxRounds; round++)
        {
            string before = s;
            if (unescape) s = UnescapeHtml(s, ref o);
            s = FixEncoding(s, ref o);
            s = FixC1Controls(s, ref o);
            s = MapCharacters(s, ref o);
            s = FixLineBreaks(s, ref o);
            s = FixSurrogates(s, ref o);
            s = RemoveTerminalEscapes(s, ref o);
            s = RemoveControlCharacters(s, ref o);
            s = NormalizeC(s, ref o);
            if (string.Equals(s, before, StringComparison.Ordinal)) break;
        }
        return s;
    }

    // ------------------------------------------------------------------ HTML references (ftfy's unescape_html)

    private static readonly Lazy<Dictionary<string, string>> UpperEntities = new(() =>
    {
        var map = new Dictionary<string, string>(TextTables.UpperCaseEntities.Length, StringComparer.Ordinal);
        foreach (var (name, value) in TextTables.UpperCaseEntities) map[name] = value;
        return map;
    });

    // &#?[0-9A-Za-z]{1,24};  →  a known "&name;" (or its upper-cased form), or a numeric reference whose decoding
    // contains no ';'. Everything else stays.
    private static string UnescapeHtml(string s, ref Origins? o)
    {
        int amp = s.IndexOf('&');
        if (amp < 0) return s;
        var rw = new Rewriter(s, o);
        for (int i = amp; i < s.Length; i++)
        {
            if (s[i] != '&') continue;
            int p = i + 1;
            bool numeric = p < s.Length && s[p] == '#';
            if (numeric) p++;
            int start = p;
            while (p < s.Length && p - start < 24 && char.IsAsciiLetterOrDigit(s[p])) p++;
            if (p == start || p >= s.Length || s[p] != ';') continue;
            string match = s.Substring(i, p + 1 - i);
            string? value = null;
            if (!numeric)
            {
                ReadOnlySpan<char> name = match.AsSpan(1);
                if (HtmlUnescape.TryGetNamed(name, out var v)) value = v;
                else if (UpperEntities.Value.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name[..^1], out var u)) value = u;
            }
            else
            {
                string decoded = HtmlUnescape.Unescape(match);
                if (!decoded.Contains(';')) value = decoded;
            }
            if (value is null) continue;
            rw.Replace(i, p + 1, value);
            i = p;
        }
        return rw.Finish(ref o);
    }

    // ------------------------------------------------------------------ fix_encoding

    private static string FixEncoding(string s, ref Origins? o)
    {
        for (int step = 0; step < MaxRounds; step++)
        {
            string next = FixEncodingStep(s, ref o);
            if (ReferenceEquals(next, s) || string.Equals(next, s, StringComparison.Ordinal)) return next;
            s = next;
        }
        return s;
    }

    internal static string FixEncoding(string s) { Origins? none = null; return FixEncoding(s, ref none); }

    private static string FixEncodingStep(string s, ref Origins? o)
    {
        if (s.Length == 0 || IsAscii(s) || !IsBad(s)) return s;
        bool latin1Possible = false;
        foreach (var codec in Codecs.Value)
        {
            if (!codec.CanEncode(s)) continue;
            if (codec.Name == "latin-1") latin1Possible = true;
            if (TryRedecode(s, codec, ref o, out string? fixedText)) return fixedText;
        }
        if (Utf8Detector.Value.IsMatch(s))
        {
            string fixedText = DecodeInconsistentUtf8(s, ref o);
            if (!string.Equals(fixedText, s, StringComparison.Ordinal)) return fixedText;
        }
        if (latin1Possible)
        {
            // ftfy then asks whether windows-1252 was among the possible encodings, but its list names only
            // "sloppy-windows-1252", so text that fits Latin-1 is always re-read as strict Windows-1252 here.
            string? asCp1252 = Latin1AsWindows1252(s, ref o);
            if (asCp1252 is not null) return asCp1252;
        }
        foreach (char c in s)
        {
            if (c is >= '\u0080' and <= '\u009F') return FixC1Controls(s, ref o);
        }
        return s;
    }

    private static bool IsAscii(string s)
    {
        foreach (char c in s) if (c >= 0x80) return false;
        return true;
    }

    private static string? Latin1AsWindows1252(string s, ref Origins? o)
    {
        var rw = new Rewriter(s, o);
        string high = Codecs.Value[1].High; // sloppy-windows-1252; the strict codec lacks 0x81 0x8D 0x8F 0x90 0x9D
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c is < '\u0080' or > '\u009F') continue;
            if (c is '\u0081' or '\u008D' or '\u008F' or '\u0090' or '\u009D') return null;
            rw.Replace(i, i + 1, high[c - 0x80]);
        }
        return rw.Changed ? rw.Finish(ref o) : null;
    }

    private static string FixC1Controls(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        string high = Codecs.Value[1].High;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c is < '\u0080' or > '\u009F') continue;
            char w = high[c - 0x80];
            if (w == c) continue;
            (rw ??= new Rewriter(s, o)).Replace(i, i + 1, w);
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    // Encode with a single-byte codec, patch the bytes (restore_byte_a0, replace_lossy_sequences) and decode them as
    // UTF-8 (or ftfy's utf-8-variants when a 0xED or 0xC0 byte is present). Provenance: every byte remembers the
    // range of characters it stands for; every decoded character covers the characters of its bytes.
    private static bool TryRedecode(string s, Codec codec, ref Origins? o, out string fixedText)
    {
        fixedText = s;
        var bytes = new byte[s.Length];
        for (int i = 0; i < s.Length; i++) bytes[i] = codec.Encode(s[i]);
        int[]? from = null, to = null;
        if (o is not null)
        {
            from = new int[bytes.Length];
            to = new int[bytes.Length];
            for (int i = 0; i < bytes.Length; i++) { from[i] = i; to[i] = i + 1; }
        }
        if (codec.Name != "macroman" && AlteredUtf8.Value.IsMatch(Latin1String(bytes)))
            (bytes, from, to) = RestoreByteA0(bytes, from, to);
        if (codec.Sloppy)
            (bytes, from, to) = ReplaceLossySequences(bytes, from, to);
        bool variants = Array.IndexOf(bytes, (byte)0xED) >= 0 || Array.IndexOf(bytes, (byte)0xC0) >= 0;
        var sb = new StringBuilder(bytes.Length);
        var spans = o is null ? null : new List<(int, int)>(bytes.Length);
        if (!Utf8.TryDecode(bytes, variants, sb, spans)) return false;
        if (o is not null)
        {
            var org = new OriginsBuilder(sb.Length);
            foreach (var (b0, b1) in spans!)
            {
                int cs = int.MaxValue, ce = int.MinValue;
                for (int b = b0; b < b1; b++) { cs = Math.Min(cs, from![b]); ce = Math.Max(ce, to![b]); }
                var (os, oe) = o.Cover(cs, ce);
                org.Add(os, oe);
            }
            o = org.Build();
        }
        fixedText = sb.ToString();
        return true;
    }

    private static string Latin1String(byte[] bytes) => string.Create(bytes.Length, bytes, static (span, b) =>
    {
        for (int i = 0; i < b.Length; i++) span[i] = (char)b[i];
    });

    private static readonly Lazy<Regex> AGraveWord = new(() => new Regex("\u00C3 (?! |quele|quela|quilo|s )", RegexOptions.CultureInvariant));

    private static readonly Lazy<Regex> AlteredUtf8 = new(() => new Regex(
        "[\u00C2\u00C3\u00C5\u00CE\u00D0\u00D9] " +
        "|[\u00E2\u00E3] [\u0080-\u0084\u0086-\u009F\u00A1-\u00BF]" +
        "|[\u00E0-\u00E3][\u0080-\u0084\u0086-\u009F\u00A1-\u00BF] " +
        "|\u00F0 [\u0080-\u00BF][\u0080-\u00BF]" +
        "|\u00F0[\u0080-\u00BF] [\u0080-\u00BF]" +
        "|\u00F0[\u0080-\u00BF][\u0080-\u00BF] ", RegexOptions.CultureInvariant));

    private static readonly Lazy<Regex> LossyUtf8 = new(() => new Regex(
        "[\u00C2-\u00DF]\u001A" +
        "|[\u00C2\u00C3]\\?" +
        "|\u00ED[\u00A0-\u00AF][\u001A?]\u00ED[\u00B0-\u00BF][\u001A?\u0080-\u00BF]" +
        "|\u00ED[\u00A0-\u00AF][\u001A?\u0080-\u00BF]\u00ED[\u00B0-\u00BF][\u001A?]" +
        "|[\u00E0-\u00EF][\u001A?][\u001A\u0080-\u00BF]" +
        "|[\u00E0-\u00EF][\u001A\u0080-\u00BF][\u001A?]" +
        "|[\u00F0-\u00F4][\u001A?][\u001A\u0080-\u00BF][\u001A\u0080-\u00BF]" +
        "|[\u00F0-\u00F4][\u001A\u0080-\u00BF][\u001A?][\u001A\u0080-\u00BF]" +
        "|[\u00F0-\u00F4][\u001A\u0080-\u00BF][\u001A\u0080-\u00BF][\u001A?]" +
        "|\u001A", RegexOptions.CultureInvariant));

    // A UTF-8 sequence whose 0xA0 byte became a space: the space goes back to 0xA0 ("Ã " before a word becomes "à ").
    private static (byte[], int[]?, int[]?) RestoreByteA0(byte[] bytes, int[]? from, int[]? to)
    {
        var b = new List<byte>(bytes.Length + 8);
        var f = from is null ? null : new List<int>(bytes.Length + 8);
        var t = to is null ? null : new List<int>(bytes.Length + 8);
        void Add(byte value, int src) { b.Add(value); f?.Add(from![src]); t?.Add(to![src]); }
        int done = 0;
        foreach (Match m in AGraveWord.Value.Matches(Latin1String(bytes)))
        {
            for (int k = done; k < m.Index; k++) Add(bytes[k], k);
            Add(0xC3, m.Index);
            Add(0xA0, m.Index + 1);
            Add(0x20, m.Index + 1);
            done = m.Index + 2;
        }
        for (int k = done; k < bytes.Length; k++) Add(bytes[k], k);
        var bytes2 = b.ToArray();
        foreach (Match m in AlteredUtf8.Value.Matches(Latin1String(bytes2)))
            for (int k = m.Index; k < m.Index + m.Length; k++)
                if (bytes2[k] == 0x20) bytes2[k] = 0xA0;
        return (bytes2, f?.ToArray(), t?.ToArray());
    }

    // Sequences that lost bytes to '?' or to U+FFFD (byte 0x1A in the sloppy codecs) become U+FFFD.
    private static (byte[], int[]?, int[]?) ReplaceLossySequences(byte[] bytes, int[]? from, int[]? to)
    {
        if (Array.IndexOf(bytes, (byte)0x1A) < 0 && Array.IndexOf(bytes, (byte)'?') < 0) return (bytes, from, to);
        var matches = LossyUtf8.Value.Matches(Latin1String(bytes));
        if (matches.Count == 0) return (bytes, from, to);
        var b = new List<byte>(bytes.Length + 8);
        var f = from is null ? null : new List<int>(bytes.Length + 8);
        var t = to is null ? null : new List<int>(bytes.Length + 8);
        int done = 0;
        foreach (Match m in matches)
        {
            for (int k = done; k < m.Index; k++) { b.Add(bytes[k]); f?.Add(from![k]); t?.Add(to![k]); }
            b.Add(0xEF); b.Add(0xBF); b.Add(0xBD);
            if (f is not null)
            {
                int s = from![m.Index], e = to![m.Index + m.Length - 1];
                for (int k = 0; k < 3; k++) { f.Add(s); t!.Add(e); }
            }
            done = m.Index + m.Length;
        }
        for (int k = done; k < bytes.Length; k++) { b.Add(bytes[k]); f?.Add(from![k]); t?.Add(to![k]); }
        return (b.ToArray(), f?.ToArray(), t?.ToArray());
    }

    // Runs of UTF-8-looking mojibake inside text that is not mojibake as a whole: each run that is "bad" by itself
    // (and is not the whole text) is fixed on its own.
    private static string DecodeInconsistentUtf8(string s, ref Origins? o)
    {
        var rw = new Rewriter(s, o);
        foreach (Match m in Utf8Detector.Value.Matches(s))
        {
            string sub = m.Value;
            if (sub.Length >= s.Length || !IsBad(sub)) continue;
            string fixedSub = FixEncoding(sub);
            if (!string.Equals(fixedSub, sub, StringComparison.Ordinal)) rw.Replace(m.Index, m.Index + m.Length, fixedSub);
        }
        return rw.Finish(ref o);
    }

    private static readonly Lazy<Regex> Utf8Detector = new(() => new Regex(
        $"(?<![{FtfyClasses.Utf8ContinuationStrict}])(?:" +
        $"[{FtfyClasses.Utf8FirstOf2}][{FtfyClasses.Utf8Continuation}]" +
        $"|[{FtfyClasses.Utf8FirstOf3}][{FtfyClasses.Utf8Continuation}]{{2}}" +
        $"|[{FtfyClasses.Utf8FirstOf4}][{FtfyClasses.Utf8Continuation}]{{3}})+", RegexOptions.CultureInvariant));

    // ------------------------------------------------------------------ the badness heuristic

    /// <summary>
    /// ftfy's <c>is_bad</c>: whether the text contains a character sequence that is far likelier to be mojibake than
    /// intended. A hand-written matcher of ftfy's BADNESS_RE alternatives over per-character class flags (the regex
    /// itself, <see cref="BadnessPattern"/>, is kept as the tests' second implementation).
    /// </summary>
    internal static bool IsBad(string s)
    {
        var f = Flags.Value;
        bool candidate = false;
        foreach (char ch in s)
        {
            if ((f[ch] & Trigger) != 0) { candidate = true; break; }
        }
        if (!candidate) return false;
        int n = s.Length;
        for (int i = 0; i < n; i++)
        {
            char a = s[i];
            int fa = f[a];
            char b = i + 1 < n ? s[i + 1] : '\0';
            int fb = i + 1 < n ? f[b] : 0;
            char c = i + 2 < n ? s[i + 2] : '\0';
            int fc = i + 2 < n ? f[c] : 0;
            if ((fa & C1) != 0) return true;
            if (fa == 0 && !char.IsAsciiLetterLower(a) && !char.IsAsciiLetterUpper(a) && !TextCleaner.IsPythonSpace(a)
                && a is not ('.' or ',' or '?' or '!')) continue;
            if ((fa & (Bad | La | Ua | Box | Sp | Ep | Cur | Num | Law)) != 0 && (fb & Bad) != 0) return true;
            if (char.IsAsciiLetter(a) && (fb & (Lc | Uc)) != 0 && (fc & Bad) != 0) return true;
            if ((fa & Bad) != 0 && (fb & (La | Ua | Box | Sp | Ep | Cur | Num | Law)) != 0) return true;
            if ((fa & (La | Lc | Box | Ep | Cur | Num)) != 0 && (fb & Ua) != 0) return true;
            if ((fa & (Box | Ep | Cur | Num)) != 0 && (fb & La) != 0) return true;
            if ((fa & (La | Box | Ep)) != 0 && (fb & Cur) != 0) return true;
            if (TextCleaner.IsPythonSpace(a) && (fb & Ua) != 0 && (fc & Cur) != 0) return true;
            if ((fa & (Ua | Box)) != 0 && (fb & (Num | Law)) != 0) return true;
            if ((fa & (La | Ua | Box | Cur | Ep)) != 0 && (fb & Sp) != 0 && (fc & Num) != 0) return true;
            if ((fa & (La | Ua | Cur | Num | Box | Law)) != 0 && (fb & Ep) != 0 && (fc & Sp) != 0) return true;
            if ((fa & (Cur | Num | Box)) != 0 && (fb & Sp) != 0) return true;
            if (char.IsAsciiLetterLower(a) && (fb & Ua) != 0 && (fc & (Sp | Cur)) != 0) return true;
            if ((fa & Box) != 0 && (fb & (Kao | Ep)) != 0) return true;
            if ((fa & (La | Ua | Cur | Num | Sp | Ep | Law)) != 0 && (fb & Box) != 0) return true;
            if ((fa & (La | Ua)) != 0 && (fb & (Sp | Ep)) != 0 && i + 2 < n && IsWordAt(s, i + 2)) return true;
            if (a is '\u0152' or '\u0153' && i + 1 < n && !char.IsAsciiLetter(b)) return true;
            if ((fa & Ua) != 0 && b == '\u00B0') return true;
            if (a is '\u00C2' or '\u00C3' or '\u00CE' or '\u00D0' && ((fb & (Sp | Ep)) != 0 || b is '\u20AC' or '\u0153' or '\u0160' or '\u0161'
                    or '\u00A2' or '\u00A3' or '\u0178' or '\u017E' or '\u00A0' or '\u00AD' or '\u00AE' or '\u00A9' or '\u00B0' or '\u00B7'
                    or '\u00BB' or '\u2013' or '\u2014' or '\u00B4'))
                return true;
            if (a == '\u00D7' && b is '\u00B2' or '\u00B3') return true;
            if (a is '\u00D8' or '\u00D9' && IsArabicMojibakeFollower(b, fb) && c is '\u00D8' or '\u00D9' && i + 3 < n
                && IsArabicMojibakeFollower(s[i + 3], f[s[i + 3]]))
                return true;
            if (a == '\u00E0' && b is '\u00B2' or '\u00B5' or '\u00B9' or '\u00BC' or '\u00BD' or '\u00BE') return true;
            if (a == '\u221A' && b is '\u00B1' or '\u2202' or '\u2020' or '\u2260' or '\u00AE' or '\u2122' or '\u00B4' or '\u2264' or '\u2265'
                    or '\u00A5' or '\u00B5' or '\u00F8')
                return true;
            if (a == '\u2248' && b is '\u00B0' or '\u00A2') return true;
            if (a == '\u201A' && b == '\u00C4' && c is '\u00EC' or '\u00EE' or '\u00EF' or '\u00F2' or '\u00F4' or '\u00FA' or '\u00F9' or '\u00FB'
                    or '\u2020' or '\u00B0' or '\u00A2' or '\u03C0')
                return true;
            if (a == '\u201A' && b is '\u00E2' or '\u00F3' && c is '\u00E0' or '\u00E4' or '\u00B0' or '\u00EA') return true;
            if (a == '\u0432' && b == '\u0402') return true;
            if (a is '\u0412' or '\u0413' or '\u0420' or '\u0421' && ((fb & (C1 | Bad | Sp | Ep | Cur)) != 0 || b is '\u00B0' or '\u00B5')
                && c is '\u0412' or '\u0413' or '\u0420' or '\u0421')
                return true;
            if (a == '\u0413' && string.CompareOrdinal(s, i, "\u0413\u045E\u0412\u0402\u0412", 0, 5) == 0 && i + 5 < n && s[i + 5] != '\n')
            {
                int next = i + 6 + (char.IsHighSurrogate(s[i + 5]) && i + 6 < n && char.IsLowSurrogate(s[i + 6]) ? 1 : 0);
                if (next < n && (char.IsAsciiLetter(s[next]) || s[next] == ' ')) return true;
            }
            if (a == '\u00C3' && b is '\u00A0' or '\u00A1') return true;
            if (char.IsAsciiLetterLower(a) && (b is '\u00C3' or '\u00C2' && c == ' '
                    || TextCleaner.IsPythonSpace(b) && c is '\u00C3' or '\u00C2' && i + 3 < n && s[i + 3] == ' '))
                return true;
            if (i == 0 && a is '\u00C3' or '\u00C2' && b == ' ') return true;
            if ((a is >= 'a' and <= 'z' or '.' or ',' or '?' or '!' || (fa & Ep) != 0) && b == '\u00C2' && (c == ' ' || (fc & (Sp | Ep)) != 0)) return true;
            if (a == '\u03B2' && b == '\u20AC' && c is '\u2122' or '\u00A0' or '\u0386' or '\u00AD' or '\u00AE' or '\u00B0') return true;
            if (a is '\u0392' or '\u0393' or '\u039E' or '\u039F' && ((fb & (C1 | Bad | Sp | Ep | Cur)) != 0 || b == '\u00B0')
                && c is '\u0392' or '\u0393' or '\u039E' or '\u039F')
                return true;
            if (a == '\u0101' && b == '\u20AC') return true;
        }
        return false;
    }

    private static bool IsArabicMojibakeFollower(char c, int fc) =>
        (fc & (Common | Cur | Bad | Num | Sp)) != 0 || c is '\u0178' or '\u0160' or '\u00AE' or '\u00B0' or '\u00B5' or '\u00BB';

    // Python's \w: str.isalnum() or '_', per code point.
    private static bool IsWordAt(string s, int i)
    {
        char c = s[i];
        if (c == '_') return true;
        UnicodeCategory cat;
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) cat = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, s[i + 1]));
        else if (char.IsSurrogate(c)) return false;
        else cat = CharUnicodeInfo.GetUnicodeCategory(c);
        return cat <= UnicodeCategory.OtherLetter || cat is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
    }

    private const int C1 = 1, Bad = 2, Law = 4, Cur = 8, Sp = 16, Ep = 32, Num = 64, Kao = 128, Ua = 256, La = 512, Uc = 1024,
        Lc = 2048, Box = 4096, Common = 8192, Trigger = 16384;

    private static readonly Lazy<ushort[]> Flags = new(() =>
    {
        var f = new ushort[65536];
        void Set(string cls, int flag)
        {
            foreach (var (first, last) in FtfyClasses.Ranges(cls))
                for (int c = first; c <= last; c++) f[c] |= (ushort)(flag | Trigger);
        }
        Set(FtfyClasses.C1, C1); Set(FtfyClasses.Bad, Bad); Set(FtfyClasses.Law, Law); Set(FtfyClasses.Currency, Cur);
        Set(FtfyClasses.StartPunctuation, Sp); Set(FtfyClasses.EndPunctuation, Ep); Set(FtfyClasses.Numeric, Num);
        Set(FtfyClasses.Kaomoji, Kao); Set(FtfyClasses.UpperAccented, Ua); Set(FtfyClasses.LowerAccented, La);
        Set(FtfyClasses.UpperCommon, Uc); Set(FtfyClasses.LowerCommon, Lc); Set(FtfyClasses.Box, Box); Set(FtfyClasses.Common, Common);
        // first characters of the literal alternatives
        foreach (char c in "\u0152\u0153\u00C2\u00C3\u00CE\u00D0\u00D7\u00D8\u00D9\u00E0\u221A\u2248\u201A\u0432\u0412\u0413\u0420\u0421\u03B2\u0392\u0393\u039E\u039F\u0101")
            f[c] |= Trigger;
        return f;
    });

    /// <summary>ftfy's BADNESS_RE as a .NET regular expression (Python's \s and \w spelled out; BMP text only).</summary>
    internal static Regex BadnessPattern => Badness.Value;

    private static readonly Lazy<Regex> Badness = new(BuildBadness);

    private static Regex BuildBadness()
    {
        string c1 = FtfyClasses.C1, bad = FtfyClasses.Bad, law = FtfyClasses.Law, cur = FtfyClasses.Currency;
        string sp = FtfyClasses.StartPunctuation, ep = FtfyClasses.EndPunctuation, num = FtfyClasses.Numeric;
        string kao = FtfyClasses.Kaomoji, ua = FtfyClasses.UpperAccented, la = FtfyClasses.LowerAccented;
        string uc = FtfyClasses.UpperCommon, lc = FtfyClasses.LowerCommon, box = FtfyClasses.Box, common = FtfyClasses.Common;
        // Python's \s (str.isspace) and \w (str.isalnum or '_') for the BMP.
        const string ws = "[\\t\\n\\v\\f\\r\\u001C-\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";
        const string word = "[\\p{L}\\p{N}_]";
        string[] alternatives =
        [
            $"[{c1}]",
            $"[{bad}{la}{ua}{box}{sp}{ep}{cur}{num}{law}][{bad}]",
            $"[a-zA-Z][{lc}{uc}][{bad}]",
            $"[{bad}][{la}{ua}{box}{sp}{ep}{cur}{num}{law}]",
            $"[{la}{lc}{box}{ep}{cur}{num}][{ua}]",
            $"[{box}{ep}{cur}{num}][{la}]",
            $"[{la}{box}{ep}][{cur}]",
            $"{ws}[{ua}][{cur}]",
            $"[{ua}{box}][{num}{law}]",
            $"[{la}{ua}{box}{cur}{ep}][{sp}][{num}]",
            $"[{la}{ua}{cur}{num}{box}{law}][{ep}][{sp}]",
            $"[{cur}{num}{box}][{sp}]",
            $"[a-z][{ua}][{sp}{cur}]",
            $"[{box}][{kao}]",
            $"[{la}{ua}{cur}{num}{sp}{ep}{law}][{box}]",
            $"[{box}][{ep}]",
            $"[{la}{ua}][{sp}{ep}]{word}",
            "[\u0152\u0153][^A-Za-z]",
            $"[{ua}]\u00B0",
            $"[\u00C2\u00C3\u00CE\u00D0][\u20AC\u0153\u0160\u0161\u00A2\u00A3\u0178\u017E\u00A0\u00AD\u00AE\u00A9\u00B0\u00B7\u00BB{sp}{ep}\u2013\u2014\u00B4]",
            "\u00D7[\u00B2\u00B3]",
            $"[\u00D8\u00D9][{common}{cur}{bad}{num}{sp}\u0178\u0160\u00AE\u00B0\u00B5\u00BB][\u00D8\u00D9][{common}{cur}{bad}{num}{sp}\u0178\u0160\u00AE\u00B0\u00B5\u00BB]",
            "\u00E0[\u00B2\u00B5\u00B9\u00BC\u00BD\u00BE]",
            "\u221A[\u00B1\u2202\u2020\u2260\u00AE\u2122\u00B4\u2264\u2265\u00A5\u00B5\u00F8]",
            "\u2248[\u00B0\u00A2]",
            "\u201A\u00C4[\u00EC\u00EE\u00EF\u00F2\u00F4\u00FA\u00F9\u00FB\u2020\u00B0\u00A2\u03C0]",
            "\u201A[\u00E2\u00F3][\u00E0\u00E4\u00B0\u00EA]",
            "\u0432\u0402",
            $"[\u0412\u0413\u0420\u0421][{c1}{bad}{sp}{ep}{cur}\u00B0\u00B5][\u0412\u0413\u0420\u0421]",
            "\u0413\u045E\u0412\u0402\u0412.[A-Za-z ]",
            "\u00C3[\u00A0\u00A1]",
            $"[a-z]{ws}?[\u00C3\u00C2] ",
            "^[\u00C3\u00C2] ",
            $"[a-z.,?!{ep}]\u00C2[ {sp}{ep}]",
            "\u03B2\u20AC[\u2122\u00A0\u0386\u00AD\u00AE\u00B0]",
            $"[\u0392\u0393\u039E\u039F][{c1}{bad}{sp}{ep}{cur}\u00B0][\u0392\u0393\u039E\u039F]",
            "\u0101\u20AC",
        ];
        return new Regex(string.Join("|", alternatives), RegexOptions.CultureInvariant);
    }

    // ------------------------------------------------------------------ character fixes

    // Latin ligatures (then width forms, then curly quotes, in ftfy's order) as one per-character translation.
    private static string MapCharacters(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c < '\u0132' || (c > '\u01F3' && c < '\u02BC') || (c > '\u02BC' && c < '\u2018') || (c > '\u201F' && c < '\u3000')
                || (c > '\u3000' && c < '\uFB00') || (c > '\uFB06' && c < '\uFF01') || c > '\uFFEF') continue;
            string? lig = Ligature(c);
            if (lig is null && Width(c) is null && c is not ('\u02BC' or >= '\u2018' and <= '\u201F')) continue;
            string mapped = lig ?? c.ToString();
            var sb = new StringBuilder(mapped.Length);
            foreach (char m in mapped)
            {
                string w = Width(m) ?? m.ToString();
                foreach (char q in w) sb.Append(q is '\u02BC' or >= '\u2018' and <= '\u201B' ? '\'' : q is >= '\u201C' and <= '\u201F' ? '"' : q);
            }
            string result = sb.ToString();
            if (result.Length == 1 && result[0] == c) continue;
            (rw ??= new Rewriter(s, o)).Replace(i, i + 1, result);
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    private static string? Ligature(char c) => c switch
    {
        '\u0132' => "IJ", '\u0133' => "ij", '\u0149' => "\u02BCn",
        '\u01F1' => "DZ", '\u01F2' => "Dz", '\u01F3' => "dz",
        '\u01C4' => "D\u017D", '\u01C5' => "D\u017E", '\u01C6' => "d\u017E",
        '\u01C7' => "LJ", '\u01C8' => "Lj", '\u01C9' => "lj",
        '\u01CA' => "NJ", '\u01CB' => "Nj", '\u01CC' => "nj",
        '\uFB00' => "ff", '\uFB01' => "fi", '\uFB02' => "fl", '\uFB03' => "ffi", '\uFB04' => "ffl",
        '\uFB05' => "\u017Ft", '\uFB06' => "st",
        _ => null,
    };

    private static readonly Lazy<string?[]> WidthMap = new(() =>
    {
        var map = new string?[0xFFF0 - 0xFF01];
        for (int c = 0xFF01; c < 0xFFF0; c++)
        {
            string one = ((char)c).ToString();
            string k = one.Normalize(NormalizationForm.FormKC);
            map[c - 0xFF01] = k == one ? null : k;
        }
        return map;
    });

    private static string? Width(char c) => c == '\u3000' ? " " : c is >= '\uFF01' and < '\uFFF0' ? WidthMap.Value[c - 0xFF01] : null;

    private static string FixLineBreaks(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\r')
            {
                int end = i + 1 < s.Length && s[i + 1] == '\n' ? i + 2 : i + 1;
                (rw ??= new Rewriter(s, o)).Replace(i, end, '\n');
                i = end - 1;
            }
            else if (c is '\u2028' or '\u2029' or '\u0085') (rw ??= new Rewriter(s, o)).Replace(i, i + 1, '\n');
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    // A .NET string holds surrogate pairs as the characters they encode already; lone surrogates become U+FFFD.
    private static string FixSurrogates(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            (rw ??= new Rewriter(s, o)).Replace(i, i + 1, '\uFFFD');
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    // ESC '[' (decimal digit | ';')* ASCII letter
    private static string RemoveTerminalEscapes(string s, ref Origins? o)
    {
        int esc = s.IndexOf('\u001B');
        if (esc < 0) return s;
        Rewriter? rw = null;
        for (int i = esc; i < s.Length; i++)
        {
            if (s[i] != '\u001B' || i + 1 >= s.Length || s[i + 1] != '[') continue;
            int p = i + 2;
            while (p < s.Length)
            {
                if (s[p] == ';') { p++; continue; }
                Rune.DecodeFromUtf16(s.AsSpan(p), out Rune r, out int used);
                if (Rune.GetUnicodeCategory(r) != UnicodeCategory.DecimalDigitNumber) break;
                p += used;
            }
            if (p < s.Length && char.IsAsciiLetter(s[p]))
            {
                (rw ??= new Rewriter(s, o)).Replace(i, p + 1, ReadOnlySpan<char>.Empty);
                i = p;
            }
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    private static bool IsRemovedControl(char c) =>
        c is <= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or >= '\u206A' and <= '\u206F'
            or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';

    private static string RemoveControlCharacters(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        for (int i = 0; i < s.Length; i++)
            if (IsRemovedControl(s[i])) (rw ??= new Rewriter(s, o)).Replace(i, i + 1, ReadOnlySpan<char>.Empty);
        return rw is null ? s : rw.Finish(ref o);
    }

    /// <summary>
    /// NFC as Python's unicodedata does it, also for text .NET's normaliser rejects: U+FFFE and lone surrogates (which
    /// never combine) split the text into parts normalised on their own. With provenance, the text is normalised in
    /// chunks that start at a character that is neither a mark nor a conjoining Hangul vowel or trailing consonant,
    /// and every unit of a chunk covers the chunk.
    /// </summary>
    internal static string NormalizeC(string s, ref Origins? o)
    {
        if (IsAsciiOrLatin1Composed(s)) return s;
        if (o is null) return NormalizeCPlain(s);
        if (string.Equals(NormalizeCPlain(s), s, StringComparison.Ordinal)) return s;
        var sb = new StringBuilder(s.Length);
        var org = new OriginsBuilder(s.Length);
        int start = 0;
        for (int i = 1; i <= s.Length; i++)
        {
            if (i < s.Length && !IsChunkStart(s, i)) continue;
            string chunk = NormalizeCPlain(s[start..i]);
            sb.Append(chunk);
            if (chunk.Length == i - start && string.CompareOrdinal(chunk, 0, s, start, chunk.Length) == 0) org.AddRange(o, start, i);
            else
            {
                var (cs, ce) = o.Cover(start, i);
                org.Add(cs, ce, chunk.Length);
            }
            start = i;
        }
        string result = sb.ToString();
        if (!string.Equals(result, NormalizeCPlain(s), StringComparison.Ordinal))
        {
            // Not expected; keep the text exact and give every unit the whole text as its origin.
            result = NormalizeCPlain(s);
            var (cs, ce) = o.Cover(0, s.Length);
            var all = new OriginsBuilder(result.Length);
            all.Add(cs, ce, result.Length);
            o = all.Build();
            return result;
        }
        o = org.Build();
        return result;
    }

    private static bool IsChunkStart(string s, int i)
    {
        char c = s[i];
        if (char.IsLowSurrogate(c)) return false;
        if (c < 0x300) return true;
        if (c is >= '\u1160' and <= '\u11FF') return false;
        var cat = char.IsHighSurrogate(c) && i + 1 < s.Length ? CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, s[i + 1]))
            : CharUnicodeInfo.GetUnicodeCategory(c);
        return cat is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark);
    }

    private static bool IsAsciiOrLatin1Composed(string s)
    {
        foreach (char c in s) if (c >= 0x300) return false;
        return true;
    }

    private static string NormalizeCPlain(string s)
    {
        if (IsAsciiOrLatin1Composed(s)) return s;
        int bad = IndexOfUnnormalizable(s, 0);
        if (bad < 0) return s.IsNormalized(NormalizationForm.FormC) ? s : s.Normalize(NormalizationForm.FormC);
        var sb = new StringBuilder(s.Length);
        int start = 0;
        while (bad >= 0)
        {
            if (bad > start) sb.Append(s.AsSpan(start, bad - start).ToString().Normalize(NormalizationForm.FormC));
            sb.Append(s[bad]);
            start = bad + 1;
            bad = IndexOfUnnormalizable(s, start);
        }
        if (start < s.Length) sb.Append(s[start..].Normalize(NormalizationForm.FormC));
        return sb.ToString();
    }

    // Characters .NET's normaliser throws on: U+FFFE and unpaired surrogates.
    private static int IndexOfUnnormalizable(string s, int from)
    {
        for (int i = from; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\uFFFE') return i;
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
                return i;
            }
            if (char.IsLowSurrogate(c)) return i;
        }
        return -1;
    }

    // ------------------------------------------------------------------ codecs

    private sealed class Codec
    {
        private readonly Dictionary<char, byte> _encode = new();

        public Codec(string name, bool sloppy, string high)
        {
            Name = name;
            Sloppy = sloppy;
            High = high;
            for (int b = 0; b < 128; b++) _encode.TryAdd(high[b], (byte)(0x80 + b));
            if (sloppy) _encode.TryAdd('\uFFFD', 0x1A);
        }

        public string Name { get; }
        public bool Sloppy { get; }
        public string High { get; }

        // ftfy's possible_encoding: ASCII except 0x1A, plus what bytes 0x80..0xFF and 0x1A decode to.
        public bool CanEncode(string s)
        {
            foreach (char c in s)
            {
                if (c < 0x80) { if (c == '\u001A' && Sloppy) return false; continue; }
                if (!_encode.ContainsKey(c)) return false;
            }
            return true;
        }

        public byte Encode(char c) => c < 0x80 ? (byte)c : _encode[c];
    }

    private static readonly Lazy<Codec[]> Codecs = new(() =>
        TextTables.Charmaps.Select(t => new Codec(t.Name, t.Sloppy, t.High)).ToArray());
}

/// <summary>Strict UTF-8 decoding with per-character byte spans, optionally with ftfy's "utf-8-variants" extensions
/// (CESU-8 surrogate pairs and Java's 0xC0 0x80 for U+0000).</summary>
internal static class Utf8
{
    public static bool TryDecode(ReadOnlySpan<byte> b, bool variants, StringBuilder sb, List<(int, int)>? spans)
    {
        int n = b.Length;
        int i = 0;
        while (i < n)
        {
            int x = b[i];
            int cp, len;
            if (x < 0x80) { cp = x; len = 1; }
            else if (variants && x == 0xC0 && i + 1 < n && (b[i + 1] == 0x80 || (b[i + 1] == 0x0A && i + 2 == n)))
            {
                // ftfy's pattern ends in "(\x80|$)", and '$' also matches before a final line feed, which is consumed.
                cp = 0; len = 2;
            }
            else if (variants && x == 0xED && i + 1 < n && b[i + 1] >= 0xA0)
            {
                if (n - i < 6 || b[i + 1] > 0xAF || !IsCont(b[i + 2]) || b[i + 3] != 0xED || b[i + 4] is < 0xB0 or > 0xBF
                    || !(IsCont(b[i + 5]) || (b[i + 5] == 0x0A && i + 6 == n)))
                    return false;
                cp = ((b[i + 1] & 0x0F) << 16) + ((b[i + 2] & 0x3F) << 10) + ((b[i + 4] & 0x0F) << 6) + (b[i + 5] & 0x3F) + 0x10000;
                len = 6;
            }
            else if (x is >= 0xC2 and <= 0xDF)
            {
                if (i + 1 >= n || !IsCont(b[i + 1])) return false;
                cp = ((x & 0x1F) << 6) | (b[i + 1] & 0x3F); len = 2;
            }
            else if (x is >= 0xE0 and <= 0xEF)
            {
                if (i + 2 >= n || !IsCont(b[i + 2])) return false;
                int y = b[i + 1];
                bool ok = x switch { 0xE0 => y is >= 0xA0 and <= 0xBF, 0xED => y is >= 0x80 and <= 0x9F, _ => IsCont(y) };
                if (!ok) return false;
                cp = ((x & 0x0F) << 12) | ((y & 0x3F) << 6) | (b[i + 2] & 0x3F); len = 3;
            }
            else if (x is >= 0xF0 and <= 0xF4)
            {
                if (i + 3 >= n || !IsCont(b[i + 2]) || !IsCont(b[i + 3])) return false;
                int y = b[i + 1];
                bool ok = x switch { 0xF0 => y is >= 0x90 and <= 0xBF, 0xF4 => y is >= 0x80 and <= 0x8F, _ => IsCont(y) };
                if (!ok) return false;
                cp = ((x & 0x07) << 18) | ((y & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F); len = 4;
            }
            else return false;
            if (cp < 0x10000) { sb.Append((char)cp); spans?.Add((i, i + len)); }
            else
            {
                sb.Append(char.ConvertFromUtf32(cp));
                spans?.Add((i, i + len));
                spans?.Add((i, i + len));
            }
            i += len;
        }
        return true;
    }

    private static bool IsCont(int b) => b is >= 0x80 and <= 0xBF;
}
