using System.Security.Cryptography;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>Issue 17 item 4: a model's identity is its content hash, remembered cheaply, and classifiers check it.</summary>
public sealed class ModelIdentityTests
{
    private static string Sha256Of(params string[] files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in files) sha.AppendData(File.ReadAllBytes(f));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    [Fact]
    public void TheContentHashIsRememberedByFileStampAndRecomputedWhenAFileChanges()
    {
        string dir = TinyClip.Create(seed: 1), cache = Fixtures.TempDir();
        string vision = Path.Combine(dir, "vision_model.onnx"), text = Path.Combine(dir, "text_model.onnx");
        string expected = Sha256Of(vision, text);
        using (var m = ClipModel.Load(dir, new ClipModelOptions { ContentHashCache = cache }))
            Assert.Equal(expected, m.ContentHash);
        string table = Path.Combine(cache, ModelHashCache.FileName);
        var line = Assert.Single(File.ReadAllLines(table));
        Assert.StartsWith(expected + "\t", line);

        // The remembered value is what a later load uses (a planted value shows it is not recomputed) ...
        string planted = new('a', 64);
        File.WriteAllText(table, planted + line[64..] + "\n");
        using (var m = ClipModel.Load(dir, new ClipModelOptions { ContentHashCache = cache }))
            Assert.Equal(planted, m.ContentHash);

        // ... until a file changes: another model's tower of the same size written over it gets a new stamp.
        string other = TinyClip.Create(seed: 2);
        File.Copy(Path.Combine(other, "vision_model.onnx"), vision, overwrite: true);
        Assert.Equal(new FileInfo(Path.Combine(other, "vision_model.onnx")).Length, new FileInfo(vision).Length);
        using (var m = ClipModel.Load(dir, new ClipModelOptions { ContentHashCache = cache }))
            Assert.Equal(Sha256Of(vision, text), m.ContentHash);
        using (var m = ClipModel.Load(dir))
            Assert.Equal(Sha256Of(vision, text), m.ContentHash); // no cache: computed
    }

    [Fact]
    public void AClassifierRefusesAnotherModelOfTheSameWidthNamingBoth()
    {
        using var a = ClipModel.Load(TinyClip.Create(seed: 1));
        using var b = ClipModel.Load(TinyClip.Create(seed: 2));
        Assert.Equal(a.EmbeddingDimension, b.EmbeddingDimension);
        var weights = a.EmbedClassNames(["cat", "dog"]);
        var clf = new TunedClassifier(TuningMethod.ZeroShot, ["cat", "dog"], weights, new float[2], a.LogitScale, a.Name);
        Assert.False(clf.CheckModel(b)); // no hash recorded: cannot verify (the CLI warns)
        var result = PromptTuner.Tune(a, new EmbeddingMatrix(1, a.EmbeddingDimension), CandidateLabels.FromLabels([0], 2), ["cat", "dog"],
            new PromptTuningOptions { Method = TuningMethod.ZeroShot });
        Assert.Equal(a.ContentHash, result.Classifier.ModelHash);
        string saved = Fixtures.TempDir();
        result.Save(saved);
        var loaded = TunedClassifier.Load(saved);
        Assert.True(loaded.CheckModel(a));
        var e = Assert.Throws<ArgumentException>(() => loaded.CheckModel(b, saved));
        Assert.Contains(a.Name, e.Message);
        Assert.Contains(b.Name, e.Message);
        Assert.Contains(a.ContentHash[..12], e.Message);
        Assert.Contains(b.ContentHash[..12], e.Message);
        Assert.Contains(saved, e.Message);
    }
}
