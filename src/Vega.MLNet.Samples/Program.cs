using System.CommandLine;

namespace Vega.MLNet.Samples;

internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("vega: pick, adapt and trust CLIP-style vision-language models from ONNX exports, offline.");
        return root.Parse(args).Invoke();
    }
}
