using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Spectre.Console;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Samples.Commands;

/// <summary>
/// Turns errors into one line on stderr and an exit code, never a stack trace (docs/reliability.md): bad input
/// (arguments, files, models) → "vega: error: …" and exit code 2; cancellation (Ctrl-C) → exit code 130; anything else
/// is a bug → "vega: internal error: …" and exit code 70 (the stack trace only with VEGA_DEBUG=1). The terminal cursor
/// is shown again whatever happened (a progress display hides it).
/// </summary>
internal static class CliErrors
{
    public const int UserError = 2, InternalError = 70, Cancelled = 130;

    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e)
        {
            return Report(e);
        }
        finally
        {
            Terminal.ShowCursor();
        }
    }

    /// <summary><see cref="Run"/> for commands that await (the silo, cluster clients).</summary>
    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e)
        {
            return Report(e);
        }
        finally
        {
            Terminal.ShowCursor();
        }
    }

    /// <summary>Prints <paramref name="e"/> as one line on stderr and returns the exit code.</summary>
    public static int Report(Exception e)
    {
        var inner = Unwrap(e);
        // Cluster start-up failures arrive wrapped (e.g. a lifecycle exception around a socket error): show the cause.
        while (inner is global::Orleans.Runtime.OrleansException && inner.InnerException is { } cause) inner = cause;
        if (inner is OperationCanceledException)
        {
            Console.Error.WriteLine("vega: cancelled.");
            return Cancelled;
        }
        if (IsUserError(inner))
        {
            Console.Error.WriteLine($"vega: error: {OneLine(inner.Message)}");
            return UserError;
        }
        Console.Error.WriteLine($"vega: internal error ({inner.GetType().Name}: {OneLine(inner.Message)}). This is a bug in vega; please report it with the command line" +
            (Environment.GetEnvironmentVariable("VEGA_DEBUG") is "1" ? "." : " (set VEGA_DEBUG=1 to print where it happened)."));
        if (Environment.GetEnvironmentVariable("VEGA_DEBUG") is "1") Console.Error.WriteLine(inner.ToString());
        return InternalError;
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
        if (e is AggregateException agg && agg.InnerExceptions.All(x => x is OperationCanceledException)) return agg.InnerExceptions[0];
        return e;
    }

    /// <summary>The message on one line: line breaks (e.g. of a list of problems) become "; ".</summary>
    internal static string OneLine(string message) =>
        string.Join("; ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    public static bool IsUserError(Exception e) => e is CliUsageException or ClipModelException
        or ImageDecodeException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException
        or NotSupportedException or IOException or UnauthorizedAccessException or JsonException
        or SocketException or global::Orleans.Runtime.OrleansException;

    public static void Warn(string message) => AnsiConsole.MarkupLine($"[yellow]warning:[/] {Markup.Escape(message)}");
}

/// <summary>Terminal state the progress display changes.</summary>
internal static class Terminal
{
    /// <summary>Shows the cursor again if standard output is a terminal (Spectre's progress display hides it).</summary>
    public static void ShowCursor()
    {
        if (Console.IsOutputRedirected) return;
        try
        {
            Console.Out.Write("\u001b[?25h");
            Console.Out.Flush();
        }
        catch (IOException)
        {
            // The terminal is gone.
        }
    }

    /// <summary>
    /// Handles SIGINT (Ctrl-C), SIGTERM and SIGQUIT for the whole run: the cursor is shown again; the first SIGINT or
    /// SIGTERM cancels <paramref name="stop"/> and lets the command finish cleanly, a second one (or SIGQUIT) takes the
    /// default action and ends the process. Also shows the cursor on any exit. Dispose to unregister.
    /// </summary>
    public static IDisposable CancelOnSignals(CancellationTokenSource stop)
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => ShowCursor();
        int received = 0;
        void Handle(PosixSignalContext context)
        {
            ShowCursor();
            if (context.Signal == PosixSignal.SIGQUIT || Interlocked.Increment(ref received) > 1) return; // default: end now
            context.Cancel = true;
            Console.Error.WriteLine("vega: stopping (press Ctrl-C again to end at once)…");
            try { stop.Cancel(); } catch (ObjectDisposedException) { /* the run is over */ }
        }
        var registrations = new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT }.Select(s => PosixSignalRegistration.Create(s, Handle)).ToArray();
        return new Registrations(registrations);
    }

    private sealed class Registrations(PosixSignalRegistration[] all) : IDisposable
    {
        public void Dispose()
        {
            foreach (var r in all) r.Dispose();
        }
    }
}
