using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Prompting;

/// <summary>Options of <see cref="PromptTextEncoder.Load"/>.</summary>
internal sealed record PromptTextEncoderOptions
{
    /// <summary>The token-id input (default: <c>input_ids</c>, else the only rank-2 integer input).</summary>
    public string? IdsInput { get; init; }

    /// <summary>The attention-mask input (default: <c>attention_mask</c> when the tower has it).</summary>
    public string? MaskInput { get; init; }

    /// <summary>The text-embedding output (default: <c>text_embeds</c>, else the only output).</summary>
    public string? Output { get; init; }

    /// <summary>Longest prompt a dynamic-length tower accepts (its position table; 77 for CLIP).</summary>
    public int MaxLength { get; init; } = 77;

    /// <summary>Fuse known sub-graphs in the interpreter (default true).</summary>
    public bool Fuse { get; init; } = true;
}

/// <summary>Prompts laid out for one encoder: the layout, the frozen token embeddings of every position and the ids.</summary>
internal sealed class PreparedPrompts
{
    internal PreparedPrompts(PromptLayout layout, Tensor baseEmbeddings, OnnxValue ids, OnnxValue? mask)
    {
        Layout = layout;
        BaseEmbeddings = baseEmbeddings;
        Ids = ids;
        Mask = mask;
        int m = layout.ContextTokens, l = layout.SequenceLength;
        DestinationRows = new int[layout.ClassCount * m];
        for (int c = 0; c < layout.ClassCount; c++)
            for (int j = 0; j < m; j++) DestinationRows[c * m + j] = c * l + layout.ContextPositions[c * m + j];
    }

    public PromptLayout Layout { get; }

    /// <summary>token_embedding[ids] as [C, L, width] (constant; the placeholder rows are overwritten by the context).</summary>
    public Tensor BaseEmbeddings { get; }

    public OnnxValue Ids { get; }

    public OnnxValue? Mask { get; }

    /// <summary>Row (c·L + position) of each context slot, in [C, M] order.</summary>
    internal int[] DestinationRows { get; }
}

/// <summary>
/// A frozen CLIP text tower run by the <see cref="OnnxInterpreter"/> from learnable prompt vectors: the tower's
/// token-embedding Gather is bound (its output is fed instead of computed), the input embeddings are assembled as
/// <c>token_embedding[ids]</c> with the context vectors scattered into the placeholder positions (a differentiable
/// tensor-core op), and <see cref="Forward"/> returns L2-normalised text features on the current tape, so that
/// gradients reach the context vectors and nothing else (the tower's weights are constants without gradient buffers).
/// <see cref="ExportOnnx"/> writes the tower with an <c>inputs_embeds</c> input (<see cref="PromptInjection"/>) so
/// that ONNX Runtime runs inference with learned context.
/// </summary>
internal sealed class PromptTextEncoder
{
    private readonly ModelProto _model;

    private PromptTextEncoder(ModelProto model, string source, OnnxInterpreter interpreter, string ids, string? mask, string output,
        string gatherOutput, Tensor table, int? fixedLength, int maxLength)
    {
        _model = model;
        Source = source;
        Interpreter = interpreter;
        IdsInput = ids;
        MaskInput = mask;
        Output = output;
        GatherOutput = gatherOutput;
        TokenEmbedding = table;
        FixedLength = fixedLength;
        MaxLength = fixedLength ?? maxLength;
    }

    public string Source { get; }

    public OnnxInterpreter Interpreter { get; }

    public string IdsInput { get; }

    public string? MaskInput { get; }

    public string Output { get; }

    /// <summary>The element type the tower declares for the ids (any integer type).</summary>
    public OnnxElementType IdsType { get; private init; } = OnnxElementType.Int64;

    /// <summary>The element type the tower declares for the attention mask (integer, bool or float32).</summary>
    public OnnxElementType MaskType { get; private init; } = OnnxElementType.Int64;

    /// <summary>The token-embedding Gather's output (bound: fed with the assembled embeddings).</summary>
    public string GatherOutput { get; }

    /// <summary>The frozen token-embedding table [vocabulary, width].</summary>
    public Tensor TokenEmbedding { get; }

    public int VocabularySize => TokenEmbedding.Shape[0];

    public int Width => TokenEmbedding.Shape[1];

    /// <summary>The tower's fixed sequence length (77 for OpenAI exports), or null when it accepts any length.</summary>
    public int? FixedLength { get; }

    /// <summary>The longest prompt the tower accepts.</summary>
    public int MaxLength { get; }

    /// <summary>Id written after the end token: 0 for fixed-length towers (clip.tokenize), the end token for dynamic ones (Hugging Face).</summary>
    public long PadId(ClipTokenizer tokenizer) => FixedLength is null ? tokenizer.EndOfTextId : 0;

    public static PromptTextEncoder Load(string path, PromptTextEncoderOptions? options = null) =>
        Create(OnnxModelFile.Load(path), path, options);

    public static PromptTextEncoder Create(ModelProto model, string source, PromptTextEncoderOptions? options = null)
    {
        options ??= new PromptTextEncoderOptions();
        var graph = model.Graph ?? throw new InvalidDataException($"'{source}' has no graph: it is not an ONNX model.");
        var initializerNames = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = graph.Input.Where(i => !initializerNames.Contains(i.Name)).ToList();
        static bool IsInt(ValueInfoProto v) => v.Type?.TensorType is { } t && OnnxValue.IsIntegral((OnnxElementType)t.ElemType) && (OnnxElementType)t.ElemType != OnnxElementType.Bool;

        string ids = options.IdsInput
            ?? (inputs.Any(i => i.Name == "input_ids") ? "input_ids" : null)
            ?? (inputs.Count(i => IsInt(i) && i.Type.TensorType.Shape?.Dim.Count == 2) == 1 ? inputs.First(i => IsInt(i) && i.Type.TensorType.Shape?.Dim.Count == 2).Name : null)
            ?? throw new InvalidDataException($"'{source}' has no token-id input (looked for 'input_ids' or a single rank-2 integer input; inputs: {string.Join(", ", inputs.Select(i => i.Name))}). Name it with PromptTextEncoderOptions.IdsInput.");
        if (inputs.All(i => i.Name != ids)) throw new InvalidDataException($"'{source}' has no input '{ids}'.");
        string? mask = options.MaskInput ?? (inputs.Any(i => i.Name == "attention_mask") ? "attention_mask" : null);
        string output = options.Output
            ?? (graph.Output.Any(o => o.Name == "text_embeds") ? "text_embeds" : graph.Output.Count == 1 ? graph.Output[0].Name : null)
            ?? throw new InvalidDataException($"'{source}' has several outputs and none is 'text_embeds'; name it with PromptTextEncoderOptions.Output.");

        // The token-embedding lookup: a Gather on axis 0 indexed by the ids (or a Cast/Identity of them).
        var idNames = new HashSet<string>(StringComparer.Ordinal) { ids };
        foreach (var n in graph.Node)
            if (n.OpType is "Cast" or "Identity" && n.Input.Count > 0 && idNames.Contains(n.Input[0])) idNames.Add(n.Output[0]);
        var gathers = graph.Node.Where(n => n.OpType == "Gather" && n.Input.Count == 2 && idNames.Contains(n.Input[1])
            && (n.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 0) == 0).ToList();
        if (gathers.Count != 1)
            throw new InvalidDataException(gathers.Count == 0
                ? $"'{source}' has no token-embedding lookup (a Gather on axis 0 indexed by '{ids}'): prompt learning needs a text tower exported with its embedding table."
                : $"'{source}' has {gathers.Count} Gathers indexed by '{ids}'; cannot tell which is the token embedding.");
        var gather = gathers[0];

        var interpreter = OnnxInterpreter.Create(model, source, new OnnxInterpreterOptions
        {
            BoundValues = [gather.Output[0]],
            KeepValues = [gather.Input[0]],
            Fuse = options.Fuse,
        });
        var table = interpreter.Constant(gather.Input[0])?.Tensor;
        if (table is null || table.Rank != 2)
            throw new InvalidDataException($"'{source}': the token-embedding table '{gather.Input[0]}' is not a constant float [vocabulary, width] tensor.");
        var idsInfo = interpreter.Inputs.FirstOrDefault(i => i.Name == ids)
            ?? throw new InvalidDataException($"'{source}': the interpreter does not read '{ids}' (is the tower pooled without the ids?).");
        int? fixedLength = idsInfo.Dims is { Length: 2 } d ? d[1] : null;
        // Feed the ids and the mask with the element types the tower declares (int64 in most exports, int32 in some;
        // the mask may also be bool or float32).
        var idsType = idsInfo.Type == OnnxElementType.Undefined ? OnnxElementType.Int64 : idsInfo.Type;
        if (!OnnxValue.IsIntegral(idsType) || idsType == OnnxElementType.Bool)
            throw new InvalidDataException($"'{source}': the token-id input '{ids}' is {idsType}; token ids must be an integer type.");
        var maskType = OnnxElementType.Int64;
        if (mask is not null)
        {
            var maskInfo = interpreter.Inputs.FirstOrDefault(i => i.Name == mask);
            if (maskInfo is null) mask = null;
            else
            {
                maskType = maskInfo.Type == OnnxElementType.Undefined ? OnnxElementType.Int64 : maskInfo.Type;
                if (!OnnxValue.IsSupported(maskType))
                    throw new InvalidDataException($"'{source}': the attention-mask input '{mask}' is {maskType}; it must be an integer, bool or float32 tensor.");
            }
        }
        return new PromptTextEncoder(model, source, interpreter, ids, mask, output, gather.Output[0], table, fixedLength, options.MaxLength)
        {
            IdsType = idsType,
            MaskType = maskType,
        };
    }

    /// <summary>Lays out prompts for this tower (fixed length, or the longest prompt for a dynamic tower).</summary>
    public PromptLayout Layout(ClipTokenizer tokenizer, IReadOnlyList<string> classNames, int contextTokens, ClassTokenPosition position) =>
        PromptLayout.Create(tokenizer, classNames, contextTokens, position, FixedLength, MaxLength, PadId(tokenizer));

    /// <summary>Computes the frozen part of the input embeddings once per layout.</summary>
    public PreparedPrompts Prepare(PromptLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (FixedLength is int f && layout.SequenceLength != f)
            throw new ArgumentException($"The layout is {layout.SequenceLength} tokens wide; '{Source}' needs exactly {f}.", nameof(layout));
        if (layout.SequenceLength > MaxLength)
            throw new ArgumentException($"The layout is {layout.SequenceLength} tokens wide; '{Source}' accepts at most {MaxLength}.", nameof(layout));
        int c = layout.ClassCount, l = layout.SequenceLength;
        var idx = new int[layout.Ids.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            long id = layout.Ids[i];
            if (id < 0 || id >= VocabularySize) throw new ArgumentException($"Token id {id} is outside the tower's vocabulary of {VocabularySize}.", nameof(layout));
            idx[i] = (int)id;
        }
        Tensor baseEmbeddings;
        var previous = TensorScope.Current;
        TensorScope.Restore(null); // persistent: the prepared prompts outlive any step
        try
        {
            using var _ = Tape.NoGrad();
            baseEmbeddings = Ops.Gather(TokenEmbedding, 0, idx, [c, l]);
        }
        finally { TensorScope.Restore(previous); }
        return new PreparedPrompts(layout, baseEmbeddings, IdsValue(layout.Ids, [c, l]), MaskInput is null ? null : MaskValue(layout.AttentionMask(), [c, l]));
    }

    /// <summary>The ids as the tower's declared type; an id that does not fit it is an error naming the input.</summary>
    private OnnxValue IdsValue(long[] ids, int[] shape)
    {
        if (IdsType == OnnxElementType.Int64) return OnnxValue.FromInts(ids, shape);
        var values = new long[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            values[i] = OnnxValue.Wrap(ids[i], IdsType);
            if (values[i] != ids[i])
                throw new InvalidDataException($"'{Source}': token id {ids[i]} does not fit the {IdsType} input '{IdsInput}'.");
        }
        return OnnxValue.FromInts(values, shape, IdsType);
    }

    /// <summary>The attention mask (1 = token, 0 = padding) as the tower's declared type.</summary>
    private OnnxValue MaskValue(long[] mask, int[] shape)
    {
        if (MaskType == OnnxElementType.Float) return OnnxValue.FromTensor(Tensor.Wrap(Array.ConvertAll(mask, v => (float)v), shape)); // persistent
        return OnnxValue.FromInts((long[])mask.Clone(), shape, MaskType);
    }

    /// <summary>A trainable context: unified [M, width] or class-specific [C, M, width], drawn from N(0, std²) like CoOp.</summary>
    public Tensor InitialContext(PromptLayout layout, bool classSpecific, ulong seed, float std = 0.02f)
    {
        int m = layout.ContextTokens;
        int[] shape = classSpecific ? [layout.ClassCount, m, Width] : [m, Width];
        var values = new float[(int)Shapes.Product(shape)];
        new Rng(seed).FillNormal(values, 0, std);
        return Tensor.Parameter(values, shape, "prompt_context");
    }

    /// <summary>inputs_embeds [C, L, width]: the frozen embeddings with the context vectors in the placeholder slots (differentiable in the context).</summary>
    public Tensor InputEmbeddings(PreparedPrompts prompts, Tensor context)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(context);
        var layout = prompts.Layout;
        int m = layout.ContextTokens, c = layout.ClassCount;
        bool classSpecific = context.Rank == 3;
        if (!(context.Rank == 2 && context.Shape[0] == m && context.Shape[1] == Width) &&
            !(classSpecific && context.Shape[0] == c && context.Shape[1] == m && context.Shape[2] == Width))
            throw new ArgumentException($"The context must be [{m}, {Width}] (unified) or [{c}, {m}, {Width}] (class-specific); got {context.ShapeString}.", nameof(context));
        var source = new int[c * m];
        for (int k = 0; k < c; k++)
            for (int j = 0; j < m; j++) source[k * m + j] = classSpecific ? k * m + j : j;
        return Ops.PlaceRows(prompts.BaseEmbeddings, context, prompts.DestinationRows, source);
    }

    /// <summary>The tower's raw text embeddings [C, D] for the prompts with <paramref name="context"/> (on the tape when recording).</summary>
    public Tensor Encode(PreparedPrompts prompts, Tensor context)
    {
        var embeds = InputEmbeddings(prompts, context);
        var feeds = new Dictionary<string, OnnxValue>(StringComparer.Ordinal)
        {
            [IdsInput] = prompts.Ids,
            [GatherOutput] = OnnxValue.FromTensor(embeds),
        };
        if (MaskInput is not null) feeds[MaskInput] = prompts.Mask!;
        var result = Interpreter.Run(feeds, [Output]);
        return result[Output].Tensor ?? throw new InvalidDataException($"'{Source}': the output '{Output}' is not a float tensor.");
    }

    /// <summary>L2-normalised text features [C, D]: what CoOp's training step consumes.</summary>
    public Tensor Forward(PreparedPrompts prompts, Tensor context) => Ops.L2Normalize(Encode(prompts, context), -1);

    /// <summary>
    /// The prompts of classes [<paramref name="start"/>, start + <paramref name="count"/>): views of the frozen
    /// embeddings, rows narrowed to the chunk's longest prompt when the tower has dynamic length.
    /// </summary>
    public PreparedPrompts Slice(PreparedPrompts prompts, int start, int count)
    {
        var layout = prompts.Layout;
        int width = FixedLength ?? layout.Lengths.AsSpan(start, count).ToArray().Max();
        var sub = layout.Subset(start, count, width);
        var embeds = Ops.Slice(prompts.BaseEmbeddings, [start, 0], [start + count, width], [0, 1]);
        return new PreparedPrompts(sub, embeds, IdsValue(sub.Ids, [count, width]), MaskInput is null ? null : MaskValue(sub.AttentionMask(), [count, width]));
    }

    /// <summary>
    /// One training step: features → <paramref name="loss"/> → gradients accumulated into the context's
    /// <see cref="Tensor.Grad"/> (zero it between steps). With <paramref name="classesPerChunk"/> smaller than C, the
    /// tower's activations are recorded for one chunk of classes at a time, so that memory stays bounded: first all
    /// classes without a tape (buffers are released after their last use) to get the features, then the loss and its
    /// gradient with respect to the features, then every chunk again on a tape, back-propagating its slice of that
    /// gradient (one extra forward pass; the gradient is the same).
    /// Returns the loss.
    /// </summary>
    public float Step(PreparedPrompts prompts, Tensor context, Func<Tensor, Tensor> loss, int classesPerChunk = 0)
    {
        ArgumentNullException.ThrowIfNull(loss);
        int c = prompts.Layout.ClassCount;
        if (classesPerChunk <= 0 || classesPerChunk >= c)
        {
            using var tape = new Tape();
            var value = loss(Forward(prompts, context));
            tape.Backward(value);
            return value.Item();
        }
        var chunks = new List<(int Start, int Count, PreparedPrompts Prompts)>();
        for (int s = 0; s < c; s += classesPerChunk)
        {
            int n = Math.Min(classesPerChunk, c - s);
            chunks.Add((s, n, Slice(prompts, s, n)));
        }
        Tensor ChunkContext(int start, int count) => context.Rank == 3 ? Ops.Slice(context, 0, start, start + count) : context;

        // Without a tape the interpreter releases every buffer after its last use, so all classes fit in one pass.
        float[] all;
        int dim;
        using (var scope = new TensorScope())
        using (Tape.NoGrad())
        {
            var f = Forward(prompts, context);
            dim = f.Shape[1];
            all = f.ToArray();
        }
        var features = Tensor.Parameter(all, [c, dim], "features");
        float result;
        using (var tape = new Tape())
        {
            var value = loss(features);
            tape.Backward(value);
            result = value.Item();
        }
        var gradient = features.Grad!.ToArray();
        foreach (var (start, count, sub) in chunks)
        {
            using var tape = new Tape();
            var f = Forward(sub, ChunkContext(start, count));
            tape.Backward(f, Tensor.FromArray(gradient.AsSpan(start * dim, count * dim), count, dim));
        }
        return result;
    }

    /// <summary>
    /// Writes the tower with its token-embedding lookup replaced by an <c>inputs_embeds</c> input
    /// (<see cref="PromptInjection"/>), so that ONNX Runtime runs it with learned context: feed <c>input_ids</c> (for
    /// pooling), <c>inputs_embeds</c> (<see cref="InputEmbeddings"/>) and, when the tower has it, <c>attention_mask</c>.
    /// </summary>
    public void ExportOnnx(string path)
    {
        var injected = PromptInjection.ExposeTokenEmbeddings(_model, IdsInput, Source);
        OnnxModelFile.Save(injected.Model, path);
    }
}
