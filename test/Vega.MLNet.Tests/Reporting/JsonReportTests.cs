using System.Text.Json;
using Vega.MLNet.Reporting;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Selection;

namespace Vega.MLNet.Tests.Reporting;

public sealed class JsonReportTests
{
    [Fact]
    public void JsonCarriesEveryMetricOfEveryModelAndTheEvaluation()
    {
        var rng = new Random(2);
        var protos = Synthetic.Prototypes(rng, 4, 16);
        var labels = Synthetic.Labels(rng, 120, 4);
        var candidates = new[] { 0.8, 2.5 }.Select((s, i) => ($"m{i}", Synthetic.Around(rng, protos, 16, labels, s), Synthetic.Around(rng, protos, 16, [0, 1, 2, 3], 0.2))).ToArray();
        // Force a degenerate edge term in one model: an unattainable class minimum leaves no class in the edge term.
        var (ranking, evaluation) = SelectionEvaluation.RankAndEvaluate(candidates, labels, new SelectionOptions { Vega = new VegaOptions { MinImagesPerClass = 1000 } });
        using var doc = JsonDocument.Parse(JsonReport.Serialize(ranking, evaluation, includeEdgeMatrices: true));
        var root = doc.RootElement;
        Assert.Equal(JsonReport.SchemaVersion, root.GetProperty("schemaVersion").GetInt32());
        Assert.Equal("dispersity", root.GetProperty("metric").GetString()); // the default selector
        Assert.Equal(ranking.Chosen.ModelName, root.GetProperty("chosen").GetString());
        var models = root.GetProperty("models").EnumerateArray().ToArray();
        Assert.Equal(ranking.Models.Select(m => m.ModelName), models.Select(m => m.GetProperty("name").GetString()));
        for (int i = 0; i < models.Length; i++)
        {
            foreach (var (name, value) in ranking.Models[i].Metrics)
                Assert.Equal(value, models[i].GetProperty("metrics").GetProperty(name).GetDouble());
            var vega = models[i].GetProperty("vega");
            Assert.True(vega.GetProperty("edgeDegenerate").GetBoolean());
            Assert.Equal("diagonal", vega.GetProperty("covariance").GetString());
            Assert.Equal("NaN", vega.GetProperty("edges").GetProperty("visual")[0].GetString()); // NaN survives as a named literal
        }
        Assert.Equal(evaluation.BestModel, root.GetProperty("evaluation").GetProperty("bestModel").GetString());
        // Every score, then the random baseline as expectations (no chosen model).
        var evaluated = root.GetProperty("evaluation").GetProperty("metrics");
        Assert.Equal(SelectionMetrics.All.Count + 1, evaluated.GetArrayLength());
        var random = evaluated[SelectionMetrics.All.Count];
        Assert.Equal("random", random.GetProperty("metric").GetString());
        Assert.True(random.GetProperty("expected").GetBoolean());
        Assert.False(random.TryGetProperty("chosenModel", out _));
        // Bootstrap: an interval per metric and P(best) per model, the chosen model's probability at the top.
        Assert.Equal(ranking.ChosenProbability!.Value, root.GetProperty("chosenProbability").GetDouble());
        Assert.Equal(ranking.TooCloseToCall, root.GetProperty("tooCloseToCall").GetBoolean());
        var iv = models[0].GetProperty("intervals").GetProperty("msp");
        Assert.Equal(ranking.Models[0].Interval(SelectionMetric.MaxSoftmax)!.Lower, iv.GetProperty("lower").GetDouble());
        using var small = JsonDocument.Parse(JsonReport.Serialize(ranking));
        Assert.False(small.RootElement.GetProperty("models")[0].GetProperty("vega").TryGetProperty("edges", out _));
        Assert.False(small.RootElement.TryGetProperty("evaluation", out _));
    }
}
