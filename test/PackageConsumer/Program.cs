// A new user's first program: zero-shot classification of a folder of real images with a CLIP model exported to ONNX,
// using nothing but the Vega.MLNet package. Checks itself against the PyTorch golden embeddings of ../shared.
// Usage: PackageConsumer <shared folder> [<the .nupkg it was installed from, to check its contents>]
using Vega.MLNet.Embedding;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

string shared = args.Length > 0 ? args[0] : throw new ArgumentException("usage: PackageConsumer <path of ../shared>");
string modelDir = Path.Combine(shared, "onnx", "hf");
string imageDir = Path.Combine(shared, "images");

using var model = ClipModel.Load(modelDir);
Console.WriteLine($"model: {model}; ONNX Runtime on {model.ExecutionDevice}");

// Zero-shot: class prompts against every image of the folder.
string[] classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];
var text = model.EmbedClassNames(classes);
var images = ImageEmbedder.Embed(model, ImageSource.FromFolder(imageDir, recursive: false));
Console.WriteLine($"{images.Embeddings.Count} images embedded, {images.Skipped.Count} skipped");
for (int i = 0; i < images.Embeddings.Count; i++)
{
    var row = images.Embeddings.Row(i);
    int best = 0;
    double bestScore = double.NegativeInfinity;
    for (int c = 0; c < classes.Length; c++)
    {
        double s = 0;
        var t = text.Row(c);
        for (int d = 0; d < row.Length; d++) s += row[d] * t[d];
        if (s > bestScore) (best, bestScore) = (c, s);
    }
    Console.WriteLine($"  {Path.GetFileName(images.Items[i].Path)} -> {classes[best]} ({bestScore:F3})");
}

// Self-check: the first three golden images end to end (decode → Pillow-exact preprocessing → tower → L2 norm) against
// PyTorch's embeddings of the same images (../shared/onnx/golden/hf_vision.f32, raw, normalised here).
var golden = File.ReadAllBytes(Path.Combine(shared, "onnx", "golden", "hf_vision.f32"));
var expected = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(golden).ToArray();
string[] names = ["grace_hopper.jpg", "china_progressive.jpg", "Minduka_Present_Blue_Pack.png"];
var check = ImageEmbedder.Embed(model, ImageSource.FromPaths(names.Select(n => Path.Combine(imageDir, n)).ToArray()));
int dim = model.EmbeddingDimension;
double worst = 0;
for (int i = 0; i < names.Length; i++)
{
    var e = expected.AsSpan(i * dim, dim);
    double norm = 0;
    foreach (var v in e) norm += v * v;
    norm = Math.Sqrt(norm);
    var got = check.Embeddings.Row(i);
    for (int d = 0; d < dim; d++) worst = Math.Max(worst, Math.Abs(got[d] - e[d] / norm));
}
bool nativeFromNuGet = File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime.so"))
    && File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libSkiaSharp.so"));
Console.WriteLine($"max |embedding - PyTorch golden| = {worst:E2}; native libraries from NuGet packages: {nativeFromNuGet}");
bool packageOk = true;
if (args.Length > 1)
{
    using var zip = System.IO.Compression.ZipFile.OpenRead(args[1]);
    foreach (var entry in new[] { "README.md", "LICENSE", "THIRD-PARTY-NOTICES.md", "lib/net10.0/Vega.MLNet.dll", "lib/net10.0/Vega.MLNet.xml" })
        if (zip.GetEntry(entry) is null) { Console.Error.WriteLine($"the package lacks {entry}"); packageOk = false; }
    using var nuspec = new StreamReader(zip.GetEntry("Vega.MLNet.nuspec")!.Open());
    string spec = nuspec.ReadToEnd();
    foreach (var dependency in new[] { "id=\"Microsoft.ML.OnnxRuntime\" version=\"1.32.0\"", "id=\"SkiaSharp\" version=\"3.119.4\"" })
        if (!spec.Contains(dependency)) { Console.Error.WriteLine($"the nuspec does not declare {dependency}"); packageOk = false; }
}
if (worst > 1e-4 || !nativeFromNuGet || images.Embeddings.Count != 12 || !packageOk)
{
    Console.Error.WriteLine("PACKAGE CHECK FAILED");
    return 1;
}
Console.WriteLine("PACKAGE CHECK PASSED");
return 0;
