using System.CommandLine;
using Vega.MLNet.Samples.Samples;
using Vega.MLNet.Text;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega sample NAME</c>: runs one of the short C# samples in Samples/ (read them for the API).</summary>
internal static class SampleCommand
{
    public static Command Create()
    {
        var command = new Command("sample", "Run a short C# sample (source in src/Vega.MLNet.Samples/Samples/).");

        var model = new Option<string>("--model") { Description = "Model folder.", Required = true };
        var images = new Option<string>("--images") { Description = "Image folder.", Required = true };
        var classes = new Option<string>("--classes") { Description = "Class names file.", Required = true };
        var zeroShot = new Command("zero-shot", "Zero-shot classification of a folder with one model.") { model, images, classes };
        zeroShot.SetAction(parse => CliErrors.Run(() =>
        {
            var classNames = PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", parse.GetValue(classes)!));
            ZeroShotSample.Run(CliChecks.Model("--model", parse.GetValue(model)!), CliChecks.InputFolder("--images", parse.GetValue(images)!), classNames, Console.Out);
            return 0;
        }));
        command.Subcommands.Add(zeroShot);

        var models = new Option<string[]>("--models") { Description = "Candidate model folders.", Required = true, AllowMultipleArgumentsPerToken = true };
        var images2 = new Option<string>("--images") { Description = "Image folder.", Required = true };
        var classes2 = new Option<string>("--classes") { Description = "Class names file.", Required = true };
        var select = new Command("select-model", "Choose among candidate models without labels.") { models, images2, classes2 };
        select.SetAction(parse => CliErrors.Run(() =>
        {
            var classNames = PromptTemplates.ReadClassNames(CliChecks.InputFile("--classes", parse.GetValue(classes2)!));
            foreach (var m in parse.GetValue(models)!) CliChecks.Model("--models", m);
            SelectModelSample.Run(parse.GetValue(models)!, CliChecks.InputFolder("--images", parse.GetValue(images2)!), classNames, Console.Out);
            return 0;
        }));
        command.Subcommands.Add(select);
        return command;
    }
}
