using System.Diagnostics;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Issue 17 item 2: image reads check the file type, the size and the header before reading. A link to /dev/zero, a
/// FIFO and a huge non-image are refused with their reason, quickly, through every path that reads images.
/// </summary>
public sealed class ImageFileTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);

    /// <summary>A folder with two good images and the bad entries of the issue, each with an image extension.</summary>
    private static string BadFolder()
    {
        string dir = Fixtures.TempDir();
        File.Copy(Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(dir, "a_good.png"));
        File.Copy(Path.Combine(Fixtures.Images, "grace_hopper.jpg"), Path.Combine(dir, "b_good.jpg"));
        File.CreateSymbolicLink(Path.Combine(dir, "zero.jpg"), "/dev/zero");
        MakeFifo(Path.Combine(dir, "pipe.png"));
        using (var f = File.Create(Path.Combine(dir, "huge.jpg"))) f.SetLength(300L << 20); // sparse: no disk used
        using (var f = File.Create(Path.Combine(dir, "big_text.png"))) { f.Write("hello, this is text"u8); f.SetLength(200L << 20); }
        return dir;
    }

    internal static void MakeFifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]))!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    private static void AssertReasons(IReadOnlyList<SkippedItem> skipped)
    {
        string Reason(string name) => Assert.Single(skipped, s => s.Path!.EndsWith(name)).Reason;
        Assert.Contains("character device", Reason("zero.jpg"));
        Assert.Contains("'/dev/zero'", Reason("zero.jpg"));
        Assert.Contains("named pipe (FIFO)", Reason("pipe.png"));
        Assert.Contains("file too large (314572800 bytes; the limit is 268435456 bytes, DecodeOptions.MaxFileBytes)", Reason("huge.jpg"));
        Assert.Equal("not an image (starts with 'hello, t')", Reason("big_text.png"));
    }

    [Fact]
    public async Task TheEmbeddingEngineRefusesSpecialAndHugeFilesWithTheirReason()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromFolder(BadFolder());
        var run = Task.Run(() => ImageEmbedder.Embed(model, source, new ImageEmbeddingOptions { BatchSize = 2 }));
        Assert.True(await Task.WhenAny(run, Task.Delay(Guard)) == run, "embedding hung on a special file");
        var result = await run;
        Assert.Equal(["a_good.png", "b_good.jpg"], result.Items.Select(i => i.Id));
        AssertReasons(result.Skipped);
    }

    [Fact]
    public async Task TheDecoderAndTheSourceRefuseThemToo()
    {
        string dir = BadFolder();
        var source = ImageSource.FromFolder(dir);
        var run = Task.Run(() =>
        {
            foreach (var item in source.Items) source.TryLoad(item, out _);
        });
        Assert.True(await Task.WhenAny(run, Task.Delay(Guard)) == run, "loading hung on a special file");
        await run;
        AssertReasons(source.Skipped);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(Path.Combine(dir, "zero.jpg")));
        Assert.Contains("not a regular file", e.Reason);
    }

    [Fact]
    public void ANonImageIsRejectedAfterReadingItsHeaderOnly()
    {
        // 200 MB that start with text: the thread's read counter (/proc/thread-self/io, rchar) must grow by far less.
        string dir = BadFolder();
        string path = Path.Combine(dir, "big_text.png");
        long before = ReadBytesOfThisThread();
        var e = Assert.Throws<ImageDecodeException>(() => ImageFile.Read(path, DecodeOptions.Default, out _));
        long read = ReadBytesOfThisThread() - before;
        Assert.StartsWith("not an image", e.Reason);
        Assert.InRange(read, 1, 1 << 16);
    }

    private static long ReadBytesOfThisThread()
    {
        foreach (var line in File.ReadLines("/proc/thread-self/io"))
            if (line.StartsWith("rchar:", StringComparison.Ordinal)) return long.Parse(line[6..].Trim());
        throw new InvalidOperationException("/proc/thread-self/io has no rchar line");
    }

    [Fact]
    public void TheSizeLimitIsConfigurable()
    {
        var g = Path.Combine(Fixtures.Images, "grace_hopper.jpg");
        long size = new FileInfo(g).Length;
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(g, new DecodeOptions { MaxFileBytes = size - 1 }));
        Assert.Contains($"the limit is {size - 1} bytes", e.Reason);
        Assert.Equal(512, ImageDecoder.Decode(g, new DecodeOptions { MaxFileBytes = size }).Width);
        var source = ImageSource.FromPaths([g]);
        source.DecodeOptions = source.DecodeOptions with { MaxFileBytes = 1000 };
        Assert.False(source.TryLoad(source.Items[0], out _));
        Assert.Contains("file too large", source.Skipped[0].Reason);
    }

    [Fact]
    public void RegularFilesBehindSymbolicLinksAreStillRead()
    {
        string dir = Fixtures.TempDir();
        File.CreateSymbolicLink(Path.Combine(dir, "link.jpg"), Path.Combine(Fixtures.Images, "grace_hopper.jpg"));
        Assert.Equal(600, ImageDecoder.Decode(Path.Combine(dir, "link.jpg")).Height);
    }

    [Fact]
    public void VegaEmbedReportsThemAndFinishes()
    {
        string dir = BadFolder();
        var run = TinyClip.Vega(["embed", "--model", Path.Combine(Fixtures.Onnx, "hf"), "--images", dir], Guard);
        Assert.False(run.TimedOut, run.ToString());
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("2 embeddings", run.StdOut);
        Assert.Contains("named pipe (FIFO)", run.FlatOut);
        Assert.Contains("character device", run.FlatOut);
    }
}

/// <summary>The other readers of user files refuse FIFOs and devices too, with their documented exception, without blocking.</summary>
public sealed class SpecialFileTests
{
    public static TheoryData<string> Readers => new() { "csv", "templates", "idx", "idx-labels", "npy", "descriptions", "classifier" };

    [Theory]
    [MemberData(nameof(Readers))]
    public async Task AFifoOrALinkToDevZeroIsRefusedWithoutBlocking(string reader)
    {
        foreach (bool fifo in new[] { true, false })
        {
            string dir = Fixtures.TempDir();
            string name = reader switch
            {
                "csv" => "m.csv",
                "templates" => "t.txt",
                "idx" => "x-idx3-ubyte",
                "idx-labels" => "x-idx1-ubyte",
                "npy" => "w.npy",
                "descriptions" => "d.json",
                _ => "classifier.json",
            };
            string path = Path.Combine(dir, name);
            if (fifo) ImageFileTests.MakeFifo(path);
            else File.CreateSymbolicLink(path, "/dev/zero");
            Action read = reader switch
            {
                "csv" => () => ImageSource.FromCsv(path),
                "templates" => () => Vega.MLNet.Text.PromptTemplates.FromFile(path),
                "idx" => () => ImageSource.FromIdx(path),
                "idx-labels" => () => ImageSource.FromIdx(TinyClip.Idx(2), path),
                "npy" => () => Vega.MLNet.Embedding.Npy.ReadFloat32(path),
                "descriptions" => () => Vega.MLNet.Prompting.Aape.ClassDescriptions.Load(path, ["a", "b"]),
                _ => () => Vega.MLNet.Prompting.PartialLabel.TunedClassifier.Load(dir),
            };
            var run = Task.Run(read);
            Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))) == run, $"{reader} hung on a {(fifo ? "FIFO" : "link to /dev/zero")}");
            var e = await Assert.ThrowsAsync<InvalidDataException>(() => run);
            Assert.Contains(fifo ? "named pipe (FIFO)" : "character device", e.Message);
            Assert.Contains(path, e.Message);
        }
    }
}
