using System.Text;

namespace Vega.MLNet.Text;

/// <summary>
/// Provenance of a text derived from an original by the clean-up steps: for every UTF-16 unit of the derived text,
/// the range <c>[Start, End)</c> of the original it came from. A unit produced from several original characters
/// (an HTML reference, a re-decoded mojibake sequence, a composed character) covers all of them; an inserted unit
/// covers the empty range at its insertion point.
/// </summary>
internal sealed class Origins
{
    public Origins(int[] start, int[] end)
    {
        Start = start;
        End = end;
    }

    public int[] Start { get; }

    public int[] End { get; }

    public int Length => Start.Length;

    public static Origins Identity(int length)
    {
        var s = new int[length];
        var e = new int[length];
        for (int i = 0; i < length; i++) { s[i] = i; e[i] = i + 1; }
        return new Origins(s, e);
    }

    /// <summary>The original range covered by the units <c>[from, to)</c>; the insertion point when empty.</summary>
    public (int Start, int End) Cover(int from, int to)
    {
        if (from >= to)
        {
            int p = from < Length ? Start[from] : Length > 0 ? End[Length - 1] : 0;
            return (p, p);
        }
        int s = int.MaxValue, e = int.MinValue;
        for (int i = from; i < to; i++)
        {
            if (Start[i] < s) s = Start[i];
            if (End[i] > e) e = End[i];
        }
        return (s, e);
    }

    public Origins Slice(int from, int to) => new(Start[from..to], End[from..to]);
}

/// <summary>Collects the units of a derived text together with their provenance (when tracked).</summary>
internal sealed class OriginsBuilder(int capacity)
{
    private readonly List<int> _start = new(capacity);
    private readonly List<int> _end = new(capacity);

    public void Add(int start, int end, int count = 1)
    {
        for (int k = 0; k < count; k++) { _start.Add(start); _end.Add(end); }
    }

    public void AddRange(Origins source, int from, int to)
    {
        for (int i = from; i < to; i++) { _start.Add(source.Start[i]); _end.Add(source.End[i]); }
    }

    public Origins Build() => new([.. _start], [.. _end]);
}

/// <summary>
/// Applies left-to-right, non-overlapping replacements to a text, carrying provenance along when the text has any:
/// unchanged units keep theirs, replacement units cover the replaced range. Returns the input itself when nothing
/// was replaced.
/// </summary>
internal sealed class Rewriter(string source, Origins? origins)
{
    private StringBuilder? _sb;
    private OriginsBuilder? _org;
    private int _done;

    public bool Changed => _sb is not null;

    public void Replace(int from, int to, char with) => Replace(from, to, new ReadOnlySpan<char>(in with));

    public void Replace(int from, int to, ReadOnlySpan<char> with)
    {
        if (_sb is null)
        {
            _sb = new StringBuilder(source.Length + 16);
            if (origins is not null) _org = new OriginsBuilder(source.Length + 16);
        }
        _sb.Append(source, _done, from - _done);
        _org?.AddRange(origins!, _done, from);
        _sb.Append(with);
        if (_org is not null)
        {
            var (s, e) = origins!.Cover(from, to);
            _org.Add(s, e, with.Length);
        }
        _done = to;
    }

    public string Finish(ref Origins? tracked)
    {
        if (_sb is null) return source;
        _sb.Append(source, _done, source.Length - _done);
        if (_org is not null)
        {
            _org.AddRange(origins!, _done, source.Length);
            tracked = _org.Build();
        }
        return _sb.ToString();
    }
}
