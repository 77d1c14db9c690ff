using System.Text;
using System.Text.Json;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Text;

public sealed class ClipTokenizerTests
{
    private static readonly Lazy<ClipTokenizer> FromHf = new(() => ClipTokenizer.FromVocabAndMerges(
        Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "merges.txt")));

    private static readonly Lazy<ClipTokenizer> FromBpe = new(() => ClipTokenizer.FromBpeFile(
        Path.Combine(Fixtures.Tokenizer, "bpe_simple_vocab_16e6.txt.gz")));

    public static TheoryData<string, string> Goldens() => new()
    {
        { "hf", "golden.jsonl" }, { "bpe", "golden.jsonl" }, { "json", "golden.jsonl" },
        { "hf", "golden_classnames.jsonl" }, { "bpe", "golden_classnames.jsonl" },
    };

    private static ClipTokenizer Get(string format) => format switch
    {
        "hf" => FromHf.Value,
        "bpe" => FromBpe.Value,
        _ => TokenizerJson.Value,
    };

    private static readonly Lazy<ClipTokenizer> TokenizerJson = new(() =>
    {
        // A Hugging Face tokenizer.json built from the same vocabulary (merges as [left, right] pairs, the newer form).
        string dir = Fixtures.TempDir();
        using var vocab = Fixtures.Json(Path.Combine(Fixtures.Tokenizer, "vocab.json"));
        var merges = File.ReadLines(Path.Combine(Fixtures.Tokenizer, "merges.txt")).Skip(1).Select(l => l.Split(' ')).ToArray();
        var json = new { model = new { type = "BPE", vocab = vocab.RootElement, merges } };
        string path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, JsonSerializer.Serialize(json));
        return ClipTokenizer.Load(path);
    });

    [Theory]
    [MemberData(nameof(Goldens))]
    public void EncodesEveryGoldenLineExactly(string format, string file)
    {
        var tok = Get(format);
        int n = 0;
        foreach (var (text, ids) in Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, file)))
        {
            var got = tok.EncodeWithSpecialTokens(text);
            Assert.True(ids.SequenceEqual(got), $"line {n + 1} \"{text}\": expected [{string.Join(' ', ids)}] got [{string.Join(' ', got)}]");
            n++;
        }
        Assert.True(n > 500, "the golden file was read");
    }

    [Fact]
    public void BothVocabularyFormatsAgree()
    {
        Assert.Equal(49408, FromHf.Value.VocabularySize);
        Assert.Equal(49408, FromBpe.Value.VocabularySize);
        for (int id = 0; id < 49408; id++) Assert.Equal(FromHf.Value.IdToToken(id), FromBpe.Value.IdToToken(id));
        Assert.Equal(49406, FromBpe.Value.StartOfTextId);
        Assert.Equal(49407, FromBpe.Value.EndOfTextId);
    }

    [Fact]
    public void Context77RowsMatchClipTokenizeWithTruncation()
    {
        var lines = Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden_context77.jsonl")).ToArray();
        var batch = FromHf.Value.EncodeBatch(lines.Select(l => l.Text).ToArray(), 77, truncate: true, padId: 0);
        for (int b = 0; b < lines.Length; b++)
        {
            var row = batch.Ids.AsSpan(b * 77, 77).ToArray().Select(x => (int)x).ToArray();
            Assert.True(lines[b].Ids.SequenceEqual(row), $"row {b} \"{lines[b].Text}\"");
        }
        Assert.Contains(lines, l => l.Ids[76] == 49407 && l.Ids.Count(i => i != 0) == 77); // truncated rows exist
    }

    [Fact]
    public void TextLongerThanTheContextIsAClearErrorWithoutTruncation()
    {
        string text = string.Join(' ', Enumerable.Repeat("a", 76)); // 78 ids with start and end
        var e = Assert.Throws<ArgumentException>(() => FromHf.Value.EncodeBatch([text], 77));
        Assert.Contains("78 tokens", e.Message);
        Assert.Contains("context of 77", e.Message);
        Assert.Contains("truncat", e.Message);
        Assert.Equal(77, FromHf.Value.EncodeBatch([string.Join(' ', Enumerable.Repeat("a", 75))], 77).Lengths[0]);
    }

    [Fact]
    public void FtfyProbesMatchTheReferenceWithFixTextAndTheRawIdsWithout()
    {
        foreach (var line in File.ReadLines(Path.Combine(Fixtures.Tokenizer, "golden_ftfy.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            string text = doc.RootElement.GetProperty("text").GetString()!;
            int[] ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int[] without = doc.RootElement.GetProperty("ids_without_ftfy").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.True(ids.SequenceEqual(FromHf.Value.EncodeWithSpecialTokens(text)), $"with fix_text: \"{text}\"");
            var noFix = ClipTokenizerNoFix.Value;
            Assert.True(without.SequenceEqual(noFix.EncodeWithSpecialTokens(text)), $"without fix_text: \"{text}\"");
        }
    }

    private static readonly Lazy<ClipTokenizer> ClipTokenizerNoFix = new(() => FromHf.Value.WithFixText(false));

    [Fact]
    public void HeapBpeEqualsTheReferenceMergeOrderOnEveryGoldenWord()
    {
        var tok = FromHf.Value;
        var symbols = ClipTokenizer.ByteSymbols();
        var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(Path.Combine(Fixtures.Tokenizer, "vocab.json")))!;
        int checkedWords = 0;
        var words = Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden.jsonl"))
            .SelectMany(l => l.Text.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Concat([new string('x', 3000), string.Concat(Enumerable.Repeat("abcab", 700)), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
        foreach (var word in words)
        {
            var bytes = Encoding.UTF8.GetBytes(word);
            var ids = bytes.Select((b, i) => vocab[symbols[b] + (i == bytes.Length - 1 ? "</w>" : "")]).ToArray();
            Assert.Equal(tok.MergeSimple((int[])ids.Clone()), tok.MergeWithHeap((int[])ids.Clone()));
            checkedWords++;
        }
        Assert.True(checkedWords > 1000);
    }

    [Fact]
    public void AdversarialInputIsLinear()
    {
        // A 200k-letter word and 100k punctuation characters would take minutes with a quadratic merge loop or a
        // back-tracking regex; here they finish and round-trip.
        string word = string.Concat(Enumerable.Repeat("supercalifragilistic", 10_000));
        var ids = FromHf.Value.Encode(word);
        Assert.Equal(word, FromHf.Value.Decode(ids));
        var punct = FromHf.Value.Encode(new string('!', 100_000) + " " + new string('1', 1000));
        Assert.Equal(1000 + punct.Length - 1000, punct.Length);
        Assert.Equal(1000, punct.Count(i => FromHf.Value.IdToToken(i) == "1</w>"));
    }

    [Fact]
    public void DecodeInvertsEncodeForPlainText()
    {
        // As the reference decode: every word end becomes a space.
        foreach (var (s, expected) in new[] { ("a photo of a cat.", "a photo of a cat ."), ("T-shirt/top", "t - shirt / top"),
                     ("café au lait", "café au lait"), ("东京 🙂", "东京 🙂"), ("3.14", "3 . 1 4") })
            Assert.Equal(expected, FromHf.Value.Decode(FromHf.Value.Encode(s)));
    }

    [Fact]
    public void MissingOrCorruptVocabularyGivesClearErrors()
    {
        string dir = Fixtures.TempDir();
        var e1 = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.Load(dir));
        Assert.Contains(dir, e1.Message);
        Assert.Contains("vocab.json", e1.Message);

        File.WriteAllText(Path.Combine(dir, "vocab.json"), "{\"a\": 1, \"b\":");
        File.Copy(Path.Combine(Fixtures.Tokenizer, "merges.txt"), Path.Combine(dir, "merges.txt"));
        var e2 = Assert.Throws<InvalidDataException>(() => ClipTokenizer.Load(dir));
        Assert.Contains("vocab.json", e2.Message);

        File.Copy(Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(dir, "vocab.json"), overwrite: true);
        File.AppendAllText(Path.Combine(dir, "merges.txt"), "broken-line-without-space\n");
        var e3 = Assert.Throws<InvalidDataException>(() => ClipTokenizer.Load(dir));
        Assert.Contains("Line 48896", e3.Message);

        string gz = Path.Combine(dir, "bpe_simple_vocab_16e6.txt.gz");
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Tokenizer, "bpe_simple_vocab_16e6.txt.gz"));
        File.WriteAllBytes(gz, bytes[..(bytes.Length / 20)]); // ends inside the used merges
        var e4 = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromBpeFile(gz));
        Assert.Contains("truncated", e4.Message);
        Assert.Contains(gz, e4.Message);
    }

    [Fact]
    public void ConcurrentEncodingIsSafe()
    {
        var lines = Fixtures.Jsonl(Path.Combine(Fixtures.Tokenizer, "golden_classnames.jsonl")).ToArray();
        var tok = ClipTokenizer.FromVocabAndMerges(Path.Combine(Fixtures.Tokenizer, "vocab.json"), Path.Combine(Fixtures.Tokenizer, "merges.txt"));
        Parallel.For(0, lines.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            Assert.True(lines[i].Ids.SequenceEqual(tok.EncodeWithSpecialTokens(lines[i].Text))));
    }
}
