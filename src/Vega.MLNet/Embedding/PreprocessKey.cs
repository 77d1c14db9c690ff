using System.Globalization;
using Vega.MLNet.Imaging;

namespace Vega.MLNet.Embedding;

/// <summary>A stable text form of everything between the image file and the pixel tensor; part of the cache key.</summary>
internal static class PreprocessKey
{
    public static string Describe(PreprocessSettings p, DecodeOptions decode)
    {
        static string F(IReadOnlyList<float> v) => string.Join(',', v.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
        return string.Create(CultureInfo.InvariantCulture,
            $"size={p.ImageSize};short={p.EffectiveShortestEdge};mode={p.ResizeMode};filter={p.Resampling};crop={p.CropRounding};" +
            $"mean={F(p.Mean)};std={F(p.Std)};rescale={p.RescaleFactor:R};exif={decode.ApplyExifOrientation}");
    }
}
