using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Reporting;

/// <summary>
/// Machine-readable form of a ranking and its optional evaluation: indented camelCase JSON, enums as names, NaN as the
/// string "NaN", durations in seconds. The C×C edge matrices are left out unless asked for (they grow with C²).
/// </summary>
public static class JsonReport
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase), new SecondsConverter() },
    };

    /// <summary>The JSON text.</summary>
    /// <param name="ranking">The ranking.</param>
    /// <param name="evaluation">Its evaluation against labels, if any.</param>
    /// <param name="includeEdgeMatrices">Include every model's E_T and E_V (C×C each).</param>
    public static string Serialize(RankingResult ranking, EvaluationResult? evaluation = null, bool includeEdgeMatrices = false)
    {
        ArgumentNullException.ThrowIfNull(ranking);
        var models = includeEdgeMatrices ? ranking.Models : ranking.Models.Select(m => m with { Vega = m.Vega with { Edges = null } }).ToArray();
        var document = new
        {
            metric = SelectionMetrics.Name(ranking.Metric),
            chosen = ranking.Chosen.ModelName,
            totalSeconds = ranking.TotalTime.TotalSeconds,
            warnings = ranking.Warnings,
            options = ranking.Options,
            models = models.Select(m => new
            {
                rank = m.Rank,
                name = m.ModelName,
                imageCount = m.ImageCount,
                classCount = m.ClassCount,
                dimension = m.Dimension,
                metrics = m.Metrics,
                vega = m.Vega,
                statisticsSeconds = m.StatisticsTime.TotalSeconds,
                graphSeconds = m.GraphTime.TotalSeconds,
            }),
            evaluation = evaluation is null ? null : new
            {
                bestModel = evaluation.BestModel,
                topK = evaluation.TopK,
                accuracies = evaluation.Accuracies,
                metrics = evaluation.Metrics.Select(e => new
                {
                    metric = SelectionMetrics.Name(e.Metric),
                    kendallTau = e.KendallTau,
                    spearmanRho = e.SpearmanRho,
                    top1Recall = e.Top1Recall,
                    topKRecall = e.TopKRecall,
                    regret = e.Regret,
                    chosenModel = e.ChosenModel,
                }),
            },
        };
        return JsonSerializer.Serialize(document, Options);
    }

    /// <summary>Writes <see cref="Serialize"/> to <paramref name="path"/> (UTF-8).</summary>
    public static void Write(string path, RankingResult ranking, EvaluationResult? evaluation = null, bool includeEdgeMatrices = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Cannot write the JSON report to '{path}': the folder '{dir}' does not exist.");
        File.WriteAllText(path, Serialize(ranking, evaluation, includeEdgeMatrices), new UTF8Encoding(false));
    }

    private sealed class SecondsConverter : JsonConverter<TimeSpan>
    {
        public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => TimeSpan.FromSeconds(reader.GetDouble());
        public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) => writer.WriteNumberValue(value.TotalSeconds);
    }
}
