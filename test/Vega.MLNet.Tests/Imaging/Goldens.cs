using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

/// <summary>One good image of ../shared/images/index.json with its goldens.</summary>
internal sealed record GoldenImage(string Name, int Width, int Height, int ResizedWidth, int ResizedHeight, int CropLeft, int CropTop)
{
    public string File => Path.Combine(Fixtures.Images, Name);
    private string Stem => Path.GetFileNameWithoutExtension(Name);
    public byte[] Rgb() => System.IO.File.ReadAllBytes(Path.Combine(Fixtures.Images, "golden", Stem + ".rgb.u8"));
    public byte[] Resized() => System.IO.File.ReadAllBytes(Path.Combine(Fixtures.Images, "golden", Stem + ".resized.u8"));
    public float[] Tensor() => Fixtures.ReadF32(Path.Combine(Fixtures.Images, "golden", Stem + ".f32"));
    public RgbImage RgbImage() => Vega.MLNet.Imaging.RgbImage.FromRgb(Rgb(), Width, Height);
}

internal static class Goldens
{
    private static readonly Lazy<GoldenImage[]> All = new(() =>
    {
        using var doc = Fixtures.Json(Path.Combine(Fixtures.Images, "index.json"));
        var list = new List<GoldenImage>();
        foreach (var e in doc.RootElement.GetProperty("images").EnumerateArray())
        {
            var rs = e.GetProperty("resized_width_height");
            var crop = e.GetProperty("crop_left_top");
            list.Add(new GoldenImage(e.GetProperty("name").GetString()!, e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(),
                rs[0].GetInt32(), rs[1].GetInt32(), crop[0].GetInt32(), crop[1].GetInt32()));
        }
        Assert.Equal(12, list.Count);
        return list.ToArray();
    });

    public static IReadOnlyList<GoldenImage> Images => All.Value;

    public static GoldenImage Get(string name) => All.Value.Single(g => g.Name == name);

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var g in All.Value) data.Add(g.Name);
        return data;
    }

    public static string[] BadNames()
    {
        using var doc = Fixtures.Json(Path.Combine(Fixtures.Images, "index.json"));
        return doc.RootElement.GetProperty("bad").EnumerateArray().Select(e => e.GetProperty("name").GetString()!).ToArray();
    }

    /// <summary>Count of differing bytes and the largest difference.</summary>
    public static (int Count, int Max) Diff(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        Assert.Equal(a.Length, b.Length);
        int n = 0, max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            int d = Math.Abs(a[i] - b[i]);
            if (d != 0) { n++; max = Math.Max(max, d); }
        }
        return (n, max);
    }
}
