using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Demo;

/// <summary>
/// The demo tests train networks with <see cref="Parallelism.ThreadCount"/> = 1 (as the zoo builder does), which is
/// process-wide: they run alone, after the parallel tests.
/// </summary>
[CollectionDefinition(nameof(DemoSerial), DisableParallelization = true)]
public sealed class DemoSerial;

/// <summary>Fashion-MNIST (Debian's dataset-fashion-mnist), the demo tokenizer and small trained networks, shared by the demo tests.</summary>
internal static class DemoTestData
{
    private static readonly Lazy<FashionMnistData> LazyData = new(() => FashionMnistData.Load(FashionMnistData.DefaultDirectory));
    private static readonly Lazy<string> LazyTokenizerDir = new(() =>
    {
        string dir = Path.Combine(Fixtures.TempDir("vega-demo-tok"), "tokenizer");
        BpeTrainer.Save(BpeTrainer.Learn(DemoCaptions.Corpus(), 1024), dir);
        return dir;
    });
    private static readonly Lazy<TrainingPool> LazyPool = new(() =>
    {
        var idx = Enumerable.Range(0, 512).ToArray();
        return new TrainingPool(DemoPreprocessing.GrayInputs(Data.Train, idx), idx.Select(i => Data.TrainLabels[i]).ToArray());
    });

    public static FashionMnistData Data => LazyData.Value;
    public static string TokenizerDirectory => LazyTokenizerDir.Value;
    public static ClipTokenizer Tokenizer => ClipTokenizer.Load(TokenizerDirectory);

    /// <summary>The first 512 training images as gray model inputs.</summary>
    public static TrainingPool Pool => LazyPool.Value;

    public static ClipArchitecture Architecture(string kind) => kind switch
    {
        "mlp" => new ClipArchitecture { Image = ImageArchitecture.Mlp, Hidden = [32], EmbedDim = 16, TextWidth = 32, TextHeads = 2 },
        "cnn" => new ClipArchitecture { Image = ImageArchitecture.Cnn, Channels = [4, 8], Hidden = [16], EmbedDim = 16, TextWidth = 32, TextHeads = 2 },
        "vit" => new ClipArchitecture { Image = ImageArchitecture.Vit, VitWidth = 32, VitLayers = 2, VitHeads = 4, VitPatch = 7, EmbedDim = 16, TextWidth = 32, TextLayers = 2, TextHeads = 4 },
        "vit4" => new ClipArchitecture { Image = ImageArchitecture.Vit, VitWidth = 16, VitLayers = 1, VitHeads = 2, VitPatch = 4, EmbedDim = 24, TextWidth = 16, TextHeads = 1 },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>A small network trained for a few steps (single-threaded, so the result is reproducible).</summary>
    public static (ClipNetwork Net, TrainingReport Report) Train(ClipArchitecture architecture, TrainingSpec spec, ulong networkSeed = 1, ulong trainingSeed = 2)
    {
        int saved = Parallelism.ThreadCount;
        try
        {
            Parallelism.ThreadCount = 1;
            var tokenizer = Tokenizer;
            var net = new ClipNetwork(architecture, tokenizer.VocabularySize, 32, new Rng(networkSeed));
            var report = ClipTrainer.Train(net, tokenizer, Pool, spec, trainingSeed);
            return (net, report);
        }
        finally
        {
            Parallelism.ThreadCount = saved;
        }
    }
}
