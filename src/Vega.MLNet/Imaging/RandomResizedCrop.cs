using Vega.MLNet.Tensors;

namespace Vega.MLNet.Imaging;

/// <summary>
/// The training augmentation of CoOp and CLIP fine-tuning, torchvision's <c>RandomResizedCrop</c> + random horizontal
/// flip: a crop covering 8–100 % of the image's area with aspect ratio in [3/4, 4/3] (log-uniform), ten attempts, then
/// a centre crop clamped to that ratio; flipped with probability ½. The crop is then squashed to the model's input
/// size by the usual (Pillow-exact) resampling. Every random draw comes from (seed, image, view), so a view is the same
/// in every run and can be cached.
/// </summary>
internal sealed record RandomResizedCrop(ulong Seed, int View, double MinScale = 0.08, double MaxScale = 1.0, double MinRatio = 3.0 / 4, double MaxRatio = 4.0 / 3)
{
    /// <summary>A stable text form for cache keys.</summary>
    public string Key => FormattableString.Invariant($"rrc:{Seed}:{View}:{MinScale}:{MaxScale}:{MinRatio}:{MaxRatio}:flip0.5");

    /// <summary>The crop box (left, top, width, height) and the flip for an image of <paramref name="width"/> × <paramref name="height"/>.</summary>
    public (int Left, int Top, int Width, int Height, bool Flip) Draw(int width, int height, int imageIndex)
    {
        var rng = new Rng(Seed * 0x9E3779B97F4A7C15UL ^ ((ulong)imageIndex << 20) ^ (ulong)View);
        double area = (double)width * height;
        double logLow = Math.Log(MinRatio), logHigh = Math.Log(MaxRatio);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (MinScale + (MaxScale - MinScale) * rng.NextDouble());
            double ratio = Math.Exp(logLow + (logHigh - logLow) * rng.NextDouble());
            int w = (int)Math.Round(Math.Sqrt(target * ratio)), h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
            {
                int top = rng.NextInt(height - h + 1), left = rng.NextInt(width - w + 1);
                return (left, top, w, h, rng.NextDouble() < 0.5);
            }
        }
        // Fallback: the largest centred crop whose ratio is within bounds.
        double inRatio = (double)width / height;
        int cw = width, ch = height;
        if (inRatio < MinRatio) ch = (int)Math.Round(width / MinRatio);
        else if (inRatio > MaxRatio) cw = (int)Math.Round(height * MaxRatio);
        return ((width - cw) / 2, (height - ch) / 2, Math.Max(1, cw), Math.Max(1, ch), rng.NextDouble() < 0.5);
    }

    /// <summary>The cropped (and maybe flipped) pixels of <paramref name="image"/>, written into <paramref name="target"/>
    /// (another image than the source).</summary>
    public RgbImage Apply(RgbImage image, int imageIndex, RgbImage target)
    {
        if (ReferenceEquals(image, target)) throw new ArgumentException("The crop needs a target other than its source.", nameof(target));
        var (left, top, w, h, flip) = Draw(image.Width, image.Height, imageIndex);
        target.Reset(w, h);
        var src = image.Span;
        var all = target.Span;
        for (int y = 0; y < h; y++)
        {
            var row = src.Slice(((top + y) * image.Width + left) * 3, w * 3);
            var dst = all.Slice(y * w * 3, w * 3);
            if (!flip) row.CopyTo(dst);
            else for (int x = 0; x < w; x++) row.Slice((w - 1 - x) * 3, 3).CopyTo(dst.Slice(x * 3, 3));
        }
        return target;
    }
}
