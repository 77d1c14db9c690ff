using Vega.MLNet.Text;

namespace Vega.MLNet.Prompting;

/// <summary>Where the class-name tokens go relative to the learnable context (CoOp's <c>class_token_position</c>).</summary>
public enum ClassTokenPosition
{
    /// <summary><c>[SOS][ctx×M][class][.][EOS]</c>.</summary>
    End,

    /// <summary><c>[SOS][ctx×⌊M/2⌋][class][ctx×(M − ⌊M/2⌋)][.][EOS]</c>.</summary>
    Middle,

    /// <summary><c>[SOS][class][ctx×M][.][EOS]</c>.</summary>
    Front,
}

/// <summary>
/// The token layout of learnable prompts for C class names, following CoOp: each class prompt is tokenized as the text
/// <c>"X X … X {name}."</c> (M placeholders; the ids are what the tower pools on with ArgMax, so the end token 49407
/// stays the maximum), then the M placeholder slots and the class-name tokens are arranged by
/// <see cref="ClassTokenPosition"/>. The learnable vectors replace the embeddings at <see cref="ContextPositions"/>.
/// Rows are <see cref="SequenceLength"/> wide: the fixed context of the tower (77), or, for a tower with dynamic
/// length, the longest prompt (nothing after it is computed).
/// </summary>
internal sealed class PromptLayout
{
    private PromptLayout(IReadOnlyList<string> classNames, int contextTokens, ClassTokenPosition position, int sequenceLength,
        long[] ids, int[] lengths, int[] contextPositions, int[] classTokenCounts)
    {
        ClassNames = classNames;
        ContextTokens = contextTokens;
        Position = position;
        SequenceLength = sequenceLength;
        Ids = ids;
        Lengths = lengths;
        ContextPositions = contextPositions;
        ClassTokenCounts = classTokenCounts;
    }

    /// <summary>The placeholder word CoOp writes for each learnable slot.</summary>
    public const string Placeholder = "X";

    public IReadOnlyList<string> ClassNames { get; }

    public int ClassCount => ClassNames.Count;

    /// <summary>M, the number of learnable context vectors per prompt.</summary>
    public int ContextTokens { get; }

    public ClassTokenPosition Position { get; }

    /// <summary>Width of every row of <see cref="Ids"/>.</summary>
    public int SequenceLength { get; }

    /// <summary>Token ids [C, SequenceLength], row-major, padded after the end token with the pad id.</summary>
    public long[] Ids { get; }

    /// <summary>Tokens per prompt including start and end (the end token sits at Lengths[c] − 1).</summary>
    public int[] Lengths { get; }

    /// <summary>[C, M]: the sequence position of context vector j in prompt c.</summary>
    public int[] ContextPositions { get; }

    /// <summary>Number of class-name tokens per prompt.</summary>
    public int[] ClassTokenCounts { get; }

    /// <summary>
    /// The prompts of classes [<paramref name="start"/>, start + <paramref name="count"/>), with rows narrowed to
    /// <paramref name="sequenceLength"/> (at least their longest prompt).
    /// </summary>
    public PromptLayout Subset(int start, int count, int sequenceLength)
    {
        if (start < 0 || count < 1 || start + count > ClassCount) throw new ArgumentOutOfRangeException(nameof(count), $"Classes [{start}, {start + count}) are not within [0, {ClassCount}).");
        int longest = Lengths.AsSpan(start, count).ToArray().Max();
        if (sequenceLength < longest || sequenceLength > SequenceLength)
            throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, $"Rows must hold the longest prompt ({longest}) and at most {SequenceLength} tokens.");
        var ids = new long[count * sequenceLength];
        for (int c = 0; c < count; c++)
            Ids.AsSpan((start + c) * SequenceLength, sequenceLength).CopyTo(ids.AsSpan(c * sequenceLength, sequenceLength));
        int m = ContextTokens;
        return new PromptLayout(ClassNames.Skip(start).Take(count).ToArray(), m, Position, sequenceLength, ids,
            Lengths.AsSpan(start, count).ToArray(), ContextPositions.AsSpan(start * m, count * m).ToArray(), ClassTokenCounts.AsSpan(start, count).ToArray());
    }

    /// <summary>The attention mask [C, SequenceLength]: 1 up to and including the end token, then 0.</summary>
    public long[] AttentionMask()
    {
        var m = new long[Ids.Length];
        for (int c = 0; c < ClassCount; c++) m.AsSpan(c * SequenceLength, Lengths[c]).Fill(1);
        return m;
    }

    /// <summary>
    /// Lays out prompts for <paramref name="classNames"/>.
    /// </summary>
    /// <param name="tokenizer">The tower's tokenizer.</param>
    /// <param name="classNames">One name per class.</param>
    /// <param name="contextTokens">M ≥ 0 learnable vectors per prompt.</param>
    /// <param name="position">Where the class name goes.</param>
    /// <param name="fixedLength">The tower's fixed context (e.g. 77), or null for a dynamic-length tower: rows are then as
    /// wide as the longest prompt.</param>
    /// <param name="maxLength">The longest prompt the tower accepts (its position table; 77 for CLIP).</param>
    /// <param name="padId">Id written after the end token (0 for OpenAI-style towers, 49407 for Hugging Face).</param>
    public static PromptLayout Create(ClipTokenizer tokenizer, IReadOnlyList<string> classNames, int contextTokens,
        ClassTokenPosition position, int? fixedLength, int maxLength = 77, long padId = 0)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(classNames);
        if (classNames.Count == 0) throw new ArgumentException("Prompt learning needs at least one class name.", nameof(classNames));
        if (contextTokens < 0) throw new ArgumentOutOfRangeException(nameof(contextTokens), contextTokens, "The number of context vectors cannot be negative.");
        int limit = fixedLength ?? maxLength;
        int[] placeholder = tokenizer.Encode(Placeholder);
        if (contextTokens > 0 && placeholder.Length != 1)
            throw new InvalidOperationException($"The tokenizer splits the placeholder '{Placeholder}' into {placeholder.Length} tokens; CoOp needs one.");
        string prefix = string.Join(' ', Enumerable.Repeat(Placeholder, contextTokens));

        var rows = new List<int[]>(classNames.Count);
        var contextPositions = new int[classNames.Count * contextTokens];
        var classCounts = new int[classNames.Count];
        for (int c = 0; c < classNames.Count; c++)
        {
            string name = classNames[c] ?? throw new ArgumentException($"Class name {c} is null.", nameof(classNames));
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"Class name {c} is empty.", nameof(classNames));
            // CoOp: tokenize "X X … X name." as one text; the class occupies len(encode(name)) tokens after the placeholders.
            int[] end = tokenizer.EncodeWithSpecialTokens(contextTokens > 0 ? prefix + " " + name + "." : name + ".");
            int nameLength = tokenizer.Encode(name).Length;
            classCounts[c] = nameLength;
            if (end.Length > limit)
                throw new ArgumentException(
                    $"The prompt for class {c} (\"{name}\") needs {end.Length} tokens with {contextTokens} context vectors, start, '.' and end; the tower accepts {limit}. Shorten the class name or use fewer context vectors.",
                    nameof(classNames));
            int sot = end[0];
            var ctxIds = end.AsSpan(1, contextTokens).ToArray();
            var classIds = end.AsSpan(1 + contextTokens, nameLength).ToArray();
            var rest = end.AsSpan(1 + contextTokens + nameLength).ToArray(); // '.', end token (and any trailing punctuation)
            var row = new List<int>(end.Length) { sot };
            var ctxPos = contextPositions.AsSpan(c * contextTokens, contextTokens);
            int half = contextTokens / 2;
            switch (position)
            {
                case ClassTokenPosition.End:
                    for (int j = 0; j < contextTokens; j++) { ctxPos[j] = row.Count; row.Add(ctxIds[j]); }
                    row.AddRange(classIds);
                    break;
                case ClassTokenPosition.Middle:
                    for (int j = 0; j < half; j++) { ctxPos[j] = row.Count; row.Add(ctxIds[j]); }
                    row.AddRange(classIds);
                    for (int j = half; j < contextTokens; j++) { ctxPos[j] = row.Count; row.Add(ctxIds[j]); }
                    break;
                case ClassTokenPosition.Front:
                    row.AddRange(classIds);
                    for (int j = 0; j < contextTokens; j++) { ctxPos[j] = row.Count; row.Add(ctxIds[j]); }
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(position), position, "Unknown class token position.");
            }
            row.AddRange(rest);
            rows.Add(row.ToArray());
        }
        int width = fixedLength ?? rows.Max(r => r.Length);
        var ids = new long[classNames.Count * width];
        var lengths = new int[classNames.Count];
        for (int c = 0; c < rows.Count; c++)
        {
            var dst = ids.AsSpan(c * width, width);
            for (int j = 0; j < rows[c].Length; j++) dst[j] = rows[c][j];
            dst[rows[c].Length..].Fill(padId);
            lengths[c] = rows[c].Length;
        }
        return new PromptLayout(classNames.ToArray(), contextTokens, position, width, ids, lengths, contextPositions, classCounts);
    }
}
