using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

public sealed class ImageSourceSubsetTests
{
    [Fact]
    public void ASubsetKeepsIdsLabelsAndPixelsOfTheChosenItems()
    {
        var all = ImageSource.FromFolder(Fixtures.Images);
        int[] chosen = [all.Count - 1, 0, 2];
        var subset = all.Subset(chosen);
        Assert.Equal(3, subset.Count);
        for (int i = 0; i < chosen.Length; i++)
        {
            var item = subset.Items[i];
            Assert.Equal(i, item.Index);
            Assert.Equal(all.Items[chosen[i]].Id, item.Id);
            Assert.Equal(all.Items[chosen[i]].Label, item.Label);
            if (all.TryLoad(all.Items[chosen[i]], out var expected))
            {
                Assert.True(subset.TryLoad(item, out var actual));
                Assert.Equal(expected.Span.ToArray(), actual.Span.ToArray());
            }
        }
        Assert.Contains("3 selected", subset.Description);
    }
}
