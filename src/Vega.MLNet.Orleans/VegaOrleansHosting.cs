using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;

namespace Vega.MLNet.Orleans;

/// <summary>Sets up Orleans silos and clients for Vega's model selection.</summary>
public static class VegaOrleansHosting
{
    /// <summary>
    /// The largest message a Vega silo or client accepts: 1 GiB. A shard's statistics hold C×D sums and 64 Gram matrices of
    /// C×C (C ≤ 362), or C·D(D+1)/2 co-moments in the full-covariance modes (105 MB at C = 100, D = 512), above Orleans'
    /// default of 100 MiB.
    /// </summary>
    public const int MaxMessageBodySize = 1 << 30;

    /// <summary>
    /// Makes this silo run Vega's selection shards (the grain <c>ISelectionShardGrain</c> and the per-silo model cache),
    /// with messages up to <see cref="MaxMessageBodySize"/>. Clustering, endpoints and the rest of the silo are the caller's.
    /// </summary>
    public static ISiloBuilder AddVegaSelection(this ISiloBuilder builder, Action<VegaSiloOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new VegaSiloOptions();
        configure?.Invoke(options);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<SiloSelectionService>();
        builder.Configure<SiloMessagingOptions>(o => o.MaxMessageBodySize = Math.Max(o.MaxMessageBodySize, MaxMessageBodySize));
        return builder;
    }

    /// <summary>Lets this client receive shard statistics up to <see cref="MaxMessageBodySize"/>.</summary>
    public static IClientBuilder AddVegaSelection(this IClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Configure<ClientMessagingOptions>(o => o.MaxMessageBodySize = Math.Max(o.MaxMessageBodySize, MaxMessageBodySize));
        return builder;
    }
}
