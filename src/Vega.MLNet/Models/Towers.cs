using Vega.MLNet.Runtime;
using Vega.MLNet.Text;

namespace Vega.MLNet.Models;

/// <summary>How a text tower is called: which inputs, which output, fixed or dynamic length.</summary>
internal sealed class TextTower
{
    private readonly OnnxSession _session;
    private readonly OnnxInput[] _extraInputs;

    private TextTower(OnnxSession session, string idsName, OnnxElementType idsType, string? maskName, string outputName,
        int? fixedLength, int dimension, OnnxInput[] extraInputs, int? fixedBatch)
    {
        FixedBatch = fixedBatch;
        _session = session;
        IdsName = idsName;
        IdsType = idsType;
        MaskName = maskName;
        OutputName = outputName;
        FixedLength = fixedLength;
        Dimension = dimension;
        _extraInputs = extraInputs;
    }

    public string IdsName { get; }
    public OnnxElementType IdsType { get; }
    public string? MaskName { get; }
    public string OutputName { get; }
    public int? FixedLength { get; }
    public int Dimension { get; private set; }
    public OnnxSession Session => _session;

    /// <summary>The batch size the export fixes (e.g. 1), or null when the batch dimension is dynamic.</summary>
    public int? FixedBatch { get; }

    /// <summary>Learns the embedding width by one run when the model declares it symbolically.</summary>
    public void ProbeDimension(TokenBatch probe, int width, long padId)
    {
        if (Dimension > 0) return;
        var inputs = new List<OnnxInput>();
        long[] shape = [probe.Count, width];
        long[] ids = probe.IdsWithWidth(width, padId);
        inputs.Add(IdsType == OnnxElementType.Int64 ? OnnxInput.Create(IdsName, ids, shape) : OnnxInput.Create(IdsName, Array.ConvertAll(ids, v => (int)v), shape));
        if (MaskName is not null)
        {
            long[] mask = probe.AttentionMask(width);
            inputs.Add(IdsType == OnnxElementType.Int64 ? OnnxInput.Create(MaskName, mask, shape) : OnnxInput.Create(MaskName, Array.ConvertAll(mask, v => (int)v), shape));
        }
        inputs.AddRange(_extraInputs);
        using var r = _session.Run(inputs, [OutputName]);
        Dimension = (int)r.Describe(OutputName).Shape[1];
    }

    public static TextTower Bind(OnnxSession session, ClipManifest m, int? imageSizeForCombined)
    {
        string file = session.Source;
        var ints = session.Inputs.Where(i => i.ElementType is OnnxElementType.Int64 or OnnxElementType.Int32).ToList();
        OnnxTensorInfo ids = Pick(session, m.TextInput, "text_input", "token ids",
            session.Inputs.FirstOrDefault(i => i.Name == "input_ids")
            ?? (ints.Count(i => !i.Name.Contains("mask", StringComparison.OrdinalIgnoreCase)) == 1 ? ints.First(i => !i.Name.Contains("mask", StringComparison.OrdinalIgnoreCase)) : null),
            inputs: true);
        if (ids.ElementType is not (OnnxElementType.Int64 or OnnxElementType.Int32) || ids.Rank != 2)
            throw new ClipModelException(
                $"The text input '{ids}' of '{file}' must be an int64 or int32 tensor [batch, sequence]; it is not. Name the right input with \"text_input\" in clip.json.");
        OnnxTensorInfo? mask = null;
        if (m.TextHasMask == true) mask = Pick(session, m.TextMaskInput, "text_mask_input", "attention mask", null, inputs: true);
        else if (m.TextHasMask is null) mask = ints.FirstOrDefault(i => i != ids && i.Name.Contains("mask", StringComparison.OrdinalIgnoreCase));
        if (mask is not null && (mask.ElementType != ids.ElementType || mask.Rank != 2))
            throw new ClipModelException($"The attention mask '{mask}' of '{file}' must have the same integer type and rank as '{ids}'.");

        var extras = new List<OnnxInput>();
        foreach (var input in session.Inputs)
        {
            if (input == ids || input == mask) continue;
            if (imageSizeForCombined is int size && input.ElementType == OnnxElementType.Float && input.Rank == 4)
            {
                // Combined model: the image branch must be fed too; one blank image is the cheapest valid input.
                extras.Add(OnnxInput.Create(input.Name, new float[3 * size * size], 1, 3, size, size));
                continue;
            }
            throw new ClipModelException(
                $"The text model '{file}' has the input '{input}', which Vega.MLNet does not know how to fill (it feeds token ids and an optional attention mask). " +
                "Export the text tower without it, or name the ids/mask inputs with \"text_input\" / \"text_mask_input\" in clip.json.");
        }

        var output = Pick(session, m.TextOutput, "text_output", "text embedding",
            session.Outputs.FirstOrDefault(o => o.Name == "text_embeds") ?? Single(session.Outputs, o => o.ElementType == OnnxElementType.Float && o.Rank == 2),
            inputs: false);
        if (output.ElementType != OnnxElementType.Float || output.Rank != 2)
            throw new ClipModelException($"The text output '{output}' of '{file}' must be float32 [batch, dim]. Name the projected embedding output with \"text_output\" in clip.json.");
        int? fixedLength = ids.Shape[1] > 0 ? (int)ids.Shape[1] : null;
        int dimension = (int)output.Shape[1];
        int? fixedBatch = ids.Shape[0] > 0 ? (int)ids.Shape[0] : null;
        return new TextTower(session, ids.Name, ids.ElementType, mask?.Name, output.Name, fixedLength, dimension, extras.ToArray(), fixedBatch);
    }

    internal static OnnxTensorInfo Pick(OnnxSession session, string? configured, string key, string what, OnnxTensorInfo? detected, bool inputs)
    {
        var all = inputs ? session.Inputs : session.Outputs;
        string kind = inputs ? "inputs" : "outputs";
        if (configured is not null)
            return all.FirstOrDefault(i => i.Name == configured)
                ?? throw new ClipModelException(
                    $"clip.json names the {what} \"{configured}\" (key \"{key}\"), but '{session.Source}' has no such {kind[..^1]}; its {kind} are: {string.Join(", ", all)}.");
        return detected ?? throw new ClipModelException(
            $"Cannot tell which {kind[..^1]} of '{session.Source}' is the {what}; its {kind} are: {string.Join(", ", all)}. Name it with \"{key}\" in a clip.json beside the model.");
    }

    internal static OnnxTensorInfo? Single(IReadOnlyList<OnnxTensorInfo> list, Func<OnnxTensorInfo, bool> predicate)
    {
        OnnxTensorInfo? found = null;
        foreach (var x in list)
        {
            if (!predicate(x)) continue;
            if (found is not null) return null;
            found = x;
        }
        return found;
    }

    /// <summary>Runs the tower on rows of <paramref name="batch"/> and writes raw embeddings (B × D) to <paramref name="destination"/>.
    /// An export with a fixed batch size is run in slices of that size (a smaller last slice is padded).</summary>
    public void Run(TokenBatch batch, int width, long padId, Memory<float> destination, CancellationToken ct)
    {
        long[] ids = batch.IdsWithWidth(width, padId);
        long[]? mask = MaskName is not null ? batch.AttentionMask(width) : null;
        int step = FixedBatch ?? Math.Max(batch.Count, 1);
        for (int start = 0; start < batch.Count; start += step)
        {
            int n = Math.Min(step, batch.Count - start);
            long[] sliceIds = Slice(ids, start * width, n * width, step * width, padId);
            long[]? sliceMask = mask is null ? null : Slice(mask, start * width, n * width, step * width, 0);
            var inputs = new List<OnnxInput>(3 + _extraInputs.Length);
            long[] shape = [FixedBatch ?? n, width];
            if (IdsType == OnnxElementType.Int64) inputs.Add(OnnxInput.Create(IdsName, sliceIds, shape));
            else inputs.Add(OnnxInput.Create(IdsName, Array.ConvertAll(sliceIds, v => (int)v), shape));
            if (MaskName is not null)
            {
                if (IdsType == OnnxElementType.Int64) inputs.Add(OnnxInput.Create(MaskName, sliceMask!, shape));
                else inputs.Add(OnnxInput.Create(MaskName, Array.ConvertAll(sliceMask!, v => (int)v), shape));
            }
            inputs.AddRange(_extraInputs);
            if (FixedBatch is int fb && n < fb)
            {
                var padded = new float[fb * Dimension];
                _session.RunInto(inputs, [new OnnxOutputTarget(OutputName, padded, [fb, Dimension])], ct);
                padded.AsSpan(0, n * Dimension).CopyTo(destination.Span.Slice(start * Dimension, n * Dimension));
            }
            else _session.RunInto(inputs, [new OnnxOutputTarget(OutputName, destination.Slice(start * Dimension, n * Dimension), [n, Dimension])], ct);
        }
    }

    private static long[] Slice(long[] data, int offset, int length, int paddedLength, long pad)
    {
        if (offset == 0 && length == data.Length && paddedLength == length) return data;
        var r = new long[paddedLength];
        data.AsSpan(offset, length).CopyTo(r);
        r.AsSpan(length).Fill(pad);
        return r;
    }
}

/// <summary>How an image tower is called.</summary>
internal sealed class ImageTower
{
    private readonly OnnxSession _session;
    private readonly OnnxInput[] _extraInputs;

    private ImageTower(OnnxSession session, string inputName, string outputName, int? fixedSize, int dimension, OnnxInput[] extras, int? fixedBatch)
    {
        FixedBatch = fixedBatch;
        _session = session;
        InputName = inputName;
        OutputName = outputName;
        FixedSize = fixedSize;
        Dimension = dimension;
        _extraInputs = extras;
    }

    public string InputName { get; }
    public string OutputName { get; }
    public int? FixedSize { get; }
    public int Dimension { get; private set; }

    /// <summary>The batch size the export fixes (e.g. 1), or null when the batch dimension is dynamic.</summary>
    public int? FixedBatch { get; }

    /// <summary>Learns the embedding width by one run when the model declares it symbolically.</summary>
    public void ProbeDimension(int size)
    {
        if (Dimension > 0) return;
        int rows = FixedBatch ?? 1;
        var inputs = new List<OnnxInput> { OnnxInput.Create(InputName, new float[rows * 3 * size * size], rows, 3, size, size) };
        inputs.AddRange(_extraInputs);
        using var r = _session.Run(inputs, [OutputName]);
        Dimension = (int)r.Describe(OutputName).Shape[1];
    }
    public OnnxSession Session => _session;

    public static ImageTower Bind(OnnxSession session, ClipManifest m, TextTower? combinedText, int startOfText, int endOfText)
    {
        string file = session.Source;
        var input = TextTower.Pick(session, m.ImageInput, "image_input", "pixel input",
            session.Inputs.FirstOrDefault(i => i.Name == "pixel_values") ?? TextTower.Single(session.Inputs, i => i.ElementType == OnnxElementType.Float && i.Rank == 4),
            inputs: true);
        if (input.ElementType != OnnxElementType.Float || input.Rank != 4 || (input.Shape[1] >= 0 && input.Shape[1] != 3))
            throw new ClipModelException($"The image input '{input}' of '{file}' must be float32 [batch, 3, height, width]. Name it with \"image_input\" in clip.json.");
        var extras = new List<OnnxInput>();
        foreach (var other in session.Inputs)
        {
            if (other == input) continue;
            if (combinedText is not null && (other.Name == combinedText.IdsName || other.Name == combinedText.MaskName))
            {
                // Combined model: a two-token text ([start, end]) is the cheapest valid text input.
                long[] ids = [startOfText, endOfText];
                extras.Add(other.ElementType == OnnxElementType.Int64
                    ? OnnxInput.Create(other.Name, other.Name == combinedText.MaskName ? [1L, 1L] : ids, 1, 2)
                    : OnnxInput.Create(other.Name, other.Name == combinedText.MaskName ? [1, 1] : Array.ConvertAll(ids, v => (int)v), 1, 2));
                continue;
            }
            throw new ClipModelException(
                $"The image model '{file}' has the input '{other}', which Vega.MLNet does not know how to fill (it feeds pixels only). Name the pixel input with \"image_input\" in clip.json or export the tower without it.");
        }
        var output = TextTower.Pick(session, m.ImageOutput, "image_output", "image embedding",
            session.Outputs.FirstOrDefault(o => o.Name == "image_embeds") ?? TextTower.Single(session.Outputs, o => o.ElementType == OnnxElementType.Float && o.Rank == 2),
            inputs: false);
        if (output.ElementType != OnnxElementType.Float || output.Rank != 2)
            throw new ClipModelException($"The image output '{output}' of '{file}' must be float32 [batch, dim]. Name the projected embedding output with \"image_output\" in clip.json.");
        int? size = input.Shape[2] > 0 ? (int)input.Shape[2] : null;
        if (input.Shape[2] > 0 && input.Shape[3] > 0 && input.Shape[2] != input.Shape[3])
            throw new ClipModelException($"The image input '{input}' of '{file}' is not square; Vega.MLNet's preprocessing produces square crops.");
        int? fixedBatch = input.Shape[0] > 0 ? (int)input.Shape[0] : null;
        return new ImageTower(session, input.Name, output.Name, size, (int)output.Shape[1], extras.ToArray(), fixedBatch);
    }

    /// <summary>Runs the tower on <paramref name="count"/> CHW images and writes raw embeddings (count × D). An export with a
    /// fixed batch size is run in slices of that size (a smaller last slice is zero-padded).</summary>
    public void Run(ReadOnlyMemory<float> pixels, int count, int size, Memory<float> destination, CancellationToken ct)
    {
        int per = 3 * size * size;
        int step = FixedBatch ?? Math.Max(count, 1);
        for (int start = 0; start < count; start += step)
        {
            int n = Math.Min(step, count - start);
            int rows = FixedBatch ?? n;
            ReadOnlyMemory<float> slice = pixels.Slice(start * per, n * per);
            if (rows > n)
            {
                var padded = new float[rows * per];
                slice.Span.CopyTo(padded);
                slice = padded;
            }
            var inputs = new List<OnnxInput>(1 + _extraInputs.Length) { OnnxInput.Create(InputName, slice, rows, 3, size, size) };
            inputs.AddRange(_extraInputs);
            if (rows > n)
            {
                var output = new float[rows * Dimension];
                _session.RunInto(inputs, [new OnnxOutputTarget(OutputName, output, [rows, Dimension])], ct);
                output.AsSpan(0, n * Dimension).CopyTo(destination.Span.Slice(start * Dimension, n * Dimension));
            }
            else _session.RunInto(inputs, [new OnnxOutputTarget(OutputName, destination.Slice(start * Dimension, n * Dimension), [n, Dimension])], ct);
        }
    }
}
