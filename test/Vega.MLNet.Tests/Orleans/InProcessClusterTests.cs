using Microsoft.Extensions.Configuration;
using Orleans.TestingHost;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Orleans;
using Vega.MLNet.Selection;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Orleans;

/// <summary>An Orleans test cluster of 3 silos in this process, talking over loopback TCP, shared by the tests of a class.</summary>
public sealed class ThreeSiloCluster : IAsyncLifetime
{
    public TestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.Options.ConnectionTransport = ConnectionTransportType.TcpSocket;
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        builder.AddClientBuilderConfigurator<ClientConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder) => siloBuilder.AddVegaSelection();
    }

    private sealed class ClientConfigurator : IClientBuilderConfigurator
    {
        public void Configure(IConfiguration configuration, IClientBuilder clientBuilder) => clientBuilder.AddVegaSelection();
    }
}

/// <summary>The Orleans tests run one at a time (each keeps the CPU busy with several silos).</summary>
[CollectionDefinition("Orleans", DisableParallelization = true)]
public sealed class OrleansCollection;

/// <summary>
/// Model selection on a 3-silo cluster against the same selection on one machine (the local worker): the full ranking,
/// the budgeted search, and the errors that must end a run rather than hang it.
/// </summary>
[Collection("Orleans")]
public sealed class InProcessClusterTests(ThreeSiloCluster fixture) : IClassFixture<ThreeSiloCluster>
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private OrleansSelectionWorker Worker(int shardSize, List<ClusterRunReport>? reports = null) =>
        new(fixture.Cluster.Client, new ClusterWorkerOptions { ShardSize = shardSize, OnReport = reports is null ? null : r => { lock (reports) reports.Add(r); } });

    private static Task<VlmSelectionResult> Select(ImageSource images, VlmSelectionOptions options, params string[] models) =>
        Task.Run(() => VisionLanguageModelSelection.SelectVisionLanguageModel([.. models.Select(m => ModelCandidate.FromPath(m))], images, ClusterTestData.Classes, options))
            .WaitAsync(Bound); // a hang fails the test instead of stalling the run

    /// <summary>Every score, interval and P(best) of <paramref name="actual"/> equals <paramref name="expected"/>'s to <paramref name="tolerance"/>.</summary>
    internal static void SameRanking(RankingResult expected, RankingResult actual, double tolerance)
    {
        Assert.Equal(expected.Models.Select(m => m.ModelName), actual.Models.Select(m => m.ModelName));
        foreach (var (e, a) in expected.Models.Zip(actual.Models))
        {
            Assert.Equal(e.ImageCount, a.ImageCount);
            foreach (var (name, value) in e.Metrics)
                Assert.True(Math.Abs(value - a.Metrics[name]) <= tolerance, $"{e.ModelName} {name}: {value} vs {a.Metrics[name]}");
            Assert.Equal(e.Intervals is null, a.Intervals is null);
            if (e.Intervals is { } ei)
                foreach (var (name, iv) in ei)
                {
                    Assert.True(Math.Abs(iv.Lower - a.Intervals![name].Lower) <= tolerance, $"{e.ModelName} {name} lower");
                    Assert.True(Math.Abs(iv.Upper - a.Intervals[name].Upper) <= tolerance, $"{e.ModelName} {name} upper");
                }
            Assert.Equal(e.TopProbability, a.TopProbability);
        }
    }

    [Fact]
    public async Task TheClusterRankingEqualsTheSingleMachineRanking()
    {
        var images = ImageSource.FromCsv(ClusterTestData.Manifest(120));
        var models = ClusterTestData.Models();
        var local = await Select(images, new VlmSelectionOptions(), models);

        // 8 shards of 16 images per model over 3 silos, merged in shard order.
        var reports = new List<ClusterRunReport>();
        var cluster = await Select(images, new VlmSelectionOptions { Worker = Worker(16, reports) }, models);
        SameRanking(local.Ranking, cluster.Ranking, 1e-9);
        Assert.Equal(local.Evaluation!.Accuracies, cluster.Evaluation!.Accuracies); // exact: counts of correct predictions
        Assert.Equal(local.Runs.Select(r => r.ImagesEmbedded), cluster.Runs.Select(r => r.ImagesEmbedded));
        var skipped = Assert.Single(cluster.Skipped);
        Assert.Equal(Assert.Single(local.Skipped), skipped);
        Assert.Equal(5, skipped.Index);
        Assert.Equal(2, reports.Count);
        Assert.All(reports, r => Assert.Equal(8, r.Shards));
        Assert.Equal(3, reports.SelectMany(r => r.ShardRuns).Select(s => s.Silo).Distinct().Count());

        // One shard: the same computation on a silo, shipped as bytes — equal to the last bit.
        var oneShard = await Select(images, new VlmSelectionOptions { Worker = Worker(1000) }, models);
        SameRanking(local.Ranking, oneShard.Ranking, 0);
    }

    private sealed class PathRow { public string ImagePath { get; set; } = ""; }

    [Fact]
    public async Task SelectVisionLanguageModelWithAClusterWorkerRanksAsInThisProcess()
    {
        // The ML.NET entry point: the same estimator with and without Worker, over an IDataView of image paths.
        string manifest = ClusterTestData.Manifest(60);
        string dir = Path.GetDirectoryName(manifest)!;
        var ml = new Microsoft.ML.MLContext(seed: 1);
        var rows = File.ReadLines(manifest).Skip(1).Select(l => new PathRow { ImagePath = Path.Combine(dir, l.Split(',')[0]) }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var models = ClusterTestData.Models();
        Vega.MLNet.VisionLanguageModelSelectingTransformer Fit(SelectionWorker? worker) =>
            Microsoft.ML.VegaCatalog.SelectVisionLanguageModel(ml.Transforms, new Vega.MLNet.VisionLanguageModelSelectingEstimator.Options
            {
                CandidateModelPaths = models, ClassNames = ClusterTestData.Classes, ImageColumnName = "ImagePath", Worker = worker,
            }).Fit(data);
        using var local = await Task.Run(() => Fit(null)).WaitAsync(Bound);
        using var cluster = await Task.Run(() => Fit(Worker(16))).WaitAsync(Bound);
        Assert.Equal(local.ChosenModel, cluster.ChosenModel);
        SameRanking(local.Result.Ranking, cluster.Result.Ranking, 1e-9);
        Assert.Equal(local.Result.Skipped, cluster.Result.Skipped);

        // A bytes column cannot be shipped to a worker: refused with the column and the fix.
        var bytes = ml.Data.LoadFromEnumerable(rows.Take(4).Select(r => new BytesRow { Image = File.ReadAllBytes(r.ImagePath) }));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Microsoft.ML.VegaCatalog.SelectVisionLanguageModel(ml.Transforms,
            new Vega.MLNet.VisionLanguageModelSelectingEstimator.Options { CandidateModelPaths = models, ClassNames = ClusterTestData.Classes, ImageColumnName = "Image", Worker = Worker(4) }).Fit(bytes));
        Assert.Contains("'Image'", e.Message);
        Assert.Contains("set Worker to null", e.Message);
    }

    private sealed class BytesRow { public byte[] Image { get; set; } = []; }

    [Fact]
    public async Task TheBudgetedSearchOnTheClusterEqualsTheSingleMachineSearch()
    {
        var images = ImageSource.FromCsv(ClusterTestData.Manifest(90));
        var models = ClusterTestData.Models();
        var search = new BudgetedSearchOptions { MinimumSample = 30, Seed = 7 };
        var local = await Select(images, new VlmSelectionOptions { BudgetedSearch = search }, models);
        var cluster = await Select(images, new VlmSelectionOptions { BudgetedSearch = search, Worker = Worker(8) }, models);

        Assert.Equal(local.ChosenModel, cluster.ChosenModel);
        Assert.Equal(local.Ranking.Trials!.Select(t => (t.Settings.ModelName, t.Settings.Round, t.Settings.SampleSize, t.Status, t.Eliminated, t.ImagesEmbedded)),
            cluster.Ranking.Trials!.Select(t => (t.Settings.ModelName, t.Settings.Round, t.Settings.SampleSize, t.Status, t.Eliminated, t.ImagesEmbedded)));
        foreach (var (l, c) in local.Ranking.Trials!.Zip(cluster.Ranking.Trials!))
            Assert.True(Math.Abs(l.Metric - c.Metric) <= 1e-9, $"trial {l.Settings.TrialId}: {l.Metric} vs {c.Metric}");
        SameRanking(local.Ranking, cluster.Ranking, 1e-9);
        Assert.Equal(local.Runs.Select(r => (r.ImagesEmbedded, r.Accuracy)), cluster.Runs.Select(r => (r.ImagesEmbedded, r.Accuracy)));
    }

    [Fact]
    public async Task ASiloThatCannotLoadTheModelEndsTheRunWithItsError()
    {
        var images = ImageSource.FromCsv(ClusterTestData.Manifest(20));
        // The coordinator loads the copy (for the class texts); then the files go, so the silos cannot load it.
        string copy = Path.Combine(Fixtures.TempDir(), "vanishing");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Onnx, "hf"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var options = new VlmSelectionOptions { Worker = Worker(8), OnModelStarting = (_, m) => { if (m.Name == "vanishing") Directory.Delete(copy, recursive: true); } };
        var e = await Assert.ThrowsAsync<ClipModelException>(() => Select(images, options, copy));
        Assert.Contains("cannot load the model 'vanishing'", e.Message);
        Assert.Contains(copy, e.Message);
        Assert.Contains("Silo ", e.Message);

        // In a budgeted search the same error is a failed trial of that candidate, and the search goes on with the others.
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Onnx, "hf"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var searched = await Select(images, options with { BudgetedSearch = new BudgetedSearchOptions { MinimumSample = 10 } }, copy, ClusterTestData.FixtureModels()[1]);
        var failed = Assert.Single(searched.Ranking.Trials!, t => t.Status == SelectionTrialStatus.Failed);
        Assert.Contains("cannot load the model 'vanishing'", failed.Error);
    }

    [Fact]
    public async Task ASiloWithOtherModelFilesAtThePathIsAnError()
    {
        // The coordinator's model (hf) and the candidate's path (openai) differ: the silo sees another SHA-256.
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var images = ImageSource.FromCsv(ClusterTestData.Manifest(8));
        var work = new SelectionWork
        {
            Candidate = ModelCandidate.FromPath(ClusterTestData.FixtureModels()[1], "hf"),
            Model = hf,
            ClassTexts = hf.EmbedClassNames(ClusterTestData.Classes),
            Images = images,
            ImageIndices = [.. Enumerable.Range(0, images.Count)],
        };
        var e = await Assert.ThrowsAsync<ClipModelException>(() => Worker(4).ComputeAsync(work).WaitAsync(Bound));
        Assert.Contains("different model", e.Message);

        // Without the coordinator's model there is nothing to compare: the silo's files are used.
        var done = await Worker(4).ComputeAsync(work with { Model = null }).WaitAsync(Bound);
        Assert.Equal(images.Count - 1, done.ImagesEmbedded);
    }

    [Fact]
    public async Task WorkTheClusterCannotReachIsRefusedBeforeAnyCall()
    {
        using var hf = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        var texts = hf.EmbedClassNames(ClusterTestData.Classes);
        var files = ImageSource.FromCsv(ClusterTestData.Manifest(4));
        var loaded = new SelectionWork { Candidate = ModelCandidate.FromModel(hf), ClassTexts = texts, Images = files, ImageIndices = [.. Enumerable.Range(0, files.Count)] };
        Assert.Contains("by path", (await Assert.ThrowsAsync<ArgumentException>(() => Worker(4).ComputeAsync(loaded))).Message);

        var idx = ImageSource.FromIdx(Vega.MLNet.Tests.Embedding.ImageEmbedderTests.FashionSubset(3));
        var inMemory = loaded with { Candidate = ModelCandidate.FromPath(Path.Combine(Fixtures.Onnx, "hf")), Images = idx, ImageIndices = [0, 1, 2] };
        Assert.Contains("is not a file", (await Assert.ThrowsAsync<ArgumentException>(() => Worker(4).ComputeAsync(inMemory))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OrleansSelectionWorker(fixture.Cluster.Client, new ClusterWorkerOptions { ShardSize = 0 }));
    }
}
