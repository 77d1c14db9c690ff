using System.Collections.Concurrent;
using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Imaging;

public sealed class ImageSourceTests
{
    private static readonly string[] BadNames = Goldens.BadNames();

    [Fact]
    public void FolderListsEveryImageFileInOrdinalOrderOfTheRelativePaths()
    {
        var source = ImageSource.FromFolder(Fixtures.Images);
        // The expected listing from index.json (good + bad names), sorted here.
        var expected = Goldens.Images.Select(g => g.Name).Concat(BadNames).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, source.Items.Select(i => i.Id));
        Assert.Equal(Enumerable.Range(0, expected.Length), source.Items.Select(i => i.Index));
        Assert.All(source.Items, i => Assert.Equal(Path.Combine(Fixtures.Images, i.Id), i.Path));
        // Deterministic: a second listing is identical.
        Assert.Equal(source.Items, ImageSource.FromFolder(Fixtures.Images).Items);
        // The other files are not left out silently: one entry per extension (issue 17 item 11).
        Assert.Equal(["12 files *.f32 (e.g. golden/Minduka_Present_Blue_Pack.f32)", "24 files *.u8 (e.g. golden/Minduka_Present_Blue_Pack.resized.u8)", "index.json"],
            source.Skipped.Select(s => s.Id));
        Assert.All(source.Skipped, s => Assert.Null(s.Index));
        Assert.Equal("not listed: the extension '.json' is not one of .bmp .gif .jpeg .jpg .png .tif .tiff .webp", source.Skipped[2].Reason);
    }

    [Fact]
    public void FolderWithBadFilesSkipsThemWithReasonsAndLoadsTheGoodOnesInParallel()
    {
        var source = ImageSource.FromFolder(Fixtures.Images);
        var loaded = new ConcurrentDictionary<string, byte[]>();
        Parallel.ForEach(source.Items, new ParallelOptions { MaxDegreeOfParallelism = 4 }, () => new RgbImage(), (item, _, buffer) =>
        {
            if (source.TryLoad(item, out var image, buffer)) loaded[item.Id] = image.Span.ToArray();
            return buffer;
        }, _ => { });

        Assert.Equal(Goldens.Images.Select(g => g.Name).Order(StringComparer.Ordinal), loaded.Keys.Order(StringComparer.Ordinal));
        foreach (var g in Goldens.Images) Assert.Equal(g.Rgb(), loaded[g.Name]);

        var skipped = source.Skipped.Where(s => s.Index is not null).ToList(); // the files that failed to load
        Assert.Equal(BadNames.Order(StringComparer.Ordinal), skipped.Select(s => s.Id));
        Assert.Equal(skipped.Select(s => s.Index).Order(), skipped.Select(s => s.Index)); // in item order
        var reasons = skipped.ToDictionary(s => s.Id, s => s.Reason);
        Assert.Equal("truncated JPEG (premature end of data)", reasons["bad/truncated_60pct.jpg"]);
        Assert.Equal("empty file", reasons["bad/empty.jpg"]);
        Assert.Equal("not an image (starts with 'This is ')", reasons["bad/not_an_image.jpg"]);
        Assert.Equal("PNG IHDR CRC error", reasons["bad/png_bad_ihdr_crc.png"]);
        Assert.Equal("corrupt PNG data (the compressed image data is broken or ends early)", reasons["bad/png_corrupt_idat.png"]);
        Assert.All(skipped, s => Assert.Equal(Path.Combine(Fixtures.Images, s.Id), s.Path));

        string report = source.SkippedReport();
        Assert.StartsWith("8 entries skipped from folder ", report); // 3 listing entries for the non-image files + 5 bad images
        Assert.Contains(Path.Combine(Fixtures.Images, "bad/empty.jpg") + ": empty file", report);
    }

    [Fact]
    public void FolderOptionsFilterByExtensionAndDepth()
    {
        var top = ImageSource.FromFolder(Fixtures.Images, recursive: false);
        Assert.Equal(Goldens.Images.Select(g => g.Name).Order(StringComparer.Ordinal), top.Items.Select(i => i.Id));
        var png = ImageSource.FromFolder(Fixtures.Images, extensions: ["PNG"]);
        Assert.Equal(9, png.Count);
        Assert.All(png.Items, i => Assert.EndsWith(".png", i.Id));
    }

    [Fact]
    public void FolderLabelsFromSubfoldersHiddenEntriesAndLinkLoops()
    {
        string root = Fixtures.TempDir();
        var src = Goldens.Get("tiny_7x5.png").File;
        Directory.CreateDirectory(Path.Combine(root, "cat"));
        Directory.CreateDirectory(Path.Combine(root, "dog", "puppies"));
        Directory.CreateDirectory(Path.Combine(root, ".cache"));
        File.Copy(src, Path.Combine(root, "cat", "b.png"));
        File.Copy(src, Path.Combine(root, "cat", "a.PNG"));
        File.Copy(src, Path.Combine(root, "dog", "puppies", "c.png"));
        File.Copy(src, Path.Combine(root, "top.png"));
        File.Copy(src, Path.Combine(root, ".cache", "hidden.png"));
        File.WriteAllText(Path.Combine(root, "notes.txt"), "not listed");
        Directory.CreateSymbolicLink(Path.Combine(root, "dog", "loop"), root); // must not recurse forever

        var source = ImageSource.FromFolder(root, labelsFromSubfolders: true);
        Assert.Equal(["cat/a.PNG", "cat/b.png", "dog/puppies/c.png", "top.png"], source.Items.Select(i => i.Id));
        Assert.Equal(["cat", "cat", "dog", null], source.Items.Select(i => i.Label));

        Assert.Throws<DirectoryNotFoundException>(() => ImageSource.FromFolder(Path.Combine(root, "missing")));
        var e = Assert.Throws<DirectoryNotFoundException>(() => ImageSource.FromFolder(Path.Combine(root, "top.png")));
        Assert.Contains("is a file, not a folder", e.Message);
    }

    [Fact]
    public void CsvManifestResolvesPathsAndReportsBadLinesByNumber()
    {
        string dir = Fixtures.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "img"));
        File.Copy(Goldens.Get("dots.png").File, Path.Combine(dir, "img", "dots.png"));
        File.Copy(Goldens.Get("flower_gray.jpg").File, Path.Combine(dir, "img", "flower, gray.jpg"));
        string csv = Path.Combine(dir, "manifest.csv");
        File.WriteAllLines(csv,
        [
            "path,label,candidates,notes",                                   // line 1
            "img/dots.png,dots,dots|stripes| plain ,x",                      // line 2
            "\"img/flower, gray.jpg\",\"a \"\"gray\"\" flower\",,",          // line 3
            "",                                                              // line 4 (blank, ignored)
            ",nolabel",                                                      // line 5: empty path
            "img/missing.jpg,gone",                                          // line 6: missing file
            $"{Goldens.Get("minus.png").File},minus",                        // line 7: absolute path
            "\"img/dots.png,broken",                                         // line 8: unterminated quote
            "img/dots.png,a,b,c,d",                                          // line 9: too many fields
            $"{Path.Combine(Fixtures.Images, "bad", "empty.jpg")},empty",    // line 10: bad image
        ]);
        var source = ImageSource.FromCsv(csv);

        Assert.Equal(["img/dots.png", "img/flower, gray.jpg", "img/missing.jpg", Goldens.Get("minus.png").File, Path.Combine(Fixtures.Images, "bad", "empty.jpg")],
            source.Items.Select(i => i.Id));
        Assert.Equal(["dots", "a \"gray\" flower", "gone", "minus", "empty"], source.Items.Select(i => i.Label));
        Assert.Equal(["dots", "stripes", "plain"], source.Items[0].Candidates);
        Assert.Null(source.Items[1].Candidates);
        Assert.Equal(Path.Combine(dir, "img", "dots.png"), source.Items[0].Path);

        // Listing problems name the line.
        Assert.Equal(
        [
            new SkippedItem(null, "manifest.csv line 5", null, "empty path"),
            new SkippedItem(null, "manifest.csv line 8", null, "unterminated quoted field (a quoted field cannot span lines)"),
            new SkippedItem(null, "manifest.csv line 9", null, "5 fields, the header has 4 (quote fields that contain commas)"),
        ], source.Skipped);

        var loaded = source.Items.Where(i => source.TryLoad(i, out _)).Select(i => i.Id).ToArray();
        Assert.Equal(["img/dots.png", "img/flower, gray.jpg", Goldens.Get("minus.png").File], loaded);
        Assert.Equal(Goldens.Get("flower_gray.jpg").Rgb(), source.Load(source.Items[1]).Span.ToArray());

        var skipped = source.Skipped;
        Assert.Equal(5, skipped.Count);
        Assert.Equal(new SkippedItem(2, "img/missing.jpg", Path.Combine(dir, "img", "missing.jpg"), "file not found (manifest.csv line 6)"), skipped[3]);
        Assert.Equal("empty file (manifest.csv line 10)", skipped[4].Reason);
    }

    [Fact]
    public void CsvWithoutAPathColumnOrMissingIsAClearError()
    {
        string dir = Fixtures.TempDir();
        string csv = Path.Combine(dir, "m.csv");
        File.WriteAllText(csv, "file,label\na.jpg,x\n");
        var e = Assert.Throws<InvalidDataException>(() => ImageSource.FromCsv(csv));
        Assert.Contains("m.csv line 1: the header row must name a 'path' column", e.Message);
        File.WriteAllText(csv, "\n\n");
        Assert.Contains("is empty", Assert.Throws<InvalidDataException>(() => ImageSource.FromCsv(csv)).Message);
        Assert.Throws<FileNotFoundException>(() => ImageSource.FromCsv(Path.Combine(dir, "none.csv")));
    }

    [Fact]
    public void PathListKeepsItsOrderAndReportsEmptyEntries()
    {
        var paths = new[] { Goldens.Get("minus.png").File, "", Goldens.Get("dots.png").File, Path.Combine(Fixtures.Images, "nope.png") };
        var source = ImageSource.FromPaths(paths);
        Assert.Equal([paths[0], paths[2], paths[3]], source.Items.Select(i => i.Id));
        Assert.Equal([new SkippedItem(null, "entry 2", null, "empty path")], source.Skipped);
        Assert.True(source.TryLoad(source.Items[1], out var dots));
        Assert.Equal(Goldens.Get("dots.png").Rgb(), dots.Span.ToArray());
        Assert.False(source.TryLoad(source.Items[2], out _));
        Assert.Equal("file not found", source.Skipped[^1].Reason);
        // Loading the same failing item again records it once.
        Assert.False(source.TryLoad(source.Items[2], out _));
        Assert.Equal(2, source.Skipped.Count);
    }

    [Fact]
    public void ItemsOfAnotherSourceAreRejected()
    {
        var a = ImageSource.FromPaths([Goldens.Get("minus.png").File]);
        var b = ImageSource.FromPaths([Goldens.Get("dots.png").File, Goldens.Get("minus.png").File]);
        Assert.Throws<ArgumentException>(() => a.Load(b.Items[1]));
    }

    [Fact]
    public void ExifOptionOfTheSourceApplies()
    {
        var source = ImageSource.FromPaths([Goldens.Get("grace_hopper_exif6.jpg").File]);
        Assert.Equal(200, source.Load(source.Items[0]).Width);
        source.DecodeOptions = new DecodeOptions { ApplyExifOrientation = true };
        Assert.Equal(150, source.Load(source.Items[0]).Width);
    }
}
