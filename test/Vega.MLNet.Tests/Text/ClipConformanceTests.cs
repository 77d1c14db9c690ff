using System.Text;
using System.Text.Json;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Text;

/// <summary>
/// The generated conformance set (TestData/tokenizer/clip-conformance.jsonl, see its README): thousands of strings
/// per family (controls, whitespace, noncharacters, surrogates, every Unicode category, marks, case folding, HTML
/// entities, ligatures, width forms, mojibake in ten encodings, ...) with the ids the reference (openai/CLIP
/// simple_tokenizer + ftfy 6.3.1 + the regex module) gave with text fixing on and off.
/// </summary>
public sealed class ClipConformanceTests
{
    private static readonly Lazy<ClipTokenizer> Tok = new(() => ClipTokenizer.FromVocabAndMerges(
        Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "merges.txt")));

    internal sealed record Case(int Line, string Family, string Text, int[] Ids, int[] IdsNoFix, string? Decoded);

    internal static readonly Lazy<Case[]> Cases = new(Load);

    private static Case[] Load()
    {
        string path = Path.Combine(Fixtures.RepositoryRoot, "test", "Vega.MLNet.Tests", "TestData", "tokenizer", "clip-conformance.jsonl");
        var list = new List<Case>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path, Encoding.UTF8))
        {
            lineNo++;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            string text = r.TryGetProperty("text", out var t) ? t.GetString()!
                : new string(r.GetProperty("utf16").EnumerateArray().Select(e => (char)e.GetInt32()).ToArray());
            int[] ids = Ints(r.GetProperty("ids"));
            // Where the reference raises (a lone surrogate reaching UTF-8 encoding with fixing off), the port
            // encodes U+FFFD instead; the generator recorded those ids as ids_nofix_replaced.
            int[] noFix = r.TryGetProperty("ids_nofix_replaced", out var rep) ? Ints(rep)
                : r.TryGetProperty("ids_nofix", out var nf) ? Ints(nf) : ids;
            list.Add(new Case(lineNo, r.GetProperty("family").GetString()!, text, ids, noFix,
                r.TryGetProperty("decoded", out var d) ? d.GetString() : null));
        }
        return list.ToArray();
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void EveryGeneratedStringMatchesTheReferenceWithTextFixingOn() => Check(Tok.Value, c => c.Ids);

    [Fact]
    public void EveryGeneratedStringMatchesTheReferenceWithTextFixingOff() => Check(Tok.Value.WithFixText(false), c => c.IdsNoFix);

    [Fact]
    public void TheHandWrittenBadnessMatcherAgreesWithFtfysPattern()
    {
        // Two implementations of ftfy's is_bad: the matcher the port uses and ftfy's regular expression (BMP text).
        var texts = Cases.Value.Select(c => c.Text).Where(t => !t.Any(char.IsSurrogate)).ToList();
        string pool = "\u00C0\u00C2\u00C3\u00C9\u00CE\u00D0\u00D7\u00D8\u00D9\u00E0\u00E9\u00A0\u00A9\u00AE\u00B0\u00B2\u00B5\u00BB\u00A2\u00A3\u20AC" +
                      "\u2122\u2018\u201C\u201D\u2026\u2013\u0152\u0153\u0160\u0161\u0178\u017E\u0192\u02C6\u2020\u2030\u221A\u2248\u201A\u00C4" +
                      "\u00EC\u03C0\u0432\u0402\u0412\u0413\u0420\u0421\u045E\u03B2\u0386\u0392\u039F\u0101\u2550\u2588\u00F2\u0080\u0099" +
                      "\u00A4\u00A6\u00A8\u00AC\u00AF\u00B8\u00A7\u00B6\u00A1\u00BF\u00AB\u0384\u2039\u203A\u00B1\u00BC\u00F7\u2116aAz .,?!_1\n\t";
        var rng = new Random(17);
        for (int i = 0; i < 30000; i++)
        {
            var chars = new char[rng.Next(1, 9)];
            for (int k = 0; k < chars.Length; k++) chars[k] = pool[rng.Next(pool.Length)];
            texts.Add(new string(chars));
        }
        int bad = 0;
        foreach (string s in texts)
        {
            bool expected = Ftfy.BadnessPattern.IsMatch(s);
            Assert.True(expected == Ftfy.IsBad(s), $"{Escape(s)}: ftfy's pattern says {expected}");
            if (expected) bad++;
        }
        Assert.True(bad > 3000, $"only {bad} bad strings were tried");
    }

    private static void Check(ClipTokenizer tok, Func<Case, int[]> expected)
    {
        var cases = Cases.Value;
        Assert.True(cases.Length > 10000, "the conformance set was read");
        var failures = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        var totals = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in cases)
        {
            totals[c.Family] = totals.GetValueOrDefault(c.Family) + 1;
            int[] got;
            string error = "";
            try { got = tok.EncodeWithSpecialTokens(c.Text); }
            catch (Exception e) { got = []; error = $" threw {e.GetType().Name}: {e.Message}"; }
            if (got.AsSpan().SequenceEqual(expected(c))) continue;
            if (!failures.TryGetValue(c.Family, out var list)) failures[c.Family] = list = [];
            list.Add($"line {c.Line} {Escape(c.Text)}: expected [{string.Join(' ', expected(c))}] got [{string.Join(' ', got)}]{error}");
        }
        if (failures.Count == 0) return;
        var sb = new StringBuilder("Differences from the reference per family:\n");
        foreach (var (family, list) in failures)
        {
            sb.Append($"  {family}: {list.Count} of {totals[family]}\n");
            foreach (var f in list.Take(4)) sb.Append("      ").Append(f).Append('\n');
        }
        Assert.Fail(sb.ToString());
    }

    internal static string Escape(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char ch in s.Length > 80 ? s[..80] : s)
            sb.Append(ch is >= ' ' and < '\u007F' ? ch.ToString() : $"\\u{(int)ch:X4}");
        return sb.Append(s.Length > 80 ? "...\"" : "\"").ToString();
    }
}
