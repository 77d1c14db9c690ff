using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vega.MLNet;

/// <summary>
/// What every Vega.MLNet transformer does the same way as an <see cref="ITransformer"/>: it maps one row to one row,
/// lazily (<see cref="Transform"/> returns a view whose added columns are computed when a cursor asks for them), offers
/// a row-to-row mapper for <c>PredictionEngine</c>, and saves with <c>ml.Model.Save</c> as a chain of ML.NET's own
/// transformers (docs/mlnet.md, Saving). Only Vega.MLNet derives from it.
/// </summary>
public abstract class VegaTransformerBase : ITransformer
{
    private protected VegaTransformerBase() { }

    /// <summary>Always true: the transform maps one row to one row.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The input schema plus the columns this transformer adds; checks the types of the columns it reads
    /// (the error names the column, the expected and the actual type).</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Bind(inputSchema).OutputSchema;

    /// <summary>A row-to-row mapper over <paramref name="inputSchema"/> (PredictionEngine uses it: one row per call).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Bind(inputSchema);

    /// <summary>A lazy view of <paramref name="input"/> with the added columns.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MappedDataView(input, Bind(input.Schema));
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) => SavedChain().Save(ctx);

    /// <summary>The row mapping over <paramref name="inputSchema"/>; checks the columns read.</summary>
    private protected abstract RowMapping Bind(DataViewSchema inputSchema);

    /// <summary>The chain of ML.NET transformers that reproduces this one when saved.</summary>
    private protected abstract ICanSaveModel SavedChain();
}
