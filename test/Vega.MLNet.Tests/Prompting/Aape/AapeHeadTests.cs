using Vega.MLNet.Embedding;
using Vega.MLNet.Onnx;
using Vega.MLNet.Prompting.Aape;
using Vega.MLNet.Runtime;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Prompting.Aape;

/// <summary>The trained head outside training: ONNX Runtime runs the export to the C# forward's values, a saved head
/// predicts bit for bit like the original, new classes can be swapped in, and damaged files are clear errors.</summary>
public sealed class AapeHeadTests
{
    private static readonly Lazy<(SyntheticTask Task, AapeHead Head)> Trained = new(() =>
    {
        var task = SyntheticTask.Create(classes: 6, dimension: 32, trainPerClass: 6, testPerClass: 60, descriptionsPerClass: 5, seed: 31);
        var head = AapeTrainer.Train(task.TrainingSet with { ModelName = "synthetic", ModelHash = "abc123" },
            new AapeOptions { Epochs = 20, AggregatorEpochs = 10, Heads = 4, LearningRate = 0.01, Temperature = 0.01 });
        return (task, head);
    });

    private static (float[] Logits, float[] Probabilities) RunOnnx(string path, EmbeddingMatrix images)
    {
        using var session = OnnxSession.Open(path);
        Assert.Equal(AapeOnnxExport.InputName, Assert.Single(session.Inputs).Name);
        using var r = session.Run([OnnxInput.Create(AapeOnnxExport.InputName, images.Data, images.Count, images.Dimension)]);
        Assert.Equal([(long)images.Count, session.Outputs[0].Shape[1]], r.Describe(AapeOnnxExport.LogitsName).Shape);
        return (r.GetFloats(AapeOnnxExport.LogitsName).ToArray(), r.GetFloats(AapeOnnxExport.ProbabilitiesName).ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(300)] // beyond the C# kernel's 256-row chunk
    public void OnnxRuntimeComputesWhatTheCSharpForwardComputes(int batch)
    {
        var (task, head) = Trained.Value;
        var images = new EmbeddingMatrix(task.TestImages.Data.AsSpan(0, batch * 32).ToArray(), batch, 32);
        for (int j = 0; j < 32; j++) images.Row(0)[j] *= 3f; // a non-unit row, to exercise the normalisation in both
        string path = Path.Combine(Fixtures.TempDir(), "head.onnx");
        head.ExportOnnx(path);
        var (onnxLogits, onnxProbabilities) = RunOnnx(path, images);
        var csharp = head.Predict(images);
        Assert.True(Fixtures.MaxAbsDiff(csharp, onnxLogits) * head.Temperature < 1e-6, "logits agree at the cosine level (1e-4 in logits at τ = 0.01)");
        var p = Enumerable.Range(0, batch).SelectMany(i => AapeHead.Softmax(csharp.AsSpan(i * 6, 6))).ToArray();
        Assert.True(Fixtures.MaxAbsDiff(p, onnxProbabilities) < 1e-5);

        var meta = OnnxModelFile.Load(path).MetadataProps.ToDictionary(e => e.Key, e => e.Value);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(head.ClassNames), meta["class_names"]);
        Assert.Equal("abc123", meta["clip_model_hash"]);
    }

    [Fact]
    public void NewClassesCanBeSwappedInAndExported()
    {
        var (task, head) = Trained.Value;
        var other = SyntheticTask.Create(classes: 3, dimension: 32, trainPerClass: 1, testPerClass: 20, descriptionsPerClass: 1, seed: 77);
        var swapped = head.WithClasses(["x", "y", "z"], other.ClassWeights);
        Assert.Equal(["x", "y", "z"], swapped.ClassNames);
        string path = Path.Combine(Fixtures.TempDir(), "new.onnx");
        swapped.ExportOnnx(path);
        var (onnxLogits, _) = RunOnnx(path, other.TestImages);
        Assert.True(Fixtures.MaxAbsDiff(swapped.Predict(other.TestImages), onnxLogits) * head.Temperature < 1e-6);

        // Swapping the original classes back in gives the original head's logits exactly.
        var back = swapped.WithClasses(task.ClassNames, task.ClassWeights);
        Assert.Equal(head.Predict(task.TestImages), back.Predict(task.TestImages));
        Assert.Throws<ArgumentException>(() => head.WithClasses(["a", "b"], other.ClassWeights));
    }

    [Fact]
    public void ASavedHeadPredictsExactlyLikeTheOriginal()
    {
        var (task, head) = Trained.Value;
        string dir = Fixtures.TempDir();
        head.Save(dir);
        var loaded = AapeHead.Load(dir);
        Assert.Equal(head.ClassNames, loaded.ClassNames);
        Assert.Equal(head.Temperature, loaded.Temperature);
        Assert.Equal(head.Options, loaded.Options);
        Assert.Equal(("synthetic", "abc123"), (loaded.ModelName, loaded.ModelHash));
        Assert.Equal(head.Summaries, loaded.Summaries);
        Assert.Null(loaded.Training);
        Assert.Equal(head.Predict(task.TestImages), loaded.Predict(task.TestImages));
    }

    [Fact]
    public void DamagedHeadFoldersAreClearErrors()
    {
        var (_, head) = Trained.Value;
        string empty = Fixtures.TempDir();
        var missing = Assert.Throws<FileNotFoundException>(() => AapeHead.Load(empty));
        Assert.Contains(AapeHead.SettingsFile, missing.Message);

        string dir = Fixtures.TempDir();
        head.Save(dir);
        string settings = Path.Combine(dir, AapeHead.SettingsFile);
        File.WriteAllText(settings, File.ReadAllText(settings).Replace("\"dimension\": 32", "\"dimension\": 16", StringComparison.Ordinal));
        var shape = Assert.Throws<InvalidDataException>(() => AapeHead.Load(dir));
        Assert.Contains("'class_weights' has shape [6, 32], the settings imply [6, 16]", shape.Message);
        Assert.Contains(AapeHead.WeightsFile, shape.Message);

        File.WriteAllText(settings, "{\"format\": \"something-else\"}");
        Assert.Contains("not an AAPE head", Assert.Throws<InvalidDataException>(() => AapeHead.Load(dir)).Message);
        File.WriteAllText(settings, "{\"format\": ");
        Assert.Contains(settings, Assert.Throws<InvalidDataException>(() => AapeHead.Load(dir)).Message);

        var wrongWidth = Assert.Throws<ArgumentException>(() => head.Predict(new EmbeddingMatrix(2, 16)));
        Assert.Contains("32-dimensional", wrongWidth.Message);
    }
}
