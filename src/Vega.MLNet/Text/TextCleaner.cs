using System.Globalization;
using System.Text;

namespace Vega.MLNet.Text;

/// <summary>
/// The text clean-up the reference CLIP tokenizer applies before pre-tokenisation:
/// <c>ftfy.fix_text</c> (see <see cref="Ftfy"/>; optional), <c>html.unescape</c> twice, <c>strip()</c>, every run of
/// regex whitespace (Unicode White_Space) to one space, <c>strip()</c>, Python's <c>str.lower()</c>. Each step can
/// carry provenance (<see cref="Origins"/>) so that token offsets point into the original text.
/// </summary>
internal static class TextCleaner
{
    /// <summary>
    /// Cleans <paramref name="text"/> into <paramref name="buffer"/> (grown when needed) and returns the length
    /// written. Plain ASCII text without '&amp;' or control characters takes a single pass.
    /// </summary>
    public static int Clean(string text, bool fixText, ref char[] buffer)
    {
        if (IsPlainAscii(text)) return CollapseWhitespaceLowerAscii(text, ref buffer);
        Origins? none = null;
        string s = CleanGeneral(text, fixText, ref none);
        if (buffer.Length < s.Length) buffer = new char[Math.Max(s.Length, buffer.Length * 2)];
        s.CopyTo(buffer);
        return s.Length;
    }

    /// <summary>The cleaned text and, for each of its UTF-16 units, the range of <paramref name="text"/> it came from.</summary>
    public static string Clean(string text, bool fixText, out Origins origins)
    {
        Origins? o = Origins.Identity(text.Length);
        string s = CleanGeneral(text, fixText, ref o);
        origins = o!;
        return s;
    }

    /// <summary>The cleaned text (what the reference passes to its pre-tokeniser).</summary>
    public static string Clean(string text, bool fixText)
    {
        char[] buffer = new char[Math.Max(16, text.Length)];
        int n = Clean(text, fixText, ref buffer);
        return new string(buffer, 0, n);
    }

    private static string CleanGeneral(string text, bool fixText, ref Origins? o)
    {
        string s = text;
        if (fixText) s = Ftfy.FixText(s, ref o);
        s = HtmlUnescape.Unescape(s, ref o);
        s = HtmlUnescape.Unescape(s, ref o);
        s = StripAndCollapse(s, ref o);
        return LowerPython(s, ref o);
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

    /// <summary>Python's <c>str.isspace()</c> (what <c>strip()</c> removes): White_Space plus U+001C..U+001F.</summary>
    internal static bool IsPythonSpace(char c) => IsRegexSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary>The regex module's <c>\s</c> for text: the Unicode White_Space property.</summary>
    internal static bool IsRegexSpace(char c) => c switch
    {
        ' ' => true,
        >= '\t' and <= '\r' => true,
        < '\u0085' => false,
        '\u0085' or '\u00A0' or '\u1680' or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000' => true,
        >= '\u2000' and <= '\u200A' => true,
        _ => false,
    };

    // ASCII text without '&' or control characters: strip, collapse whitespace runs, lower-case, in one pass.
    private static int CollapseWhitespaceLowerAscii(string s, ref char[] buffer)
    {
        if (buffer.Length < s.Length) buffer = new char[Math.Max(s.Length, buffer.Length * 2)];
        int n = 0;
        bool pendingSpace = false;
        foreach (char ch in s)
        {
            if (ch is ' ' or '\t' or '\n' or '\r' or '\f') { pendingSpace = n > 0; continue; }
            if (pendingSpace) { buffer[n++] = ' '; pendingSpace = false; }
            buffer[n++] = ch is >= 'A' and <= 'Z' ? (char)(ch | 0x20) : ch;
        }
        return n;
    }

    // strip() with Python's isspace, then every run of White_Space becomes one space. (U+001C..U+001F go at the ends
    // but stay between words: they are not White_Space.)
    private static string StripAndCollapse(string s, ref Origins? o)
    {
        int first = 0, last = s.Length - 1;
        while (first <= last && IsPythonSpace(s[first])) first++;
        while (last >= first && IsPythonSpace(s[last])) last--;
        bool changed = first > 0 || last < s.Length - 1;
        if (!changed)
        {
            for (int i = first; i <= last; i++)
            {
                if (!IsRegexSpace(s[i])) continue;
                if (s[i] != ' ' || (i + 1 <= last && IsRegexSpace(s[i + 1]))) { changed = true; break; }
            }
            if (!changed) return s;
        }
        var rw = new Rewriter(s, o);
        if (first > 0) rw.Replace(0, first, ReadOnlySpan<char>.Empty);
        for (int i = first; i <= last; i++)
        {
            if (!IsRegexSpace(s[i])) continue;
            int j = i + 1;
            while (j <= last && IsRegexSpace(s[j])) j++;
            if (j > i + 1 || s[i] != ' ') rw.Replace(i, j, ' ');
            i = j - 1;
        }
        if (last < s.Length - 1) rw.Replace(last + 1, s.Length, ReadOnlySpan<char>.Empty);
        return rw.Finish(ref o);
    }

    /// <summary>
    /// Python's <c>str.lower()</c>: Unicode simple lower-case mapping per code point, plus the unconditional
    /// special casing U+0130 → "i̇" and the Final_Sigma rule for U+03A3 (with Python's cased and case-ignorable sets).
    /// Unpaired surrogates stay as they are.
    /// </summary>
    internal static string LowerPython(string s) { Origins? none = null; return LowerPython(s, ref none); }

    private static string LowerPython(string s, ref Origins? o)
    {
        Rewriter? rw = null;
        Span<char> tmp = stackalloc char[2];
        for (int i = 0; i < s.Length;)
        {
            char c = s[i];
            if (c < 0x80)
            {
                if (c is >= 'A' and <= 'Z') (rw ??= new Rewriter(s, o)).Replace(i, i + 1, (char)(c | 0x20));
                i++;
                continue;
            }
            if (Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used) != System.Buffers.OperationStatus.Done)
            {
                i += used;
                continue;
            }
            if (r.Value == 0x130) (rw ??= new Rewriter(s, o)).Replace(i, i + 1, "i\u0307");
            else if (r.Value == 0x3A3) (rw ??= new Rewriter(s, o)).Replace(i, i + 1, IsFinalSigma(s, i) ? '\u03C2' : '\u03C3');
            else
            {
                Rune lower = Rune.ToLowerInvariant(r);
                if (lower != r)
                {
                    int w = lower.EncodeToUtf16(tmp);
                    (rw ??= new Rewriter(s, o)).Replace(i, i + used, tmp[..w]);
                }
            }
            i += used;
        }
        return rw is null ? s : rw.Finish(ref o);
    }

    // Final_Sigma as CPython applies it: skipping case-ignorable code points, a cased one before and none after.
    private static bool IsFinalSigma(string s, int index)
    {
        int j = index;
        int cp = -1;
        while (j > 0)
        {
            cp = PreviousCodePoint(s, ref j);
            if (!IsCaseIgnorable(cp)) break;
            cp = -1;
        }
        if (cp < 0 || !IsCased(cp)) return false;
        j = index + 1;
        while (j < s.Length)
        {
            Rune.DecodeFromUtf16(s.AsSpan(j), out Rune r, out int used);
            int next = char.IsSurrogate(s[j]) && used == 1 ? s[j] : r.Value;
            if (!IsCaseIgnorable(next)) return !IsCased(next);
            j += used;
        }
        return true;
    }

    private static int PreviousCodePoint(string s, ref int j)
    {
        char c = s[--j];
        if (char.IsLowSurrogate(c) && j > 0 && char.IsHighSurrogate(s[j - 1])) return char.ConvertToUtf32(s[--j], c);
        return c;
    }

    private static UnicodeCategory Category(int cp) =>
        cp is >= 0xD800 and <= 0xDFFF ? UnicodeCategory.Surrogate : CharUnicodeInfo.GetUnicodeCategory(cp);

    internal static bool IsCased(int cp) =>
        Category(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
        || InRanges(TextTables.CasedExtra, cp);

    internal static bool IsCaseIgnorable(int cp) =>
        (Category(cp) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
             or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol && !InRanges(TextTables.NotCaseIgnorable, cp))
        || InRanges(TextTables.CaseIgnorableExtra, cp);

    private static bool InRanges(int[] ranges, int cp)
    {
        // (first, last) pairs in increasing order
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }
}
