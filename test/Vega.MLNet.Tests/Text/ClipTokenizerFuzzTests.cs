using System.Text;
using Microsoft.ML.Tokenizers;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Text;

/// <summary>
/// Seeded fuzzing of the tokenizer: random UTF-16 (noncharacters, lone surrogates, C0/C1 controls, marks, HTML
/// fragments, mojibake, very long strings) through every entry point, with text fixing on and off. No exception may
/// escape (the only documented one, ArgumentNullException, needs a null text) and every run must end.
/// </summary>
public sealed class ClipTokenizerFuzzTests
{
    private static readonly Lazy<ClipTokenizer> Tok = new(() => ClipTokenizer.Create(
        Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "merges.txt")));

    private static readonly string[] Fragments =
    [
        "&amp;", "&", "&#", "&#x", "&#x85;", "&#128512;", "&#xD800;", "&#0;", "&NTILDE;", "&eacute", "&amp;amp;lt;", "<", "<b>", "\n",
        "\r\n", "\r", "\u001B[31m", "\u001B[", "'s", "'\u017F", "<|endoftext|>", "<|startoftext|>", "<|\u017Ftartoftext|>", "\u00C3\u00A9",
        "\u00C3 ", "\u00E2\u20AC\u2122", "\u00C2\u00A0", "\u00ED\u00A0\u00BD\u00ED\u00B8\u0080", "\u00C0\u0080", "\u0130", "\u03A3", "\u0345",
        "\uFB01", "\uFF21", "\u3000", "\u2019", "\uFEFF", "\u200D", "\u0301", "\u1100\u1161\u11A8", "\uFFFD", "?", "\u001A",
    ];

    private static string RandomText(Random rng, int length)
    {
        var sb = new StringBuilder(length + 16);
        while (sb.Length < length)
        {
            int r = rng.Next(100);
            if (r < 25) sb.Append((char)rng.Next(0x20, 0x7F));
            else if (r < 30) sb.Append((char)rng.Next(0, 0x20));
            else if (r < 35) sb.Append((char)rng.Next(0x7F, 0x100));
            else if (r < 45) sb.Append((char)rng.Next(0x100, 0x800));
            else if (r < 52) sb.Append((char)rng.Next(0x300, 0x370));
            else if (r < 60) sb.Append((char)rng.Next(0x800, 0xD800));
            else if (r < 64) sb.Append((char)rng.Next(0xD800, 0xE000)); // lone (or accidentally paired) surrogates
            else if (r < 68) sb.Append(rng.Next(3) switch { 0 => (char)rng.Next(0xFDD0, 0xFDF0), 1 => '\uFFFE', _ => '\uFFFF' });
            else if (r < 72) sb.Append((char)rng.Next(0xE000, 0x10000));
            else if (r < 78) sb.Append(char.ConvertFromUtf32(rng.Next(3) == 0 ? (rng.Next(17) << 16) | (0xFFFE + rng.Next(2)) : 0x10000 + rng.Next(0x100000)));
            else if (r < 90) sb.Append(Fragments[rng.Next(Fragments.Length)]);
            else
            {
                // mojibake: UTF-8 bytes of random text read as Windows-1252 / Latin-1
                var bytes = Encoding.UTF8.GetBytes(new string((char)rng.Next(0xA0, 0x3000), rng.Next(1, 4)));
                foreach (byte b in bytes) sb.Append(b is >= 0x80 and <= 0x9F && rng.Next(2) == 0 ? "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178"[b - 0x80] : (char)b);
            }
        }
        return sb.ToString();
    }

    private static void Exercise(ClipTokenizer tok, string text)
    {
        Tokenizer t = tok;
        var ids = tok.EncodeWithSpecialTokens(text);
        Assert.Equal(ids, t.EncodeToIds(text));
        Assert.Equal(ids.Length, t.CountTokens(text));
        var tokens = t.EncodeToTokens(text, out _);
        Assert.Equal(ids, tokens.Select(x => x.Id));
        foreach (var x in tokens)
            Assert.True(x.Offset.Start.Value >= 0 && x.Offset.Start.Value <= x.Offset.End.Value && x.Offset.End.Value <= text.Length);
        _ = t.Decode(ids);
        _ = tok.Decode(ids, considerSpecialTokens: true);
        _ = t.Normalizer!.Normalize(text);
        if (ids.Length > 3) t.EncodeToIds(text, ids.Length / 2, out _, out _);
        var batch = tok.EncodeBatch([text], 77, truncate: true);
        Assert.Equal(Math.Min(ids.Length, 77), batch.Lengths[0]);
    }

    [Fact]
    public async Task RandomUnicodeNeverThrowsAndAlwaysEnds()
    {
        var work = Task.Run(() =>
        {
            var rng = new Random(20261205);
            var on = Tok.Value;
            var off = on.WithFixText(false);
            for (int i = 0; i < 3000; i++)
            {
                string text = RandomText(rng, rng.Next(0, i % 50 == 0 ? 2000 : 60));
                try
                {
                    Exercise(on, text);
                    Exercise(off, text);
                }
                catch (Exception e)
                {
                    Assert.Fail($"case {i} {ClipConformanceTests.Escape(text)}: {e}");
                }
            }
            // Very long inputs: one line of 200k random characters, a 60k-character word, 30k combining marks.
            foreach (string text in new[]
                     {
                         RandomText(rng, 200_000), string.Concat(Enumerable.Repeat("\u00C3\u00A9t\u00C3\u00A9", 12_000)),
                         "a" + new string('\u0301', 30_000), new string('\uFFFE', 20_000), new string('\uD800', 20_000),
                     })
            {
                Exercise(on, text);
                Exercise(off, text);
            }
        });
        // Not a speed check (that is `vega bench tokenizer`): a guard that turns a hang into a failure.
        var finished = await Task.WhenAny(work, Task.Delay(TimeSpan.FromMinutes(3)));
        Assert.True(finished == work, "the tokenizer fuzz run did not finish: a hang");
        await work;
    }

    [Fact]
    public void NoncharactersAndLoneSurrogatesEncodeAsTheReferenceDoes()
    {
        // Issue 17 item 12: with text fixing on, U+FFFE threw ArgumentException (from .NET's normaliser). The
        // reference keeps noncharacters (NFC leaves them) and ftfy turns lone surrogates into U+FFFD; with fixing off
        // the reference raises UnicodeEncodeError on a lone surrogate, where the port encodes U+FFFD instead.
        var cases = ClipConformanceTests.Cases.Value;
        foreach (string text in new[] { "a\uFFFEb", "\uFFFE", "caf\u00E9\uFFFF", "a\uFDD0b", "a\uDB7F\uDFFEb", "a\uD800b", "\uDC00" })
        {
            var c = cases.Single(x => x.Text == text);
            Assert.Equal(c.Ids, Tok.Value.EncodeWithSpecialTokens(text));
            Assert.Equal(c.IdsNoFix, Tok.Value.WithFixText(false).EncodeWithSpecialTokens(text));
        }
        Assert.Throws<ArgumentNullException>(() => Tok.Value.Encode(null!));
    }
}
