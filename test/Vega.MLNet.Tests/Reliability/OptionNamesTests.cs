using System.CommandLine;
using System.Text.RegularExpressions;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Issue 17 item 11: every command-line option that a message or a document names exists. The oracle is the real
/// command tree (<c>Program.Root()</c>); the sources and documents are scanned for <c>--option</c> names.
/// </summary>
public sealed partial class OptionNamesTests
{
    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")]
    private static partial Regex OptionName();

    [GeneratedRegex("\"(?:[^\"\\\\\\n]|\\\\.)*\"")]
    private static partial Regex StringLiteral();

    private static IEnumerable<Command> All(Command c) => new[] { c }.Concat(c.Subcommands.SelectMany(All));

    private static HashSet<string> Names(Command c)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var o in c.Options)
        {
            names.Add(o.Name);
            foreach (var a in o.Aliases) names.Add(a);
        }
        return names;
    }

    private static readonly Lazy<RootCommand> Root = new(Vega.MLNet.Samples.Program.Root);

    private static HashSet<string> Everywhere()
    {
        var all = new HashSet<string>(StringComparer.Ordinal) { "--help", "--version" };
        foreach (var c in All(Root.Value)) all.UnionWith(Names(c));
        return all;
    }

    [Fact]
    public void EveryOptionNamedInASourceStringExists()
    {
        var known = Everywhere();
        var problems = new List<string>();
        string src = Path.Combine(Fixtures.RepositoryRoot, "src");
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
            int lineNo = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNo++;
                foreach (Match literal in StringLiteral().Matches(line))
                    foreach (Match m in OptionName().Matches(literal.Value))
                        if (!known.Contains(m.Value)) problems.Add($"{Path.GetRelativePath(src, file)}:{lineNo}: {m.Value}");
            }
        }
        Assert.True(problems.Count == 0, "options named in messages that no command has:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void EveryOptionOfAVegaCommandLineInTheDocsExistsOnThatCommand()
    {
        var problems = new List<string>();
        var files = Directory.EnumerateFiles(Path.Combine(Fixtures.RepositoryRoot, "docs"), "*.md", SearchOption.AllDirectories)
            .Append(Path.Combine(Fixtures.RepositoryRoot, "README.md"));
        int checkedLines = 0;
        foreach (var file in files)
        {
            int lineNo = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNo++;
                foreach (Match start in Regex.Matches(line, @"(?<![\w/.-])vega ((?:[a-z][a-z-]* ?)+)"))
                {
                    // The command path: the words after "vega" that are subcommands.
                    Command command = Root.Value;
                    foreach (var word in start.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var sub = command.Subcommands.FirstOrDefault(s => s.Name == word);
                        if (sub is null) break;
                        command = sub;
                    }
                    if (ReferenceEquals(command, Root.Value)) continue;
                    checkedLines++;
                    // Options up to the end of the code span or line.
                    string rest = line[(start.Index + start.Length)..];
                    int end = rest.IndexOf('`');
                    if (end >= 0) rest = rest[..end];
                    var names = Names(command);
                    names.Add("--help");
                    foreach (Match m in OptionName().Matches(rest))
                        if (!names.Contains(m.Value)) problems.Add($"{Path.GetRelativePath(Fixtures.RepositoryRoot, file)}:{lineNo}: vega {command.Name} has no {m.Value}");
                }
            }
        }
        Assert.True(checkedLines > 20, $"only {checkedLines} command lines found; the scan is broken");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
