using Microsoft.ML;
using Microsoft.ML.Data;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Samples.Samples.DataModels;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>
/// Saving the prompt-learning models: EmbedImages → PromptTuning (CoOp: constant class embeddings in the zero-shot head
/// graph; the linear probe: its weights and bias) and EmbedImages → Aape (the exported head graph under ApplyOnnxModel)
/// save with ml.Model.Save, load with ml.Model.Load — in this process and, through `vega sample predict`, in another —
/// and give the fitted pipeline's scores and classes from the image path alone.
/// </summary>
public sealed class PromptLearningSavingTests
{
    private static readonly string[] Classes = AapeEstimatorTests.Classes;

    private static string Hf => ImageEmbeddingTests.Hf;

    public enum Kind { CoOp, LinearProbe, Aape }

    /// <summary>The fitted pipeline (path → embedding → classifier → PredictedClass) and the data it was fitted on.</summary>
    private static (TransformerChain<Microsoft.ML.Transforms.KeyToValueMappingTransformer> Model, IDataView Data) Fit(MLContext ml, Kind kind)
    {
        var data = ml.Data.LoadFromEnumerable(AapeEstimatorTests.Rows());
        var keys = ml.Data.LoadFromEnumerable(Classes.Select(c => new { Label = c }));
        // Data preparation, outside the model (which reads only the image path): a plain key label column is a candidate
        // column with one candidate per row.
        var prepared = ml.Transforms.Conversion.MapValueToKey("CandidateLabels", "Label", keyData: keys).Fit(data).Transform(data);
        IEstimator<ITransformer> trainer = kind == Kind.Aape
            ? ml.MulticlassClassification.Trainers.Aape(AapeEstimatorTests.Small())
            : ml.MulticlassClassification.Trainers.PromptTuning(new PromptTuningEstimator.Options
            {
                ModelPath = Hf, ClassNames = Classes, Method = kind == Kind.CoOp ? TuningMethod.CoOp : TuningMethod.LinearProbe,
                ContextTokens = 2, Epochs = 3, BatchSize = 4, LearningRate = 0.05,
            });
        var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", Hf, "ImagePath")
            .Append(trainer)
            .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(ImagePrediction.PredictedClass), "PredictedLabel"));
        return (pipeline.Fit(prepared), data);
    }

    [Theory]
    [InlineData(Kind.CoOp)]
    [InlineData(Kind.LinearProbe)]
    [InlineData(Kind.Aape)]
    public void ThePipelineSavesAndLoadsWithTheSameScoresAndClasses(Kind kind)
    {
        var ml = new MLContext(seed: 1);
        var (fitted, data) = Fit(ml, kind);
        using (fitted)
        {
            if (kind == Kind.LinearProbe)
                Assert.Contains(fitted.OfType<PromptTuningTransformer>().Single().Bias, b => b != 0); // the bias is saved too
            var loaded = SavingTests.SaveAndLoad(ml, fitted, data.Schema, out _);
            var e = fitted.Transform(data);
            var a = loaded.Transform(data);
            Assert.Equal(Classes, TextAndZeroShotTests.KeyValues(a.Schema["PredictedLabel"]));
            Assert.Equal(e.GetColumn<uint>("PredictedLabel").ToArray(), a.GetColumn<uint>("PredictedLabel").ToArray());
            Assert.Equal(e.GetColumn<string>("PredictedClass").ToArray(), a.GetColumn<string>("PredictedClass").ToArray());
            var es = e.GetColumn<float[]>("Score").ToArray();
            var @as = a.GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < es.Length; i++) Assert.True(Fixtures.MaxAbsDiff(es[i], @as[i]) <= 1e-5, $"row {i}");
            Assert.Null(a.Schema.GetColumnOrNull("__VegaIndex"));
        }
    }

    [Theory]
    [InlineData(Kind.CoOp)]
    [InlineData(Kind.Aape)]
    public void ASavedModelPredictsFromTheImagePathInAnotherProcess(Kind kind)
    {
        var ml = new MLContext(seed: 1);
        var (fitted, data) = Fit(ml, kind);
        using var _ = fitted;
        string zip = Path.Combine(Fixtures.TempDir(), "model.zip");
        ml.Model.Save(fitted, data.Schema, zip);

        var images = AapeEstimatorTests.Rows().Select(r => r.ImagePath).ToArray();
        var engine = ml.Model.CreatePredictionEngine<ImageData, ImagePrediction>(fitted);
        MLNetTestUtils.AnotherProcessPredictsAs(zip, images, engine);
    }
}
