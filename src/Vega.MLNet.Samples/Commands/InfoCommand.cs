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
                Row("tokenizer", DescribeTokenizer(clip.Tokenizer));
                Row("logit scale", clip.LogitScale);
                Row("ONNX Runtime", $"{OnnxSession.RuntimeVersion} (Microsoft.ML.OnnxRuntime; providers: {string.Join(", ", OnnxSession.AvailableProviders)}), running on {clip.ExecutionDevice}");
                AnsiConsole.Write(table);
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The tokenizer line: which vocabulary the model uses, the model's own files or the built-in one.</summary>
    internal static string DescribeTokenizer(Vega.MLNet.Text.ClipTokenizer tokenizer) => tokenizer.IsBuiltInVocabulary
        ? $"built-in CLIP vocabulary, the model folder has none ({tokenizer.VocabularySize} ids)"
        : $"the model's own files: {tokenizer.Source} ({tokenizer.VocabularySize} ids)";
}
