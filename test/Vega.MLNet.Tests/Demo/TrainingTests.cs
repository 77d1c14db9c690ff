using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Tensors;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Demo;

/// <summary>Determinism, class coverage and the loss of the trainer; the caption sampler's statistics.</summary>
[Collection(nameof(DemoSerial))]
public sealed class TrainingTests
{
    private static readonly TrainingSpec Tiny = new() { TrainImages = 256, Epochs = 2, BatchSize = 64, CaptionNoise = 0.2 };

    [Theory]
    [InlineData("cnn")]
    [InlineData("vit")]
    public void TheSameSeedsGiveTheSameWeightsBitForBit(string kind)
    {
        var (a, ra) = DemoTestData.Train(DemoTestData.Architecture(kind), Tiny, networkSeed: 5, trainingSeed: 6);
        var (b, rb) = DemoTestData.Train(DemoTestData.Architecture(kind), Tiny, networkSeed: 5, trainingSeed: 6);
        var (c, _) = DemoTestData.Train(DemoTestData.Architecture(kind), Tiny, networkSeed: 5, trainingSeed: 7);
        Assert.Equal(ra.EpochLoss, rb.EpochLoss);
        bool anyDifferent = false;
        for (int i = 0; i < a.Parameters.All.Count; i++)
        {
            var pa = a.Parameters.All[i].ToArray();
            Assert.Equal(Bits(pa), Bits(b.Parameters.All[i].ToArray()));
            anyDifferent |= !Bits(pa).SequenceEqual(Bits(c.Parameters.All[i].ToArray()));
        }
        Assert.True(anyDifferent, "another training seed (batch order and captions) must give other weights");
    }

    private static int[] Bits(float[] v) => Array.ConvertAll(v, BitConverter.SingleToInt32Bits);

    [Fact]
    public void TrainingLowersTheContrastiveLossBelowChance()
    {
        // ln(64) ≈ 4.16 is the loss of an untrained model on a batch of 64; with 10 classes the floor is ≈ ln(6.4).
        var (_, report) = DemoTestData.Train(DemoTestData.Architecture("mlp"), new TrainingSpec { TrainImages = 512, Epochs = 6, BatchSize = 64, LearningRate = 3e-3 });
        Assert.True(report.EpochLoss[0] > report.EpochLoss[^1], string.Join(", ", report.EpochLoss));
        Assert.True(report.EpochLoss[^1] < Math.Log(64) - 0.5, string.Join(", ", report.EpochLoss));
        Assert.Equal(6 * (512 / 64), report.Steps);
    }

    [Fact]
    public void ClassCoverageDropsOrRecaptionsTheOtherClasses()
    {
        int[] classes = [0, 1, 7];
        var labels = DemoTestData.Pool.Labels.AsSpan(0, 512).ToArray();
        int covered = labels.Count(l => classes.Contains(l));
        var (_, drop) = DemoTestData.Train(DemoTestData.Architecture("mlp"), new TrainingSpec { TrainImages = 512, Epochs = 1, BatchSize = 32, Classes = classes, Coverage = CoverageMode.Drop });
        Assert.Equal(covered, drop.ImagesUsed);
        Assert.Equal(covered / 32, drop.Steps);
        var (_, generic) = DemoTestData.Train(DemoTestData.Architecture("mlp"), new TrainingSpec { TrainImages = 512, Epochs = 1, BatchSize = 32, Classes = classes, Coverage = CoverageMode.Generic });
        Assert.Equal(512, generic.ImagesUsed);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(0.6)]
    public void CaptionNoiseSwapsTheClassWithProbabilityPUniformlyAmongTheOthers(double p)
    {
        const int n = 40000;
        var rng = new Rng(11);
        var swappedTo = new int[10];
        int swapped = 0;
        for (int i = 0; i < n; i++)
        {
            int label = i % 10;
            int cls = DemoCaptions.ClassOf(DemoCaptions.Sample(label, p, null, rng));
            Assert.InRange(cls, 0, 9);
            if (cls != label) { swapped++; swappedTo[(cls - label + 10) % 10]++; }
        }
        double sigma = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(swapped, n * p - 4 * sigma - 0.5, n * p + 4 * sigma + 0.5);
        Assert.Equal(0, swappedTo[0]);
        if (p == 0) return;
        // Each of the 9 other classes (by offset) gets 1/9 of the swaps.
        double each = swapped / 9.0, s = Math.Sqrt(swapped * (1 / 9.0) * (8 / 9.0));
        for (int k = 1; k < 10; k++) Assert.InRange(swappedTo[k], each - 4 * s, each + 4 * s);
    }

    [Fact]
    public void UncoveredClassesGetGenericCaptionsAndCoveredOnesNever()
    {
        var covered = new HashSet<int> { 1, 3, 5, 7, 8 };
        var rng = new Rng(3);
        var generic = new HashSet<string>(DemoCaptions.GenericCaptions);
        for (int i = 0; i < 5000; i++)
        {
            int label = i % 10;
            string caption = DemoCaptions.Sample(label, 0.5, covered, rng);
            Assert.Equal(!covered.Contains(label), generic.Contains(caption));
            if (!covered.Contains(label)) Assert.Equal(-1, DemoCaptions.ClassOf(caption));
        }
    }

    [Fact]
    public void CaptionsUseEveryTemplateAndSynonymAndFitTheContext()
    {
        var rng = new Rng(9);
        var seen = new HashSet<string>();
        for (int i = 0; i < 20000; i++) seen.Add(DemoCaptions.Sample(i % 10, 0, null, rng));
        var corpus = DemoCaptions.Corpus().ToHashSet();
        Assert.Subset(corpus, seen);
        Assert.Equal(DemoCaptions.Synonyms.Sum(s => s.Count) * DemoCaptions.Templates.Count, seen.Count);
        var tokenizer = DemoTestData.Tokenizer;
        Assert.All(corpus, c => Assert.True(tokenizer.EncodeWithSpecialTokens(c).Length <= 32, c));
        // The plain class names are synonyms (entry 0) and the evaluation prompt is a training template.
        for (int c = 0; c < 10; c++) Assert.Equal(DemoCaptions.ClassNames[c], DemoCaptions.Synonyms[c][0]);
        Assert.Contains(DemoCaptions.EvaluationTemplate, DemoCaptions.Templates);
        Assert.Equal(DemoCaptions.EvaluationTemplate, PromptTemplates.Default.Templates[0]);
    }

    [Fact]
    public void TheDemoTokenizerUsesClipsIdLayoutAndKnowsTheCaptionWords()
    {
        var tokenizer = DemoTestData.Tokenizer;
        Assert.Equal(tokenizer.VocabularySize - 1, tokenizer.EndOfTextId);
        Assert.Equal(tokenizer.VocabularySize - 2, tokenizer.StartOfTextId);
        // A word seen in the corpus is one merged token (BPE learnt it); decoding gives the text back.
        var ids = tokenizer.Encode("a photo of a sneaker.");
        Assert.Equal(6, ids.Length); // a, photo, of, a, sneaker, .
        Assert.Equal("a photo of a sneaker .", tokenizer.Decode(ids));
    }
}
