using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Prompting;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Demo;
using Vega.MLNet.Samples.Experiments;
using Vega.MLNet.Samples.Samples;
using Vega.MLNet.Tests.Demo;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Prompting;
using Vega.MLNet.Text;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// PromptTuning on a small CLIP model trained on Fashion-MNIST (the CoOp tests' model): the estimator equals the core
/// trainer it wraps weight for weight and score for score (CoOp and the linear probe, dynamic and fixed alignment, PiCO
/// and PLCR on view columns), two fits agree, the three candidate encodings give the same model, progress reports the
/// held-out accuracy of the weights of each epoch, cancellation and checkpoints reach the core, and the candidate-labels
/// sample and experiment run through it.
/// </summary>
[Collection(nameof(DemoSerial))]
public sealed class PromptTuningTests(ITestOutputHelper output)
{
    private static readonly string[] Classes = [.. ImageSource.FashionMnistClassNames];

    private static string ModelDir => CoopTests.ModelDir.Value;

    private static PromptTuningOptions Small(TuningMethod method, PartialLabelLossKind loss, bool align, AlignmentWeighting weighting = AlignmentWeighting.Dynamic) => new()
    {
        Method = method, Loss = loss, Align = align, AlignmentWeighting = weighting, AlignmentWeight = weighting == AlignmentWeighting.Fixed ? 0.5 : 1,
        ContextTokens = 4, Epochs = 3, LearningRate = 0.05, BatchSize = 16, Seed = 7,
    };

    [Theory]
    [InlineData(TuningMethod.CoOp, PartialLabelLossKind.CC, true, AlignmentWeighting.Dynamic, false)]
    [InlineData(TuningMethod.LinearProbe, PartialLabelLossKind.RC, true, AlignmentWeighting.Fixed, false)]
    [InlineData(TuningMethod.CoOp, PartialLabelLossKind.PiCO, true, AlignmentWeighting.Dynamic, true)]
    [InlineData(TuningMethod.CoOp, PartialLabelLossKind.PLCR, false, AlignmentWeighting.Dynamic, true)]
    public void TheEstimatorEqualsTheCoreTrainerWeightForWeightAndTwoFitsAgree(TuningMethod method, PartialLabelLossKind loss, bool align, AlignmentWeighting weighting, bool views)
    {
        using var model = ClipModel.Load(ModelDir);
        var (train, candidates, _, test, testLabels) = CoopTests.Task();
        var viewMatrices = views ? CoopTests.TrainViews.Value : null;
        var core = Small(method, loss, align, weighting);
        var expected = PromptTuner.Tune(model, train, candidates, Classes, core, augmentedViews: viewMatrices);

        var ml = new MLContext(seed: 1);
        var data = MatrixData.Create(ml, Classes, train, candidates, views: viewMatrices);
        var options = PromptTuningEstimator.Options.FromCore(core, ModelDir, Classes);
        options.ViewColumnNames = viewMatrices?.Select((_, v) => MatrixData.ViewColumn(v)).ToArray();
        var first = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(data);
        var second = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(data);

        Assert.Equal(expected.Classifier.Weights.Data, first.Result.Classifier.Weights.Data);
        Assert.Equal(expected.Classifier.Bias, first.Result.Classifier.Bias);
        Assert.Equal(expected.Context, first.Result.Context);
        Assert.Equal(first.Result.Classifier.Weights.Data, second.Result.Classifier.Weights.Data);
        Assert.Equal(method, first.Method);
        Assert.Equal(expected.Classifier.Scale, first.Scale);
        Assert.Equal(expected.Classifier.Weights.Row(3).ToArray(), first.ClassWeights(3).ToArray());

        // Scores: the transformer's softmax of s·(x̂·W_cᵀ) + b_c equals the core classifier's probabilities (float64
        // accumulation there), and PredictedLabel is its arg-max wherever the top two are not a near-tie.
        var scored = first.Transform(MatrixData.Create(ml, Classes, test, labels: testLabels));
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var predicted = scored.GetColumn<uint>("PredictedLabel").ToArray();
        var probabilities = expected.Classifier.Probabilities(test);
        var logits = expected.Classifier.Logits(test);
        for (int i = 0; i < test.Count; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(probabilities.AsSpan(i * 10, 10), scores[i]) <= 1e-5, $"row {i}");
            var row = logits.AsSpan(i * 10, 10).ToArray();
            var order = row.Select((v, k) => (v, k)).OrderByDescending(p => p.v).ToArray();
            if (order[0].v - order[1].v > 1e-4) Assert.Equal((uint)order[0].k + 1, predicted[i]);
        }
    }

    [Fact]
    public void AMaskAKeyVectorAndAScalarKeyColumnGiveTheSameModel()
    {
        using var model = ClipModel.Load(ModelDir);
        var (train, candidates, trainLabels, _, _) = CoopTests.Task();
        var ml = new MLContext(seed: 1);
        var core = Small(TuningMethod.LinearProbe, PartialLabelLossKind.CC, align: true);
        var options = PromptTuningEstimator.Options.FromCore(core, ModelDir, Classes);

        var fromMask = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(MatrixData.Create(ml, Classes, train, candidates));

        // The same sets as "name|name|…" text → TokenizeIntoWords → MapValueToKey over the class names: a variable-length key vector.
        var embeddings = ml.Data.CreateEnumerable<EmbeddingOnly>(MatrixData.Create(ml, Classes, train), reuseRowObject: false).ToArray();
        var texts = embeddings.Select((e, i) => new TextCandidates
        {
            ImageEmbedding = e.ImageEmbedding,
            Candidates = string.Join('|', Enumerable.Range(0, 10).Where(c => candidates.Contains(i, c)).Select(c => Classes[c])),
        }).ToArray();
        var definition = SchemaDefinition.Create(typeof(TextCandidates));
        definition[nameof(TextCandidates.ImageEmbedding)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, train.Dimension);
        var textData = ml.Data.LoadFromEnumerable(texts, definition);
        var keys = ml.Data.LoadFromEnumerable(Classes.Select(c => new { Name = c }));
        var keyed = ml.Transforms.Text.TokenizeIntoWords("Names", "Candidates", separators: ['|'])
            .Append(ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "Names", keyData: keys)).Fit(textData).Transform(textData);
        Assert.True(keyed.Schema["CandidateLabels"].Type is VectorDataViewType { Size: 0, ItemType: KeyDataViewType });
        var fromKeys = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(keyed);
        Assert.Equal(fromMask.Result.Classifier.Weights.Data, fromKeys.Result.Classifier.Weights.Data);
        Assert.Equal(fromMask.Result.Classifier.Bias, fromKeys.Result.Classifier.Bias);

        // Ordinary labels (q = 0) as a scalar key column: the core trainer with single-candidate sets.
        var labelled = MatrixData.Create(ml, Classes, train, labels: trainLabels);
        options.CandidateLabelsColumnName = "Label";
        var fromLabels = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(labelled);
        var expected = PromptTuner.Tune(model, train, CandidateLabels.FromLabels(trainLabels, 10), Classes, core);
        Assert.Equal(expected.Classifier.Weights.Data, fromLabels.Result.Classifier.Weights.Data);
    }

    [Fact]
    public void ProgressReportsEveryEpochWithTheHeldOutAccuracyAndCancellationKeepsACheckpointToResumeFrom()
    {
        var (train, candidates, _, test, testLabels) = CoopTests.Task();
        var ml = new MLContext(seed: 1);
        var data = MatrixData.Create(ml, Classes, train, candidates);
        var heldOut = MatrixData.Create(ml, Classes, test, labels: testLabels);
        var core = Small(TuningMethod.CoOp, PartialLabelLossKind.CC, align: true);
        var reports = new List<PromptTuningProgress>();
        var options = PromptTuningEstimator.Options.FromCore(core, ModelDir, Classes);
        options.ValidationData = heldOut;
        options.Progress = new Recorder(reports);
        var straight = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(data);
        Assert.Equal([0, 1, 2], reports.Select(r => r.Epoch));
        Assert.All(reports, r => Assert.Equal(3, r.Epochs));
        Assert.Equal(straight.Result.Epochs.Select(e => e.Loss), reports.Select(r => r.Loss));
        // The last report measured the final weights.
        Assert.Equal(straight.Result.Classifier.Accuracy(test, testLabels), reports[^1].ValidationAccuracy);
        Assert.Equal(reports, straight.History); // the same figures stay on the transformer
        output.WriteLine($"held-out accuracy by epoch: {string.Join(", ", reports.Select(r => $"{r.ValidationAccuracy:P1}"))}");

        // Cancelled after the first epoch with a checkpoint folder: the next fit resumes there and ends where the straight run did.
        string checkpoint = Fixtures.TempDir("vega-mlnet-ckpt");
        using var cts = new CancellationTokenSource();
        var cancelling = PromptTuningEstimator.Options.FromCore(core with { CheckpointDirectory = checkpoint }, ModelDir, Classes);
        cancelling.CancellationToken = cts.Token;
        cancelling.Progress = new Recorder([], () => cts.Cancel());
        Assert.ThrowsAny<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.PromptTuning(cancelling).Fit(data));
        Assert.True(File.Exists(Path.Combine(checkpoint, Checkpoint.FileName)));
        var resumed = ml.MulticlassClassification.Trainers.PromptTuning(PromptTuningEstimator.Options.FromCore(core with { CheckpointDirectory = checkpoint }, ModelDir, Classes)).Fit(data);
        Assert.Equal(1, resumed.Result.ResumedFromEpoch);
        Assert.Equal([1, 2], resumed.History.Select(h => h.Epoch)); // the epochs this fit ran
        Assert.Equal(reports.Skip(1).Select(r => r.Loss), resumed.History.Select(h => h.Loss));
        Assert.All(resumed.History, h => Assert.Null(h.ValidationAccuracy)); // no validation data given to that fit
        Assert.Equal(straight.Result.Classifier.Weights.Data, resumed.Result.Classifier.Weights.Data);
    }

    [Fact]
    public void TheCandidateLabelsSampleTrainsFromACsvEvaluatesAndPredictsFromThePathAlone()
    {
        string root = Fixtures.TempDir("vega-sample-candidates");
        string set = DemoRunner.WriteSet(Path.Combine(root, "set"), DemoTestData.Data, 150, null);
        var (trainCsv, testCsv) = Vega.MLNet.Samples.Commands.CandidateCsv.WriteCandidateCsv(Path.Combine(set, "labels.csv"), Classes, Path.Combine(root, "csv"), shots: 4, q: 0.3);
        var trainLines = File.ReadAllLines(trainCsv);
        Assert.Equal("path,candidates,label", trainLines[0]);
        Assert.Equal(41, trainLines.Length);                     // header + 4 shots × 10 classes (150 images hold at least 4 of each)
        Assert.Contains(trainLines, l => l.Split(',')[1].Contains('|'));
        Assert.Equal(150 - 40 + 1, File.ReadAllLines(testCsv).Length);

        var text = new StringWriter();
        var (tuned, baseline) = CandidateLabelTraining.Run(ModelDir, trainCsv, testCsv, Classes, text, epochs: 5);
        output.WriteLine(text.ToString());
        foreach (var metrics in new[] { tuned, baseline })
        {
            Assert.Equal(110, metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()));
            double correct = Enumerable.Range(0, 10).Sum(c => metrics.ConfusionMatrix.Counts[c][c]);
            Assert.Equal(correct / 110, metrics.MicroAccuracy, 10);
        }
        Assert.True(tuned.MicroAccuracy > 0.3, $"prompt tuning {tuned.MicroAccuracy:P1} (chance 10 %)");
        Assert.Contains("epoch 5/5: loss", text.ToString());
        Assert.Contains("PromptTuning (CoOp, CC + alignment): micro-accuracy", text.ToString());
        Assert.Contains("LbfgsMaximumEntropy after EmbedImages (NAIVE weights)", text.ToString());
        Assert.Contains("; true: ", text.ToString());
    }

    [Fact]
    public void TheExperimentGoesThroughTheMLNetTrainersAndMatchesTheCorePath()
    {
        string root = Fixtures.TempDir("vega-experiment-mlnet");
        string mlnet = Path.Combine(root, "mlnet.md"), core = Path.Combine(root, "core.md");
        string[] common = ["experiment", "candidate-labels", "--models", ModelDir, "--q", "0.3", "--seeds", "1", "--shots", "2", "--epochs", "2",
            "--pool", "300", "--test-count", "100", "--views", "1", "--pll", "cc", "plcr", "--cache", Path.Combine(root, "cache")];
        Assert.Equal(0, Vega.MLNet.Samples.Program.Main([.. common, "--out", mlnet]));
        Assert.Equal(0, Vega.MLNet.Samples.Program.Main([.. common, "--route", "core", "--out", core]));
        string a = File.ReadAllText(mlnet), b = File.ReadAllText(core);
        Assert.Contains("trained with ml.MulticlassClassification.Trainers.PromptTuning", a);
        Assert.Contains($"| {CandidateLabelExperiment.LbfgsName} |", a);
        Assert.Contains($"| {CandidateLabelExperiment.SdcaName} |", a);
        Assert.DoesNotContain("LbfgsMaximumEntropy", b);
        // Same training, same weights: every row of the core table appears in the ML.NET table (100 test images: a
        // near-tie flip would move a cell by 1 point, which did not happen here).
        foreach (var line in b.Split('\n').Where(l => l.StartsWith("| CoOp") || l.StartsWith("| linear probe") || l.StartsWith("| zero-shot")))
            Assert.Contains(line, a);
        Assert.Equal(2, Vega.MLNet.Samples.Program.Main([.. common, "--route", "onnx", "--out", core]));
    }

    private sealed class Recorder(List<PromptTuningProgress> reports, Action? after = null) : IProgress<PromptTuningProgress>
    {
        public void Report(PromptTuningProgress value)
        {
            reports.Add(value);
            after?.Invoke();
        }
    }

    private sealed class EmbeddingOnly
    {
        public float[] ImageEmbedding = [];
    }

    private sealed class TextCandidates
    {
        public float[] ImageEmbedding = [];
        public string Candidates = "";
    }
}

/// <summary>
/// PromptTuning's plumbing on the fixture model and real images: ML.NET's schema errors from estimator and transformer,
/// row errors naming the row, options checks, the options' defaults against the core trainer's, a pipeline EmbedImages →
/// PromptTuning that a PredictionEngine runs from the image path alone and Evaluate scores, and augmented views made by
/// the engine from a path column.
/// </summary>
public sealed class PromptTuningPlumbingTests
{
    private static readonly string[] Classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];

    private static string Hf => ImageEmbeddingTests.Hf;

    internal sealed class Row
    {
        public string ImagePath = "";
        public string Candidates = "";
        public string Label = "";
    }

    internal sealed class PathAndKeys
    {
        public string ImagePath = "";
        [KeyType(5)] public uint[] CandidateLabels = [];
    }

    internal sealed class PathOnly
    {
        public string ImagePath = "";
    }

    internal sealed class Prediction
    {
        public float[] Score = [];
        public uint PredictedLabel { get; set; }
    }

    /// <summary>The 12 golden images with a label each and a candidate set holding it and the next class.</summary>
    private static Row[] Rows() => ImageEmbeddingTests.GoldenRows().Select((r, i) => new Row
    {
        ImagePath = r.ImagePath, Label = Classes[i % 5], Candidates = i % 3 == 0 ? Classes[i % 5] : $"{Classes[(i + 1) % 5]}|{Classes[i % 5]}",
    }).ToArray();

    private static IDataView Prepared(MLContext ml, IDataView data) =>
        ml.Transforms.Text.TokenizeIntoWords("Names", "Candidates", separators: ['|'])
            .Append(ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "Names", keyData: ml.Data.LoadFromEnumerable(Classes.Select(c => new { Name = c }))))
            .Fit(data).Transform(data);

    [Fact]
    public void APipelineFromImagePathsPredictsFromThePathAloneAndEvaluatesWithATrueLabelColumn()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows();
        var prepared = Prepared(ml, ml.Data.LoadFromEnumerable(rows));
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath")
            .Append(ml.MulticlassClassification.Trainers.PromptTuning(new PromptTuningEstimator.Options
            {
                ModelPath = Hf, ClassNames = Classes, ContextTokens = 2, Epochs = 2, BatchSize = 4, LearningRate = 0.05,
            }));
        // The estimator chain declares its output before anything is fitted.
        var shape = pipeline.GetOutputSchema(MLNetTestUtils.ShapeOf<PathAndKeys>());
        Assert.Contains(shape, c => c.Name == "PredictedLabel" && c.IsKey);
        using var model = pipeline.Fit(prepared);
        var tuned = model.LastTransformer;

        var scored = model.Transform(prepared);
        Assert.Equal(Classes, TextAndZeroShotTests.SlotNames(scored.Schema["Score"]));
        Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(scored.Schema["PredictedLabel"]));
        var predictions = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToArray();

        // The oracle: the core classifier on the core engine's embeddings of the same files.
        var embeddings = ImageEmbeddingTests.CoreEmbeddings(Hf, rows.Select(r => r.ImagePath).ToArray());
        var expected = tuned.Result.Classifier.Probabilities(new EmbeddingMatrix(embeddings.SelectMany(e => e).ToArray(), rows.Length, tuned.EmbeddingDimension));
        var engine = ml.Model.CreatePredictionEngine<PathOnly, Prediction>(model);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.True(Fixtures.MaxAbsDiff(expected.AsSpan(i * 5, 5), predictions[i].Score) <= 1e-5, $"row {i}");
            var one = engine.Predict(new PathOnly { ImagePath = rows[i].ImagePath });
            Assert.Equal(predictions[i].Score, one.Score);
            Assert.Equal(predictions[i].PredictedLabel, one.PredictedLabel);
        }

        MLNetTestUtils.EvaluateCountsTheRightPredictions(ml, scored, Classes, [.. rows.Select(r => r.Label)], [.. predictions.Select(p => p.PredictedLabel)]);
    }

    [Fact]
    public void AugmentedViewsCutFromThePathColumnAreTheEnginesViewsOfTheSameFiles()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows();
        var prepared = Prepared(ml, ml.Data.LoadFromEnumerable(rows));
        using var embed = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath").Fit(prepared);
        var embedded = embed.Transform(prepared);
        var core = new PromptTuningOptions { Method = TuningMethod.LinearProbe, Loss = PartialLabelLossKind.PLCR, Align = false, Epochs = 2, BatchSize = 4, Seed = 3 };
        var options = PromptTuningEstimator.Options.FromCore(core, Hf, Classes);
        options.AugmentedViews = 2;
        options.AugmentedViewMinScale = 0.6;
        options.ImageColumnName = "ImagePath";
        var fitted = ml.MulticlassClassification.Trainers.PromptTuning(options).Fit(embedded);

        using var model = ClipModel.Load(Hf);
        var paths = rows.Select(r => r.ImagePath).ToArray();
        var images = new EmbeddingMatrix(ImageEmbeddingTests.CoreEmbeddings(Hf, paths).SelectMany(e => e).ToArray(), rows.Length, model.EmbeddingDimension);
        var candidates = CandidateLabels.FromItems(rows.Select((r, i) => new ImageItem(i, r.ImagePath, r.ImagePath, null, r.Candidates.Split('|'))).ToArray(), Classes);
        var views = AugmentedViews.Embed(model, ImageSource.FromPaths(paths), 2, seed: 3, minScale: 0.6);
        var expected = PromptTuner.Tune(model, images, candidates, Classes, core, augmentedViews: views);
        Assert.Equal(expected.Classifier.Weights.Data, fitted.Result.Classifier.Weights.Data);
        var without = PromptTuner.Tune(model, images, candidates, Classes, core);
        Assert.NotEqual(without.Classifier.Weights.Data, fitted.Result.Classifier.Weights.Data); // the views are used
    }

    internal sealed class EmbeddedRow
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
        [VectorType(5)] public bool[] CandidateLabels = [];
    }

    internal sealed class WrongCandidates
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
        public string CandidateLabels = "";
    }

    private static float[] Unit(int seed)
    {
        var v = new float[32];
        v[seed % 32] = 1;
        return v;
    }

    [Fact]
    public void ColumnProblemsAreMLNetSchemaErrorsFromEstimatorAndTransformerAndBadRowsNameTheRow()
    {
        var ml = new MLContext(seed: 1);
        var estimator = ml.MulticlassClassification.Trainers.PromptTuning(Hf, Classes, options: new PromptTuningEstimator.Options { Method = TuningMethod.LinearProbe, Epochs = 1 });

        var e1 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<TextAndZeroShotTests.Wide>()));
        Assert.Equal("inputSchema", e1.ParamName);
        Assert.StartsWith("Could not find label column 'CandidateLabels'", e1.Message);
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<WrongCandidates>()));
        Assert.StartsWith("Schema mismatch for label column 'CandidateLabels': expected Vector<Boolean, 5> (a candidate mask), a vector of Key<UInt32, 0-4>", e2.Message);
        Assert.EndsWith("got String (Parameter 'inputSchema')", e2.Message);
        var wrong = ml.Data.LoadFromEnumerable(new[] { new WrongCandidates { ImageEmbedding = Unit(0), CandidateLabels = "a person" } });
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(wrong));
        Assert.Contains("got String", e3.Message);
        var shape = estimator.GetOutputSchema(MLNetTestUtils.ShapeOf<EmbeddedRow>());
        Assert.Contains(shape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector);
        var e4 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.PromptTuning(Hf, Classes, featureColumnName: "Nope").GetOutputSchema(MLNetTestUtils.ShapeOf<EmbeddedRow>()));
        Assert.StartsWith("Could not find feature column 'Nope'", e4.Message);
        var narrow = ml.Data.LoadFromEnumerable(new[] { new NarrowRow { ImageEmbedding = new float[5], CandidateLabels = [true, false, false, false, false] } });
        var e5 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(narrow));
        Assert.StartsWith("Schema mismatch for feature column 'ImageEmbedding': expected Vector<Single, 32>, got Vector<Single, 5>", e5.Message);

        // Keys over the class names in another order would silently swap classes: refused.
        var keys = ml.Data.LoadFromEnumerable(Classes.Reverse().Select(c => new { Name = c }));
        var texts = ml.Data.LoadFromEnumerable(new[] { new TextRow { ImageEmbedding = Unit(0), Candidates = "a logo" } });
        var misordered = ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "Candidates", keyData: keys).Fit(texts).Transform(texts);
        var e6 = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(misordered));
        Assert.StartsWith("Schema mismatch for label column 'CandidateLabels': expected keys over the 5 class names in class order (a person, a landscape", e6.Message);

        // Rows: a missing embedding, an empty set, a name that is not a class (a missing key) — each names the row.
        var rows = new[]
        {
            new EmbeddedRow { ImageEmbedding = Unit(0), CandidateLabels = [true, false, false, false, false] },
            new EmbeddedRow { ImageEmbedding = Enumerable.Repeat(float.NaN, 32).ToArray(), CandidateLabels = [true, true, false, false, false] },
        };
        var e7 = Assert.Throws<InvalidOperationException>(() => estimator.Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.StartsWith("Row 1 of feature column 'ImageEmbedding' has a missing value", e7.Message);
        Assert.Contains("FilterRowsByMissingValues", e7.Message);
        rows[1] = new EmbeddedRow { ImageEmbedding = Unit(1), CandidateLabels = new bool[5] };
        var e8 = Assert.Throws<InvalidOperationException>(() => estimator.Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.StartsWith("Row 1 of label column 'CandidateLabels' has an empty candidate set", e8.Message);
        var rightKeys = ml.Data.LoadFromEnumerable(Classes.Select(c => new { Name = c }));
        var unknown = ml.Data.LoadFromEnumerable(new[] { new TextRow { ImageEmbedding = Unit(0), Candidates = "a logo" }, new TextRow { ImageEmbedding = Unit(1), Candidates = "a cat" } });
        var unknownKeyed = ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "Candidates", keyData: rightKeys).Fit(unknown).Transform(unknown);
        var e9 = Assert.Throws<InvalidOperationException>(() => estimator.Fit(unknownKeyed));
        Assert.StartsWith("Row 1 of label column 'CandidateLabels' has a missing key (0: a value that is not one of the class names)", e9.Message);

        // The fitted transformer checks the feature column too, and needs nothing else.
        var fitted = estimator.Fit(ml.Data.LoadFromEnumerable(rows.Take(1)));
        var e10 = Assert.Throws<ArgumentOutOfRangeException>(() => fitted.GetOutputSchema(narrow.Schema));
        Assert.StartsWith("Schema mismatch for feature column 'ImageEmbedding': expected Vector<Single, 32>, got Vector<Single, 5>", e10.Message);
        var onlyFeatures = ml.Data.LoadFromEnumerable(new[] { new TextAndZeroShotTests.Wide() });
        Assert.Throws<ArgumentOutOfRangeException>(() => fitted.GetOutputSchema(onlyFeatures.Schema));
        Assert.Equal("PredictedLabel", fitted.GetOutputSchema(ml.Data.LoadFromEnumerable(new[] { new FeaturesOnly { ImageEmbedding = Unit(2) } }).Schema)["PredictedLabel"].Name);
    }

    internal sealed class NarrowRow
    {
        [VectorType(5)] public float[] ImageEmbedding = [];
        [VectorType(5)] public bool[] CandidateLabels = [];
    }

    internal sealed class TextRow
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
        public string Candidates = "";
    }

    internal sealed class FeaturesOnly
    {
        [VectorType(32)] public float[] ImageEmbedding = [];
    }

    [Fact]
    public void BadOptionsAreRefusedWhenTheEstimatorIsCreated()
    {
        var ml = new MLContext(seed: 1);
        var t = ml.MulticlassClassification.Trainers;
        Assert.Contains("ZeroShot", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(Hf, Classes, options: new PromptTuningEstimator.Options { Method = TuningMethod.ZeroShot })).Message);
        Assert.Contains("Epochs = 0", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(Hf, Classes, options: new PromptTuningEstimator.Options { Epochs = 0 })).Message);
        Assert.Contains("a person", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(Hf, ["a person", "a person"])).Message);
        Assert.Contains("ModelPath", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning("", Classes)).Message);
        Assert.Contains("AugmentedViewMinScale", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(new PromptTuningEstimator.Options
            { ModelPath = Hf, ClassNames = Classes, AugmentedViews = 2, AugmentedViewMinScale = 0 })).Message);
        Assert.Contains("placeholder", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(new PromptTuningEstimator.Options
            { ModelPath = Hf, ClassNames = Classes, Templates = ["a photo"] })).Message);
        Assert.Contains("AlignmentWeight", Assert.Throws<ArgumentOutOfRangeException>(() => t.PromptTuning(new PromptTuningEstimator.Options
            { ModelPath = Hf, ClassNames = Classes, AlignmentWeight = double.NaN })).Message);
    }

    [Fact]
    public void TheOptionsDefaultsAreTheCoreTrainersAndEveryOptionReachesIt()
    {
        Assert.Equal(new PromptTuningOptions(), new PromptTuningEstimator.Options().ToCore());
        var templates = PromptTemplates.Create(["a {}.", "a photo of the {}."]);
        var custom = new PromptTuningOptions
        {
            Method = TuningMethod.LinearProbe, Loss = PartialLabelLossKind.PiCO, Align = false, AlignmentWeighting = AlignmentWeighting.Fixed, AlignmentWeight = 0.25,
            Pico = new PicoSettings { QueueSize = 64, Temperature = 0.2 }, Plcr = new PlcrSettings { StrongViews = 3, RampEpochs = 4 }, LwsBeta = 2,
            ContextTokens = 3, ClassSpecificContext = true, ClassPosition = ClassTokenPosition.Front, ContextInit = "a photo of a",
            Epochs = 7, BatchSize = 9, LearningRate = 0.01, Momentum = 0.5, WeightDecay = 1e-3, WarmupEpochs = 2, Seed = 11,
            Templates = templates, CheckpointDirectory = "ckpt",
        };
        var back = PromptTuningEstimator.Options.FromCore(custom, Hf, Classes).ToCore();
        Assert.Equal(custom with { Templates = back.Templates }, back);
        Assert.Equal(templates.Templates, back.Templates.Templates);
    }
}
