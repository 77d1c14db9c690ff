using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Embedding;

public sealed class ImageEmbedderTests
{
    private static readonly string[] GoldenThree = ["grace_hopper.jpg", "china_progressive.jpg", "Minduka_Present_Blue_Pack.png"];

    [Theory]
    [InlineData("hf", "hf_vision.f32")]
    [InlineData("openai", "openai_visual.f32")]
    public void GoldenImagesEmbeddedEndToEndMatchTheGoldenOutputs(string layout, string golden)
    {
        using var model = layout == "hf" ? ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf")) : ClipModel.Load(ClipModelTests.OpenAiFolder());
        var source = ImageSource.FromPaths(GoldenThree.Select(f => Path.Combine(Fixtures.Images, f)));
        var result = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 2 });
        Assert.Equal(3, result.Embeddings.Count);
        Assert.Empty(result.Skipped);
        double diff = Fixtures.MaxAbsDiff(ClipModelTests.Normalized(golden, 32), result.Embeddings.Data);
        Assert.True(diff <= 1e-4, $"max abs diff {diff}");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 2)]
    [InlineData(32, 4)]
    public void RowsFollowSourceOrderWhateverTheBatchingAndBadFilesAreSkipped(int batch, int threads)
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromFolder(Fixtures.Images);
        var result = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = batch, DecodeThreads = threads });
        Assert.Equal(12, result.Embeddings.Count);
        Assert.Equal(5, result.Skipped.Count(s => s.Index is not null)); // + 3 listing entries for the non-image files
        Assert.Contains(result.Skipped, s => s.Path is not null && s.Path.EndsWith("truncated_60pct.jpg") && s.Reason.Contains("truncated"));
        // Second implementation: decode, preprocess and run each image on its own, in order.
        var pre = new ImagePreprocessor(model.Preprocessing);
        for (int r = 0; r < result.Items.Count; r++)
        {
            var pixels = pre.Process(ImageDecoder.Decode(result.Items[r].Path!));
            var single = model.EmbedPixels(pixels, 1);
            Assert.True(Fixtures.MaxAbsDiff(single.Data, result.Embeddings.Row(r)) <= 1e-5, $"row {r} {result.Items[r].Id}");
        }
        Assert.Equal(result.Items.Select(i => i.Index), result.Items.Select(i => i.Index).Order());
    }

    [Theory]
    [InlineData(nameof(ImageIdentity.Content))]
    [InlineData(nameof(ImageIdentity.PathSizeTime))]
    public void ASecondRunIsServedFromTheCacheBitForBit(string identityName)
    {
        var identity = Enum.Parse<ImageIdentity>(identityName);
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        string cache = Fixtures.TempDir();
        var options = new ImageEmbeddingOptions { CacheDirectory = cache, Identity = identity, BatchSize = 4 };
        var first = ImageEmbedder.Embed(model, ImageSource.FromFolder(Fixtures.Images), options);
        Assert.Equal(12, first.Computed);
        var second = ImageEmbedder.Embed(model, ImageSource.FromFolder(Fixtures.Images), options);
        Assert.Equal(0, second.Computed);
        Assert.Equal(12, second.FromCache);
        Assert.Equal(first.Embeddings.Data, second.Embeddings.Data);
    }

    [Fact]
    public void ContentIdentityNoticesAChangedFile()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        string dir = Fixtures.TempDir();
        File.Copy(Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(dir, "a.png"));
        File.Copy(Path.Combine(Fixtures.Images, "minus.png"), Path.Combine(dir, "b.png"));
        var options = new ImageEmbeddingOptions { CacheDirectory = Fixtures.TempDir() };
        var first = ImageEmbedder.Embed(model, ImageSource.FromFolder(dir), options);
        File.Copy(Path.Combine(Fixtures.Images, "tiny_7x5.png"), Path.Combine(dir, "b.png"), overwrite: true);
        var second = ImageEmbedder.Embed(model, ImageSource.FromFolder(dir), options);
        Assert.Equal(1, second.FromCache);
        Assert.Equal(1, second.Computed);
        Assert.Equal(first.Embeddings.Row(0).ToArray(), second.Embeddings.Row(0).ToArray());
        Assert.NotEqual(first.Embeddings.Row(1).ToArray(), second.Embeddings.Row(1).ToArray());
    }

    [Fact]
    public void CancellationStopsTheRunAndKeepsFinishedBatches()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using var cts = new CancellationTokenSource();
        string cache = Fixtures.TempDir();
        int batches = 0;
        var progress = new SynchronousProgress(p => { if (p.Done > 0 && Interlocked.Increment(ref batches) == 1) cts.Cancel(); });
        var source = ImageSource.FromIdx(FashionSubset(64));
        Assert.ThrowsAny<OperationCanceledException>(() =>
            ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 8, CacheDirectory = cache, Progress = progress }, cts.Token));
        var resumed = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 8, CacheDirectory = cache });
        Assert.True(resumed.FromCache >= 8, $"from cache: {resumed.FromCache}");
        Assert.Equal(64, resumed.Embeddings.Count);
    }

    private sealed class SynchronousProgress(Action<EmbeddingProgress> report) : IProgress<EmbeddingProgress>
    {
        public void Report(EmbeddingProgress value) => report(value);
    }

    /// <summary>An IDX file with the first <paramref name="count"/> Fashion-MNIST test images.</summary>
    internal static string FashionSubset(int count)
    {
        var raw = Decompress("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
        int rows = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(8)), cols = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(12));
        var bytes = new byte[16 + count * rows * cols];
        raw.AsSpan(0, 16 + count * rows * cols).CopyTo(bytes);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        string path = Path.Combine(Fixtures.TempDir(), "subset-idx3-ubyte");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Decompress(string gz)
    {
        if (!File.Exists(gz)) throw new InvalidOperationException($"'{gz}' is missing: run `bash scripts/setup.sh` (Debian package dataset-fashion-mnist).");
        using var s = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress);
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    [Fact]
    public void AKilledRunResumesFromTheCacheWithIdenticalResults()
    {
        // A separate `vega embed` process on a benchmark-sized tower is killed (SIGKILL) once some batches are in the
        // cache; the next run completes from there; the result equals an uninterrupted in-process run.
        string shared = Fixtures.Shared;
        string modelDir = ClipModelTests.LinkFolder(
            ("vision_model.onnx", Path.Combine(shared, "bench", "hf-vit-b32", "vision_model.onnx")),
            ("text_model.onnx", Path.Combine(shared, "bench", "hf-vit-b32", "text_model.onnx")),
            ("vocab.json", Path.Combine(Fixtures.Tokenizer, "vocab.json")), ("merges.txt", Path.Combine(Fixtures.Tokenizer, "merges.txt")));
        string idx = FashionSubset(96);
        string cache = Fixtures.TempDir();
        string vega = Path.Combine(AppContext.BaseDirectory, "vega");
        var start = new ProcessStartInfo(vega, ["embed", "--model", modelDir, "--images", idx, "--cache", cache, "--batch", "8"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using (var p = Process.Start(start)!)
        {
            p.OutputDataReceived += (_, _) => { };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddMinutes(3);
            string? file = null;
            long recordSize = 32 + 4 * 512 + 4;
            // Wait until at least two batches (16 records) are on disk, then kill without warning.
            while (DateTime.UtcNow < deadline && !p.HasExited)
            {
                file ??= Directory.GetFiles(cache, "*.vemb").FirstOrDefault();
                if (file is not null && new FileInfo(file).Length > 600 + 16 * recordSize) break;
                Thread.Sleep(20);
            }
            Assert.False(p.HasExited, "the embedding run finished before it could be killed; make the input larger");
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }

        using var model = ClipModel.Load(modelDir);
        var source = ImageSource.FromIdx(idx);
        var resumed = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { CacheDirectory = cache, BatchSize = 8 });
        Assert.InRange(resumed.FromCache, 16, 95);
        Assert.Equal(96 - resumed.FromCache, resumed.Computed);
        var uninterrupted = ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 8 });
        Assert.True(Fixtures.MaxAbsDiff(uninterrupted.Embeddings.Data, resumed.Embeddings.Data) <= 1e-5);
    }

    [Fact]
    public async Task ExtensionsAiImageGeneratorEmbedsEncodedImages()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using var generator = new ClipImageEmbeddingGenerator(model);
        var contents = GoldenThree.Select(f => new Microsoft.Extensions.AI.DataContent(File.ReadAllBytes(Path.Combine(Fixtures.Images, f)),
            f.EndsWith(".png") ? "image/png" : "image/jpeg") { Name = f }).ToList();
        var generated = await generator.GenerateAsync(contents);
        var golden = ClipModelTests.Normalized("hf_vision.f32", 32);
        for (int i = 0; i < 3; i++)
            Assert.True(Fixtures.MaxAbsDiff(golden.AsSpan(i * 32, 32), generated[i].Vector.Span) <= 1e-4);
        var bad = new Microsoft.Extensions.AI.DataContent(File.ReadAllBytes(Path.Combine(Fixtures.Images, "bad", "truncated_60pct.jpg")), "image/jpeg") { Name = "truncated_60pct.jpg" };
        var e = await Assert.ThrowsAsync<ImageDecodeException>(() => generator.GenerateAsync([bad]));
        Assert.Contains("truncated_60pct.jpg", e.Message);
    }
}
