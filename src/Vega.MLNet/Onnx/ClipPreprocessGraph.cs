using Vega.MLNet.Imaging;
using Vega.MLNet.Onnx.Proto;

namespace Vega.MLNet.Onnx;

/// <summary>
/// CLIP image preprocessing written as ONNX nodes, bit-exact with <see cref="ImagePreprocessor"/> (and so with Pillow
/// 9.4 + torchvision) for any <see cref="PreprocessSettings"/>. Inputs: <c>rgb</c> uint8 [1, H·W·3] (HWC bytes),
/// <c>height</c> and <c>width</c> int64 [1, 1]; output: float32 [1, 3, S, S] (CHW). Sizes are dynamic, so everything
/// that depends on them is computed in the graph:
/// <list type="bullet">
/// <item>resize size (integer arithmetic) and crop offset (ONNX <c>Round</c> is half-to-even like Python's
/// <c>round</c>; integer <c>Div</c> for floor);</item>
/// <item>per axis, Pillow's taps for the crop's outputs only: the same double-precision expressions as
/// <see cref="AxisKernel"/> in the same order, the weight sum by <c>CumSum</c> (sequential, as Pillow sums), the 22-bit
/// fixed point by <c>Floor(v + 0.5)</c> / <c>Ceil(v − 0.5)</c> (Pillow's <c>(int)</c> truncation of those values);
/// gathered taps [K, S] (indices and weights), never dense matrices;</item>
/// <item>the two passes as <c>Loop</c>s over the K taps, int32 multiply-accumulate (Pillow's own arithmetic; sums fit in
/// 31 bits), horizontal first over only the source rows the vertical taps read, its result rounded and clipped to
/// bytes; the shift by 22 is an integer <c>Div</c>, which truncates toward zero and differs from the arithmetic shift
/// only for negative sums, which the clip to [0, 255] maps to 0 either way;</item>
/// <item>rescale and normalise as a lookup in the preprocessor's own 3 × 256 float32 table (<c>v / 255f</c>, then
/// <c>(x − mean) / std</c>, computed once in C#).</item>
/// </list>
/// The horizontal pass reads the rows transposed (<c>[W, 3·R]</c>), so each tap gathers whole contiguous columns, and
/// runs in chunks of output columns so that each tap's accumulator stays in cache (<see cref="ChunkElements"/>).
/// </summary>
internal static class ClipPreprocessGraph
{
    public const string RgbInput = "rgb";
    public const string HeightInput = "height";
    public const string WidthInput = "width";
    public const string PixelOutput = "pixel_values";

    private const TensorProto.Types.DataType U8 = TensorProto.Types.DataType.Uint8;
    private const TensorProto.Types.DataType I32 = TensorProto.Types.DataType.Int32;
    private const TensorProto.Types.DataType I64 = TensorProto.Types.DataType.Int64;
    private const TensorProto.Types.DataType F32 = TensorProto.Types.DataType.Float;
    private const TensorProto.Types.DataType F64 = TensorProto.Types.DataType.Double;
    private const TensorProto.Types.DataType Bool = TensorProto.Types.DataType.Bool;

    /// <summary>A model with just the preprocessing: <c>rgb</c>, <c>height</c>, <c>width</c> → <c>pixel_values</c> [1, 3, S, S].</summary>
    public static ModelProto Build(PreprocessSettings settings, int opset = 17)
    {
        var g = new OnnxGraphBuilder("vega_clip_preprocess", opset);
        string pixels = Append(g, settings);
        int s = settings.ImageSize;
        g.Output(g.Identity(pixels, PixelOutput), F32, 1, 3, s, s);
        return g.Build(metadata: new Dictionary<string, string> { ["vega.preprocessing"] = Describe(settings) });
    }

    /// <summary>A one-line description of the settings (model metadata).</summary>
    public static string Describe(PreprocessSettings s) =>
        FormattableString.Invariant($"size {s.ImageSize}, {s.ResizeMode} (shortest edge {s.EffectiveShortestEdge}), {s.Resampling}, crop {s.CropRounding}, mean [{string.Join(", ", s.Mean)}], std [{string.Join(", ", s.Std)}], rescale {s.RescaleFactor:R}");

    /// <summary>
    /// Declares the inputs <c>rgb</c> uint8 [1, N], <c>height</c> and <c>width</c> int64 [1, 1] on <paramref name="g"/>,
    /// appends the preprocessing and returns the name of the float32 [1, 3, S, S] result. N must equal
    /// height · width · 3 (else ONNX Runtime's Reshape fails); sizes below 1 are treated as 1 (no division by zero).
    /// </summary>
    public static string Append(OnnxGraphBuilder g, PreprocessSettings settings)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        int s = settings.ImageSize;
        string rgb = g.Input(RgbInput, U8, 1, "rgb_length");
        string heightIn = g.Input(HeightInput, I64, 1, 1);
        string widthIn = g.Input(WidthInput, I64, 1, 1);
        string one = g.Int64Scalar(1);
        string h = g.Node("Max", [ToScalar(g, heightIn), one]);
        string w = g.Node("Max", [ToScalar(g, widthIn), one]);
        string image = g.Node("Reshape", [rgb, Concat(g, h, g.Node("Mul", [w, g.Int64Scalar(3)]))]); // [H, 3W]

        string size = g.Int64Scalar(s);
        string rw, rh, left, top;
        if (settings.ResizeMode == ResizeMode.Squash)
        {
            rw = rh = size;
            left = top = g.Int64Scalar(0);
        }
        else
        {
            // w ≤ h: (n, n·h / w), else (n·w / h, n) — integer division of positive numbers (torchvision's int()).
            string n = g.Int64Scalar(settings.EffectiveShortestEdge);
            string portrait = g.Node("Not", [g.Node("Greater", [w, h])]);
            rw = g.Node("Where", [portrait, n, g.Node("Div", [g.Node("Mul", [n, w]), h])]);
            rh = g.Node("Where", [portrait, g.Node("Div", [g.Node("Mul", [n, h]), w]), n]);
            left = CropOffset(g, g.Node("Sub", [rw, size]), settings.CropRounding);
            top = CropOffset(g, g.Node("Sub", [rh, size]), settings.CropRounding);
        }
        string chw = AppendResizeRegion(g, image, h, w, rw, rh, left, top, size, size, settings.Resampling); // int32 [3, S, S], 0..255

        // Rescale + normalise: the preprocessor's table of the 3 × 256 float32 results, indexed by byte + 256·channel.
        string table = g.Initializer(g.NewName("pre_normalize_table"), ImagePreprocessor.BuildTable(settings), 3 * 256);
        string offsets = g.Int32Initializer(g.NewName("pre_channel_offsets"), [0, 256, 512], 3, 1, 1);
        string values = g.Node("Gather", [table, g.Node("Add", [chw, offsets])], null, ("axis", 0L));
        return g.Node("Unsqueeze", [values, g.Int64s(0)]);
    }

    /// <summary>
    /// A model that resizes a whole image (Pillow <c>im.resize((out_width, out_height), filter)</c>): inputs <c>rgb</c>,
    /// <c>height</c>, <c>width</c>, <c>out_width</c>, <c>out_height</c> (int64 [1, 1]) → <c>resized</c> uint8
    /// [out_height, out_width, 3]. For tests against Pillow's resized goldens and the C# resampler.
    /// </summary>
    internal static ModelProto BuildResizeModel(ResamplingFilter filter, int opset = 17)
    {
        var g = new OnnxGraphBuilder("vega_resize", opset);
        string rgb = g.Input(RgbInput, U8, 1, "rgb_length");
        string h = ToScalar(g, g.Input(HeightInput, I64, 1, 1));
        string w = ToScalar(g, g.Input(WidthInput, I64, 1, 1));
        string outW = ToScalar(g, g.Input("out_width", I64, 1, 1));
        string outH = ToScalar(g, g.Input("out_height", I64, 1, 1));
        string image = g.Node("Reshape", [rgb, Concat(g, h, g.Node("Mul", [w, g.Int64Scalar(3)]))]);
        string zero = g.Int64Scalar(0);
        string chw = AppendResizeRegion(g, image, h, w, outW, outH, zero, zero, outW, outH, filter);
        string hwc = Cast(g, g.Node("Transpose", [chw], null, ("perm", new long[] { 1, 2, 0 })), U8);
        g.Output(g.Identity(hwc, "resized"), U8, "out_height", "out_width", 3);
        return g.Build();
    }

    /// <summary>
    /// A model exposing one axis's taps: int64 scalar inputs <c>in_size</c>, <c>out_size</c>, <c>first</c>,
    /// <c>count</c> → <c>index</c> int64 [K, count], <c>weight</c> int32 [K, count], <c>taps</c>, <c>first_input</c>,
    /// <c>end_input</c> (int64 scalars). For tests against <see cref="AxisKernel"/>.
    /// </summary>
    internal static ModelProto BuildAxisKernelModel(ResamplingFilter filter, int opset = 17)
    {
        var g = new OnnxGraphBuilder("vega_axis_kernel", opset);
        string inSize = g.Input("in_size", I64), outSize = g.Input("out_size", I64), first = g.Input("first", I64), count = g.Input("count", I64);
        var k = AppendAxisKernel(g, inSize, outSize, first, count, filter);
        g.Output(g.Identity(k.Index, "index"), I64, "taps", "count");
        g.Output(g.Identity(k.Weight, "weight"), I32, "taps", "count");
        g.Output(g.Identity(k.TapCount, "taps"), I64);
        g.Output(g.Identity(k.FirstInput, "first_input"), I64);
        g.Output(g.Identity(k.EndInput, "end_input"), I64);
        return g.Build();
    }

    /// <summary>(resized − crop) / 2 rounded half-to-even (torchvision) or down (Hugging Face); the difference is ≥ 0.</summary>
    private static string CropOffset(OnnxGraphBuilder g, string difference, CropRounding rounding) =>
        rounding == CropRounding.Floor
            ? g.Node("Div", [difference, g.Int64Scalar(2)])
            : Cast(g, g.Node("Round", [g.Node("Div", [Cast(g, difference, F64), g.DoubleScalar(2.0)])]), I64);

    /// <summary>
    /// Pillow's resize of an [H, 3W] uint8 image (<paramref name="h"/>, <paramref name="w"/> int64 scalars) to
    /// <paramref name="outW"/> × <paramref name="outH"/>, computing only the rectangle at (<paramref name="left"/>,
    /// <paramref name="top"/>) of <paramref name="width"/> × <paramref name="height"/> (all int64 scalars). Returns int32
    /// [3, height, width] (CHW) with the byte values.
    /// </summary>
    internal static string AppendResizeRegion(OnnxGraphBuilder g, string image, string h, string w, string outW, string outH,
        string left, string top, string width, string height, ResamplingFilter filter)
    {
        var vertical = AppendAxisKernel(g, h, outH, top, height, filter);
        var horizontal = AppendAxisKernel(g, w, outW, left, width, filter);
        string three = g.Int64Scalar(3);
        string half = g.Int32Scalar(1 << (AxisKernel.PrecisionBits - 1));

        // Horizontal pass over the source rows the vertical taps read (one contiguous byte range, cut from the flat
        // image), on the transposed rows: [W, 3R] (x, channel, row), so that each tap gathers whole columns.
        string w3 = g.Node("Mul", [w, three]);
        string flat = g.Node("Reshape", [image, g.Int64s(-1)]);
        string rows = g.Node("Slice", [flat, Vector(g, g.Node("Mul", [vertical.FirstInput, w3])), Vector(g, g.Node("Mul", [vertical.EndInput, w3])), g.Int64s(0)]);
        string r = g.Node("Sub", [vertical.EndInput, vertical.FirstInput]);
        string r3 = g.Node("Mul", [r, three]);
        string columns = g.Node("Reshape", [g.Node("Transpose", [g.Node("Reshape", [rows, Concat(g, r, w3)])], null, ("perm", new long[] { 1, 0 })), Concat(g, w, r3)]);
        string hBytes = HorizontalPass(g, columns, horizontal, width, r3, half); // [width, 3R] int32, 0..255

        // Vertical pass on [3, R, width]: each tap gathers whole rows of the horizontally resized crop columns.
        string planes = g.Node("Transpose", [g.Node("Reshape", [hBytes, Concat(g, width, three, r)])], null, ("perm", new long[] { 1, 2, 0 }));
        // (Its accumulators are small; chunking it was measured slower.)
        string relative = g.Node("Sub", [vertical.Index, vertical.FirstInput]);
        string weight = g.Node("Reshape", [vertical.Weight, g.Int64s(0, 1, -1, 1)]); // row t: [1, height, 1]
        return Clip8(g, TapLoop(g, planes, 1, relative, weight, vertical.TapCount, half, castBytes: false)); // [3, height, width]
    }

    /// <summary>The taps of one axis as graph values: <c>Index</c> int64 [K, count] (absolute input indices; a tap
    /// past an output's last input repeats that input, with weight 0), <c>Weight</c> int32 [K, count] (22-bit fixed point, 0 past each output's
    /// taps), <c>TapCount</c> K (int64 scalar), and the input range [<c>FirstInput</c>, <c>EndInput</c>) all outputs read.</summary>
    internal readonly record struct AxisTaps(string Index, string Weight, string TapCount, string FirstInput, string EndInput);

    /// <summary>
    /// Pillow's <c>precompute_coeffs</c> + <c>normalize_coeffs_8bpc</c> for outputs <paramref name="first"/> ..
    /// <paramref name="first"/> + <paramref name="count"/> − 1 of an axis resized from <paramref name="inSize"/> to
    /// <paramref name="outSize"/> (int64 scalars), with the same double operations in the same order as
    /// <see cref="AxisKernel"/>.
    /// </summary>
    internal static AxisTaps AppendAxisKernel(OnnxGraphBuilder g, string inSize, string outSize, string first, string count, ResamplingFilter filter)
    {
        string D(double v) => g.DoubleScalar(v);
        string Op(string op, string a, string b) => g.Node(op, [a, b]);

        string inD = Cast(g, inSize, F64);
        string scale = Op("Div", inD, Cast(g, outSize, F64));
        string filterScale = Op("Max", scale, D(1.0));
        string support = Op("Mul", filterScale, D(filter == ResamplingFilter.Bicubic ? 2.0 : 1.0));
        string taps = Cast(g, Op("Add", Op("Mul", g.Node("Ceil", [support]), D(2.0)), D(1.0)), I64); // (int)ceil(support)·2 + 1
        string ss = Op("Div", D(1.0), filterScale);

        string zero = g.Int64Scalar(0), one = g.Int64Scalar(1);
        string outputs = Cast(g, Op("Add", first, g.Node("Range", [zero, count, one])), F64);
        string center = Op("Mul", Op("Add", outputs, D(0.5)), scale);                                   // [count]
        // (int) truncates; with the clamp at 0 below, truncation and floor agree for negative values too.
        string xmin = Op("Max", g.Node("Floor", [Op("Add", Op("Sub", center, support), D(0.5))]), D(0.0));
        string xmax = Op("Min", g.Node("Floor", [Op("Add", Op("Add", center, support), D(0.5))]), inD);

        string t = g.Node("Unsqueeze", [Cast(g, g.Node("Range", [zero, taps, one]), F64), g.Int64s(1)]);    // [K, 1]
        string row = g.Int64s(0);
        string x = Op("Add", t, g.Node("Unsqueeze", [xmin, row]));                                        // [K, count]
        string u = g.Node("Abs", [Op("Mul", Op("Add", Op("Sub", x, g.Node("Unsqueeze", [center, row])), D(0.5)), ss)]);
        string below1 = Op("Less", u, D(1.0));
        string weight;
        if (filter == ResamplingFilter.Bicubic)
        {
            // a = −0.5: u < 1: ((a + 2)·u − (a + 3))·u·u + 1;  u < 2: (((u − 5)·u + 8)·u − 4)·a;  else 0.
            string inner = Op("Add", Op("Mul", Op("Mul", Op("Sub", Op("Mul", u, D(1.5)), D(2.5)), u), u), D(1.0));
            string outer = Op("Mul", Op("Sub", Op("Mul", Op("Add", Op("Mul", Op("Sub", u, D(5.0)), u), D(8.0)), u), D(4.0)), D(-0.5));
            weight = g.Node("Where", [below1, inner, g.Node("Where", [Op("Less", u, D(2.0)), outer, D(0.0)])]);
        }
        else
        {
            weight = g.Node("Where", [below1, Op("Sub", D(1.0), u), D(0.0)]);
        }
        string xmaxRow = g.Node("Unsqueeze", [xmax, row]);
        weight = g.Node("Where", [Op("Less", x, xmaxRow), weight, D(0.0)]);                              // taps past xmax

        // Sequential sum over the taps (CumSum adds tap by tap, as Pillow does; the zero taps at the end add nothing).
        string sum = g.Node("Gather", [g.Node("CumSum", [weight, zero]), Op("Sub", taps, one)], null, ("axis", 0L));
        sum = g.Node("Where", [Op("Equal", sum, D(0.0)), D(1.0), sum]);
        string k = Op("Div", weight, sum);
        string scaled = Op("Mul", k, D(1 << AxisKernel.PrecisionBits));
        string fixedPoint = g.Node("Where", [Op("Less", k, D(0.0)), g.Node("Ceil", [Op("Sub", scaled, D(0.5))]), g.Node("Floor", [Op("Add", scaled, D(0.5))])]);

        // Taps past an output's last input read that input again (with weight 0), so every index stays inside the
        // range [FirstInput, EndInput) the outputs need.
        string index = Cast(g, Op("Min", x, Op("Sub", xmaxRow, D(1.0))), I64);
        string firstInput = Cast(g, g.Node("Gather", [xmin, zero], null, ("axis", 0L)), I64);
        string endInput = Cast(g, g.Node("Gather", [xmax, Op("Sub", count, one)], null, ("axis", 0L)), I64);
        return new AxisTaps(index, Cast(g, fixedPoint, I32), taps, firstInput, endInput);
    }

    /// <summary>Accumulator elements (int32) per chunk of output columns in the horizontal pass: small enough that each
    /// tap's Gather, Cast, Mul and Add stay in cache. Measured on 12 MP, 1 MP and 0.1 MP images: 2^15–2^16 is fastest
    /// (12 MP: 57 ms vs 83 ms unchunked); 2^18 and more is as slow as no chunking, 2^13 slower again (more loop
    /// iterations).</summary>
    internal const long ChunkElements = 1L << 15;

    /// <summary>
    /// The horizontal pass: for the [K, count] taps, Σ_t Gather(columns, index[t]) · weight[t] + 2^21 over
    /// <paramref name="columns"/> [W, 3R] uint8, clipped to 0..255 → [count, 3R] int32. The output columns are processed
    /// in chunks (a Loop whose scan output collects them), each chunk a Loop over the taps with at most about
    /// <see cref="ChunkElements"/> accumulator values; the taps are padded with zero-weight columns to whole chunks and
    /// the padding is cut off at the end.
    /// </summary>
    private static string HorizontalPass(OnnxGraphBuilder g, string columns, AxisTaps taps, string count, string r3, string half)
    {
        string one = g.Int64Scalar(1), zero = g.Int64Scalar(0);
        string perChunk = g.Node("Max", [g.Node("Min", [count, g.Node("Div", [g.Int64Scalar(ChunkElements), g.Node("Max", [r3, one])])]), one]);
        string chunks = g.Node("Div", [g.Node("Sub", [g.Node("Add", [count, perChunk]), one]), perChunk]);
        string padded = g.Node("Mul", [chunks, perChunk]);
        string pads = Concat(g, zero, zero, zero, g.Node("Sub", [padded, count]));
        // [K, count] → [K, chunks·perChunk] → [chunks, K, perChunk]; the weights get the axes they broadcast along.
        string index = g.Node("Transpose", [g.Node("Reshape", [g.Node("Pad", [taps.Index, pads]), Concat(g, taps.TapCount, chunks, perChunk)])], null, ("perm", new long[] { 1, 0, 2 }));
        string weight = g.Node("Transpose", [g.Node("Reshape", [g.Node("Pad", [taps.Weight, pads]), Concat(g, taps.TapCount, chunks, perChunk, one)])], null, ("perm", new long[] { 1, 0, 2, 3 }));

        var body = g.Subgraph(g.NewName("chunk_body"));
        string chunk = body.Input(g.NewName("chunk"), I64);
        string condition = body.Input(g.NewName("chunk_cond"), Bool);
        string chunkIndex = body.Node("Gather", [index, chunk], null, ("axis", 0L));
        string chunkWeight = body.Node("Gather", [weight, chunk], null, ("axis", 0L));
        string acc = TapLoop(body, columns, 0, chunkIndex, chunkWeight, taps.TapCount, half, castBytes: true);
        body.Output(condition, Bool);
        body.OutputOfAnyShape(Clip8(body, acc), I32);
        string scanned = g.Node("Loop", [chunks, ""], null, ("body", body.Graph)); // [chunks, perChunk, 3R]
        return g.Node("Slice", [g.Node("Reshape", [scanned, Concat(g, padded, r3)]), Vector(g, zero), Vector(g, count), g.Int64s(0)]);
    }

    /// <summary>
    /// acc = <paramref name="initial"/> + Σ_t Gather(data, index[t], axis) · weight[t] in int32, where row t of
    /// <paramref name="weight"/> broadcasts along the other axes; a Loop over the K taps, one gathered slice at a time,
    /// never a [K, …] tensor (gathering all taps at once was measured slower, even for small images).
    /// </summary>
    private static string TapLoop(OnnxGraphBuilder g, string data, long axis, string index, string weight, string tapCount,
        string initial, bool castBytes)
    {
        var body = g.Subgraph(g.NewName("taps_body"));
        string tap = body.Input(g.NewName("tap"), I64);
        string condition = body.Input(g.NewName("cond"), Bool);
        string acc = body.InputOfAnyShape(g.NewName("acc"), I32);
        string idx = body.Node("Gather", [index, tap], null, ("axis", 0L));
        string w = body.Node("Gather", [weight, tap], null, ("axis", 0L));
        string gathered = body.Node("Gather", [data, idx], null, ("axis", axis));
        if (castBytes) gathered = Cast(body, gathered, I32);
        string next = body.Node("Add", [acc, body.Node("Mul", [gathered, w])]);
        body.Output(condition, Bool); // the condition passes through: the trip count ends the loop
        body.OutputOfAnyShape(next, I32);
        return g.Node("Loop", [tapCount, "", initial], null, ("body", body.Graph));
    }

    /// <summary>clamp(acc / 2²², 0, 255) in int32 (the division truncates; see the class remarks).</summary>
    private static string Clip8(OnnxGraphBuilder g, string acc) =>
        g.Node("Min", [g.Node("Max", [g.Node("Div", [acc, g.Int32Scalar(1 << AxisKernel.PrecisionBits)]), g.Int32Scalar(0)]), g.Int32Scalar(255)]);

    private static string Cast(OnnxGraphBuilder g, string x, TensorProto.Types.DataType to) => g.Node("Cast", [x], null, ("to", (long)to));

    /// <summary>A [1, 1] (or any one-element) tensor as a scalar.</summary>
    private static string ToScalar(OnnxGraphBuilder g, string x) => g.Node("Reshape", [x, g.Int64s()]);

    /// <summary>A scalar as a one-element vector.</summary>
    private static string Vector(OnnxGraphBuilder g, string scalar) => g.Node("Unsqueeze", [scalar, g.Int64s(0)]);

    /// <summary>Scalars concatenated into a 1-D int64 shape.</summary>
    private static string Concat(OnnxGraphBuilder g, params string[] scalars) =>
        g.Node("Concat", scalars.Select(s => Vector(g, s)).ToArray(), null, ("axis", 0L));
}
