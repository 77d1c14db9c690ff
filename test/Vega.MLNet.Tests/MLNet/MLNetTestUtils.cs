using Microsoft.ML;

namespace Vega.MLNet.Tests.MLNet;

/// <summary>Public-API stand-ins for ML.NET's internal test helpers.</summary>
internal static class MLNetTestUtils
{
    private sealed class Empty { }

    /// <summary>The SchemaShape of the columns of <typeparamref name="T"/> (ML.NET keeps SchemaShape.Create internal: a
    /// CustomMapping estimator that outputs <typeparamref name="T"/> declares them).</summary>
    public static SchemaShape ShapeOf<T>() where T : class, new() =>
        new MLContext().Transforms.CustomMapping<Empty, T>((_, _) => { }, contractName: null).GetOutputSchema(new SchemaShape([]));
}
