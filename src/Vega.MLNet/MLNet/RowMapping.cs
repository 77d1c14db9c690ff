using Microsoft.ML;
using Microsoft.ML.Data;

namespace Vega.MLNet;

/// <summary>
/// The columns a Vega.MLNet transformer adds to an input schema, bound to that schema, and how to compute them: per row
/// (<see cref="CreateValues"/>, used by PredictionEngine through <see cref="GetRow"/> and by ordinary cursors) and, for
/// the model-running transforms, with read-ahead batches (<see cref="CreateBatchedCursor"/>). Added columns come after
/// the input's columns; a same-named input column stays reachable by index, as in ML.NET.
/// </summary>
internal abstract class RowMapping : IRowToRowMapper
{
    protected RowMapping(DataViewSchema input, IReadOnlyList<AddedColumn> added)
    {
        InputSchema = input;
        Added = added;
        var b = new DataViewSchema.Builder();
        b.AddColumns(input);
        foreach (var a in added) b.AddColumn(a.Name, a.Type, a.Annotations());
        OutputSchema = b.ToSchema();
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IReadOnlyList<AddedColumn> Added { get; }

    public int FirstAdded => InputSchema.Count;

    /// <summary>The input columns needed to compute the active added columns.</summary>
    public abstract IEnumerable<DataViewSchema.Column> InputsFor(bool[] activeAdded);

    /// <summary>Getters for the active added columns over one input row (which moves under them).</summary>
    public abstract AddedValues CreateValues(DataViewRow input, bool[] activeAdded);

    /// <summary>A cursor that computes the added columns in batches read ahead of the current row, or null to map row
    /// by row. Only called when at least one added column is active.</summary>
    public virtual DataViewRowCursor? CreateBatchedCursor(IDataView input, IReadOnlyList<DataViewSchema.Column> inputColumns, bool[] activeAdded) => null;

    /// <summary>Which added columns are among <paramref name="columns"/> (output-schema columns).</summary>
    public bool[] ActiveAdded(IEnumerable<DataViewSchema.Column> columns)
    {
        var active = new bool[Added.Count];
        foreach (var c in columns)
            if (c.Index >= FirstAdded) active[c.Index - FirstAdded] = true;
        return active;
    }

    /// <summary>The input columns a cursor needs for <paramref name="columns"/> (output-schema columns).</summary>
    public List<DataViewSchema.Column> InputColumns(IEnumerable<DataViewSchema.Column> columns, bool[] activeAdded, bool includeDependencies = true)
    {
        var set = new SortedDictionary<int, DataViewSchema.Column>();
        foreach (var c in columns)
            if (c.Index < FirstAdded) set[c.Index] = InputSchema[c.Index];
        if (includeDependencies && activeAdded.Any(a => a))
            foreach (var c in InputsFor(activeAdded)) set[c.Index] = c;
        return [.. set.Values];
    }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var cols = dependingColumns.ToList();
        return InputColumns(cols, ActiveAdded(cols));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        var active = activeColumns.ToList();
        var activeAdded = ActiveAdded(active);
        return new MappedRow(this, input, activeAdded, activeAdded.Any(a => a) ? CreateValues(input, activeAdded) : null, dispose: false);
    }

    internal ValueGetter<T> Getter<T>(DataViewRow input, AddedValues? values, bool[] activeAdded, DataViewSchema.Column column)
    {
        if (column.Index < FirstAdded) return input.GetGetter<T>(InputSchema[column.Index]);
        int k = column.Index - FirstAdded;
        if (values is null || !activeAdded[k])
            throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it when creating the cursor.");
        return values.Getter(k) as ValueGetter<T>
            ?? throw new InvalidOperationException($"Invalid TValue in GetGetter<{typeof(T).Name}> for column '{column.Name}' of type {column.Type}.");
    }
}

/// <summary>Getters for the added columns over one input row.</summary>
internal abstract class AddedValues : IDisposable
{
    public abstract Delegate Getter(int addedIndex);

    public virtual void Dispose() { }
}

/// <summary>
/// Added values computed once per row position from the input row's getters, then served by every active getter of that
/// row (one model run or one softmax feeds all outputs of the row).
/// </summary>
internal abstract class PerRowValues(DataViewRow input) : AddedValues
{
    private long _computedFor = -1;

    protected DataViewRow Input { get; } = input;

    /// <summary>Computes every active output for the input's current row.</summary>
    protected abstract void Compute();

    protected void Ensure()
    {
        if (_computedFor == Input.Position) return;
        Compute();
        _computedFor = Input.Position;
    }
}

internal sealed class MappedRow(RowMapping mapping, DataViewRow input, bool[] activeAdded, AddedValues? values, bool dispose) : DataViewRow
{
    public override long Position => input.Position;
    public override long Batch => input.Batch;
    public override DataViewSchema Schema => mapping.OutputSchema;
    public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

    public override bool IsColumnActive(DataViewSchema.Column column) =>
        column.Index < mapping.FirstAdded ? input.IsColumnActive(mapping.InputSchema[column.Index]) : activeAdded[column.Index - mapping.FirstAdded];

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => mapping.Getter<TValue>(input, values, activeAdded, column);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            values?.Dispose();
            if (dispose) input.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>A cursor that maps each input row as it comes (no read-ahead).</summary>
internal sealed class MappedCursor(RowMapping mapping, DataViewRowCursor input, bool[] activeAdded) : DataViewRowCursor
{
    private readonly AddedValues? _values = activeAdded.Any(a => a) ? mapping.CreateValues(input, activeAdded) : null;

    public override long Position => input.Position;
    public override long Batch => input.Batch;
    public override DataViewSchema Schema => mapping.OutputSchema;
    public override bool MoveNext() => input.MoveNext();
    public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

    public override bool IsColumnActive(DataViewSchema.Column column) =>
        column.Index < mapping.FirstAdded ? input.IsColumnActive(mapping.InputSchema[column.Index]) : activeAdded[column.Index - mapping.FirstAdded];

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => mapping.Getter<TValue>(input, _values, activeAdded, column);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _values?.Dispose();
            input.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>
/// The lazy result of a Vega.MLNet transformer's <c>Transform</c>: nothing runs until a cursor moves, and a cursor that
/// does not request an added column never runs the model. One cursor per request (a cursor set of one, which ML.NET
/// accepts): the model transforms parallelise inside the cursor instead.
/// </summary>
internal sealed class MappedDataView(IDataView input, RowMapping mapping) : IDataView
{
    public bool CanShuffle => false;

    public DataViewSchema Schema => mapping.OutputSchema;

    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        foreach (var c in needed)
            if (c.Index >= mapping.OutputSchema.Count || !ReferenceEquals(mapping.OutputSchema[c.Index].Name, c.Name) && mapping.OutputSchema[c.Index].Name != c.Name)
                throw new ArgumentOutOfRangeException(nameof(columnsNeeded), $"Column '{c.Name}' is not a column of this data view's schema.");
        var activeAdded = mapping.ActiveAdded(needed);
        if (activeAdded.Any(a => a) && mapping.CreateBatchedCursor(input, mapping.InputColumns(needed, activeAdded, includeDependencies: false), activeAdded) is { } batched)
            return batched;
        return new MappedCursor(mapping, input.GetRowCursor(mapping.InputColumns(needed, activeAdded)), activeAdded);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];
}
