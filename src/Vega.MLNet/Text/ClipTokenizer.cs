using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Vega.MLNet.Text;

/// <summary>
/// The CLIP byte-level BPE tokenizer, exactly as the reference implementation (openai/CLIP
/// <c>simple_tokenizer.py</c> with ftfy 6.3.1) encodes text: clean-up (see <see cref="FixText"/>), lower-casing,
/// CLIP's pre-tokenisation pattern, byte-to-symbol mapping with <c>&lt;/w&gt;</c> word ends, merges by rank, start and
/// end tokens. An ML.NET <see cref="Tokenizer"/>: usable wherever ML.NET takes one.
/// Loads the original <c>bpe_simple_vocab_16e6.txt.gz</c>, Hugging Face <c>vocab.json</c> + <c>merges.txt</c>, a
/// Hugging Face <c>tokenizer.json</c>, or the standard CLIP vocabulary built into the package (<see cref="Create(bool)"/>).
/// Thread-safe.
/// </summary>
/// <remarks>
/// <para><see cref="Tokenizer.EncodeToIds(string, bool, bool)"/> returns the ids with <c>&lt;|startoftext|&gt;</c> and
/// <c>&lt;|endoftext|&gt;</c> around them, as Hugging Face's CLIPTokenizer does; <see cref="Encode(string)"/> gives the
/// ids without them.</para>
/// <para>Offsets (<see cref="EncodedToken.Offset"/>) are ranges of the original text, never of the cleaned text: the
/// <c>normalizedText</c> out-parameters are always null. A token covers the original characters its bytes came
/// from; a character the clean-up produced from several (an HTML reference, repaired mojibake, a composed accent)
/// covers all of them, so neighbouring tokens can share characters. The start token has the empty range at 0, the end
/// token the empty range at the end of the text.</para>
/// </remarks>
public sealed class ClipTokenizer : Tokenizer
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
    private readonly int[] _tokenByteLength;
    private readonly Lazy<IReadOnlyDictionary<string, int>> _vocabulary;
    private ClipTextNormalizer? _normalizer;
    private ClipPreTokenizer? _preTokenizer;

    private readonly record struct Merge(int Rank, int Result);

    private ClipTokenizer(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string source, bool builtIn = false)
    {
        Source = source;
        IsBuiltInVocabulary = builtIn;
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
        _cache.Reset();
        _tokenByteLength = new int[_idToToken.Length];
        for (int id = 0; id < _idToToken.Length; id++)
        {
            string? t = _idToToken[id];
            if (t is null) continue;
            _tokenByteLength[id] = t.EndsWith("</w>", StringComparison.Ordinal) ? t.Length - 4 : t.Length;
        }
        _vocabulary = new(BuildVocabulary);
    }

    /// <summary>Where the vocabulary was loaded from (a file path, or a description of the built-in vocabulary).</summary>
    public string Source { get; }

    /// <summary>Whether this is the standard CLIP vocabulary built into the package (<see cref="Create(bool)"/>) rather
    /// than files of a model folder.</summary>
    public bool IsBuiltInVocabulary { get; }

    /// <summary>The vocabulary: token string → id (byte-level symbols, <c>&lt;/w&gt;</c> marking word ends).</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary.Value;

    /// <summary>CLIP's clean-up (ftfy when <see cref="FixText"/> is on, HTML unescaping, whitespace, lower-casing) as an
    /// ML.NET normalizer: <c>Normalizer.Normalize(text)</c> gives the text the pre-tokeniser sees.</summary>
    public override Normalizer Normalizer => _normalizer ??= new ClipTextNormalizer(FixText);

    /// <summary>CLIP's pre-tokenisation pattern as an ML.NET pre-tokenizer (over normalized text).</summary>
    public override PreTokenizer PreTokenizer => _preTokenizer ??= new ClipPreTokenizer();

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
        IsBuiltInVocabulary = other.IsBuiltInVocabulary;
        _tokenByteLength = other._tokenByteLength;
        _vocabulary = other._vocabulary;
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
        using var vocab = File.OpenRead(vocabJsonPath);
        using var merges = File.OpenRead(mergesTxtPath);
        return FromVocabAndMerges(vocab, merges, vocabJsonPath, mergesTxtPath);
    }

    private static ClipTokenizer FromVocabAndMerges(Stream vocabJson, Stream mergesTxt, string vocabName, string mergesName)
    {
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(vocabJson) ?? throw new InvalidDataException("null");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException(
                $"The vocabulary '{vocabName}' is not a JSON object of token → id ({e.Message}). Replace it with the model's original vocab.json.", e);
        }
        var merges = new List<(string, string)>(50000);
        int lineNo = 0;
        using var reader = new StreamReader(mergesTxt, Encoding.UTF8);
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (line.Length == 0 || (lineNo == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(line, mergesName, lineNo));
        }
        return new ClipTokenizer(vocab, merges, vocabName);
    }

    /// <summary>
    /// Loads the original CLIP <c>bpe_simple_vocab_16e6.txt.gz</c> (gzip or plain text): header line, then merges;
    /// lines 1..48894 are used and the vocabulary is built from the byte symbols, their <c>&lt;/w&gt;</c> forms, the merges
    /// and the two special tokens, as the reference does.
    /// </summary>
    public static ClipTokenizer FromBpeFile(string path, int mergeCount = 49152 - 256 - 2)
    {
        RequireFile(path, "bpe_simple_vocab_16e6.txt.gz");
        using var file = File.OpenRead(path);
        return FromBpeStream(file, path, mergeCount, builtIn: false);
    }

    private static ClipTokenizer FromBpeStream(Stream file, string name, int mergeCount, bool builtIn)
    {
        var lines = new List<string>(mergeCount + 1);
        try
        {
            var magic = new byte[2];
            Stream s = file;
            if (!file.CanSeek)
            {
                var copy = new MemoryStream();
                file.CopyTo(copy);
                copy.Position = 0;
                s = file = copy;
            }
            bool gz = file.Read(magic, 0, 2) == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
            file.Position = 0;
            if (gz) s = new GZipStream(file, CompressionMode.Decompress);
            using var reader = new StreamReader(s, Encoding.UTF8);
            while (lines.Count < mergeCount + 1 && reader.ReadLine() is { } line) lines.Add(line);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The BPE file '{name}' is corrupt ({e.Message}). Replace it with the original bpe_simple_vocab_16e6.txt.gz.", e);
        }
        if (lines.Count < mergeCount + 1)
            throw new InvalidDataException(
                $"The BPE file '{name}' has {Math.Max(0, lines.Count - 1)} merges, fewer than the {mergeCount} CLIP uses: it is truncated or not CLIP's. Replace it with the original bpe_simple_vocab_16e6.txt.gz.");
        var merges = new List<(string, string)>(lines.Count - 1);
        for (int i = 1; i < lines.Count; i++) merges.Add(SplitMerge(lines[i], name, i + 1));
        var vocab = new Dictionary<string, int>(merges.Count + 514);
        foreach (char c in ByteSymbolsInVocabOrder()) vocab.TryAdd(c.ToString(), vocab.Count);
        foreach (char c in ByteSymbolsInVocabOrder()) vocab.TryAdd(c + "</w>", vocab.Count);
        foreach (var (l, r) in merges) vocab.TryAdd(l + r, vocab.Count);
        vocab.TryAdd(StartOfTextToken, vocab.Count);
        vocab.TryAdd(EndOfTextToken, vocab.Count);
        return new ClipTokenizer(vocab, merges, name, builtIn);
    }

    /// <summary>The description <see cref="Source"/> gives for the built-in vocabulary.</summary>
    public const string BuiltInVocabularySource = "built-in CLIP vocabulary (openai/CLIP bpe_simple_vocab_16e6.txt.gz, MIT license)";

    private static readonly Lazy<ClipTokenizer> BuiltIn = new(() =>
    {
        using var stream = typeof(ClipTokenizer).Assembly.GetManifestResourceStream("Vega.MLNet.Text.bpe_simple_vocab_16e6.txt.gz")
            ?? throw new InvalidOperationException("The built-in CLIP vocabulary is missing from the Vega.MLNet assembly.");
        return FromBpeStream(stream, BuiltInVocabularySource, 49152 - 256 - 2, builtIn: true);
    });

    /// <summary>
    /// The standard CLIP tokenizer with the vocabulary built into the package (openai/CLIP's
    /// <c>bpe_simple_vocab_16e6.txt.gz</c>, MIT license; the license text ships in the package as
    /// <c>licenses/LICENSE-openai-CLIP.txt</c>): 49408 ids, 49406 and 49407 for start and end. Every call returns the
    /// same (thread-safe) instance.
    /// </summary>
    /// <param name="fixText">Whether the ftfy-style repair runs before encoding (see <see cref="FixText"/>).</param>
    public static ClipTokenizer Create(bool fixText = true) => BuiltIn.Value.WithFixText(fixText);

    /// <summary>Creates the tokenizer from Hugging Face <c>vocab.json</c> and <c>merges.txt</c> files.</summary>
    /// <param name="vocabFile">Path of <c>vocab.json</c> (token → id).</param>
    /// <param name="mergesFile">Path of <c>merges.txt</c>.</param>
    /// <param name="fixText">Whether the ftfy-style repair runs before encoding (see <see cref="FixText"/>).</param>
    public static ClipTokenizer Create(string vocabFile, string mergesFile, bool fixText = true) =>
        FromVocabAndMerges(vocabFile, mergesFile).WithFixText(fixText);

    /// <summary>Creates the tokenizer from Hugging Face <c>vocab.json</c> and <c>merges.txt</c> streams (not disposed).</summary>
    /// <param name="vocabStream">The content of <c>vocab.json</c>.</param>
    /// <param name="mergesStream">The content of <c>merges.txt</c>.</param>
    /// <param name="fixText">Whether the ftfy-style repair runs before encoding (see <see cref="FixText"/>).</param>
    public static ClipTokenizer Create(Stream vocabStream, Stream mergesStream, bool fixText = true)
    {
        ArgumentNullException.ThrowIfNull(vocabStream);
        ArgumentNullException.ThrowIfNull(mergesStream);
        return FromVocabAndMerges(vocabStream, mergesStream, "vocab.json stream", "merges.txt stream").WithFixText(fixText);
    }

    /// <summary>Creates the tokenizer from a model folder or a vocabulary file, as <see cref="Load"/> does.</summary>
    /// <param name="path">A folder with <c>tokenizer.json</c>, <c>vocab.json</c> + <c>merges.txt</c> or
    /// <c>bpe_simple_vocab_16e6.txt.gz</c>, or one of those files.</param>
    /// <param name="fixText">Whether the ftfy-style repair runs before encoding (see <see cref="FixText"/>).</param>
    public static ClipTokenizer Create(string path, bool fixText = true) => Load(path).WithFixText(fixText);

    /// <summary>Whether <paramref name="directory"/> holds a vocabulary <see cref="Load"/> would find.</summary>
    public static bool HasVocabularyFiles(string directory) =>
        File.Exists(Path.Combine(directory, "vocab.json")) && File.Exists(Path.Combine(directory, "merges.txt"))
        || File.Exists(Path.Combine(directory, "tokenizer.json"))
        || File.Exists(Path.Combine(directory, "bpe_simple_vocab_16e6.txt.gz"));

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
        ArgumentNullException.ThrowIfNull(text);
        var list = new List<int>(Math.Max(8, text.Length / 3));
        EncodeInto(text, list);
        return list.ToArray();
    }

    /// <summary>Encodes <paramref name="text"/> as <c>[start] + ids + [end]</c> (no padding, no truncation).</summary>
    public int[] EncodeWithSpecialTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var list = new List<int>(Math.Max(8, text.Length / 3)) { StartOfTextId };
        EncodeInto(text, list);
        list.Add(EndOfTextId);
        return list.ToArray();
    }

    /// <summary>Appends the ids of <paramref name="text"/> (no start/end tokens) to <paramref name="ids"/>.</summary>
    public void EncodeInto(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
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

    // ---- the ML.NET Tokenizer surface

    /// <inheritdoc/>
    protected override EncodeResults<int> EncodeToIds(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        if (settings.MaxTokenCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(settings), settings.MaxTokenCount, "The maximum number of tokens must be greater than zero.");
        string original = text ?? textSpan.ToString();
        if (settings.MaxTokenCount != int.MaxValue)
        {
            var tokens = EncodeToTokens(original, original.AsSpan(), settings);
            var limited = new int[tokens.Tokens.Count];
            for (int i = 0; i < limited.Length; i++) limited[i] = tokens.Tokens[i].Id;
            return new EncodeResults<int> { Tokens = limited, CharsConsumed = tokens.CharsConsumed, NormalizedText = null };
        }
        var ids = new List<int>(Math.Max(8, original.Length / 3)) { StartOfTextId };
        if (settings.ConsiderNormalization && settings.ConsiderPreTokenization) EncodeInto(original, ids);
        else
        {
            string s = settings.ConsiderNormalization ? TextCleaner.Clean(original, FixText) : original;
            if (settings.ConsiderPreTokenization) PreTokenizeAndEncode(s, ids);
            else if (s.Length > 0) EncodeWord(s, ids);
        }
        ids.Add(EndOfTextId);
        return new EncodeResults<int> { Tokens = ids, CharsConsumed = original.Length, NormalizedText = null };
    }

    /// <inheritdoc/>
    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        if (settings.MaxTokenCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(settings), settings.MaxTokenCount, "The maximum number of tokens must be greater than zero.");
        string original = text ?? textSpan.ToString();
        string s;
        Origins origins;
        if (settings.ConsiderNormalization) s = TextCleaner.Clean(original, FixText, out origins);
        else { s = original; origins = Origins.Identity(original.Length); }

        var tokens = new List<EncodedToken>(Math.Max(8, s.Length / 3)) { new(StartOfTextId, StartOfTextToken, new Range(0, 0)) };
        var ids = new List<int>(16);
        void Piece(int start, int end)
        {
            var piece = s.AsSpan(start, end - start);
            if (settings.ConsiderPreTokenization && IsSpecial(piece, out int special))
            {
                var (os, oe) = origins.Cover(start, end);
                tokens.Add(new EncodedToken(special, _idToToken[special], new Range(os, oe)));
                return;
            }
            ids.Clear();
            EncodeWord(piece, ids);
            // byte k of the piece belongs to character unit charOfByte[k]
            int byteCount = Encoding.UTF8.GetByteCount(piece);
            var charOfByte = new int[byteCount];
            for (int i = 0, b = 0; i < piece.Length;)
            {
                int units = char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]) ? 2 : 1;
                int w = Encoding.UTF8.GetByteCount(piece.Slice(i, units));
                for (int k = 0; k < w; k++) charOfByte[b + k] = i;
                b += w;
                i += units;
            }
            int pos = 0;
            foreach (int id in ids)
            {
                int len = Math.Max(1, _tokenByteLength[id]);
                int first = charOfByte[Math.Min(pos, byteCount - 1)];
                int lastUnit = charOfByte[Math.Min(pos + len - 1, byteCount - 1)];
                int last = lastUnit + (char.IsHighSurrogate(piece[lastUnit]) && lastUnit + 1 < piece.Length ? 2 : 1);
                var (os, oe) = origins.Cover(start + first, start + last);
                tokens.Add(new EncodedToken(id, _idToToken[id], new Range(os, oe)));
                pos += len;
            }
        }
        if (settings.ConsiderPreTokenization)
        {
            int i = 0;
            while (NextPiece(s, ref i, out int start, out int end)) Piece(start, end);
        }
        else if (s.Length > 0) Piece(0, s.Length);

        int max = settings.MaxTokenCount;
        int charsConsumed = original.Length;
        if (tokens.Count > max)
        {
            // Keep whole characters: cut only where the next token starts at or after the end of the last one kept.
            int keep = max;
            while (keep > 1 && tokens[keep - 1].Offset.End.Value > tokens[keep].Offset.Start.Value) keep--;
            charsConsumed = keep > 1 ? tokens[keep - 1].Offset.End.Value : 0;
            tokens.RemoveRange(keep, tokens.Count - keep);
        }
        if (tokens.Count < max) tokens.Add(new EncodedToken(EndOfTextId, EndOfTextToken, new Range(original.Length, original.Length)));
        return new EncodeResults<EncodedToken> { Tokens = tokens, CharsConsumed = charsConsumed, NormalizedText = null };
    }

    [ThreadStatic] private static List<int>? t_countBuffer;

    /// <inheritdoc/>
    protected override int CountTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        if (settings.MaxTokenCount != int.MaxValue || !settings.ConsiderNormalization || !settings.ConsiderPreTokenization)
            return EncodeToIds(text, textSpan, settings).Tokens.Count;
        var buffer = t_countBuffer ??= new List<int>(256);
        buffer.Clear();
        EncodeInto(text ?? textSpan.ToString(), buffer);
        int n = buffer.Count + 2;
        if (buffer.Capacity > 1 << 16) t_countBuffer = null;
        return n;
    }

    /// <inheritdoc/>
    protected override int GetIndexByTokenCount(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings, bool fromEnd,
        out string? normalizedText, out int tokenCount)
    {
        normalizedText = null;
        string original = text ?? textSpan.ToString();
        int max = settings.MaxTokenCount;
        if (max <= 0) throw new ArgumentOutOfRangeException(nameof(settings), max, "The maximum number of tokens must be greater than zero.");
        if (!fromEnd)
        {
            var limited = EncodeToTokens(original, original.AsSpan(), settings);
            tokenCount = limited.Tokens.Count;
            return limited.CharsConsumed;
        }
        settings.MaxTokenCount = int.MaxValue;
        var all = EncodeToTokens(original, original.AsSpan(), settings).Tokens;
        int first = Math.Max(0, all.Count - max); // index of the first token kept
        while (first > 0 && first < all.Count - 1 && all[first - 1].Offset.End.Value > all[first].Offset.Start.Value) first++;
        tokenCount = all.Count - first;
        return first == 0 ? 0 : first >= all.Count - 1 ? original.Length : all[first].Offset.Start.Value;
    }

    /// <summary>
    /// Decodes ids as the reference decoder does (token strings to bytes, UTF-8 with U+FFFD for invalid sequences,
    /// every <c>&lt;/w&gt;</c> to a space, so "cat." decodes to "cat ."), without the space the last word end leaves
    /// and without the start and end tokens.
    /// </summary>
    public override string Decode(IEnumerable<int> ids) => Decode(ids, considerSpecialTokens: false);

    /// <summary>Decodes ids as the reference decoder does; with <paramref name="considerSpecialTokens"/> the start and
    /// end tokens appear as <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>.</summary>
    /// <param name="ids">Token ids.</param>
    /// <param name="considerSpecialTokens">Keep the start and end tokens in the text.</param>
    public string Decode(IEnumerable<int> ids, bool considerSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>(64);
        bool lastEndsWord = false;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is outside the vocabulary of {VocabularySize}.");
            if ((id == StartOfTextId || id == EndOfTextId) && !considerSpecialTokens) continue;
            foreach (char c in token)
                bytes.Add(_symbolCharToByte.TryGetValue(c, out byte b) ? b : (byte)'?');
            lastEndsWord = token.EndsWith("</w>", StringComparison.Ordinal);
        }
        string text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))
            .Replace("</w>", " ", StringComparison.Ordinal);
        return lastEndsWord && text.EndsWith(' ') ? text[..^1] : text;
    }

    /// <inheritdoc/>
    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = ids as IReadOnlyList<int> ?? ids.ToArray();
        string full = Decode(list);
        if (full.Length <= destination.Length)
        {
            full.AsSpan().CopyTo(destination);
            idsConsumed = list.Count;
            charsWritten = full.Length;
            return OperationStatus.Done;
        }
        // The longest prefix of the ids whose text fits and is a prefix of the whole text.
        for (int k = list.Count - 1; k >= 0; k--)
        {
            string part = Decode(list.Take(k));
            if (part.Length > destination.Length || !full.StartsWith(part, StringComparison.Ordinal)) continue;
            part.AsSpan().CopyTo(destination);
            idsConsumed = k;
            charsWritten = part.Length;
            return OperationStatus.DestinationTooSmall;
        }
        idsConsumed = 0;
        charsWritten = 0;
        return OperationStatus.DestinationTooSmall;
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
    internal TokenBatch EncodeBatch(IReadOnlyList<string> texts, int contextLength = 77, bool truncate = false, int padId = 0)
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

    /// <summary>The token string of an id.</summary>
    public string IdToToken(int id) => _idToToken[id];

    private IReadOnlyDictionary<string, int> BuildVocabulary()
    {
        var map = new Dictionary<string, int>(_idToToken.Length, StringComparer.Ordinal);
        for (int id = 0; id < _idToToken.Length; id++) if (_idToToken[id] is { } t) map.TryAdd(t, id);
        return map;
    }

    internal int WordCacheCount => _cache.Map.Count;

    internal void ClearWordCache() => _cache.Reset();

    // Distinct pre-tokens → their BPE ids; lock-free reads, bounded size (cleared when full).
    private sealed class WordCache
    {
        public readonly ConcurrentDictionary<string, int[]> Map = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private int _count;

        public void Reset()
        {
            lock (_gate)
            {
                Map.Clear();
                _count = 0;
            }
        }

        public void Add(ReadOnlySpan<char> piece, int[] ids)
        {
            lock (_gate)
            {
                if (_count >= WordCacheLimit) { Map.Clear(); _count = 0; }
                if (Map.TryAdd(piece.ToString(), ids)) _count++;
            }
        }
    }

    // ---- pre-tokenisation: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    //      (regex module, IGNORECASE)
    private void PreTokenizeAndEncode(ReadOnlySpan<char> s, List<int> ids)
    {
        int i = 0;
        while (NextPiece(s, ref i, out int start, out int end))
        {
            var piece = s[start..end];
            if (IsSpecial(piece, out int special)) ids.Add(special);
            else EncodeWord(piece, ids);
        }
    }

    // The pattern matches the special tokens case-insensitively, but the reference maps a piece to the special id
    // only when it is the token exactly ("<|\u017Ftartoftext|>" is one piece, encoded by BPE like a word).
    private bool IsSpecial(ReadOnlySpan<char> piece, out int id)
    {
        id = 0;
        if (piece.SequenceEqual(StartOfTextToken)) id = StartOfTextId;
        else if (piece.SequenceEqual(EndOfTextToken)) id = EndOfTextId;
        return id != 0;
    }

    /// <summary>Reports every pre-token of a cleaned text as (start, length).</summary>
    internal static void PreTokenize(ReadOnlySpan<char> s, Action<int, int> piece)
    {
        int i = 0;
        while (NextPiece(s, ref i, out int start, out int end)) piece(start, end - start);
    }

    // The next match of the pattern at or after i (ordered alternatives, greedy runs). Whitespace separates matches;
    // U+0345 matches no alternative under IGNORECASE in the regex module (neither [\p{L}] nor the negated class), so
    // it is skipped and splits runs.
    private static bool NextPiece(ReadOnlySpan<char> s, ref int i, out int start, out int end)
    {
        while (i < s.Length && (s[i] == ' ' || IsSkipped(s[i]))) i++;
        start = i;
        end = i;
        if (i >= s.Length) return false;
        char c = s[i];
        if (c == '<' && MatchesIgnoreCase(s, i, StartOfTextToken)) end = i + StartOfTextToken.Length;
        else if (c == '<' && MatchesIgnoreCase(s, i, EndOfTextToken)) end = i + EndOfTextToken.Length;
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

    private static bool IsSkipped(char c) => c >= '\u0085' && (c == '\u0345' || TextCleaner.IsRegexSpace(c)) || c is >= '\t' and <= '\r';

    // Case-insensitive comparison with the regex module's simple case folding: ASCII letters, and U+017F (long s)
    // and U+212A (Kelvin sign), which fold to 's' and 'k'.
    private static bool MatchesIgnoreCase(ReadOnlySpan<char> s, int i, string token)
    {
        if (s.Length - i < token.Length) return false;
        for (int k = 0; k < token.Length; k++) if (Fold(s[i + k]) != token[k]) return false;
        return true;
    }

    private static char Fold(char c) => c switch
    {
        >= 'A' and <= 'Z' => (char)(c | 0x20),
        '\u017F' => 's',
        '\u212A' => 'k',
        _ => c,
    };

    // Returns the end index of a contraction at i, or 0.
    private static int Contraction(ReadOnlySpan<char> s, int i)
    {
        if (i + 1 >= s.Length) return 0;
        char a = Fold(s[i + 1]);
        char b = i + 2 < s.Length ? Fold(s[i + 2]) : '\0';
        switch (a)
        {
            case 's' or 't' or 'm' or 'd': return i + 2;
            case 'r' when b == 'e': return i + 3;
            case 'v' when b == 'e': return i + 3;
            case 'l' when b == 'l': return i + 3;
            default: return 0;
        }
    }

    private enum CharClass { Letter, Number, Other, Separator }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CharClass Classify(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (c < 0x80)
        {
            width = 1;
            return (uint)((c | 0x20) - 'a') <= 'z' - 'a' ? CharClass.Letter
                : (uint)(c - '0') <= 9 ? CharClass.Number
                : c == ' ' || c is >= '\t' and <= '\r' ? CharClass.Separator : CharClass.Other;
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
            if (IsSkipped(c)) return CharClass.Separator;
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
            _cache.Add(piece, cached);
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
internal sealed record TokenBatch(long[] Ids, int[] Lengths, int ContextLength)
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
