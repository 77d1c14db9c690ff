using System.Buffers;
using System.Security.Cryptography;
using Microsoft.ML.Tokenizers;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Text;

/// <summary>ClipTokenizer as an ML.NET <see cref="Tokenizer"/>: ids, tokens and offsets, counts, decoding, limits; and
/// the vocabulary built into the package.</summary>
public sealed class ClipTokenizerMLNetTests
{
    private static readonly Lazy<ClipTokenizer> Hf = new(() => ClipTokenizer.Create(
        Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "merges.txt")));

    private static IEnumerable<(string Text, int[] Ids)> Goldens() =>
        Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden.jsonl"))
            .Concat(Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden_classnames.jsonl")));

    [Fact]
    public void AsAnMLNetTokenizerItGivesTheGoldenIdsTokensAndCounts()
    {
        Tokenizer t = Hf.Value;
        int n = 0;
        foreach (var (text, ids) in Goldens())
        {
            Assert.Equal(ids, t.EncodeToIds(text));
            Assert.Equal(ids, t.EncodeToIds(text.AsSpan()));
            Assert.Equal(ids.Length, t.CountTokens(text));
            var tokens = t.EncodeToTokens(text, out string? normalized);
            Assert.Null(normalized); // offsets refer to the original text
            Assert.Equal(ids, tokens.Select(x => x.Id));
            Assert.All(tokens, x => Assert.Equal(Hf.Value.IdToToken(x.Id), x.Value));
            n++;
        }
        Assert.True(n > 3000);
    }

    [Fact]
    public void TheNormalizerAndPreTokenizerAreCLIPsCleanUpAndPattern()
    {
        Tokenizer t = Hf.Value;
        Assert.Equal("a photo of & café 'quoted' fish", t.Normalizer!.Normalize("  A  PHOTO\tof &amp; Cafe\u0301 \u2018quoted\u2019 \uFB01sh \n"));
        Assert.Equal("a photo of &amp; café ‘quoted’ ﬁsh".Replace("&amp;", "&"),
            Hf.Value.WithFixText(false).Normalizer.Normalize("A photo of &amp; café ‘quoted’ ﬁsh"));
        string s = "it's 3.5°c, isn't it?";
        var pieces = t.PreTokenizer!.PreTokenize(s).Select(p => s.Substring(p.Offset, p.Length));
        Assert.Equal(["it", "'s", "3", ".", "5", "°", "c", ",", "isn", "'t", "it", "?"], pieces);
        // Encoding the normalized text without normalization gives the same ids.
        foreach (var (text, ids) in Goldens().Take(600))
            Assert.Equal(ids, t.EncodeToIds(t.Normalizer.Normalize(text), considerNormalization: false));
    }

    [Fact]
    public void WithoutNormalizationOrPreTokenizationTheReferencePartsStillApply()
    {
        // Ids from the reference: its bpe() on the whole byte-encoded string, and its pattern (case-insensitive) and
        // bpe() on the raw text without clean-up or lower-casing.
        Tokenizer t = Hf.Value;
        Assert.Equal([49406, 64, 220, 1153, 220, 684, 220, 64, 220, 2368, 49407], t.EncodeToIds("a photo of a cat", considerPreTokenization: false));
        Assert.Equal([49406, 12887, 11, 220, 2334, 256, 49407], t.EncodeToIds("hello, world!", considerPreTokenization: false));
        Assert.Equal([49406, 32, 220, 47, 606, 531, 49407], t.EncodeToIds("A Photo", considerPreTokenization: false, considerNormalization: false));
        Assert.Equal([49406, 288, 47, 606, 531, 46, 293, 320, 34, 32, 307, 49407], t.EncodeToIds("A Photo OF a CAT", considerNormalization: false));
        Assert.Equal([49406, 40, 307, 6, 306, 49407], t.EncodeToIds("IT'S", considerNormalization: false));
        Assert.Equal([49406, 27, 91, 50, 51, 32, 49, 51, 46, 37, 51, 36, 55, 51, 91, 285, 343, 49407],
            t.EncodeToIds("<|STARTOFTEXT|>x", considerNormalization: false));
    }

    [Fact]
    public void OffsetsPointIntoTheOriginalText()
    {
        Tokenizer t = Hf.Value;
        string text = "  A photo of a CAT.";
        var tokens = t.EncodeToTokens(text, out _);
        Assert.Equal(new Range(0, 0), tokens[0].Offset);
        Assert.Equal(new Range(text.Length, text.Length), tokens[^1].Offset);
        string[] words = tokens.Skip(1).SkipLast(1).Select(x => text[x.Offset]).ToArray();
        Assert.Equal(["A", "photo", "of", "a", "CAT", "."], words);

        // Clean-up steps: each token covers the original characters it came from.
        (string Text, string[] Slices)[] cases =
        [
            ("caf&eacute; au lait", ["caf&eacute;", "au", "lait"]),       // HTML reference inside a word
            ("\uFB01sh & chips", ["\uFB01sh", "&", "chips"]),               // ligature, one original character
            ("caf\u00C3\u00A9 cr\u00C3\u00A8me", ["caf\u00C3\u00A9", "cr\u00C3\u00A8me"]), // mojibake re-decoded
            ("\u0130stanbul", ["\u0130", "\u0130", "stanbul"]),             // İ lower-cases to i + U+0307 (two pieces)
            ("Cafe\u0301!", ["Cafe\u0301", "!"]),                           // NFC composes e + U+0301
            ("don\u2019t", ["don", "\u2019t"]),                             // curly quote to ' (contraction)
            ("\uFF21\uFF22\uFF23 x", ["\uFF21\uFF22\uFF23", "x"]),          // full-width letters
        ];
        foreach (var (input, slices) in cases)
        {
            var toks = t.EncodeToTokens(input, out _).Skip(1).SkipLast(1).ToList();
            // Merge tokens of one word (consecutive tokens until one ends in </w>) and compare the covered slices.
            var got = new List<string>();
            int start = -1;
            foreach (var tok in toks)
            {
                if (start < 0) start = tok.Offset.Start.Value;
                if (tok.Value.EndsWith("</w>", StringComparison.Ordinal)) { got.Add(input[start..tok.Offset.End.Value]); start = -1; }
            }
            Assert.Equal(slices, got);
        }

        // A character split over several byte-level tokens: every one of them covers the whole character.
        var emoji = t.EncodeToTokens("\U0001F642", out _).Skip(1).SkipLast(1).ToList();
        Assert.True(emoji.Count >= 1);
        Assert.All(emoji, x => Assert.Equal(new Range(0, 2), x.Offset));
    }

    [Fact]
    public void OffsetsAreWellFormedOnEveryConformanceString()
    {
        Tokenizer t = Hf.Value;
        foreach (var c in ClipConformanceTests.Cases.Value)
        {
            var tokens = t.EncodeToTokens(c.Text, out _);
            Assert.Equal(c.Ids, tokens.Select(x => x.Id));
            int lastStart = 0;
            foreach (var x in tokens)
            {
                int s = x.Offset.Start.Value, e = x.Offset.End.Value;
                Assert.True(0 <= s && s <= e && e <= c.Text.Length, $"line {c.Line}: {x.Offset}");
                Assert.True(s >= lastStart, $"line {c.Line}: offsets go backwards at {x.Value}");
                lastStart = s;
            }
        }
    }

    [Fact]
    public void DecodeIsTheReferenceDecoder()
    {
        var tok = Hf.Value;
        int n = 0;
        foreach (var c in ClipConformanceTests.Cases.Value)
        {
            if (c.Decoded is null) continue;
            var content = c.Ids[1..^1];
            string expected = content.Length > 0 && tok.IdToToken(content[^1]).EndsWith("</w>", StringComparison.Ordinal)
                ? c.Decoded[..^1] : c.Decoded; // the space the last word end leaves is dropped
            Assert.Equal(expected, tok.Decode(content, considerSpecialTokens: true));
            Assert.Equal("<|startoftext|>" + c.Decoded + "<|endoftext|>", tok.Decode(c.Ids, considerSpecialTokens: true));
            if (!content.Contains(tok.StartOfTextId) && !content.Contains(tok.EndOfTextId))
                Assert.Equal(expected, tok.Decode(c.Ids)); // the start and end tokens are skipped by default
            n++;
        }
        Assert.True(n > 10000);
    }

    [Fact]
    public void DecodeRoundTripsTheGoldenTextsWhereCLIPsDecodeIsLossless()
    {
        // CLIP's decoder puts one space after every pre-token: it is lossless exactly when the cleaned text already
        // is its pre-tokens joined by single spaces.
        Tokenizer t = Hf.Value;
        int lossless = 0;
        foreach (var (text, ids) in Goldens())
        {
            if (text.Contains("<|", StringComparison.Ordinal)) continue; // literal special tokens are skipped by Decode
            string clean = t.Normalizer!.Normalize(text);
            var pieces = t.PreTokenizer!.PreTokenize(clean).Select(p => clean.Substring(p.Offset, p.Length));
            string joined = string.Join(' ', pieces);
            Assert.Equal(joined, t.Decode(ids));
            if (joined != clean) continue;
            Assert.Equal(clean, t.Decode(t.EncodeToIds(text)));
            lossless++;
        }
        Assert.True(lossless > 2500, $"{lossless} lossless golden texts");
    }

    [Fact]
    public void DecodeIntoASpanStopsAtWholeTokens()
    {
        Tokenizer t = Hf.Value;
        var ids = t.EncodeToIds("a photo of a goldfish");
        var buffer = new char[64];
        Assert.Equal(OperationStatus.Done, t.Decode(ids, buffer, out int consumed, out int written));
        Assert.Equal(ids.Count, consumed);
        Assert.Equal("a photo of a goldfish", new string(buffer, 0, written));
        Assert.Equal(OperationStatus.DestinationTooSmall, t.Decode(ids, buffer.AsSpan(0, 10), out consumed, out written));
        Assert.Equal("a photo of", new string(buffer, 0, written));
        Assert.Equal(t.Decode(ids.Take(consumed)), new string(buffer, 0, written));
    }

    [Fact]
    public void TokenLimitsCutAtTokenBoundariesInTheOriginalText()
    {
        Tokenizer t = Hf.Value;
        string text = "A photo of a goldfish, swimming.";
        var all = t.EncodeToTokens(text, out _);
        var ids = t.EncodeToIds(text, 4, out string? normalized, out int consumed);
        Assert.Null(normalized);
        Assert.Equal(all.Take(4).Select(x => x.Id), ids);
        Assert.Equal(all[3].Offset.End.Value, consumed);
        Assert.Equal("A photo of", text[..consumed]);
        // Everything fits: all ids, the whole text.
        Assert.Equal(all.Select(x => x.Id), t.EncodeToIds(text, 100, out _, out consumed));
        Assert.Equal(text.Length, consumed);
        // The end token only comes when there is room for it.
        Assert.Equal(all.Count - 1, t.EncodeToIds(text, all.Count - 1, out _, out consumed).Count);
        Assert.Equal(text.Length, consumed);

        Assert.Equal("A photo of".Length, t.GetIndexByTokenCount(text, 4, out normalized, out int count));
        Assert.Equal(4, count);
        Assert.Null(normalized);
        int fromEnd = t.GetIndexByTokenCountFromEnd(text, 3, out _, out count);
        Assert.Equal(3, count); // "swimming", ".", end token
        Assert.Equal(" swimming.", text[(fromEnd - 1)..]);

        // A character made of two byte-level tokens is never split.
        string emoji = "x \U0001F9D1\u200D\U0001F3A8";
        var toks = t.EncodeToTokens(emoji, out _);
        for (int k = 1; k < toks.Count; k++)
        {
            t.EncodeToIds(emoji, k, out _, out int c);
            Assert.True(c == 0 || c == emoji.Length || !char.IsLowSurrogate(emoji[c]), $"cut inside a surrogate pair at {c}");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => t.EncodeToIds(text, 0, out _, out _));
    }

    [Fact]
    public void TheBuiltInVocabularyIsCLIPsStandardOne()
    {
        var builtIn = ClipTokenizer.Create();
        Assert.Same(builtIn, ClipTokenizer.Create());
        Assert.True(builtIn.IsBuiltInVocabulary);
        Assert.False(Hf.Value.IsBuiltInVocabulary);
        Assert.Equal(49408, builtIn.VocabularySize);
        Assert.Equal(49406, builtIn.Vocabulary["<|startoftext|>"]);
        for (int id = 0; id < 49408; id++) Assert.Equal(Hf.Value.IdToToken(id), builtIn.IdToToken(id));
        foreach (var (text, ids) in Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden.jsonl")))
            Assert.Equal(ids, builtIn.EncodeToIds(text));
        Assert.False(builtIn.WithFixText(false).FixText);
        Assert.True(builtIn.WithFixText(false).IsBuiltInVocabulary);

        // The embedded file is openai/CLIP's, byte for byte, and its license ships beside it.
        var asm = typeof(ClipTokenizer).Assembly;
        using var vocab = asm.GetManifestResourceStream("Vega.MLNet.Text.bpe_simple_vocab_16e6.txt.gz")!;
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(Path.Combine(Fixtures.Tokenizer, "bpe_simple_vocab_16e6.txt.gz"))), SHA256.HashData(vocab));
        using var license = asm.GetManifestResourceStream("Vega.MLNet.Text.LICENSE-openai-CLIP.txt")!;
        Assert.Equal(File.ReadAllText(Path.Combine(Fixtures.Tokenizer, "LICENSE-openai-CLIP.txt")), new StreamReader(license).ReadToEnd());
    }

    [Fact]
    public void StreamFactoryReadsHuggingFaceFiles()
    {
        using var vocab = File.OpenRead(Path.Combine(Fixtures.Tokenizer, "vocab.json"));
        using var merges = File.OpenRead(Path.Combine(Fixtures.Tokenizer, "merges.txt"));
        var tok = ClipTokenizer.Create(vocab, merges, fixText: false);
        Assert.False(tok.FixText);
        Assert.Equal([49406, 320, 1125, 539, 320, 2368, 269, 49407], tok.EncodeToIds("a photo of a cat."));
    }
}
