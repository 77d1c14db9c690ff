using System.Text;
using System.Text.Json;

namespace Vega.MLNet.Text;

/// <summary>
/// Learns a CLIP-style byte-level BPE vocabulary from a corpus: texts are cleaned and pre-tokenised exactly as
/// <see cref="ClipTokenizer"/> does, each piece becomes byte symbols with <c>&lt;/w&gt;</c> on its last, and the most
/// frequent adjacent pair is merged until the vocabulary reaches the requested size (ties: the pair that sorts first,
/// so the result is deterministic). The output uses CLIP's id layout — 256 byte symbols, their 256 <c>&lt;/w&gt;</c>
/// forms, one id per merge in order, then <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c> — and is written as
/// Hugging Face <c>vocab.json</c> + <c>merges.txt</c>, so models trained with it load through the same tokenizer as
/// any CLIP model.
/// </summary>
internal static class BpeTrainer
{
    public sealed record Vocabulary(IReadOnlyList<string> Tokens, IReadOnlyList<(string Left, string Right)> Merges);

    public static Vocabulary Learn(IEnumerable<string> corpus, int vocabularySize, int minPairCount = 2)
    {
        var byteSymbols = ClipTokenizer.ByteSymbols();
        var baseTokens = new List<string>(512);
        for (int b = 0; b < 256; b++) if (IsPrintable(b)) baseTokens.Add(byteSymbols[b].ToString());
        for (int b = 0; b < 256; b++) if (!IsPrintable(b)) baseTokens.Add(byteSymbols[b].ToString());
        foreach (var t in baseTokens.ToArray()) baseTokens.Add(t + "</w>");
        int mergesWanted = vocabularySize - baseTokens.Count - 2;
        if (mergesWanted < 0)
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, $"A byte-level vocabulary needs at least {baseTokens.Count + 2} entries.");

        // Word frequencies over CLIP's pre-tokenisation (a plain-ASCII-safe reuse of the tokenizer's cleaning).
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        var splitter = PieceSplitter.Instance;
        foreach (var text in corpus)
            foreach (var piece in splitter.Pieces(text))
                if (piece is not (ClipTokenizer.StartOfTextToken or ClipTokenizer.EndOfTextToken))
                    words[piece] = words.GetValueOrDefault(piece) + 1;

        // Each word as a list of symbol strings.
        var seqs = new List<(List<string> Symbols, int Count)>(words.Count);
        foreach (var (word, count) in words.OrderBy(w => w.Key, StringComparer.Ordinal))
        {
            var bytes = Encoding.UTF8.GetBytes(word);
            var symbols = new List<string>(bytes.Length);
            for (int i = 0; i < bytes.Length; i++) symbols.Add(byteSymbols[bytes[i]] + (i == bytes.Length - 1 ? "</w>" : ""));
            seqs.Add((symbols, count));
        }

        var merges = new List<(string, string)>(mergesWanted);
        var pairCounts = new Dictionary<(string, string), int>();
        while (merges.Count < mergesWanted)
        {
            pairCounts.Clear();
            foreach (var (symbols, count) in seqs)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var key = (symbols[i], symbols[i + 1]);
                    pairCounts[key] = pairCounts.GetValueOrDefault(key) + count;
                }
            (string, string) best = default;
            int bestCount = 0;
            foreach (var (pair, count) in pairCounts)
            {
                if (count > bestCount || (count == bestCount && bestCount > 0 && Compare(pair, best) < 0))
                {
                    best = pair;
                    bestCount = count;
                }
            }
            if (bestCount < minPairCount) break;
            merges.Add(best);
            string merged = best.Item1 + best.Item2;
            foreach (var (symbols, _) in seqs)
            {
                int w = 0;
                for (int r = 0; r < symbols.Count;)
                {
                    if (r + 1 < symbols.Count && symbols[r] == best.Item1 && symbols[r + 1] == best.Item2) { symbols[w++] = merged; r += 2; }
                    else symbols[w++] = symbols[r++];
                }
                symbols.RemoveRange(w, symbols.Count - w);
            }
        }

        var tokens = new List<string>(baseTokens);
        var seen = new HashSet<string>(tokens, StringComparer.Ordinal);
        foreach (var (l, r) in merges)
            if (seen.Add(l + r)) tokens.Add(l + r);
        tokens.Add(ClipTokenizer.StartOfTextToken);
        tokens.Add(ClipTokenizer.EndOfTextToken);
        return new Vocabulary(tokens, merges);
    }

    private static int Compare((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }

    private static bool IsPrintable(int b) => b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    /// <summary>Writes <c>vocab.json</c> and <c>merges.txt</c> (Hugging Face format) into <paramref name="directory"/>.</summary>
    public static void Save(Vocabulary vocabulary, string directory)
    {
        Directory.CreateDirectory(directory);
        var map = new Dictionary<string, int>(vocabulary.Tokens.Count);
        for (int i = 0; i < vocabulary.Tokens.Count; i++) map[vocabulary.Tokens[i]] = i;
        File.WriteAllText(Path.Combine(directory, "vocab.json"),
            JsonSerializer.Serialize(map, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }),
            new UTF8Encoding(false));
        var sb = new StringBuilder("#version: 0.2\n");
        foreach (var (l, r) in vocabulary.Merges) sb.Append(l).Append(' ').Append(r).Append('\n');
        File.WriteAllText(Path.Combine(directory, "merges.txt"), sb.ToString(), new UTF8Encoding(false));
    }

    /// <summary>CLIP's clean-up and pre-tokenisation without a vocabulary.</summary>
    internal sealed class PieceSplitter
    {
        public static readonly PieceSplitter Instance = new();

        public List<string> Pieces(string text)
        {
            char[] buffer = new char[Math.Max(16, text.Length + 8)];
            int n = TextCleaner.Clean(text, fixText: true, ref buffer);
            var pieces = new List<string>();
            ClipTokenizer.PreTokenize(buffer.AsSpan(0, n), (start, length) => pieces.Add(new string(buffer, start, length)));
            return pieces;
        }
    }
}
