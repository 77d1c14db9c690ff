using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

public sealed class RandomResizedCropTests
{
    [Fact]
    public void CropsStayWithinTheAreaAndRatioBoundsAndAreSeeded()
    {
        var crop = new RandomResizedCrop(7, 0);
        int flips = 0, n = 4000;
        for (int i = 0; i < n; i++)
        {
            var (left, top, w, h, flip) = crop.Draw(640, 480, i);
            Assert.InRange(left, 0, 640 - w);
            Assert.InRange(top, 0, 480 - h);
            double area = (double)w * h / (640 * 480), ratio = (double)w / h;
            Assert.InRange(area, 0.075, 1.0);
            Assert.InRange(ratio, 0.74, 1.36); // 3/4 .. 4/3 up to rounding of the sides
            if (flip) flips++;
            Assert.Equal((left, top, w, h, flip), crop.Draw(640, 480, i));
        }
        Assert.InRange(flips, n * 0.45, n * 0.55);
        Assert.NotEqual(crop.Draw(640, 480, 3), new RandomResizedCrop(7, 1).Draw(640, 480, 3));
        // A 12:1 panorama cannot host a 4:3 crop at random: the fallback is the centred crop at the bound ratio.
        var (_, _, pw, ph, _) = crop.Draw(636, 53, 0);
        Assert.InRange((double)pw / ph, 0.74, 1.36);
    }

    [Fact]
    public void ApplyCopiesTheBoxAndMirrorsItWhenFlipped()
    {
        var source = ImageDecoder.Decode(Path.Combine(Fixtures.Images, "dots.png"));
        var target = new RgbImage();
        for (int i = 0; i < 20; i++)
        {
            var crop = new RandomResizedCrop(3, i);
            var (left, top, w, h, flip) = crop.Draw(source.Width, source.Height, 5);
            crop.Apply(source, 5, target);
            Assert.Equal((w, h), (target.Width, target.Height));
            for (int y = 0; y < h; y += 7)
                for (int x = 0; x < w; x += 5)
                {
                    int sx = left + (flip ? w - 1 - x : x), sy = top + y;
                    for (int c = 0; c < 3; c++)
                        Assert.Equal(source.Span[(sy * source.Width + sx) * 3 + c], target.Span[(y * w + x) * 3 + c]);
                }
        }
        Assert.Throws<ArgumentException>(() => new RandomResizedCrop(1, 0).Apply(source, 0, source));
    }

    [Fact]
    public void TheEngineEmbedsAndCachesEveryViewUnderItsOwnKey()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromPaths(new[] { "dots.png", "grace_hopper.jpg", "minus.png" }.Select(f => Path.Combine(Fixtures.Images, f)));
        var views = source.AugmentedViews(3, 11);
        var options = new ImageEmbeddingOptions { CacheDirectory = Fixtures.TempDir(), BatchSize = 4 };
        var first = ImageEmbedder.Embed(model, views, options);
        Assert.Equal(9, first.Computed);
        var second = ImageEmbedder.Embed(model, views, options);
        Assert.Equal(9, second.FromCache);
        Assert.Equal(first.Embeddings.Data, second.Embeddings.Data);
        // The original images are cached separately from their views.
        var originals = ImageEmbedder.Embed(model, source, options);
        Assert.Equal(3, originals.Computed);

        // Second implementation of a view: decode, crop, squash-resize with the model's settings, embed alone.
        var squash = new ImagePreprocessor(model.Preprocessing with { ResizeMode = ResizeMode.Squash, ResizeShortestEdge = null });
        for (int r = 0; r < 9; r++)
        {
            int image = r / 3, view = r % 3;
            Assert.Equal($"{source.Items[image].Id}#view{view}", first.Items[r].Id);
            var cropped = new RandomResizedCrop(11, view).Apply(ImageDecoder.Decode(source.Items[image].Path!), image, new RgbImage());
            var expected = model.EmbedPixels(squash.Process(cropped), 1);
            Assert.True(Fixtures.MaxAbsDiff(expected.Data, first.Embeddings.Row(r)) <= 1e-5, $"row {r}");
        }
        Assert.NotEqual(first.Embeddings.Row(0).ToArray(), first.Embeddings.Row(1).ToArray());
    }
}
