namespace Vega.MLNet.Imaging;

/// <summary>How the image is brought to the model's input size.</summary>
internal enum ResizeMode
{
    /// <summary>Resize so the shorter side is <see cref="PreprocessSettings.ResizeShortestEdge"/> (aspect kept), then crop the centre (CLIP, torchvision <c>Resize(n)</c> + <c>CenterCrop</c>).</summary>
    ShortestEdgeThenCenterCrop,

    /// <summary>Resize both sides to <see cref="PreprocessSettings.ImageSize"/> (aspect not kept), no crop.</summary>
    Squash,
}

/// <summary>Resampling filter; both reproduce Pillow's <c>Image.resize</c> byte for byte (separable, 22-bit fixed point, antialiased when reducing).</summary>
internal enum ResamplingFilter
{
    /// <summary>Pillow's <c>BICUBIC</c>: cubic convolution, a = −0.5, support 2 (scaled by the reduction factor).</summary>
    Bicubic,

    /// <summary>Pillow's <c>BILINEAR</c>: triangle filter, support 1 (scaled by the reduction factor).</summary>
    Bilinear,
}

/// <summary>How the centre crop's offset <c>(resized − crop) / 2</c> is rounded when it is not a whole number.</summary>
internal enum CropRounding
{
    /// <summary>Python's <c>round</c>, half to even (torchvision <c>CenterCrop</c>, openai/CLIP).</summary>
    RoundHalfEven,

    /// <summary>Floor (Hugging Face <c>CLIPImageProcessor</c>).</summary>
    Floor,
}

/// <summary>
/// Image preprocessing parameters. The defaults are openai/CLIP's: shorter side to 224 with Pillow bicubic, centre crop
/// 224 with round-half-even offsets, <c>x / 255</c> in float32, CLIP's mean and std, CHW output.
/// </summary>
internal sealed record PreprocessSettings
{
    /// <summary>CLIP's per-channel mean (the float32 roundings of 0.48145466, 0.4578275, 0.40821073).</summary>
    public static IReadOnlyList<float> ClipMean { get; } = Array.AsReadOnly([0.48145466f, 0.4578275f, 0.40821073f]);

    /// <summary>CLIP's per-channel standard deviation (float32 roundings of 0.26862954, 0.26130258, 0.27577711).</summary>
    public static IReadOnlyList<float> ClipStd { get; } = Array.AsReadOnly([0.26862954f, 0.26130258f, 0.27577711f]);

    /// <summary>openai/CLIP's preprocessing at 224 pixels.</summary>
    public static PreprocessSettings Clip { get; } = new();

    /// <summary>Side of the square model input (the crop size), default 224.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Target of the shorter side before cropping; null means <see cref="ImageSize"/>. Must be at least <see cref="ImageSize"/>.</summary>
    public int? ResizeShortestEdge { get; init; }

    /// <summary>Shortest-edge resize + centre crop (default) or squash.</summary>
    public ResizeMode ResizeMode { get; init; } = ResizeMode.ShortestEdgeThenCenterCrop;

    /// <summary>Resampling filter, default bicubic.</summary>
    public ResamplingFilter Resampling { get; init; } = ResamplingFilter.Bicubic;

    /// <summary>Rounding of the centre-crop offset, default round-half-even.</summary>
    public CropRounding CropRounding { get; init; } = CropRounding.RoundHalfEven;

    /// <summary>Per-channel mean (R, G, B) subtracted after rescaling.</summary>
    public IReadOnlyList<float> Mean { get; init; } = ClipMean;

    /// <summary>Per-channel standard deviation (R, G, B) divided by after subtracting the mean.</summary>
    public IReadOnlyList<float> Std { get; init; } = ClipStd;

    /// <summary>
    /// Factor that maps bytes to [0, 1], default 1/255. With the default the value is computed as the float32 division
    /// <c>v / 255f</c> (torchvision's <c>ToTensor</c>); other factors as <c>(float)(v · factor)</c> in double, as
    /// Hugging Face's <c>rescale</c> does (for 1/255 the two agree on all 256 byte values).
    /// </summary>
    public double RescaleFactor { get; init; } = 1.0 / 255;

    /// <summary>The shorter-side target actually used.</summary>
    public int EffectiveShortestEdge => ResizeShortestEdge ?? ImageSize;

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting when the combination is invalid.</summary>
    public void Validate()
    {
        if (ImageSize is < 1 or > 8192)
            throw new ArgumentException($"PreprocessSettings.ImageSize must be between 1 and 8192, got {ImageSize}.");
        if (EffectiveShortestEdge < ImageSize || EffectiveShortestEdge > 65536)
            throw new ArgumentException($"PreprocessSettings.ResizeShortestEdge ({EffectiveShortestEdge}) must be at least ImageSize ({ImageSize}) so that the centre crop fits, and at most 65536.");
        if (Mean is null || Mean.Count != 3 || Std is null || Std.Count != 3)
            throw new ArgumentException("PreprocessSettings.Mean and Std must have exactly 3 values (R, G, B).");
        foreach (float s in Std)
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"PreprocessSettings.Std values must be positive and finite, got {s}.");
        foreach (float m in Mean)
            if (!float.IsFinite(m)) throw new ArgumentException($"PreprocessSettings.Mean values must be finite, got {m}.");
        if (!(RescaleFactor > 0) || !double.IsFinite(RescaleFactor))
            throw new ArgumentException($"PreprocessSettings.RescaleFactor must be positive and finite, got {RescaleFactor}.");
        if (!Enum.IsDefined(ResizeMode) || !Enum.IsDefined(Resampling) || !Enum.IsDefined(CropRounding))
            throw new ArgumentException("PreprocessSettings has an undefined ResizeMode, Resampling or CropRounding value.");
    }
}
