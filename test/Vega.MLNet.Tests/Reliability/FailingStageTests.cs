using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Issue 17 item 1: a stage of the embedding engine that fails while more images are queued than the bounded channel
/// holds must end the run with its error (never hang). The time bound is a generous guard that fails the test instead
/// of hanging it; it is not a speed measurement.
/// </summary>
public sealed class FailingStageTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(90);

    private static bool Finished(Task run) => Task.WhenAny(run, Task.Delay(Guard)).GetAwaiter().GetResult() == run;

    [Theory]
    [InlineData(1, 1)]
    [InlineData(4, 2)]
    [InlineData(16, 4)]
    public void AFailingImageTowerEndsTheRunWithItsError(int batch, int threads)
    {
        // 2000 images, a channel of batch × 2: the tower fails on the first batch of more than one image.
        using var model = ClipModel.Load(TinyClip.Create(failAboveOne: true));
        var source = ImageSource.FromIdx(TinyClip.Idx(2000));
        var options = new ImageEmbeddingOptions { BatchSize = Math.Max(2, batch), DecodeThreads = threads, CacheDirectory = Fixtures.TempDir() };
        var run = Task.Run(() => ImageEmbedder.Embed(model, source, options));
        Assert.True(Finished(run), "the embedding run hung after the image tower failed");
        Assert.True(run.IsFaulted, "the run should have failed");
        var e = Assert.IsType<InvalidOperationException>(run.Exception!.InnerException);
        Assert.Contains("image_embeds", e.Message + e.InnerException?.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void AnExportWithAFixedBatchSizeRunsInSlicesAndGivesTheSameEmbeddings(int fixedBatch)
    {
        // Same weights (same seed); one export declares a fixed batch dimension. 7 images do not divide by 3: the last
        // slice is padded, and only its real rows are kept.
        using var dynamicModel = ClipModel.Load(TinyClip.Create(seed: 5));
        using var fixedModel = ClipModel.Load(TinyClip.Create(seed: 5, fixedBatch: fixedBatch));
        Assert.Equal(fixedBatch, fixedModel.ImageTower.FixedBatch);
        var source = ImageSource.FromIdx(TinyClip.Idx(7));
        var expected = ImageEmbedder.Embed(dynamicModel, source, new ImageEmbeddingOptions { BatchSize = 4 });
        var actual = ImageEmbedder.Embed(fixedModel, source, new ImageEmbeddingOptions { BatchSize = 4 });
        Assert.Equal(expected.Embeddings.Data, actual.Embeddings.Data);
        var texts = new[] { "a", "b c", "d e f", "g", "h", "i", "j" };
        Assert.Equal(dynamicModel.EmbedTexts(texts).Data, fixedModel.EmbedTexts(texts).Data);
    }

    [Fact]
    public void AFailingProgressCallbackOnTheConsumerEndsTheRun()
    {
        // Another stage failing: the progress callback runs on the consumer after each batch.
        using var model = ClipModel.Load(TinyClip.Create());
        var source = ImageSource.FromIdx(TinyClip.Idx(2000));
        var options = new ImageEmbeddingOptions
        {
            BatchSize = 4,
            DecodeThreads = 2,
            Progress = new Throwing(),
        };
        var run = Task.Run(() => ImageEmbedder.Embed(model, source, options));
        Assert.True(Finished(run), "the embedding run hung after a stage failed");
        Assert.IsType<InvalidOperationException>(run.Exception!.InnerException);
    }

    private sealed class Throwing : IProgress<EmbeddingProgress>
    {
        public void Report(EmbeddingProgress value) => throw new InvalidOperationException("progress display failed");
    }

    [Fact]
    public void AFullDiskWhileWritingTheCacheEndsVegaEmbedWithOneClearError()
    {
        // The real CLI with a file-size limit (ulimit -f, SIGXFSZ ignored so writes fail with EFBIG, as on a full disk):
        // the cache append fails after a few hundred records while 2000 images are queued.
        string model = TinyClip.Create();
        string idx = TinyClip.Idx(2000);
        string cache = Fixtures.TempDir();
        var run = TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", cache, "--batch", "8", "--threads", "2"],
            Guard, shellPrefix: "trap '' XFSZ; ulimit -f 48; export DOTNET_EnableWriteXorExecute=0;");
        Assert.False(run.TimedOut, "vega embed hung after the cache write failed");
        Assert.True(run.ExitCode == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("vega: error: ", line);
        Assert.Contains(cache, line);
        Assert.Contains("--cache", line);
        Assert.DoesNotContain("   at ", run.StdErr + run.StdOut);

        // What was written is kept: the next run (no limit) resumes from the cache.
        var again = TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", cache, "--batch", "8"], Guard);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Matches(@"\(\d+ computed, [1-9]\d* from cache", again.StdOut);
    }

    [Fact]
    public void CancellationStillEndsWithOperationCanceled()
    {
        using var model = ClipModel.Load(TinyClip.Create());
        var source = ImageSource.FromIdx(TinyClip.Idx(2000));
        using var cts = new CancellationTokenSource();
        var options = new ImageEmbeddingOptions { BatchSize = 4, DecodeThreads = 2, Progress = new CancelOnFirst(cts) };
        var run = Task.Run(() => ImageEmbedder.Embed(model, source, options, cts.Token));
        Assert.True(Finished(run), "the embedding run hung after cancellation");
        Assert.True(run.IsCanceled || run.Exception?.InnerException is OperationCanceledException, $"{run.Status} {run.Exception}");
    }

    private sealed class CancelOnFirst(CancellationTokenSource cts) : IProgress<EmbeddingProgress>
    {
        public void Report(EmbeddingProgress value) => cts.Cancel();
    }
}
