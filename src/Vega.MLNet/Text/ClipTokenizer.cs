using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Vega.MLNet.Text;

/// <summary>
/// The CLIP byte-level BPE tokenizer, exactly as the reference implementation (openai/CLIP
/// <c>simple_tokenizer.py</c>) encodes text: clean-up (see <see cref="FixText"/>), lower-casing, CLIP's
/// pre-tokenisation pattern, byte-to-symbol mapping with <c>&lt;/w&gt;</c> word ends, merges by rank, start and end
/// tokens. Loads the original <c>bpe_simple_vocab_16e6.txt.gz</c>, Hugging Face <c>vocab.json</c> +
/// <c>merges.txt</c>, or a Hugging Face <c>tokenizer.json</c>. Thread-safe.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>The start-of-text token.</summary>
    public const string StartOfTextToken = "<|startoftext|>";

    /// <summary>The end-of-text token.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    private const int SimpleBpeLimit = 256;
    private const int WordCacheLimit = 1 << 18;

    private readonly string[] _idToToken;
    private readonly int[] _byteToId = new int[256];
    private readonly int[] _byteEndToId = new int[256];
    private readonly Dictionary<long, Merge> _merges;
    private readonly WordCache _cache = new();
    private readonly Dictionary<int, byte> _symbolCharToByte = new();

    private readonly record struct Merge(int Rank, int Result);

    private ClipTokenizer(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string source)
    {
        Source = source;
        _idToToken = new string[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) _idToToken[id] = token;
        var byteSymbols = ByteSymbols();
        for (int b = 0; b < 256; b++)
        {
            string sym = byteSymbols[b].ToString();
            if (!vocab.TryGetValue(sym, out _byteToId[b]) || !vocab.TryGetValue(sym + "</w>", out _byteEndToId[b]))
                throw new InvalidDataException(
                    $"The vocabulary from '{source}' lacks the byte symbol '{sym}' (byte 0x{b:X2}) or '{sym}</w>': it is not a CLIP byte-level BPE vocabulary.");
            _symbolCharToByte[byteSymbols[b]] = (byte)b;
        }
        if (!vocab.TryGetValue(StartOfTextToken, out int sot) || !vocab.TryGetValue(EndOfTextToken, out int eot))
            throw new InvalidDataException($"The vocabulary from '{source}' has no {StartOfTextToken} / {EndOfTextToken} tokens.");
        StartOfTextId = sot;
        EndOfTextId = eot;
        _merges = new Dictionary<long, Merge>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r) = merges[rank];
            if (!vocab.TryGetValue(l, out int li) || !vocab.TryGetValue(r, out int ri) || !vocab.TryGetValue(l + r, out int result))
                throw new InvalidDataException(
                    $"Merge {rank + 1} '{l} {r}' of '{source}' refers to a token missing from the vocabulary; the vocabulary and merges files do not belong together.");
            _merges.TryAdd(Key(li, ri), new Merge(rank, result));
        }
        _cache.Reset(sot, eot);
    }

    /// <summary>Where the vocabulary was loaded from.</summary>
    public string Source { get; }

    /// <summary>Number of token ids (49408 for CLIP).</summary>
    public int VocabularySize => _idToToken.Length;

    /// <summary>Id of <c>&lt;|startoftext|&gt;</c> (49406 for CLIP).</summary>
    public int StartOfTextId { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c> (49407 for CLIP).</summary>
    public int EndOfTextId { get; }

    /// <summary>
    /// Whether the ftfy-style repair of the text (curly quotes, ligatures, width forms, mojibake, control characters,
    /// NFC) runs before encoding, as the reference tokenizer's <c>ftfy.fix_text</c> does. Default true.
    /// </summary>
    public bool FixText { get; private init; } = true;

    /// <summary>The same vocabulary with the ftfy-style repair switched on or off (tables and word cache are shared).</summary>
    public ClipTokenizer WithFixText(bool enabled) => enabled == FixText ? this : new ClipTokenizer(this) { FixText = enabled };

    private ClipTokenizer(ClipTokenizer other)
    {
        Source = other.Source;
        _idToToken = other._idToToken;
        _byteToId = other._byteToId;
        _byteEndToId = other._byteEndToId;
        _merges = other._merges;
        _cache = other._cache;
        _symbolCharToByte = other._symbolCharToByte;
        StartOfTextId = other.StartOfTextId;
        EndOfTextId = other.EndOfTextId;
    }

    /// <summary>Loads the vocabulary from a directory or file: <c>tokenizer.json</c>, <c>vocab.json</c> + <c>merges.txt</c>
    /// or <c>bpe_simple_vocab_16e6.txt.gz</c> (in that order of preference when a directory has several).</summary>
    public static ClipTokenizer Load(string path)
    {
        if (Directory.Exists(path))
        {
            string vocab = Path.Combine(path, "vocab.json"), merges = Path.Combine(path, "merges.txt");
            if (File.Exists(vocab) && File.Exists(merges)) return FromVocabAndMerges(vocab, merges);
            string tj = Path.Combine(path, "tokenizer.json");
            if (File.Exists(tj)) return FromTokenizerJson(tj);
            string bpe = Path.Combine(path, "bpe_simple_vocab_16e6.txt.gz");
            if (File.Exists(bpe)) return FromBpeFile(bpe);
            throw new FileNotFoundException(
                $"No CLIP vocabulary in '{path}': expected vocab.json + merges.txt, tokenizer.json or bpe_simple_vocab_16e6.txt.gz. " +
                "Copy one there or name it with the \"tokenizer\" key of clip.json.");
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"The CLIP vocabulary '{path}' does not exist.", path);
        string name = Path.GetFileName(path);
        if (name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) && !name.Equals("merges.txt", StringComparison.OrdinalIgnoreCase))
            return FromBpeFile(path);
        if (name.Equals("vocab.json", StringComparison.OrdinalIgnoreCase) || name.Equals("merges.txt", StringComparison.OrdinalIgnoreCase))
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            return FromVocabAndMerges(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
        }
        return FromTokenizerJson(path);
    }

    /// <summary>Loads Hugging Face <c>vocab.json</c> (token → id) and <c>merges.txt</c> (one "left right" per line).</summary>
    public static ClipTokenizer FromVocabAndMerges(string vocabJsonPath, string mergesTxtPath)
    {
        RequireFile(vocabJsonPath, "vocab.json");
        RequireFile(mergesTxtPath, "merges.txt");
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(vocabJsonPath))
                    ?? throw new InvalidDataException("null");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException(
                $"The vocabulary '{vocabJsonPath}' is not a JSON object of token → id ({e.Message}). Replace it with the model's original vocab.json.", e);
        }
        var merges = new List<(string, string)>(50000);
        int lineNo = 0;
        foreach (var line in File.ReadLines(mergesTxtPath, Encoding.UTF8))
        {
            lineNo++;
            if (line.Length == 0 || (lineNo == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(line, mergesTxtPath, lineNo));
        }
        return new ClipTokenizer(vocab, merges, vocabJsonPath);
    }

    /// <summary>
    /// Loads the original CLIP <c>bpe_simple_vocab_16e6.txt.gz</c> (gzip or plain text): header line, then merges;
    /// lines 1..48894 are used and the vocabulary is built from the byte symbols, their <c>&lt;/w&gt;</c> forms, the merges
    /// and the two special tokens, as the reference does.
    /// </summary>
    public static ClipTokenizer FromBpeFile(string path, int mergeCount = 49152 - 256 - 2)
    {
        RequireFile(path, "bpe_simple_vocab_16e6.txt.gz");
        var lines = new List<string>(mergeCount + 1);
        try
        {
            using var file = File.OpenRead(path);
            Stream s = file;
            var magic = new byte[2];
            bool gz = file.Read(magic, 0, 2) == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
            file.Position = 0;
            if (gz) s = new GZipStream(file, CompressionMode.Decompress);
            using var reader = new StreamReader(s, Encoding.UTF8);
            while (lines.Count < mergeCount + 1 && reader.ReadLine() is { } line) lines.Add(line);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The BPE file '{path}' is corrupt ({e.Message}). Replace it with the original bpe_simple_vocab_16e6.txt.gz.", e);
        }
        if (lines.Count < mergeCount + 1)
            throw new InvalidDataException(
                $"The BPE file '{path}' has {Math.Max(0, lines.Count - 1)} merges, fewer than the {mergeCount} CLIP uses: it is truncated or not CLIP's. Replace it with the original bpe_simple_vocab_16e6.txt.gz.");
        var merges = new List<(string, string)>(lines.Count - 1);
        for (int i = 1; i < lines.Count; i++) merges.Add(SplitMerge(lines[i], path, i + 1));
        var vocab = new Dictionary<string, int>(merges.Count + 514);
        foreach (char c in ByteSymbolsInVocabOrder()) vocab.TryAdd(c.ToString(), vocab.Count);
        foreach (char c in ByteSymbolsInVocabOrder()) vocab.TryAdd(c + "</w>", vocab.Count);
        foreach (var (l, r) in merges) vocab.TryAdd(l + r, vocab.Count);
        vocab.TryAdd(StartOfTextToken, vocab.Count);
        vocab.TryAdd(EndOfTextToken, vocab.Count);
        return new ClipTokenizer(vocab, merges, path);
    }

    /// <summary>Loads a Hugging Face <c>tokenizer.json</c> whose model is BPE (merges as "a b" strings or [a, b] pairs).</summary>
    public static ClipTokenizer FromTokenizerJson(string path)
    {
        RequireFile(path, "tokenizer.json");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var model = doc.RootElement.GetProperty("model");
            var vocab = new Dictionary<string, int>(50000);
            foreach (var p in model.GetProperty("vocab").EnumerateObject()) vocab[p.Name] = p.Value.GetInt32();
            var merges = new List<(string, string)>(50000);
            int n = 0;
            foreach (var m in model.GetProperty("merges").EnumerateArray())
            {
                n++;
                merges.Add(m.ValueKind == JsonValueKind.Array
                    ? (m[0].GetString()!, m[1].GetString()!)
                    : SplitMerge(m.GetString()!, path, n));
            }
            if (doc.RootElement.TryGetProperty("added_tokens", out var added))
                foreach (var t in added.EnumerateArray()) vocab.TryAdd(t.GetProperty("content").GetString()!, t.GetProperty("id").GetInt32());
            return new ClipTokenizer(vocab, merges, path);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException(
                $"'{path}' is not a Hugging Face tokenizer.json with a BPE model ({e.Message}). Use the model's vocab.json + merges.txt instead.", e);
        }
    }

    /// <summary>Encodes <paramref name="text"/> to token ids without start and end tokens.</summary>
    public int[] Encode(string text)
    {
        var list = new List<int>(Math.Max(8, text.Length / 3));
        EncodeInto(text, list);
        return list.ToArray();
    }

    /// <summary>Encodes <paramref name="text"/> as <c>[start] + ids + [end]</c> (no padding, no truncation).</summary>
    public int[] EncodeWithSpecialTokens(string text)
    {
        var list = new List<int>(Math.Max(8, text.Length / 3)) { StartOfTextId };
        EncodeInto(text, list);
        list.Add(EndOfTextId);
        return list.ToArray();
    }

    /// <summary>Appends the ids of <paramref name="text"/> (no start/end tokens) to <paramref name="ids"/>.</summary>
    public void EncodeInto(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        char[] buffer = ArrayPool<char>.Shared.Rent(Math.Max(16, text.Length + 8));
        try
        {
            int n = TextCleaner.Clean(text, FixText, ref buffer);
            PreTokenizeAndEncode(buffer.AsSpan(0, n), ids);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Tokenizes a batch into <paramref name="contextLength"/>-wide rows of <c>[start] ids [end] pad…</c>, as
    /// <c>clip.tokenize</c> does. A text longer than the context throws unless <paramref name="truncate"/> is set, in
    /// which case the row is cut and its last id becomes the end token.
    /// </summary>
    /// <param name="texts">Texts to encode.</param>
    /// <param name="contextLength">Row width (77 for CLIP).</param>
    /// <param name="truncate">Cut texts that do not fit instead of throwing.</param>
    /// <param name="padId">Id written after the end token (0 in the reference; Hugging Face pads with the end token).</param>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int contextLength = 77, bool truncate = false, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context must hold at least the start and end tokens.");
        var ids = new long[texts.Count * contextLength];
        var lengths = new int[texts.Count];
        var tmp = new List<int>(contextLength * 2);
        for (int b = 0; b < texts.Count; b++)
        {
            tmp.Clear();
            tmp.Add(StartOfTextId);
            EncodeInto(texts[b], tmp);
            tmp.Add(EndOfTextId);
            if (tmp.Count > contextLength)
            {
                if (!truncate)
                    throw new ArgumentException(
                        $"Text {b} (\"{Shorten(texts[b])}\") has {tmp.Count} tokens with start and end, more than the model's context of {contextLength}. " +
                        "Shorten it, or allow truncation (TextEmbeddingOptions.Truncate; on the command line vega rank and vega evaluate take --truncate).", nameof(texts));
                tmp.RemoveRange(contextLength, tmp.Count - contextLength);
                tmp[contextLength - 1] = EndOfTextId;
            }
            var row = ids.AsSpan(b * contextLength, contextLength);
            for (int j = 0; j < tmp.Count; j++) row[j] = tmp[j];
            row[tmp.Count..].Fill(padId);
            lengths[b] = tmp.Count;
        }
        return new TokenBatch(ids, lengths, contextLength);
    }

    /// <summary>Decodes ids back to text as the reference <c>decode</c> does (every end-of-word marker becomes a space, so
    /// "cat." decodes to "cat ."), without the trailing space.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is outside the vocabulary of {VocabularySize}.");
            if (id == StartOfTextId || id == EndOfTextId) { bytes.AddRange(Encoding.UTF8.GetBytes(token)); continue; }
            foreach (char c in token.Replace("</w>", " ", StringComparison.Ordinal))
                bytes.Add(c == ' ' ? (byte)' ' : _symbolCharToByte.GetValueOrDefault(c, (byte)'?'));
        }
        return Encoding.UTF8.GetString(bytes.ToArray()).TrimEnd();
    }

    /// <summary>The token string of an id.</summary>
    public string IdToToken(int id) => _idToToken[id];

    internal int WordCacheCount => _cache.Map.Count;

    internal void ClearWordCache() => _cache.Reset(StartOfTextId, EndOfTextId);

    // Distinct pre-tokens → their BPE ids; lock-free reads, bounded size (cleared when full).
    private sealed class WordCache
    {
        public readonly ConcurrentDictionary<string, int[]> Map = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private int _count;

        public void Reset(int sot, int eot)
        {
            lock (_gate)
            {
                Map.Clear();
                Map[StartOfTextToken] = [sot];
                Map[EndOfTextToken] = [eot];
                _count = 2;
            }
        }

        public void Add(ReadOnlySpan<char> piece, int[] ids, int sot, int eot)
        {
            lock (_gate)
            {
                if (_count >= WordCacheLimit) { Map.Clear(); Map[StartOfTextToken] = [sot]; Map[EndOfTextToken] = [eot]; _count = 2; }
                if (Map.TryAdd(piece.ToString(), ids)) _count++;
            }
        }
    }

    // ---- pre-tokenisation: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    private void PreTokenizeAndEncode(ReadOnlySpan<char> s, List<int> ids)
    {
        int i = 0;
        while (NextPiece(s, ref i, out int start, out int end))
        {
            var piece = s[start..end];
            if (piece.Length == StartOfTextToken.Length && piece.SequenceEqual(StartOfTextToken)) ids.Add(StartOfTextId);
            else if (piece.Length == EndOfTextToken.Length && piece.SequenceEqual(EndOfTextToken)) ids.Add(EndOfTextId);
            else EncodeWord(piece, ids);
        }
    }

    /// <summary>Reports every pre-token of a cleaned text as (start, length).</summary>
    internal static void PreTokenize(ReadOnlySpan<char> s, Action<int, int> piece)
    {
        int i = 0;
        while (NextPiece(s, ref i, out int start, out int end)) piece(start, end - start);
    }

    // The next match of <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ at or after
    // i (ordered alternatives, greedy runs); whitespace (only ' ' after cleaning) separates matches.
    private static bool NextPiece(ReadOnlySpan<char> s, ref int i, out int start, out int end)
    {
        while (i < s.Length && s[i] == ' ') i++;
        start = i;
        end = i;
        if (i >= s.Length) return false;
        char c = s[i];
        if (c == '<' && Matches(s, i, StartOfTextToken)) end = i + StartOfTextToken.Length;
        else if (c == '<' && Matches(s, i, EndOfTextToken)) end = i + EndOfTextToken.Length;
        else if (c == '\'' && (end = Contraction(s, i)) > 0) { }
        else
        {
            var cls = Classify(s, i, out int w);
            end = i + w;
            if (cls == CharClass.Letter)
            {
                while (end < s.Length && Classify(s, end, out w) == CharClass.Letter) end += w;
            }
            else if (cls == CharClass.Other)
            {
                while (end < s.Length && s[end] != ' ' && Classify(s, end, out w) == CharClass.Other) end += w;
            }
        }
        i = end;
        return true;
    }

    private static bool Matches(ReadOnlySpan<char> s, int i, string token) => s[i..].StartsWith(token, StringComparison.Ordinal);

    // Returns the end index of a contraction at i, or 0. IGNORECASE in the reference: 's' also matches U+017F.
    private static int Contraction(ReadOnlySpan<char> s, int i)
    {
        if (i + 1 >= s.Length) return 0;
        char a = s[i + 1];
        char b = i + 2 < s.Length ? s[i + 2] : '\0';
        switch (a)
        {
            case 's' or '\u017F' or 't' or 'm' or 'd': return i + 2;
            case 'r' when b == 'e': return i + 3;
            case 'v' when b == 'e': return i + 3;
            case 'l' when b == 'l': return i + 3;
            default: return 0;
        }
    }

    private enum CharClass { Letter, Number, Other }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CharClass Classify(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (c < 0x80)
        {
            width = 1;
            return (uint)((c | 0x20) - 'a') <= 'z' - 'a' ? CharClass.Letter
                : (uint)(c - '0') <= 9 ? CharClass.Number : CharClass.Other;
        }
        UnicodeCategory cat;
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            cat = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, s[i + 1]));
        }
        else
        {
            width = 1;
            cat = CharUnicodeInfo.GetUnicodeCategory(c);
        }
        return cat switch
        {
            <= UnicodeCategory.OtherLetter => CharClass.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharClass.Number,
            _ => CharClass.Other,
        };
    }

    // ---- BPE of one pre-token, cached per distinct piece.
    private void EncodeWord(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (!_cache.Map.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(piece, out int[]? cached))
        {
            cached = Bpe(piece);
            _cache.Add(piece, cached, StartOfTextId, EndOfTextId);
        }
        ids.AddRange(cached);
    }

    private int[] Bpe(ReadOnlySpan<char> piece)
    {
        int byteCount = Encoding.UTF8.GetByteCount(piece);
        byte[]? rented = null;
        Span<byte> bytes = byteCount <= 512 ? stackalloc byte[byteCount] : (rented = ArrayPool<byte>.Shared.Rent(byteCount));
        try
        {
            Encoding.UTF8.GetBytes(piece, bytes);
            var symbols = new int[byteCount];
            for (int k = 0; k < byteCount - 1; k++) symbols[k] = _byteToId[bytes[k]];
            symbols[byteCount - 1] = _byteEndToId[bytes[byteCount - 1]];
            return byteCount <= SimpleBpeLimit ? MergeSimple(symbols) : MergeWithHeap(symbols);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    // Reference algorithm: find the lowest-ranked adjacent pair, merge all of its non-overlapping occurrences left
    // to right, repeat until no adjacent pair is a merge.
    internal int[] MergeSimple(int[] symbols)
    {
        int n = symbols.Length;
        while (n > 1)
        {
            int bestRank = int.MaxValue, bestLeft = 0, bestRight = 0, bestResult = 0;
            for (int k = 0; k < n - 1; k++)
            {
                if (_merges.TryGetValue(Key(symbols[k], symbols[k + 1]), out var m) && m.Rank < bestRank)
                {
                    bestRank = m.Rank; bestLeft = symbols[k]; bestRight = symbols[k + 1]; bestResult = m.Result;
                }
            }
            if (bestRank == int.MaxValue) break;
            int w = 0;
            for (int k = 0; k < n;)
            {
                if (k < n - 1 && symbols[k] == bestLeft && symbols[k + 1] == bestRight) { symbols[w++] = bestResult; k += 2; }
                else symbols[w++] = symbols[k++];
            }
            n = w;
        }
        return n == symbols.Length ? symbols : symbols[..n];
    }

    // Same result in O(n log n) for long pieces: a min-heap of (rank, position) over a linked list of symbols. Equal
    // ranks pop left to right, and a merged symbol only takes part in later (higher-ranked) merges, which makes the
    // order of merges identical to the reference's.
    internal int[] MergeWithHeap(int[] symbols)
    {
        int n = symbols.Length;
        var sym = (int[])symbols.Clone();
        var next = new int[n];
        var prev = new int[n];
        for (int k = 0; k < n; k++) { next[k] = k + 1 < n ? k + 1 : -1; prev[k] = k - 1; }
        var heap = new PriorityQueue<(int Pos, int Left, int Right), (int Rank, int Pos)>();
        void Push(int pos)
        {
            if (pos < 0) return;
            int nx = next[pos];
            if (nx < 0) return;
            if (_merges.TryGetValue(Key(sym[pos], sym[nx]), out var m)) heap.Enqueue((pos, sym[pos], sym[nx]), (m.Rank, pos));
        }
        for (int k = 0; k < n - 1; k++) Push(k);
        var alive = new bool[n];
        Array.Fill(alive, true);
        while (heap.TryDequeue(out var e, out _))
        {
            int nx = next[e.Pos];
            if (!alive[e.Pos] || nx < 0 || sym[e.Pos] != e.Left || sym[nx] != e.Right) continue; // stale entry
            sym[e.Pos] = _merges[Key(e.Left, e.Right)].Result;
            alive[nx] = false;
            next[e.Pos] = next[nx];
            if (next[nx] >= 0) prev[next[nx]] = e.Pos;
            Push(prev[e.Pos]);
            Push(e.Pos);
        }
        var result = new List<int>(n);
        for (int k = 0; k >= 0; k = next[k]) result.Add(sym[k]);
        return result.ToArray();
    }

    // GPT-2 / CLIP byte → unicode table, indexed by byte: printable Latin-1 bytes map to themselves, the other 68
    // bytes (in increasing order) to U+0100 upwards.
    internal static char[] ByteSymbols()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) table[b] = IsPrintableByte(b) ? (char)b : (char)next++;
        return table;
    }

    // The vocabulary order of the byte symbols: the printable bytes first, then the remapped ones.
    private static IEnumerable<char> ByteSymbolsInVocabOrder()
    {
        var table = ByteSymbols();
        for (int b = 0; b < 256; b++) if (IsPrintableByte(b)) yield return table[b];
        for (int b = 0; b < 256; b++) if (!IsPrintableByte(b)) yield return table[b];
    }

    private static bool IsPrintableByte(int b) => b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static (string, string) SplitMerge(string line, string path, int lineNo)
    {
        int sp = line.IndexOf(' ');
        if (sp <= 0 || sp == line.Length - 1 || line.IndexOf(' ', sp + 1) >= 0)
            throw new InvalidDataException(
                $"Line {lineNo} of '{path}' is not a merge \"left right\": \"{Shorten(line)}\". The file is corrupt; replace it with the model's original merges.");
        return (line[..sp], line[(sp + 1)..]);
    }

    private static void RequireFile(string path, string what)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The tokenizer file '{path}' ({what}) does not exist.", path);
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";
}

/// <summary>A batch of token rows of fixed width, as the text towers take them.</summary>
/// <param name="Ids">Row-major <c>[count, ContextLength]</c> token ids.</param>
/// <param name="Lengths">Number of real tokens (start and end included) per row.</param>
/// <param name="ContextLength">Row width.</param>
public sealed record TokenBatch(long[] Ids, int[] Lengths, int ContextLength)
{
    /// <summary>Number of rows.</summary>
    public int Count => Lengths.Length;

    /// <summary>The longest row's real length (the width a dynamic-length model needs).</summary>
    public int MaxLength => Lengths.Length == 0 ? 0 : Lengths.Max();

    /// <summary>The attention mask <c>[count, width]</c>: 1 for real tokens, 0 for padding.</summary>
    public long[] AttentionMask(int width)
    {
        var mask = new long[Count * width];
        for (int b = 0; b < Count; b++) mask.AsSpan(b * width, Math.Min(Lengths[b], width)).Fill(1);
        return mask;
    }

    /// <summary>The ids cut (or padded with <paramref name="padId"/>) to <paramref name="width"/> columns.</summary>
    public long[] IdsWithWidth(int width, long padId)
    {
        if (width == ContextLength) return Ids;
        var r = new long[Count * width];
        for (int b = 0; b < Count; b++)
        {
            var dst = r.AsSpan(b * width, width);
            var src = Ids.AsSpan(b * ContextLength, Math.Min(width, ContextLength));
            src.CopyTo(dst);
            if (width > ContextLength) dst[ContextLength..].Fill(padId);
        }
        return r;
    }
}
