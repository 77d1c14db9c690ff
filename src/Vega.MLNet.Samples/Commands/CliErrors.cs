using System.Net.Sockets;
using Spectre.Console;
using Vega.MLNet.Models;
using Vega.MLNet.Runtime;

namespace Vega.MLNet.Samples.Commands;

/// <summary>Turns the library's input errors into one clear line on stderr and exit code 2 (no stack trace);
/// anything unexpected still surfaces with its stack.</summary>
internal static class CliErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            return Report(e);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("vega: cancelled.");
            return 130;
        }
    }

    /// <summary><see cref="Run"/> for commands that await (the silo, cluster clients).</summary>
    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            return Report(e);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("vega: cancelled.");
            return 130;
        }
    }

    private static int Report(Exception e)
    {
        // Cluster start-up failures arrive wrapped (e.g. a lifecycle exception around a socket error): show the cause.
        var shown = e;
        while (shown is global::Orleans.Runtime.OrleansException && shown.InnerException is { } inner) shown = inner;
        Console.Error.WriteLine($"vega: error: {(shown == e ? e.Message : $"{e.Message} ({shown.Message})")}");
        return 2;
    }

    public static bool IsUserError(Exception e) => e is ClipModelException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or NotSupportedException or IOException
        or SocketException or global::Orleans.Runtime.OrleansException;

    public static void Warn(string message) => AnsiConsole.MarkupLine($"[yellow]warning:[/] {Markup.Escape(message)}");
}
