using System.Text;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Tests.Infrastructure;

/// <summary>
/// Seeded fuzzing helpers: byte-level mutations of a valid input and a watchdog that turns a hang into a failure
/// naming the iteration. A fuzz test passes when every iteration either succeeds or throws one of the documented
/// exception types.
/// </summary>
internal static class Fuzz
{
    private static readonly byte[] InterestingBytes = [0x00, 0x01, 0x7F, 0x80, 0xFF, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'-', (byte)'0', (byte)'9', (byte)'e', (byte)'.', (byte)'\\'];

    /// <summary>The seed of a fuzz test: <paramref name="fixedSeed"/>, or VEGA_FUZZ_SEED + it when that is set (for
    /// exploratory runs with other seeds; the suite always uses the fixed one).</summary>
    public static ulong Seed(ulong fixedSeed) =>
        ulong.TryParse(Environment.GetEnvironmentVariable("VEGA_FUZZ_SEED"), out var s) ? s + fixedSeed : fixedSeed;

    /// <summary>Iterations: <paramref name="count"/>, times VEGA_FUZZ_SCALE when that is set (exploratory runs).</summary>
    public static int Iterations(int count) =>
        int.TryParse(Environment.GetEnvironmentVariable("VEGA_FUZZ_SCALE"), out var k) && k > 0 ? count * k : count;

    /// <summary>One random byte-level mutation of <paramref name="input"/> (bit flips, interesting bytes, truncation,
    /// insertion, deletion, duplicated ranges); <paramref name="what"/> describes it.</summary>
    public static byte[] MutateBytes(byte[] input, Rng rng, out string what)
    {
        var b = (byte[])input.Clone();
        int n = b.Length;
        switch (rng.NextInt(7))
        {
            case 0:
                {
                    int flips = 1 + rng.NextInt(4);
                    var sb = new StringBuilder("flip bits");
                    for (int k = 0; k < flips && n > 0; k++)
                    {
                        int bit = rng.NextInt(n * 8);
                        b[bit / 8] ^= (byte)(1 << (bit % 8));
                        sb.Append(' ').Append(bit);
                    }
                    what = sb.ToString();
                    return b;
                }
            case 1:
                {
                    if (n == 0) { what = "empty"; return b; }
                    int at = rng.NextInt(n);
                    b[at] = InterestingBytes[rng.NextInt(InterestingBytes.Length)];
                    what = $"byte {at} := 0x{b[at]:X2}";
                    return b;
                }
            case 2:
                {
                    int keep = n == 0 ? 0 : rng.NextInt(n);
                    what = $"truncate to {keep}";
                    return b[..keep];
                }
            case 3:
                {
                    int at = rng.NextInt(n + 1), len = 1 + rng.NextInt(16);
                    var extra = new byte[len];
                    for (int k = 0; k < len; k++) extra[k] = rng.NextInt(2) == 0 ? (byte)rng.NextInt(256) : InterestingBytes[rng.NextInt(InterestingBytes.Length)];
                    what = $"insert {len} bytes at {at}";
                    return [.. b[..at], .. extra, .. b[at..]];
                }
            case 4:
                {
                    if (n == 0) { what = "empty"; return b; }
                    int at = rng.NextInt(n), len = 1 + rng.NextInt(Math.Min(64, n - at));
                    what = $"delete {len} bytes at {at}";
                    return [.. b[..at], .. b[(at + len)..]];
                }
            case 5:
                {
                    if (n == 0) { what = "empty"; return b; }
                    int at = rng.NextInt(n), len = 1 + rng.NextInt(Math.Min(64, n - at)), to = rng.NextInt(n + 1);
                    what = $"copy {len} bytes from {at} to {to}";
                    return [.. b[..to], .. b.AsSpan(at, len), .. b[to..]];
                }
            default:
                {
                    int count = 1 + rng.NextInt(8);
                    for (int k = 0; k < count && n > 0; k++) b[rng.NextInt(n)] = (byte)rng.NextInt(256);
                    what = $"randomise {count} bytes";
                    return b;
                }
        }
    }

    /// <summary>
    /// Runs <paramref name="iterations"/> iterations of <paramref name="body"/> on a worker thread; the body returns
    /// null when the iteration behaved, or a failure description. Fails if the iterations do not finish within
    /// <paramref name="budget"/> (a hang: the message names the running iteration and its mutation) or if any
    /// iteration failed.
    /// </summary>
    public static void Run(int iterations, TimeSpan budget, Func<int, Action<string>, string?> body)
    {
        var failures = new List<string>();
        int current = -1;
        string currentWhat = "";
        var worker = Task.Run(() =>
        {
            for (int i = 0; i < iterations; i++)
            {
                Volatile.Write(ref current, i);
                string? failure = body(i, what => Volatile.Write(ref currentWhat, what));
                if (failure is not null && failures.Count < 20) failures.Add($"iteration {i} ({Volatile.Read(ref currentWhat)}): {failure}");
            }
        });
        if (!worker.Wait(budget))
            Assert.Fail($"Fuzzing did not finish within {budget.TotalSeconds} s: iteration {Volatile.Read(ref current)} ({Volatile.Read(ref currentWhat)}) hangs or is far too slow.");
        worker.GetAwaiter().GetResult();
        Assert.True(failures.Count == 0, $"{failures.Count} iterations threw undocumented exceptions:\n{string.Join("\n", failures)}");
    }

    /// <summary>A failure description of an exception that is not of the <paramref name="documented"/> types, else null.</summary>
    public static string? Undocumented(Exception e, params Type[] documented) =>
        documented.Any(t => t.IsInstanceOfType(e)) ? null : $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}";
}
