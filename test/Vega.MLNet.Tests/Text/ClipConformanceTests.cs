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
