using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Text;

public sealed class BpeTrainerTests
{
    [Fact]
    public void MergesFollowPairFrequencyWithOrdinalTieBreak()
    {
        // low×3 lower×1 newest×2: (l,o)=4 first; then (lo,w</w>)=3 and (w,e)=3 tie → "lo" < "w" ordinally; then (w,e).
        var v = BpeTrainer.Learn(["low low low lower newest newest"], 512 + 2 + 3);
        Assert.Equal([("l", "o"), ("lo", "w</w>"), ("w", "e")], v.Merges);
        Assert.Equal(517, v.Tokens.Count);
        Assert.Equal("<|endoftext|>", v.Tokens[^1]);
        Assert.Equal("low</w>", v.Tokens[513]);
    }

    [Fact]
    public void ALearnedVocabularyLoadsInTheClipTokenizerAndRoundTrips()
    {
        var corpus = new List<string>();
        string[] classes = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];
        string[] templates = ["a photo of a {}.", "a blurry photo of the {}.", "a {} on a white background", "my favourite {}!"];
        foreach (var t in templates) foreach (var c in classes) corpus.Add(t.Replace("{}", c));
        var vocabulary = BpeTrainer.Learn(corpus, 700);
        string dir = Fixtures.TempDir();
        BpeTrainer.Save(vocabulary, dir);
        var tok = ClipTokenizer.Load(dir);
        Assert.Equal(vocabulary.Tokens.Count, tok.VocabularySize);
        Assert.Equal(vocabulary.Tokens.Count - 2, tok.StartOfTextId);
        foreach (var text in corpus.Append("an unseen sentence with ünïcödé 123"))
        {
            var ids = tok.Encode(text);
            // Decoding puts one space after every pre-token, so it equals the pre-tokens joined by spaces.
            Assert.Equal(string.Join(' ', BpeTrainer.PieceSplitter.Instance.Pieces(text)), tok.Decode(ids));
        }
        // Frequent corpus words became single tokens.
        Assert.Single(tok.Encode("sneaker"));
        Assert.Single(tok.Encode("photo"));
    }
}
