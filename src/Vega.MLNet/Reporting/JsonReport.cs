using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Reporting;

/// <summary>
/// Machine-readable form of a ranking and its optional evaluation: indented camelCase JSON, enums as names, NaN as the
/// string "NaN", durations in seconds. The C×C edge matrices are left out unless asked for (they grow with C²). The
/// document carries <c>schemaVersion</c> (<see cref="SchemaVersion"/>); docs/report.md documents every field.
/// </summary>
internal static class JsonReport
{
    /// <summary>
    /// The version of the JSON schema written: 2 added <c>schemaVersion</c>, the bootstrap (<c>intervals</c>,
    /// <c>topProbability</c>, <c>chosenProbability</c>, <c>tooCloseToCall</c>), <c>dispersity</c>, <c>trials</c> and the
    /// random baseline as expectations (<c>expected</c>, <c>chosenModel</c> null); it removed the <c>random</c> score and
    /// the options <c>randomSeed</c> and <c>vega.seed</c>. Version 1 was the unversioned schema before.
    /// </summary>
    public const int SchemaVersion = 2;

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
            schemaVersion = SchemaVersion,
            metric = SelectionMetrics.Name(ranking.Metric),
            chosen = ranking.Chosen.ModelName,
            chosenProbability = ranking.ChosenProbability,
            tooCloseToCall = ranking.TooCloseToCall,
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
                intervals = m.Intervals?.ToDictionary(kv => kv.Key, kv => new { lower = kv.Value.Lower, upper = kv.Value.Upper }),
                topProbability = m.TopProbability,
                vega = m.Vega,
                statisticsSeconds = m.StatisticsTime.TotalSeconds,
                graphSeconds = m.GraphTime.TotalSeconds,
            }),
            trials = ranking.Trials?.Select(t => new
            {
                trialId = t.Settings.TrialId,
                model = t.Settings.ModelName,
                round = t.Settings.Round,
                sampleSize = t.Settings.SampleSize,
                status = t.Status,
                metric = t.Metric,
                interval = t.Interval is { } iv ? new { lower = iv.Lower, upper = iv.Upper } : null,
                durationInMilliseconds = t.DurationInMilliseconds,
                imagesEmbedded = t.ImagesEmbedded,
                eliminated = t.Eliminated,
                error = t.Error,
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
                    expected = e.Expected,
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
