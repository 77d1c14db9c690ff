using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Models;

namespace Vega.MLNet.Tests.Selection;

/// <summary>
/// The seam through which a selection has its embedding work done: the default local worker is the single pass of a
/// direct computation to the last bit, both the full ranking and the budgeted search go through
/// <see cref="VlmSelectionOptions.Worker"/>, and a worker that splits the work into shards and merges their statistics
/// bytes in order (what a cluster does) gives the same ranking.
/// </summary>
public sealed class SelectionWorkerTests
{
    private static readonly string[] Classes = [.. ImageSource.FashionMnistClassNames];

    [Fact]
    public void TheLocalWorkerIsExactlyTheDirectSinglePass()
    {
        var (images, labels) = VisionLanguageModelSelectionTests.LabelledSubsetFiles(70);
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var source = ImageSource.FromIdx(images, labels, ImageSource.FashionMnistClassNames);
        var options = new SelectionOptions { Bootstrap = new BootstrapOptions { Replicates = 0 } };
        var result = VisionLanguageModelSelection.SelectVisionLanguageModel([hf], source, Classes, new VlmSelectionOptions { Selection = options });

        // Second computation, the way a selection did it before the seam: embed, add every row with its index, finish.
        var texts = hf.EmbedClassNames(Classes);
        var embedded = ImageEmbedder.Embed(hf, source);
        var acc = new ScoringAccumulator(hf.Name, texts, options);
        acc.Add(embedded.Embeddings, embedded.Items.Select(i => (long)i.Index).ToArray());
        var direct = ModelSelector.Finish(acc, TimeSpan.Zero);
        Assert.Equal(direct.Metrics, result.Ranking.Models[0].Metrics); // bit for bit
        var labelIndex = embedded.Items.Select(i => Array.IndexOf(Classes, i.Label)).ToArray();
        Assert.Equal(SelectionEvaluation.ZeroShotAccuracy(embedded.Embeddings, texts, labelIndex), result.Evaluation!.Accuracies[hf.Name]);
    }

    /// <summary>Splits every work into shards, computes each with the local worker on fresh statistics, ships them as bytes and merges them in order.</summary>
    private sealed class ShardingWorker(int shardSize) : SelectionWorker
    {
        public readonly List<SelectionWork> Works = [];
        public readonly List<long> ImagesBefore = []; // in the statistics the work came with

        internal override async Task<SelectionWorkResult> ComputeAsync(SelectionWork work, CancellationToken cancellationToken = default)
        {
            Works.Add(work);
            ImagesBefore.Add(work.Statistics?.ImageCount ?? -1);
            var statistics = work.Statistics;
            int embedded = 0, cached = 0;
            long correct = 0;
            var skipped = new List<SkippedItem>();
            for (int from = 0; from < work.Images.Count; from += shardSize)
            {
                int to = Math.Min(work.Images.Count, from + shardSize);
                var positions = Enumerable.Range(from, to - from).ToArray();
                var shard = work with
                {
                    Images = work.Images.Subset(positions),
                    ImageIndices = [.. positions.Select(p => work.ImageIndices[p])],
                    Labels = work.Labels is { } l ? [.. positions.Select(p => l[p])] : null,
                    Statistics = null,
                };
                var done = await new LocalSelectionWorker().ComputeAsync(shard, cancellationToken);
                var part = SelectionStatistics.FromBytes(done.Statistics.ToBytes());
                if (statistics is null) statistics = part;
                else statistics.Merge(part);
                embedded += done.ImagesEmbedded;
                cached += done.FromCache;
                correct += done.CorrectPredictions ?? 0;
                skipped.AddRange(done.Skipped);
            }
            return new SelectionWorkResult { Statistics = statistics!, ImagesEmbedded = embedded, FromCache = cached, CorrectPredictions = work.Labels is null ? null : correct, Skipped = skipped };
        }
    }

    [Fact]
    public void AShardingWorkerGivesTheSameRankingAndTheBudgetedSearchUsesIt()
    {
        var (images, labels) = VisionLanguageModelSelectionTests.LabelledSubsetFiles(90);
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        using var openai = ClipModel.Load(ClipModelTests.OpenAiFolder(), new ClipModelOptions { Name = "openai" });
        var source = ImageSource.FromIdx(images, labels, ImageSource.FashionMnistClassNames);

        var local = VisionLanguageModelSelection.SelectVisionLanguageModel([hf, openai], source, Classes);
        var worker = new ShardingWorker(13);
        var sharded = VisionLanguageModelSelection.SelectVisionLanguageModel([hf, openai], source, Classes, new VlmSelectionOptions { Worker = worker });
        Assert.Equal(2, worker.Works.Count);
        Assert.All(worker.Works, w => Assert.Equal(90, w.Images.Count));
        Assert.Equal(local.Ranking.Models.Select(m => m.ModelName), sharded.Ranking.Models.Select(m => m.ModelName));
        foreach (var (l, s) in local.Ranking.Models.Zip(sharded.Ranking.Models))
            foreach (var (name, value) in l.Metrics)
                // Dispersity of these random-weight towers only to 1e-7 (near-zero singular values, docs/vega.md §2).
                Assert.True(Math.Abs(value - s.Metrics[name]) <= (name == "dispersity" ? 1e-7 : 1e-9), $"{l.ModelName} {name}: {value} vs {s.Metrics[name]}");
        Assert.Equal(local.Evaluation!.Accuracies, sharded.Evaluation!.Accuracies);

        // The budgeted search (3 → 2 candidates: samples of 20, then all 90) sends each round's new images, with the
        // candidate's statistics so far to add them to.
        var search = new VlmSelectionOptions { Worker = new ShardingWorker(7), BudgetedSearch = new BudgetedSearchOptions { MinimumSample = 20, Seed = 1 } };
        var searched = VisionLanguageModelSelection.SelectVisionLanguageModel(
            [ModelCandidate.FromModel(hf), ModelCandidate.FromModel(openai), ModelCandidate.FromPath(Path.Combine(Fixtures.Onnx, "hf"), "hf-again")], source, Classes, search);
        var works = ((ShardingWorker)search.Worker).Works;
        Assert.Equal([20, 20, 20, 70, 70], works.Select(w => w.Images.Count));
        // Empty statistics first, then the finalists' round-0 statistics, grown by round 1 (the same objects).
        Assert.Equal([0, 0, 0, 20, 20], ((ShardingWorker)search.Worker).ImagesBefore);
        Assert.Contains(works.Take(3), w => ReferenceEquals(w.Statistics, works[3].Statistics));
        Assert.Empty(works[0].ImageIndices.Intersect(works[3].ImageIndices));
        Assert.Equal(90, works[0].ImageIndices.Union(works[3].ImageIndices).Count());
        Assert.Equal(90, searched.Ranking.Chosen.ImageCount);
    }

    [Fact]
    public async Task BadWorkIsAClearError()
    {
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var texts = hf.EmbedClassNames(["cat", "dog"]);
        var images = ImageSource.FromPaths([Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(Fixtures.Images, "minus.png")]);
        var work = new SelectionWork { Candidate = ModelCandidate.FromModel(hf), ClassTexts = texts, Images = images, ImageIndices = [0, 1] };
        var done = await new LocalSelectionWorker().ComputeAsync(work);
        Assert.Equal(2, done.ImagesEmbedded);
        Assert.Null(done.CorrectPredictions);
        var partly = await new LocalSelectionWorker().ComputeAsync(work with { Labels = [1, -1] });
        Assert.Equal(2, partly.ImagesEmbedded);
        Assert.Null(partly.CorrectPredictions); // one image has no label
        Assert.NotNull((await new LocalSelectionWorker().ComputeAsync(work with { Labels = [1, 0] })).CorrectPredictions);
        Assert.Contains("image indices", Assert.Throws<ArgumentException>(() => (work with { ImageIndices = [0] }).Validate()).Message);
        Assert.Contains("outside the 2 classes", Assert.Throws<ArgumentException>(() => (work with { Labels = [0, 2] }).Validate()).Message);
        var other = SelectionStatistics.Create("other", texts);
        Assert.Contains("statistics of 'other'", Assert.Throws<ArgumentException>(() => (work with { Statistics = other }).Validate()).Message);
    }
}
