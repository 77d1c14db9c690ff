using Vega.MLNet.Samples.Samples;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Samples;

/// <summary>The C# samples run on the fixture models and report every image (the good ones classified, the bad ones
/// skipped with their reason).</summary>
public sealed class SampleTests
{
    [Fact]
    public void ZeroShotSampleClassifiesEveryGoodImageAndReportsTheBadOnes()
    {
        var output = new StringWriter();
        ZeroShotSample.Run(Path.Combine(Fixtures.Onnx, "hf"), Fixtures.Images, ["a person", "a landscape", "a logo"], output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(12, lines.Count(l => l.Contains("cosine")));
        Assert.Equal(5, lines.Count(l => l.StartsWith("skipped") && l.Contains("/bad/")));
        Assert.Equal(8, lines.Count(l => l.StartsWith("skipped"))); // and one line per non-image extension (.json, .f32, .u8)
    }

    [Fact]
    public void SelectModelSampleRanksTheCandidates()
    {
        var output = new StringWriter();
        SelectModelSample.Run([Path.Combine(Fixtures.Onnx, "hf"), ClipModelTests.OpenAiFolder()], Fixtures.Images, ["a person", "a landscape", "a logo"], output);
        string text = output.ToString();
        Assert.Contains("1. ", text);
        Assert.Contains("2. ", text);
        Assert.Contains("chosen: ", text);
    }
}
