using Vega.MLNet.Imaging;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Samples.Demo;

/// <summary>What happens to the training images of classes a model does not cover.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<CoverageMode>))]
internal enum CoverageMode
{
    /// <summary>Images of uncovered classes are left out of training.</summary>
    Drop,

    /// <summary>Images of uncovered classes are trained with a generic caption that names no class.</summary>
    Generic,
}

/// <summary>
/// The caption corpus of the demo: Fashion-MNIST's ten classes (<see cref="ImageSource.FashionMnistClassNames"/>), a
/// few synonyms per class (the plain class name is always the first), caption templates, and the generic captions
/// used for images of classes a model does not cover. <see cref="Sample"/> draws one caption for a labelled image:
/// a random template filled with a random synonym of the class; with probability <c>noise</c> the synonym comes from
/// another class (drawn uniformly among the other nine) instead. The zero-shot evaluation of the demo uses the plain
/// class names with <see cref="EvaluationTemplate"/>, which is also one of the training templates.
/// </summary>
internal static class DemoCaptions
{
    public static IReadOnlyList<string> ClassNames => ImageSource.FashionMnistClassNames;

    /// <summary>The prompt of the zero-shot evaluation ("a photo of a {}.", as <see cref="Text.PromptTemplates.Default"/>).</summary>
    public const string EvaluationTemplate = "a photo of a {}.";

    /// <summary>Synonyms by class label; entry 0 is the class name itself.</summary>
    public static readonly IReadOnlyList<IReadOnlyList<string>> Synonyms =
    [
        ["T-shirt/top", "t-shirt", "tee", "top", "tee shirt"],
        ["Trouser", "trousers", "pants", "pair of trousers", "jeans"],
        ["Pullover", "sweater", "jumper", "knitted pullover"],
        ["Dress", "gown", "summer dress", "frock"],
        ["Coat", "jacket", "overcoat", "winter coat"],
        ["Sandal", "sandals", "open shoe", "flip-flop"],
        ["Shirt", "button-down shirt", "blouse", "collared shirt"],
        ["Sneaker", "trainer", "running shoe", "sports shoe"],
        ["Bag", "handbag", "purse", "tote bag"],
        ["Ankle boot", "boot", "short boot", "bootie"],
    ];

    /// <summary>Caption templates ("{}" = the class word).</summary>
    public static readonly IReadOnlyList<string> Templates =
    [
        EvaluationTemplate,
        "a black and white photo of a {}.",
        "a grayscale photo of the {}.",
        "a low resolution photo of a {}.",
        "a small picture of a {}.",
        "a product photo of a {}.",
        "an image of a {}.",
        "this is a {}.",
        "a centered photo of the {}.",
        "a photo of my {}.",
        "a {}.",
        "a catalogue image of a {}.",
    ];

    /// <summary>Captions for images of uncovered classes (<see cref="CoverageMode.Generic"/>): they name no class.</summary>
    public static readonly IReadOnlyList<string> GenericCaptions =
    [
        "a photo of an item.",
        "a photo of a fashion item.",
        "a black and white photo of a thing.",
        "a grayscale photo of an object.",
        "a product photo.",
        "an image of something to wear.",
    ];

    /// <summary>Every caption the sampler can produce (templates × all synonyms, plus the generic ones), in a fixed order: the BPE corpus.</summary>
    public static IEnumerable<string> Corpus()
    {
        foreach (var synonyms in Synonyms)
            foreach (var s in synonyms)
                foreach (var t in Templates) yield return Fill(t, s);
        foreach (var g in GenericCaptions) yield return g;
    }

    public static string Fill(string template, string word) => template.Replace("{}", word, StringComparison.Ordinal);

    /// <summary>
    /// A caption for an image of class <paramref name="label"/>. Uncovered classes get a generic caption; covered ones a
    /// template with a synonym of the class, or with probability <paramref name="noise"/> of a uniformly drawn other class.
    /// Consumes a fixed number of draws per call (so the stream does not depend on the outcome).
    /// </summary>
    public static string Sample(int label, double noise, IReadOnlySet<int>? covered, Rng rng)
    {
        if ((uint)label >= (uint)Synonyms.Count) throw new ArgumentOutOfRangeException(nameof(label), label, "A Fashion-MNIST label is in 0..9.");
        double u = rng.NextDouble();
        int other = rng.NextInt(Synonyms.Count - 1);
        int template = rng.NextInt(Templates.Count);
        ulong pick = rng.NextUInt64();
        if (covered is not null && !covered.Contains(label)) return GenericCaptions[(int)(pick % (ulong)GenericCaptions.Count)];
        int cls = u < noise ? (other >= label ? other + 1 : other) : label;
        var synonyms = Synonyms[cls];
        return Fill(Templates[template], synonyms[(int)(pick % (ulong)synonyms.Count)]);
    }

    /// <summary>The class whose synonym a caption produced by <see cref="Sample"/> contains (the longest match), or −1 for a generic caption.</summary>
    internal static int ClassOf(string caption)
    {
        int best = -1, bestLength = 0;
        foreach (var t in Templates)
        {
            int at = t.IndexOf("{}", StringComparison.Ordinal);
            string prefix = t[..at], suffix = t[(at + 2)..];
            if (!caption.StartsWith(prefix, StringComparison.Ordinal) || !caption.EndsWith(suffix, StringComparison.Ordinal) || caption.Length < prefix.Length + suffix.Length) continue;
            string word = caption[prefix.Length..^suffix.Length];
            for (int c = 0; c < Synonyms.Count; c++)
                foreach (var s in Synonyms[c])
                    if (s == word && prefix.Length + 1 > bestLength) { best = c; bestLength = prefix.Length + 1; }
        }
        return best;
    }
}
