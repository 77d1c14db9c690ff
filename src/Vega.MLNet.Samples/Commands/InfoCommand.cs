using System.CommandLine;
using Spectre.Console;
using Vega.MLNet.Embedding;
using Vega.MLNet.Models;
using Vega.MLNet.Runtime;

namespace Vega.MLNet.Samples.Commands;

/// <summary><c>vega info --model DIR</c>: what Vega.MLNet detected in a model package.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Option<string[]>("--model") { Description = "Model folder(s) or clip.json file(s).", Required = true, AllowMultipleArgumentsPerToken = true };
        var command = new Command("info", "Show the detected layout, tower inputs/outputs, tokenizer and preprocessing of model packages.") { model };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            foreach (var path in parse.GetValue(model)!) CliChecks.Model("--model", path);
            foreach (var path in parse.GetValue(model)!)
            {
                using var clip = ClipModel.Load(path);
                var table = new Table().Title(Markup.Escape(clip.Name)).HideHeaders().AddColumns("key", "value");
                void Row(string k, object v) => table.AddRow(Markup.Escape(k), Markup.Escape(v.ToString() ?? ""));
                Row("folder", clip.Directory);
                Row("layout", clip.Layout);
                Row("embedding width", clip.EmbeddingDimension);
                Row("text tower", $"{clip.TextTower.Session.Source}: ids '{clip.TextTower.IdsName}' ({clip.TextTower.IdsType}), mask '{clip.TextTower.MaskName ?? "none"}', output '{clip.TextTower.OutputName}'");
                Row("text length", clip.DynamicTextLength ? $"dynamic, up to {clip.ContextLength}" : $"fixed {clip.ContextLength}");
                Row("image tower", $"{clip.ImageTower.Session.Source}: input '{clip.ImageTower.InputName}', output '{clip.ImageTower.OutputName}'");
                Row("preprocessing", PreprocessKey.Describe(clip.Preprocessing, Vega.MLNet.Imaging.DecodeOptions.Default));
                Row("tokenizer", $"{clip.Tokenizer.Source} ({clip.Tokenizer.VocabularySize} ids)");
                Row("logit scale", clip.LogitScale);
                Row("ONNX Runtime", $"{OnnxRuntime.Version} from {OnnxRuntime.LoadedFrom}");
                AnsiConsole.Write(table);
            }
            return 0;
        }));
        return command;
    }
}
