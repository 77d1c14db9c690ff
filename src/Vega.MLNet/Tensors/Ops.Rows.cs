namespace Vega.MLNet.Tensors;

internal static partial class Ops
{
    /// <summary>
    /// A copy of <paramref name="destination"/> in which some rows (vectors along the last dimension) are replaced by
    /// rows of <paramref name="rows"/>: row <c>destRows[k]</c> of the result is row <c>sourceRows[k]</c> of
    /// <paramref name="rows"/> (both tensors viewed as [count, width]; destination rows must be distinct). Gradients
    /// flow to both: the replaced rows' gradient goes to <paramref name="rows"/> (summed when a source row is used
    /// several times), the others to <paramref name="destination"/>. Used to scatter learnable prompt vectors into
    /// token embeddings.
    /// </summary>
    public static Tensor PlaceRows(Tensor destination, Tensor rows, int[] destRows, int[] sourceRows)
    {
        if (destination.Rank == 0 || rows.Rank == 0) throw new ArgumentException("PlaceRows needs tensors of rank ≥ 1.");
        int width = destination.Shape[^1];
        if (rows.Shape[^1] != width)
            throw new ArgumentException($"PlaceRows: rows {rows.ShapeString} and destination {destination.ShapeString} differ in width.", nameof(rows));
        if (destRows.Length != sourceRows.Length) throw new ArgumentException("PlaceRows: destRows and sourceRows differ in length.", nameof(sourceRows));
        int nDest = width == 0 ? 0 : destination.Length / width, nSrc = width == 0 ? 0 : rows.Length / width;
        var used = new bool[nDest];
        for (int k = 0; k < destRows.Length; k++)
        {
            if ((uint)destRows[k] >= (uint)nDest) throw new ArgumentOutOfRangeException(nameof(destRows), destRows[k], $"Destination row out of range [0, {nDest}).");
            if ((uint)sourceRows[k] >= (uint)nSrc) throw new ArgumentOutOfRangeException(nameof(sourceRows), sourceRows[k], $"Source row out of range [0, {nSrc}).");
            if (used[destRows[k]]) throw new ArgumentException($"PlaceRows: destination row {destRows[k]} is written twice.", nameof(destRows));
            used[destRows[k]] = true;
        }
        var y = Tensor.Empty(destination.Shape);
        destination.CopyTo(y.Span);
        var rc = Kernels.Contiguous(rows);
        float[] src = rc.Data, dst = y.Data;
        for (int k = 0; k < destRows.Length; k++)
            Array.Copy(src, rc.Offset + sourceRows[k] * width, dst, destRows[k] * width, width);
        if (Tape.Needs(destination, rows))
            Tape.Record("PlaceRows", y, [destination, rows], g =>
            {
                var gc = Kernels.Contiguous(g);
                if (rows.RequiresGrad)
                {
                    var buf = Tape.GradBuffer(rows)!;
                    float[] ga = gc.Data, ba = buf.Data;
                    for (int k = 0; k < destRows.Length; k++)
                    {
                        var from = ga.AsSpan(gc.Offset + destRows[k] * width, width);
                        var to = ba.AsSpan(buf.Offset + sourceRows[k] * width, width);
                        System.Numerics.Tensors.TensorPrimitives.Add(to, from, to);
                    }
                }
                if (destination.RequiresGrad)
                {
                    var gd = Tensor.Empty(destination.Shape);
                    gc.CopyTo(gd.Span);
                    foreach (int r in destRows) gd.Data.AsSpan(r * width, width).Clear();
                    Tape.Accumulate(destination, gd);
                }
            });
        return y;
    }
}
