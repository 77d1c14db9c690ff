using System.Diagnostics;
using System.Text;
using Vega.MLNet.Imaging;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Issue 17 items 3, 4, 7, 8 and 11 through the real <c>vega</c> executable: bad arguments and outputs are found before
/// the work starts and reported as one line (exit code 2) naming the option or file and the fix, never a stack trace.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CliTests
{
    private static string Classes(params string[] names)
    {
        string path = Path.Combine(Fixtures.TempDir(), "classes.txt");
        File.WriteAllText(path, string.Join('\n', names) + "\n");
        return path;
    }

    /// <summary>Exit code 2, exactly one line on stderr containing every fragment, no stack trace anywhere.</summary>
    private static string AssertUserError(TinyClip.CliRun run, params string[] fragments)
    {
        Assert.False(run.TimedOut, run.ToString());
        Assert.True(run.ExitCode == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("vega: error: ", line);
        foreach (var f in fragments) Assert.Contains(f, line);
        Assert.DoesNotContain("   at ", run.StdErr + run.StdOut);
        Assert.DoesNotContain("Exception", line);
        return line;
    }

    private static string NoCacheFiles(string cache) =>
        Directory.Exists(cache) && Directory.EnumerateFiles(cache, "*.vemb", SearchOption.AllDirectories).Any() ? "the work started" : "";

    [Fact]
    public void OutNamingAFolderOrAMissingFolderIsReportedBeforeTheWork()
    {
        string model = TinyClip.Create(), idx = TinyClip.Idx(50), cache = Path.Combine(Fixtures.TempDir(), "cache");
        string dir = Fixtures.TempDir();
        AssertUserError(TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", cache, "--out", dir]), "--out", "is a folder", dir);
        string missing = Path.Combine(dir, "no", "such", "e.npy");
        AssertUserError(TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", cache, "--out", missing]), "--out", "does not exist", "mkdir -p");
        Assert.Equal("", NoCacheFiles(cache));
    }

    [Fact]
    public void OutputsInReadOnlyPlacesAreReportedBeforeTheWork()
    {
        string model = TinyClip.Create(), idx = TinyClip.Idx(50);
        string ro = Fixtures.TempDir();
        File.SetUnixFileMode(ro, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        try
        {
            string cache = Path.Combine(Fixtures.TempDir(), "cache");
            AssertUserError(TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", cache, "--out", Path.Combine(ro, "e.npy")], dropFileCapabilities: true),
                "--out", "cannot write in", ro);
            AssertUserError(TinyClip.Vega(["rank", "--models", model, "--images", idx, "--classes", Classes("a", "b"), "--cache", cache, "--report", Path.Combine(ro, "r.html")], dropFileCapabilities: true),
                "--report", "cannot write in");
            AssertUserError(TinyClip.Vega(["tune", "--model", model, "--train", idx, "--labels", TinyClip.IdxLabels(new byte[50]), "--classes", Classes("a", "b"),
                "--method", "zeroshot", "--cache", cache, "--out", Path.Combine(ro, "clf")], dropFileCapabilities: true), "--out", "cannot create the folder");
            AssertUserError(TinyClip.Vega(["embed", "--model", model, "--images", idx, "--cache", Path.Combine(ro, "new-cache")], dropFileCapabilities: true),
                "--cache", "cannot create the cache folder");
            Assert.Equal("", NoCacheFiles(cache));
        }
        finally
        {
            File.SetUnixFileMode(ro, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void AReadOnlyCacheServesWhatItHoldsAndSaysNewRowsAreNotSaved()
    {
        string model = TinyClip.Create(), dir = Fixtures.TempDir();
        string cache = Path.Combine(dir, "cache");
        string first = TinyClip.Idx(40, seed: 1, directory: Fixtures.TempDir()), more = TinyClip.Idx(60, seed: 1, directory: Fixtures.TempDir());
        var fill = TinyClip.Vega(["embed", "--model", model, "--images", first, "--cache", cache]);
        Assert.True(fill.ExitCode == 0, fill.ToString());
        var mode = File.GetUnixFileMode(cache);
        File.SetUnixFileMode(cache, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            var run = TinyClip.Vega(["embed", "--model", model, "--images", more, "--cache", cache, "--out", Path.Combine(dir, "e.npy")], dropFileCapabilities: true);
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains("(20 computed, 40 from cache", run.FlatOut);
            Assert.Contains("read-only", run.FlatOut);
            Assert.Contains("20 new one(s) were not saved", run.FlatOut);
            Assert.True(File.Exists(Path.Combine(dir, "e.npy")));
        }
        finally
        {
            File.SetUnixFileMode(cache, mode);
        }
    }

    [Theory]
    [InlineData("config.json", """{"logit_scale": "4.0"}""", "logit_scale")]
    [InlineData("config.json", """{"text_config": {"pad_token_id": [1]}}""", "text_config.pad_token_id")]
    [InlineData("preprocessor_config.json", """{"image_mean": "0.5"}""", "image_mean")]
    [InlineData("preprocessor_config.json", """{"crop_size": {"height": "8"}}""", "crop_size.height")]
    [InlineData("clip.json", """{"image_size": "8"}""", "image_size")]
    public void WrongJsonTypesAreOneLineNamingFileAndField(string file, string json, string field)
    {
        string model = TinyClip.Create();
        File.WriteAllText(Path.Combine(model, file), json);
        var run = TinyClip.Vega(["embed", "--model", model, "--images", TinyClip.Idx(5)]);
        AssertUserError(run, file, $"\"{field}\"");
    }

    [Theory]
    [InlineData("--batch", "14267", "--batch 14267: must be between 1 and 4096")]
    [InlineData("--batch", "0", "--batch 0: must be between 1 and 4096")]
    [InlineData("--threads", "-1", "--threads -1: must be between 0 and 1024")]
    [InlineData("--ort-threads", "100000", "--ort-threads 100000")]
    public void NumbersOutOfRangeAreOneLineNamingTheOption(string option, string value, string message)
    {
        var run = TinyClip.Vega(["embed", "--model", TinyClip.Create(), "--images", TinyClip.Idx(5), option, value]);
        AssertUserError(run, message);
    }

    [Fact]
    public void ABatchTooLargeForTheModelsInputIsReportedBeforeTheWork()
    {
        // 4096 passes the option's range; for a 512 × 512 tower the batch tensor would not fit one array.
        string model = TinyClip.Create(size: 512, dim: 2);
        var run = TinyClip.Vega(["embed", "--model", model, "--images", TinyClip.Idx(5), "--batch", "4096"]);
        AssertUserError(run, "--batch 4096", "use at most");
    }

    [Theory]
    [InlineData("rank", "--report")]
    [InlineData("rank", "--json")]
    [InlineData("evaluate", "--json")]
    [InlineData("tune", "--out")]
    [InlineData("predict", "--out")]
    [InlineData("experiment", "--out")]
    [InlineData("aape-predict", "--out")]
    [InlineData("aape-eval", "--out")]
    [InlineData("aape-synthetic", "--out")]
    public void EveryCommandChecksItsOutputsFirst(string command, string option)
    {
        string model = TinyClip.Create(), idx = TinyClip.Idx(8), labels = TinyClip.IdxLabels([0, 1, 0, 1, 0, 1, 0, 1]), classes = Classes("a", "b");
        string file = Path.Combine(Fixtures.TempDir(), "a-file");
        File.WriteAllText(file, "x");
        string folder = Fixtures.TempDir();
        string cache = Path.Combine(Fixtures.TempDir(), "cache");
        // Outputs that are files get a folder; outputs that are folders get a file.
        string bad = command == "tune" ? file : folder;
        string[] args = command switch
        {
            "rank" or "evaluate" => [command, "--models", model, "--images", idx, "--labels", labels, "--classes", classes, "--cache", cache, option, bad],
            "tune" => ["tune", "--model", model, "--train", idx, "--labels", labels, "--classes", classes, "--method", "zeroshot", "--cache", cache, "--out", bad],
            "predict" => ["predict", "--classifier", folder, "--model", model, "--images", idx, "--cache", cache, "--out", bad],
            "experiment" => ["experiment", "candidate-labels", "--models", model, "--cache", cache, "--out", bad],
            "aape-predict" => ["aape", "predict", "--head", folder, "--model", model, "--images", idx, "--cache", cache, "--out", bad],
            "aape-eval" => ["aape", "eval", "--model", model, "--images", idx, "--labels", labels, "--test-images", idx, "--test-labels", labels,
                "--descriptions", classes, "--cache", cache, "--out", bad],
            _ => ["aape", "synthetic", "--out", bad],
        };
        var run = TinyClip.Vega(args);
        if (command == "predict" || command == "aape-predict")
        {
            // The classifier / head folder is checked first (it is empty here): still one line, before any work.
            Assert.True(run.ExitCode == 2, run.ToString());
            Assert.Single(run.ErrorLines);
        }
        else AssertUserError(run, option, "is a f");
        Assert.Equal("", NoCacheFiles(cache));
    }

    [Fact]
    public void ErrorsFromOtherCommandsAreOneLineToo()
    {
        AssertUserError(TinyClip.Vega(["info", "--model", Path.Combine(Fixtures.TempDir(), "nope")]), "--model", "no such model folder");
        AssertUserError(TinyClip.Vega(["demo", "--quick", "--out", Path.Combine(Fixtures.TempDir(), "d"), "--idx-dir", Path.Combine(Fixtures.TempDir(), "none")]), "--idx-dir");
        AssertUserError(TinyClip.Vega(["rank", "--models", TinyClip.Create(), "--images", TinyClip.Idx(4), "--classes", Classes("a", "b"), "--metric", "best"]), "--metric 'best'", "vega");
        AssertUserError(TinyClip.Vega(["tune", "--model", TinyClip.Create(), "--train", TinyClip.Idx(4), "--classes", Classes("a", "b"), "--q", "1.5", "--out", Fixtures.TempDir()]), "--q 1.5");
        AssertUserError(TinyClip.Vega(["aape", "synthetic", "--shots", "1,x", "--out", Path.Combine(Fixtures.TempDir(), "s.md")]), "--shots '1,x'");
    }

    // ------------------------------------------------------------------ item 4

    [Fact]
    public void PredictRefusesAClassifierTrainedForAnotherModelOfTheSameWidth()
    {
        string a = TinyClip.Create(seed: 1), b = TinyClip.Create(seed: 2);
        string idx = TinyClip.Idx(12), labels = TinyClip.IdxLabels([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]), classes = Classes("cat", "dog", "bird");
        string clf = Path.Combine(Fixtures.TempDir(), "clf"), cache = Path.Combine(Fixtures.TempDir(), "cache");
        var tune = TinyClip.Vega(["tune", "--model", a, "--train", idx, "--labels", labels, "--classes", classes, "--method", "zeroshot", "--cache", cache, "--out", clf]);
        Assert.True(tune.ExitCode == 0, tune.ToString());
        var wrong = TinyClip.Vega(["predict", "--classifier", clf, "--model", b, "--images", idx, "--cache", cache]);
        string line = AssertUserError(wrong, Path.GetFileName(a), Path.GetFileName(b), "content hash");
        Assert.Contains(clf, line);
        var right = TinyClip.Vega(["eval", "--classifier", clf, "--model", a, "--images", idx, "--labels", labels, "--cache", cache]);
        Assert.True(right.ExitCode == 0, right.ToString());
        Assert.Contains("accuracy", right.FlatOut);
        // The hash is remembered in the cache folder, keyed by the files' stamps.
        Assert.Contains(Path.Combine(a, "vision_model.onnx"), File.ReadAllText(Path.Combine(cache, "model-hashes.tsv")));
    }

    // ------------------------------------------------------------------ item 7

    [Fact]
    public void ANewlineInAFileNameCannotShiftTheIdsAgainstTheEmbeddings()
    {
        string dir = Fixtures.TempDir();
        string png = Path.Combine(Fixtures.Images, "dots.png");
        File.Copy(png, Path.Combine(dir, "a.png"));
        File.Copy(png, Path.Combine(dir, "b\nc.png"));
        File.Copy(png, Path.Combine(dir, "d\u2028e.png"));
        File.Copy(png, Path.Combine(dir, "z.png"));
        string output = Path.Combine(Fixtures.TempDir(), "e.npy");
        var run = TinyClip.Vega(["embed", "--model", TinyClip.Create(), "--images", dir, "--out", output]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var ids = File.ReadAllText(output + ".ids.txt");
        Assert.Equal("a.png\nz.png\n", ids);
        Assert.Equal(2, ReadNpyRows(output));
        Assert.Contains("U+000A", run.FlatOut);
        Assert.Contains("U+2028", run.FlatOut);
    }

    private static int ReadNpyRows(string path) => Vega.MLNet.Embedding.Npy.ReadFloat32(path).Rows;

    [Fact]
    public void CsvManifestsAndPathListsRefuseLineBreakingNamesToo()
    {
        string dir = Fixtures.TempDir();
        string csv = Path.Combine(dir, "m.csv");
        File.WriteAllText(csv, "path,label\na.png,cat\nb\u000bc.png,cat\nd.png,do\u0085g\n", new UTF8Encoding(false));
        var source = ImageSource.FromCsv(csv);
        Assert.Equal(["a.png"], source.Items.Select(i => i.Id));
        Assert.Contains("U+000B", source.Skipped[0].Reason);
        Assert.Contains("label field", source.Skipped[1].Reason);
        var paths = ImageSource.FromPaths(["x.png", "y\r.png"]);
        Assert.Single(paths.Items);
        Assert.Contains("U+000D", paths.Skipped[0].Reason);
    }

    // ------------------------------------------------------------------ item 8

    [Fact]
    public void IdxLabelsAreNamedByTheClassListOrAreNumbers()
    {
        string idx = TinyClip.Idx(4), labels = TinyClip.IdxLabels([2, 0, 1, 2]);
        Assert.Equal(["bird", "cat", "dog", "bird"], ImageSource.FromIdx(idx, labels, ["cat", "dog", "bird"]).Items.Select(i => i.Label));
        Assert.Equal(["2", "0", "1", "2"], ImageSource.FromIdx(idx, labels).Items.Select(i => i.Label));
        var e = Assert.Throws<InvalidDataException>(() => ImageSource.FromIdx(idx, labels, ["cat", "dog"]));
        Assert.Contains("label 2", e.Message);
        Assert.Contains("only 2 classes", e.Message);
    }

    [Fact]
    public void VegaTuneNamesIdxLabelsWithItsClassFile()
    {
        // Before, IDX labels were always Fashion-MNIST's names: "T-shirt/top" is not one of cat/dog/bird.
        string idx = TinyClip.Idx(12), labels = TinyClip.IdxLabels([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        var run = TinyClip.Vega(["tune", "--model", TinyClip.Create(), "--train", idx, "--labels", labels, "--classes", Classes("cat", "dog", "bird"),
            "--method", "lp", "--epochs", "1", "--shots", "2", "--cache", Path.Combine(Fixtures.TempDir(), "c"), "--out", Path.Combine(Fixtures.TempDir(), "clf")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var tooFew = TinyClip.Vega(["tune", "--model", TinyClip.Create(), "--train", idx, "--labels", labels, "--classes", Classes("cat", "dog"),
            "--method", "lp", "--out", Path.Combine(Fixtures.TempDir(), "clf")]);
        AssertUserError(tooFew, "label 2", "only 2 classes");
    }

    // ------------------------------------------------------------------ item 11

    [Fact]
    public void RankTakesExifAndTruncate()
    {
        string dir = Fixtures.TempDir();
        File.Copy(Path.Combine(Fixtures.Images, "grace_hopper_exif6.jpg"), Path.Combine(dir, "a.jpg"));
        File.Copy(Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(dir, "b.png"));
        var run = TinyClip.Vega(["rank", "--models", TinyClip.Create(), "--images", dir, "--classes", Classes("cat", "dog"), "--exif", "--truncate",
            "--cache", Path.Combine(Fixtures.TempDir(), "c")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("chosen:", run.FlatOut);
    }

    [Fact]
    public void CtrlCCancelsCleanlyAndShowsTheCursorAgain()
    {
        // A real terminal (script(1) gives vega a pseudo-terminal); ^C is typed into it once the progress bar runs.
        string model = ClipModelTestsLink.BenchVitB32();
        string idx = TinyClip.Idx(400, 28, 28);
        string vega = TinyClip.Executable;
        var start = new ProcessStartInfo("script", ["-qfec", $"'{vega}' embed --model '{model}' --images '{idx}' --batch 4", "/dev/null"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["TERM"] = "xterm-256color";
        start.Environment["VEGA_DEBUG"] = "1";
        using var p = Process.Start(start)!;
        var output = new StringBuilder();
        var gate = new object();
        p.OutputDataReceived += (_, e) => { lock (gate) output.Append(e.Data).Append('\n'); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline && !p.HasExited)
        {
            lock (gate) if (output.ToString().Contains("embedding 400 images")) break;
            Thread.Sleep(50);
        }
        Assert.False(p.HasExited, "the run ended before it could be interrupted:\n" + output);
        Thread.Sleep(2000); // into the embedding
        p.StandardInput.Write('\u0003');
        p.StandardInput.Flush();
        bool exited = p.WaitForExit(60_000);
        if (!exited) p.Kill(entireProcessTree: true);
        p.WaitForExit();
        Assert.True(exited, "vega did not stop after Ctrl-C:\n" + output);
        string text;
        lock (gate) text = output.ToString();
        Assert.True(p.ExitCode == 130, $"exit {p.ExitCode}:\n{text}");
        Assert.Contains("vega: cancelled.", text);
        int hide = text.LastIndexOf("\u001b[?25l", StringComparison.Ordinal), show = text.LastIndexOf("\u001b[?25h", StringComparison.Ordinal);
        Assert.True(hide >= 0, "the progress display never hid the cursor, so this test cannot see the fix");
        Assert.True(show > hide, "the cursor is left hidden");
    }
}

/// <summary>Model folders made of links to the shared fixtures.</summary>
internal static class ClipModelTestsLink
{
    public static string BenchVitB32() => Models.ClipModelTests.LinkFolder(
        ("vision_model.onnx", Path.Combine(Fixtures.Shared, "bench", "hf-vit-b32", "vision_model.onnx")),
        ("text_model.onnx", Path.Combine(Fixtures.Shared, "bench", "hf-vit-b32", "text_model.onnx")),
        ("vocab.json", Path.Combine(Fixtures.Tokenizer, "vocab.json")), ("merges.txt", Path.Combine(Fixtures.Tokenizer, "merges.txt")));
}
