using System.Text;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>Issue 17 item 5: the class file format (comments, blank lines, trimming, duplicates ignoring case) and its errors.</summary>
public sealed class ClassFileTests
{
    private static string Write(string text) => WriteBytes(Encoding.UTF8.GetBytes(text));

    private static string WriteBytes(byte[] bytes)
    {
        string path = Path.Combine(Fixtures.TempDir(), "classes.txt");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void CommentsBlankLinesAndSurroundingSpacesAreNotClasses()
    {
        string path = Write("# animals of the farm\n\n  cat \r\n\tdog\n   # a comment after spaces\nguinea pig\n\n");
        Assert.Equal(["cat", "dog", "guinea pig"], PromptTemplates.ReadClassNames(path));
        Assert.Equal(["a", "b"], PromptTemplates.ReadClassNames(WriteBytes([0xEF, 0xBB, 0xBF, (byte)'a', (byte)'\n', (byte)'b'])));
    }

    [Theory]
    [InlineData("Cat\ndog\ncat\n", 1, 3)]
    [InlineData("# x\nice  cream\nice cream\n", 2, 3)]
    [InlineData("dog\ndog\n", 1, 2)]
    [InlineData("a\nÉCLAIR\n\néclair\n", 2, 4)]
    public void NamesThatAreTheSameClassForClipAreAnErrorNamingBothLines(string text, int first, int second)
    {
        string path = Write(text);
        var e = Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"line {first} ", e.Message);
        Assert.Contains($"line {second} ", e.Message);
    }

    [Fact]
    public void OtherBadFilesAreErrorsNamingTheFileAndLine()
    {
        var e = Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(Write("# only comments\n\n")));
        Assert.Contains("holds no class name", e.Message);
        e = Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(Write("cat\ndo\u0007g\n")));
        Assert.Contains("Line 2", e.Message);
        Assert.Contains("U+0007", e.Message);
        e = Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(WriteBytes([(byte)'a', (byte)'\n', 0xC3, 0x28])));
        Assert.Contains("not UTF-8 text (invalid bytes on line 2)", e.Message);
        e = Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(Write(string.Concat(Enumerable.Range(0, PromptTemplates.MaxClasses + 1).Select(i => $"c{i}\n")))));
        Assert.Contains($"more than {PromptTemplates.MaxClasses} classes", e.Message);
        Assert.Throws<FileNotFoundException>(() => PromptTemplates.ReadClassNames(Path.Combine(Fixtures.TempDir(), "missing.txt")));
    }

    [Fact]
    public async Task AFifoOrADeviceIsRefusedWithoutBlocking()
    {
        string dir = Fixtures.TempDir();
        string fifo = Path.Combine(dir, "classes.txt");
        ImageFileTests.MakeFifo(fifo);
        var run = Task.Run(() => PromptTemplates.ReadClassNames(fifo));
        Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))) == run, "reading a FIFO as a class file hung");
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => run);
        Assert.Contains("named pipe", e.Message);
        string zero = Path.Combine(dir, "zero.txt");
        File.CreateSymbolicLink(zero, "/dev/zero");
        Assert.Contains("character device", Assert.Throws<InvalidDataException>(() => PromptTemplates.ReadClassNames(zero)).Message);
    }

    [Fact]
    public void TheShippedFashionMnistClassFileIsTheDatasetsLabelOrder()
    {
        string path = Path.Combine(Fixtures.RepositoryRoot, "data", "classes", "fashion-mnist.txt");
        Assert.Equal(Vega.MLNet.Imaging.ImageSource.FashionMnistClassNames, PromptTemplates.ReadClassNames(path));
    }

    [Fact]
    public void ListsFromCodeFollowTheSameRule()
    {
        var e = Assert.Throws<ArgumentException>(() => PromptTemplates.ValidateClassNames(["Cat", "dog", "cat"]));
        Assert.Contains("\"Cat\" (class 1) and \"cat\" (class 3)", e.Message);
        Assert.Throws<ArgumentException>(() => PromptTemplates.ValidateClassNames(["a\nb"]));
        PromptTemplates.ValidateClassNames(["cat", "cats"]);
    }

    [Fact]
    public void VegaRankRefusesADuplicateClassFileWithOneLine()
    {
        string classes = Write("cat\n# comment\nCat\n");
        var run = TinyClip.Vega(["rank", "--models", TinyClip.Create(), "--images", TinyClip.Idx(4), "--classes", classes]);
        Assert.True(run.ExitCode == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.Contains("line 1 \"cat\" and line 3 \"Cat\"", line);
    }
}
