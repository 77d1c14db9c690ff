using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Prompting.Aape;

/// <summary>Reading, validating and embedding class descriptions; the description cache; the project's
/// Fashion-MNIST descriptions.</summary>
public sealed class ClassDescriptionsTests
{
    private static readonly string[] Classes = ["T-shirt/top", "Trouser", "Bag"];

    private static string Json(string text)
    {
        string path = Path.Combine(Fixtures.TempDir(), "descriptions.json");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void AValidFileIsMatchedToTheClassListAndExtraClassesAreReported()
    {
        string path = Json("""
            {
              // comments are allowed
              "Bag": ["a handbag with a handle", "  a tote  "],
              "t-shirt/top": ["a short-sleeved top"],
              "Trouser": ["long trousers"],
              "Sock": ["a sock"]
            }
            """);
        var d = ClassDescriptions.Load(path, Classes);
        Assert.Equal(Classes, d.ClassNames);
        Assert.Equal(["a short-sleeved top"], d.Sentences[0]); // matched case-insensitively
        Assert.Equal(["a handbag with a handle", "a tote"], d.Sentences[2]); // trimmed
        Assert.Equal(["Sock"], d.IgnoredClasses);
        Assert.Equal(4, d.Count);
        Assert.Equal(path, d.Source);

        // The hash covers the class names and the sentences, in order.
        var same = ClassDescriptions.Create(new Dictionary<string, IReadOnlyList<string>>
        {
            ["T-shirt/top"] = ["a short-sleeved top"], ["Trouser"] = ["long trousers"], ["Bag"] = ["a handbag with a handle", "a tote"],
        }, Classes);
        Assert.Equal(d.ContentHash, same.ContentHash);
        var changed = ClassDescriptions.Create(new Dictionary<string, IReadOnlyList<string>>
        {
            ["T-shirt/top"] = ["a short-sleeved top"], ["Trouser"] = ["long trousers"], ["Bag"] = ["a tote", "a handbag with a handle"],
        }, Classes);
        Assert.NotEqual(d.ContentHash, changed.ContentHash);
    }

    public static TheoryData<string, string[]> BadFiles() => new()
    {
        { "{\n  \"Bag\": [\"a\", \"b\"\n  \"Trouser\": [\"c\"]\n}", ["not valid JSON at line 3, position 3"] },
        { "{\"Bag\": [\"a\",]}", ["not valid JSON at line 1, position 14", "trailing comma"] },
        { "{\"Bag\": [\"a\"]", ["not valid JSON at line 1", "should be closed"] },
        { "", ["is empty"] },
        { "[\"Bag\"]", ["must hold a JSON object", "starts with a list"] },
        { "{\"Bag\": \"a handbag\"}", ["class \"Bag\"", "line 1, position 2", "maps to a string"] },
        { "{\"Bag\": [\"a\", 3]}", ["entry 2 of class \"Bag\"", "is a number"] },
        { "{\"Bag\": [\"a\", \"   \"]}", ["entry 2 of class \"Bag\"", "blank"] },
        { "{\"Bag\": [\"a\"],\n \"Bag\": [\"b\"]}", ["names class \"Bag\" twice", "line 1, position 2", "line 2, position 2"] },
        { "{\"Bag\": [], \"Trouser\": [\"x\"], \"T-shirt/top\": [\"y\"]}", ["Class \"Bag\" has no descriptions", "an empty list"] },
        { "{\"Bag\": [\"a\"]}", ["no entry for classes \"T-shirt/top\", \"Trouser\"", "entries found: \"Bag\""] },
        { "{\"Bag\": [\"a\"], \"bag\": [\"b\"], \"Trouser\": [\"x\"], \"T-shirt/top\": [\"y\"]}", [] }, // exact key wins: valid
        { "{\"BAG\": [\"a\"], \"bag\": [\"b\"], \"Trouser\": [\"x\"], \"T-shirt/top\": [\"y\"]}", ["several entries", "\"BAG\"", "\"bag\""] },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void MalformedFilesAreClearErrorsNamingTheFileAndTheClass(string text, string[] expected)
    {
        string path = Json(text);
        if (expected.Length == 0)
        {
            Assert.Equal(["a"], ClassDescriptions.Load(path, Classes).Sentences[2]);
            return;
        }
        var e = Assert.Throws<InvalidDataException>(() => ClassDescriptions.Load(path, Classes));
        Assert.Contains(path, e.Message);
        foreach (var s in expected) Assert.Contains(s, e.Message);
    }

    [Fact]
    public void AFolderOfTextFilesWorksWithFileSafeClassNames()
    {
        string dir = Fixtures.TempDir();
        File.WriteAllLines(Path.Combine(dir, "T-shirt_top.txt"), ["# one sentence per line", "a short-sleeved top", "", "a tee"]);
        File.WriteAllLines(Path.Combine(dir, "Trouser.txt"), ["long trousers"]);
        File.WriteAllLines(Path.Combine(dir, "bag.txt"), ["a handbag"]);
        var d = ClassDescriptions.Load(dir, Classes);
        Assert.Equal(["a short-sleeved top", "a tee"], d.Sentences[0]);
        Assert.Equal(["a handbag"], d.Sentences[2]);

        File.WriteAllLines(Path.Combine(dir, "bag.txt"), ["# nothing but a comment", "   "]);
        var e = Assert.Throws<InvalidDataException>(() => ClassDescriptions.Load(dir, Classes));
        Assert.Contains("Class \"Bag\" has no descriptions", e.Message);
        Assert.Contains(Path.Combine(dir, "bag.txt"), e.Message);

        File.Delete(Path.Combine(dir, "bag.txt"));
        e = Assert.Throws<InvalidDataException>(() => ClassDescriptions.Load(dir, Classes));
        Assert.Contains("\"Bag\"", e.Message);
        Assert.Contains("'bag.txt'", e.Message);

        Assert.Throws<FileNotFoundException>(() => ClassDescriptions.Load(Path.Combine(dir, "nope.json"), Classes));
        Assert.Contains("no .txt file", Assert.Throws<InvalidDataException>(() => ClassDescriptions.Load(Fixtures.TempDir(), Classes)).Message);
    }

    [Fact]
    public void TheProjectFashionMnistDescriptionsCoverEveryClass()
    {
        string path = Path.Combine(Fixtures.RepositoryRoot, "data", "descriptions", "fashion-mnist.json");
        var d = ClassDescriptions.Load(path, ImageSource.FashionMnistClassNames);
        Assert.Empty(d.IgnoredClasses);
        foreach (var sentences in d.Sentences)
        {
            Assert.InRange(sentences.Count, 15, 25);
            Assert.Equal(sentences.Count, sentences.Distinct().Count());
        }
        Assert.Equal(d.Count, d.Sentences.SelectMany(s => s).Distinct().Count());
    }

    [Fact]
    public void EmbeddingsAreCachedKeyedByModelAndDescriptions()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var d = ClassDescriptions.Create(new Dictionary<string, IReadOnlyList<string>>
        {
            ["T-shirt/top"] = ["a short-sleeved top", "a tee"], ["Trouser"] = ["long trousers"], ["Bag"] = ["a handbag", "a tote", "a backpack"],
        }, Classes);
        string cache = Fixtures.TempDir();
        var first = d.Embed(model, cache);
        Assert.False(first.FromCache);
        Assert.NotNull(first.CacheFile);
        // Oracle: the text tower itself.
        var direct = model.EmbedTexts(d.Sentences.SelectMany(s => s).ToList());
        Assert.Equal(direct.Data[..(2 * model.EmbeddingDimension)], first.For(0).Data);
        Assert.Equal(direct.Data[(3 * model.EmbeddingDimension)..], first.For(2).Data);

        var second = d.Embed(model, cache);
        Assert.True(second.FromCache);
        Assert.Equal(first.For(2).Data, second.For(2).Data);

        // The second run really reads the file: a value planted in it comes back.
        var (data, rows, cols) = Npy.ReadFloat32(first.CacheFile!);
        data[0] = 42f;
        Npy.WriteFloat32(first.CacheFile!, data, rows, cols);
        Assert.Equal(42f, d.Embed(model, cache).For(0).Data[0]);

        // Other descriptions are another entry; a damaged entry is recomputed.
        var other = ClassDescriptions.Create(new Dictionary<string, IReadOnlyList<string>>
        {
            ["T-shirt/top"] = ["a short-sleeved top"], ["Trouser"] = ["long trousers"], ["Bag"] = ["a handbag"],
        }, Classes);
        Assert.False(other.Embed(model, cache).FromCache);
        Assert.True(other.Embed(model, cache).FromCache);
        File.WriteAllBytes(first.CacheFile!, [1, 2, 3]);
        var recomputed = d.Embed(model, cache);
        Assert.False(recomputed.FromCache);
        Assert.Equal(first.For(1).Data, recomputed.For(1).Data);
    }
}
