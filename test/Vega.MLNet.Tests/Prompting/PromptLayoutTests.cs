using Vega.MLNet.Prompting;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Prompting;

/// <summary>
/// The CoOp token layout against the tokenizer itself: the "end" layout is exactly the tokenization of
/// "X X … X name." (what CoOp feeds), "middle" and "front" are the documented rearrangements of the same tokens, and the
/// end token stays the first maximal id of every row (the tower pools there with ArgMax).
/// </summary>
public sealed class PromptLayoutTests
{
    internal static readonly Lazy<ClipTokenizer> Tokenizer = new(() => ClipTokenizer.Load(Fixtures.Tokenizer));

    private static readonly string[] Names = ["cat", "T-shirt/top", "ankle boot", "Mr. Potato Head", "İstanbul"];

    private static long[] Row(PromptLayout l, int c) => l.Ids.AsSpan(c * l.SequenceLength, l.SequenceLength).ToArray();

    private static int ArgMaxFirst(long[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(16)]
    public void EndLayoutIsTheTokenizationOfThePlaceholderPrompt(int m)
    {
        var tok = Tokenizer.Value;
        var layout = PromptLayout.Create(tok, Names, m, ClassTokenPosition.End, fixedLength: 77);
        Assert.Equal(77, layout.SequenceLength);
        int x = tok.Encode("X").Single();
        for (int c = 0; c < Names.Length; c++)
        {
            string text = string.Join(' ', Enumerable.Repeat("X", m).Append(Names[c] + "."));
            var expected = tok.EncodeBatch([text], 77).Ids;
            Assert.Equal(expected, Row(layout, c));
            Assert.Equal(tok.Encode(Names[c]).Length, layout.ClassTokenCounts[c]);
            for (int j = 0; j < m; j++)
            {
                Assert.Equal(1 + j, layout.ContextPositions[c * m + j]);
                Assert.Equal(x, Row(layout, c)[1 + j]);
            }
            Assert.Equal(layout.Lengths[c] - 1, ArgMaxFirst(Row(layout, c)));
            Assert.Equal(tok.EndOfTextId, Row(layout, c)[layout.Lengths[c] - 1]);
        }
    }

    [Theory]
    [InlineData("Middle", 5)]
    [InlineData("Middle", 16)]
    [InlineData("Front", 4)]
    public void MiddleAndFrontRearrangeTheSameTokensAroundTheClassName(string positionName, int m)
    {
        var position = Enum.Parse<ClassTokenPosition>(positionName);
        var tok = Tokenizer.Value;
        var end = PromptLayout.Create(tok, Names, m, ClassTokenPosition.End, fixedLength: 77);
        var other = PromptLayout.Create(tok, Names, m, position, fixedLength: 77);
        int half = m / 2;
        for (int c = 0; c < Names.Length; c++)
        {
            var e = Row(end, c);
            var o = Row(other, c);
            int n = end.ClassTokenCounts[c];
            var classIds = e.AsSpan(1 + m, n).ToArray();
            var ctxPos = other.ContextPositions.AsSpan(c * m, m).ToArray();
            int classStart = position == ClassTokenPosition.Front ? 1 : 1 + half;
            Assert.Equal(classIds, o.AsSpan(classStart, n).ToArray());
            int[] expectedCtx = position == ClassTokenPosition.Front
                ? Enumerable.Range(1 + n, m).ToArray()
                : Enumerable.Range(1, half).Concat(Enumerable.Range(1 + half + n, m - half)).ToArray();
            Assert.Equal(expectedCtx, ctxPos);
            // Same multiset of ids, same end position, same '.' after the context and class.
            Assert.Equal(e.Order(), o.Order());
            Assert.Equal(end.Lengths[c], other.Lengths[c]);
            Assert.Equal(e.AsSpan(1 + m + n).ToArray(), o.AsSpan(1 + m + n).ToArray());
            Assert.Equal(other.Lengths[c] - 1, ArgMaxFirst(o));
        }
    }

    [Fact]
    public void DynamicLengthRowsAreAsWideAsTheLongestPromptAndPadWithTheEndToken()
    {
        var tok = Tokenizer.Value;
        var layout = PromptLayout.Create(tok, Names, 4, ClassTokenPosition.End, fixedLength: null, padId: tok.EndOfTextId);
        Assert.Equal(layout.Lengths.Max(), layout.SequenceLength);
        var mask = layout.AttentionMask();
        for (int c = 0; c < Names.Length; c++)
        {
            var row = Row(layout, c);
            Assert.Equal(layout.Lengths[c] - 1, ArgMaxFirst(row)); // the first end token, not the padding
            for (int j = 0; j < layout.SequenceLength; j++) Assert.Equal(j < layout.Lengths[c] ? 1 : 0, mask[c * layout.SequenceLength + j]);
        }
    }

    [Fact]
    public void PromptsThatDoNotFitAreRejectedWithTheClassAndTheFix()
    {
        var tok = Tokenizer.Value;
        string longName = string.Join(' ', Enumerable.Repeat("elephant", 60));
        var e = Assert.Throws<ArgumentException>(() => PromptLayout.Create(tok, ["cat", longName], 16, ClassTokenPosition.End, 77));
        Assert.Contains("class 1", e.Message);
        Assert.Contains("fewer context vectors", e.Message);
        Assert.Throws<ArgumentException>(() => PromptLayout.Create(tok, [], 4, ClassTokenPosition.End, 77));
        Assert.Throws<ArgumentException>(() => PromptLayout.Create(tok, ["cat", " "], 4, ClassTokenPosition.End, 77));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptLayout.Create(tok, ["cat"], -1, ClassTokenPosition.End, 77));
    }
}
