using System.Diagnostics;
using Orleans.Runtime.Placement;
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Orleans;

/// <summary>Options of <see cref="OrleansSelectionWorker"/>.</summary>
public sealed record ClusterWorkerOptions
{
    /// <summary>Images per shard (one grain call). Default 256. Smaller shards spread better and lose less to a crash; each costs one statistics blob.</summary>
    public int ShardSize { get; init; } = 256;

    /// <summary>
    /// Longest one attempt at a shard may take (activation, waiting for the silo, embedding, reply); past it the attempt is
    /// abandoned and the shard re-run on another silo. Default 10 minutes. A silo that leaves the cluster is noticed sooner
    /// (<see cref="LivenessInterval"/>).
    /// </summary>
    public TimeSpan ShardTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Failures of a shard on silos that answered (an error, a timeout) before the run fails; each retry goes to another
    /// silo when there is one. Failures to reach a silo (a crashed silo or gateway that the membership has not yet
    /// declared dead) are retried up to 5 × this many times, one second apart. Default 4.
    /// </summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>
    /// How often the cluster's active silos are listed while shards run: a shard on a silo that is no longer active is
    /// re-run elsewhere at once. Default 2 s.
    /// </summary>
    public TimeSpan LivenessInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long to wait for at least one active silo before the run fails. Default 30 s.</summary>
    public TimeSpan NoSiloTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Receives a line for every shard that is re-run (which silo, why); may be null.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Receives progress after every finished shard (images done of the work's total, from cache, skipped, rate); may be null.</summary>
    public IProgress<EmbeddingProgress>? Progress { get; init; }

    /// <summary>Receives the figures of every finished <see cref="OrleansSelectionWorker.ComputeAsync"/> (benchmarks and tests).</summary>
    internal Action<ClusterRunReport>? OnReport { get; init; }

    internal void Validate()
    {
        if (ShardSize < 1) throw new ArgumentOutOfRangeException(nameof(ShardSize), ShardSize, "The shard size must be at least 1 image (default 256).");
        if (ShardTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ShardTimeout), ShardTimeout, "The shard timeout must be positive (default 10 minutes).");
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "At least one attempt per shard (default 4).");
        if (LivenessInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(LivenessInterval), LivenessInterval, "The liveness interval must be positive (default 2 s).");
        if (NoSiloTimeout < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(NoSiloTimeout), NoSiloTimeout, "The wait for an active silo cannot be negative (default 30 s).");
    }
}

/// <summary>Figures of one cluster run (one <see cref="SelectionWork"/>).</summary>
internal sealed record ClusterRunReport(
    string ModelName, int Images, int Shards, int Attempts, IReadOnlyList<string> Retries, IReadOnlyList<(int Shard, string Silo, double Seconds)> ShardRuns,
    TimeSpan Wall, TimeSpan Merge, long BytesReceived);

/// <summary>
/// An <see cref="SelectionWorker"/> that runs the embedding work on an Orleans cluster: the work's images are cut into
/// shards of <see cref="ClusterWorkerOptions.ShardSize"/>, each shard is embedded by a grain on a silo (one shard per
/// silo at a time, placed by the coordinator) and returns its <see cref="SelectionStatistics"/> as bytes, and the shards
/// are merged in shard order — so the result does not depend on timing or on which silo ran what. A shard whose call
/// fails, times out or whose silo leaves the cluster is re-run on another silo; a silo that cannot load the model ends
/// the run with its error.
/// </summary>
/// <remarks>
/// Requirements: candidates are given by path (<see cref="ModelCandidate.FromPath(string, string?)"/>) and images are files (a folder, a
/// CSV manifest or a list of paths), both readable at the same paths on every silo; the silos are set up with
/// <see cref="VegaOrleansHosting.AddVegaSelection(global::Orleans.Hosting.ISiloBuilder, Action{VegaSiloOptions}?)"/>.
/// See docs/scale-out.md.
/// </remarks>
public sealed class OrleansSelectionWorker : SelectionWorker
{
    private readonly IGrainFactory _grains;
    private readonly ClusterWorkerOptions _options;

    /// <summary>A worker that sends its shards through <paramref name="grains"/> (an <c>IClusterClient</c>, or a silo's grain factory).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public OrleansSelectionWorker(IGrainFactory grains, ClusterWorkerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(grains);
        options ??= new ClusterWorkerOptions();
        options.Validate();
        _grains = grains;
        _options = options;
    }

    /// <summary>The options.</summary>
    public ClusterWorkerOptions Options => _options;

    private sealed class Flight(int shard, int attempt, SiloAddress silo, CancellationTokenSource cts)
    {
        public readonly int Shard = shard, Attempt = attempt;
        public readonly SiloAddress Target = silo;
        public SiloAddress Silo = silo;
        public readonly CancellationTokenSource Cancel = cts;
        public string? LostReason;
        public ISelectionShardGrain? Grain;
        public DateTime ComputeSent = DateTime.MaxValue; // set when the compute call leaves
        public int MissedChecks;
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The candidate has no path, an image is not a file, or a silo found the input wrong.</exception>
    /// <exception cref="ClipModelException">A silo cannot load the model (or has different files at its path).</exception>
    /// <exception cref="IOException">No silo is active, or a shard failed <see cref="ClusterWorkerOptions.MaxAttempts"/> times (the message lists every attempt).</exception>
    internal override async Task<SelectionWorkResult> ComputeAsync(SelectionWork work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        work.Validate();
        var clock = Stopwatch.StartNew();
        string name = work.Candidate.Name;
        string path = work.Candidate.Path ?? throw new ArgumentException(
            $"Candidate '{name}' was given as a loaded model; a cluster loads the candidates on its silos, so give them by path (ModelCandidate.FromPath) at a location every silo can read.", nameof(work));
        var items = work.Images.Items;
        var paths = new string[items.Count];
        for (int i = 0; i < items.Count; i++)
            paths[i] = items[i].Path ?? throw new ArgumentException(
                $"Image '{items[i].Id}' of {work.Images.Description} is not a file; a cluster reads images from files every silo can reach (a folder, a CSV manifest or a list of paths). IDX and in-memory images run with the local worker.", nameof(work));

        int n = items.Count, size = _options.ShardSize, count = (n + size - 1) / size;
        string run = Guid.NewGuid().ToString("N");
        var request = new ShardRequest
        {
            ModelName = name,
            ModelPath = path,
            ModelHash = ContentHash(work.Model),
            ClassCount = work.ClassTexts.Count,
            Dimension = work.ClassTexts.Dimension,
            ClassTexts = work.ClassTexts.Data,
            Paths = [],
            ImageIndices = [],
            ApplyExifOrientation = work.Images.DecodeOptions.ApplyExifOrientation,
            MaxPixels = work.Images.DecodeOptions.MaxPixels,
            BatchSize = work.Embedding.BatchSize,
            DecodeThreads = work.Embedding.DecodeThreads,
            QueuedBatches = work.Embedding.QueuedBatches,
            Identity = (int)work.Embedding.Identity,
            Selection = WireSelectionOptions.From(work.Selection),
        };
        ShardRequest Shard(int s)
        {
            int from = s * size, to = Math.Min(n, from + size);
            var indices = new int[to - from];
            for (int i = from; i < to; i++) indices[i - from] = work.ImageIndices[i];
            int[]? labels = null;
            if (work.Labels is { } all)
            {
                labels = new int[to - from];
                for (int i = from; i < to; i++) labels[i - from] = all[i];
            }
            return request with { Paths = paths[from..to], ImageIndices = indices, Labels = labels };
        }

        var results = new ShardResult?[count];
        var retries = new List<string>();
        var runs = new List<(int, string, double)>();
        int attemptsMade = 0;
        using var runCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = runCts.Token;
        var inflight = new Dictionary<Task<ShardResult>, Flight>();
        try
        {
            var pending = new SortedSet<int>(Enumerable.Range(0, count)); // lowest shard first, retried ones included
            var attempts = new int[count];
            var hardFailures = new int[count];
            var softFailures = new int[count];
            var notBefore = new DateTime[count];
            var failures = new List<string>?[count];
            var excluded = new HashSet<SiloAddress>?[count];
            var load = new Dictionary<SiloAddress, int>();
            List<SiloAddress> hosts = count > 0 ? await WaitForSilos(ct).ConfigureAwait(false) : [];
            int remaining = count, done = 0, fromCache = 0, skippedCount = 0, rotate = 0;
            Task? tick = null; // the next liveness check, however often shards complete
            while (remaining > 0)
            {
                // Give every idle silo a shard: the lowest pending one that has not failed there (if another silo exists).
                var now = DateTime.UtcNow;
                foreach (int s in pending.ToArray())
                {
                    if (notBefore[s] > now) continue;
                    var free = hosts.Where(h => load.GetValueOrDefault(h) == 0).ToList();
                    if (free.Count == 0) break;
                    var allowed = free.Where(h => excluded[s]?.Contains(h) != true).ToList();
                    if (allowed.Count == 0)
                    {
                        if (hosts.Any(h => excluded[s]?.Contains(h) != true)) continue; // wait for a silo it has not failed on
                        allowed = free;
                    }
                    var silo = allowed[rotate++ % allowed.Count];
                    pending.Remove(s);
                    load[silo] = 1;
                    attemptsMade++;
                    var flight = new Flight(s, ++attempts[s], silo, CancellationTokenSource.CreateLinkedTokenSource(ct));
                    inflight[Attempt(flight, run, Shard(s))] = flight;
                }
                if (inflight.Count == 0)
                {
                    if (pending.Count > 0 && pending.Min(s => notBefore[s]) > DateTime.UtcNow)
                        await Task.Delay(pending.Min(s => notBefore[s]) - DateTime.UtcNow, ct).ConfigureAwait(false);
                    hosts = await WaitForSilos(ct).ConfigureAwait(false);
                    continue;
                }

                tick ??= Task.Delay(_options.LivenessInterval, ct);
                var finished = await Task.WhenAny(inflight.Keys.Append(tick)).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                if (tick.IsCompleted)
                {
                    tick = null;
                    // A shard on a silo that left the cluster will not answer before its timeout: re-run it now.
                    if (await ActiveSilos(ct).ConfigureAwait(false) is { } active)
                    {
                        hosts = active;
                        foreach (var f in inflight.Values)
                            if (!active.Contains(f.Silo) && f.LostReason is null)
                            {
                                f.LostReason = $"silo {f.Silo} is no longer active in the cluster";
                                f.Cancel.Cancel();
                            }
                    }
                    await CheckCalls(inflight.Values, ct).ConfigureAwait(false);
                }
                if (finished is not Task<ShardResult> task || !inflight.ContainsKey(task)) continue;

                var flightDone = inflight[task];
                inflight.Remove(task);
                load[flightDone.Target] = 0;
                flightDone.Cancel.Cancel(); // tells the grain to stop if the call was abandoned
                flightDone.Cancel.Dispose();
                int shard = flightDone.Shard;
                string? failure = null;
                bool unreachable = false;
                try
                {
                    var result = await task.ConfigureAwait(false);
                    switch (result.ErrorKind)
                    {
                        case ShardErrorKind.ModelUnavailable: throw new ClipModelException(result.Error ?? $"A silo cannot load the model '{name}'.");
                        case ShardErrorKind.BadInput: throw new ArgumentException(result.Error ?? $"A silo rejected the work of '{name}'.");
                    }
                    if (result.Statistics is null) failure = $"silo {result.Silo} returned no statistics";
                    else
                    {
                        results[shard] = result;
                        remaining--;
                        runs.Add((shard, result.Silo, result.Seconds));
                        done += result.ImagesEmbedded + result.SkippedIndices.Length;
                        fromCache += result.FromCache;
                        skippedCount += result.SkippedIndices.Length;
                        if (_options.Progress is { } progress)
                        {
                            double seconds = clock.Elapsed.TotalSeconds, rate = seconds > 0 ? done / seconds : 0;
                            progress.Report(new EmbeddingProgress(done, n, fromCache, skippedCount, rate, rate > 0 && done < n ? TimeSpan.FromSeconds((n - done) / rate) : null));
                        }
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
                catch (Exception e) when (e is not ClipModelException and not ArgumentException)
                {
                    failure = flightDone.LostReason ?? $"{e.GetType().Name}: {e.Message}";
                    unreachable = flightDone.LostReason is not null || Unreachable(e);
                }
                if (failure is null) continue;

                string where = $"attempt {flightDone.Attempt} on {flightDone.Silo}: {failure}";
                (failures[shard] ??= []).Add(where);
                (excluded[shard] ??= []).Add(flightDone.Silo);
                (excluded[shard]!).Add(flightDone.Target);
                if (unreachable)
                {
                    // The cluster has not caught up with a crash yet: pause this shard briefly instead of using up its attempts.
                    softFailures[shard]++;
                    notBefore[shard] = DateTime.UtcNow + TimeSpan.FromSeconds(1);
                }
                else hardFailures[shard]++;
                if (hardFailures[shard] >= _options.MaxAttempts || softFailures[shard] >= 5 * _options.MaxAttempts)
                    throw new IOException($"Shard {shard} of '{name}' ({ShardLength(shard)} images from '{paths[shard * size]}') failed {attempts[shard]} times: {string.Join("; ", failures[shard]!)}. Check that the silos are up and can read the images and the model.");
                string line = $"'{name}' shard {shard}: {where}; re-running it on another silo";
                retries.Add(line);
                _options.Log?.Invoke(line);
                pending.Add(shard);
                hosts = await ActiveSilos(ct).ConfigureAwait(false) ?? hosts;
                if (hosts.Count == 0) hosts = await WaitForSilos(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            runCts.Cancel();
            foreach (var f in inflight.Values)
            {
                f.Cancel.Cancel();
                f.Cancel.Dispose();
            }
        }

        // Merge in shard order: the result does not depend on which silo finished first.
        long m0 = Stopwatch.GetTimestamp(), bytes = 0;
        var statistics = work.Statistics;
        int embedded = 0, cached = 0;
        long correct = 0;
        bool complete = work.Labels is not null;
        var skipped = new List<SkippedItem>();
        Dictionary<int, ImageItem>? byIndex = null;
        for (int s = 0; s < count; s++)
        {
            var r = results[s]!;
            bytes += r.Statistics!.Length;
            var part = SelectionStatistics.FromBytes(r.Statistics);
            if (statistics is null) statistics = part;
            else statistics.Merge(part);
            embedded += r.ImagesEmbedded;
            cached += r.FromCache;
            if (r.ImagesEmbedded > 0)
            {
                if (r.CorrectPredictions is long c) correct += c;
                else complete = false;
            }
            for (int k = 0; k < r.SkippedIndices.Length; k++)
            {
                if (byIndex is null)
                {
                    byIndex = [];
                    for (int i = 0; i < n; i++) byIndex.TryAdd(work.ImageIndices[i], items[i]);
                }
                int index = r.SkippedIndices[k];
                var item = byIndex.GetValueOrDefault(index);
                // The silo sees paths only: the item's origin (e.g. "manifest.csv line 7") is added here, as the local worker does.
                string reason = item is { Path: not null, Origin: { } origin } ? $"{r.SkippedReasons[k]} ({origin})" : r.SkippedReasons[k];
                skipped.Add(new SkippedItem(index, item?.Id ?? $"image {index}", item?.Path, reason));
            }
        }
        statistics ??= SelectionStatistics.Create(name, work.ClassTexts, work.Selection);
        var mergeTime = Stopwatch.GetElapsedTime(m0);
        _options.OnReport?.Invoke(new ClusterRunReport(name, n, count, attemptsMade, retries, runs, clock.Elapsed, mergeTime, bytes));
        return new SelectionWorkResult
        {
            Statistics = statistics,
            ImagesEmbedded = embedded,
            FromCache = cached,
            CorrectPredictions = complete && embedded > 0 ? correct : null,
            Skipped = skipped,
            Elapsed = clock.Elapsed,
        };

        int ShardLength(int s) => Math.Min(n, (s + 1) * size) - s * size;
    }

    // A call that did not reach a live silo (a crashed silo or gateway the membership still lists), as opposed to a
    // failure on a silo that answered.
    private static bool Unreachable(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
            if (x is SiloUnavailableException or OrleansMessageRejectionException or GatewayTooBusyException or global::Orleans.Runtime.Messaging.ConnectionFailedException)
                return true;
        return false;
    }

    // The coordinator's model identity for the silos to compare with; none when its files can no longer be read here.
    private static string? ContentHash(ClipModel? model)
    {
        try
        {
            return model?.ContentHash;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // A call lost on its way (e.g. through the gateway of a silo that just crashed) would wait for its timeout although
    // every silo is alive: ask each running shard's grain whether its call arrived; three misses in a row and it is lost.
    private async Task CheckCalls(IEnumerable<Flight> flights, CancellationToken ct)
    {
        var due = flights.Where(f => f.Grain is not null && f.LostReason is null && DateTime.UtcNow - f.ComputeSent >= _options.LivenessInterval).ToList();
        var answers = await Task.WhenAll(due.Select(async f =>
        {
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bound.CancelAfter(_options.LivenessInterval);
            try
            {
                return await f.Grain!.StatusAsync(bound.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                return -1;
            }
        })).ConfigureAwait(false);
        for (int i = 0; i < due.Count; i++)
        {
            var f = due[i];
            if (answers[i] > 0) f.MissedChecks = 0;
            else if (++f.MissedChecks >= 3 && f.LostReason is null)
            {
                f.LostReason = answers[i] == 0 ? $"the shard's call never reached its grain on {f.Silo}" : $"the shard's grain on {f.Silo} stopped answering";
                f.Cancel.Cancel();
            }
        }
    }

    // One attempt: activate a fresh grain on the chosen silo (placement hint), then compute, bounded by the shard timeout.
    private async Task<ShardResult> Attempt(Flight flight, string run, ShardRequest request)
    {
        var grain = _grains.GetGrain<ISelectionShardGrain>($"{run}/{flight.Shard}/{flight.Attempt}");
        var token = flight.Cancel.Token;
        flight.Cancel.CancelAfter(_options.ShardTimeout);
        try
        {
            // Activation is quick: a prepare call without an answer soon was lost on the way (a crashed gateway).
            var prepareTimeout = TimeSpan.FromTicks(Math.Min(_options.ShardTimeout.Ticks, 5 * _options.LivenessInterval.Ticks));
            using (var prepare = CancellationTokenSource.CreateLinkedTokenSource(token))
            {
                prepare.CancelAfter(prepareTimeout);
                RequestContext.Set(IPlacementDirector.PlacementHintKey, flight.Target);
                try
                {
                    flight.Silo = await grain.PrepareAsync(prepare.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (prepare.IsCancellationRequested && !token.IsCancellationRequested)
                {
                    flight.LostReason ??= $"silo {flight.Target} did not activate the shard within {prepareTimeout.TotalSeconds:F0} s";
                    throw;
                }
                finally
                {
                    RequestContext.Remove(IPlacementDirector.PlacementHintKey);
                }
            }
            flight.Grain = grain;
            flight.ComputeSent = DateTime.UtcNow;
            return await grain.ComputeAsync(request, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested && flight.LostReason is null)
        {
            // Our own timeout (the caller's cancellation is told apart by the caller).
            throw new TimeoutException($"no answer within {_options.ShardTimeout.TotalSeconds:F0} s");
        }
    }

    // The active silos (sorted, so the placement is reproducible), or null when the cluster did not answer in time.
    private async Task<List<SiloAddress>?> ActiveSilos(CancellationToken ct)
    {
        try
        {
            var hosts = await _grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)
                .WaitAsync(_options.LivenessInterval + TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
            return [.. hosts.Where(h => h.Value == SiloStatus.Active).Select(h => h.Key).OrderBy(h => h.ToString(), StringComparer.Ordinal)];
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private async Task<List<SiloAddress>> WaitForSilos(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await ActiveSilos(ct).ConfigureAwait(false) is { Count: > 0 } hosts) return hosts;
            if (clock.Elapsed >= _options.NoSiloTimeout)
                throw new IOException($"No silo of the cluster is active (waited {_options.NoSiloTimeout.TotalSeconds:F0} s); start silos with `vega silo` (docs/scale-out.md) or check the gateway addresses.");
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
        }
    }
}
