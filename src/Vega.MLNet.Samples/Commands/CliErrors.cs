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
            Console.Error.WriteLine($"vega: error: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("vega: cancelled.");
            return 130;
        }
    }

    public static bool IsUserError(Exception e) => e is ClipModelException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or NotSupportedException or IOException;

    public static void Warn(string message) => AnsiConsole.MarkupLine($"[yellow]warning:[/] {Markup.Escape(message)}");
}
