using Microsoft.ML.Tokenizers;

namespace Vega.MLNet.Text;

/// <summary>CLIP's text clean-up as an ML.NET <see cref="Normalizer"/> (what <see cref="ClipTokenizer.Normalizer"/>
/// returns): ftfy (when enabled), HTML unescaping twice, whitespace, Python lower-casing.</summary>
internal sealed class ClipTextNormalizer(bool fixText) : Normalizer
{
    public override string Normalize(string original)
    {
        ArgumentNullException.ThrowIfNull(original);
        return TextCleaner.Clean(original, fixText);
    }

    public override string Normalize(ReadOnlySpan<char> original) => TextCleaner.Clean(original.ToString(), fixText);
}

/// <summary>CLIP's pre-tokenisation pattern as an ML.NET <see cref="PreTokenizer"/> (over normalized text).</summary>
internal sealed class ClipPreTokenizer : PreTokenizer
{
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return PreTokenize(text.AsSpan());
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int, int)>();
        ClipTokenizer.PreTokenize(text, (start, length) => pieces.Add((start, length)));
        return pieces;
    }
}
