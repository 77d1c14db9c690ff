// A new user's first program: zero-shot classification of a folder of real images with a CLIP model exported to ONNX,
// as an ML.NET pipeline, using nothing but the Vega.MLNet package. Checks itself against PyTorch's embeddings of the
// same images (../shared/onnx/golden) and checks the package's contents.
// Usage: PackageConsumer <shared folder> [<the .nupkg it was installed from>]
using Microsoft.ML;
using Vega.MLNet;

string shared = args.Length > 0 ? args[0] : throw new ArgumentException("usage: PackageConsumer <path of ../shared> [<package.nupkg>]");
string modelDir = Path.Combine(shared, "onnx", "hf");
string imageDir = Path.Combine(shared, "images");
string[] classes = ["a person", "a landscape", "a gift box", "a flower", "a logo"];

var ml = new MLContext(seed: 1);
var images = ml.Data.LoadFromEnumerable(Directory.GetFiles(imageDir).Where(p => p.EndsWith(".jpg") || p.EndsWith(".png"))
    .Order(StringComparer.Ordinal).Select(p => new ImageData { ImagePath = p }));
var pipeline = ml.Transforms.EmbedImages("ImageEmbedding", modelPath: modelDir, inputColumnName: "ImagePath")
    .Append(ml.MulticlassClassification.Trainers.ZeroShot(modelPath: modelDir, classNames: classes, featureColumnName: "ImageEmbedding"))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
using var model = pipeline.Fit(images);
var predictions = ml.Data.CreateEnumerable<Prediction>(model.Transform(images), reuseRowObject: false).ToArray();
foreach (var p in predictions) Console.WriteLine($"  {Path.GetFileName(p.ImagePath)} -> {p.PredictedClass} ({p.Score.Max():P1})");

// Self-check: the first three golden images end to end (decode → Pillow-exact preprocessing → tower → L2 norm) against
// PyTorch's embeddings of the same images (../shared/onnx/golden/hf_vision.f32, raw, normalised here).
var golden = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(shared, "onnx", "golden", "hf_vision.f32"))).ToArray();
string[] names = ["grace_hopper.jpg", "china_progressive.jpg", "Minduka_Present_Blue_Pack.png"];
var byName = predictions.ToDictionary(p => Path.GetFileName(p.ImagePath));
double worst = 0;
for (int i = 0; i < names.Length; i++)
{
    var e = golden.AsSpan(i * 32, 32);
    double norm = 0;
    foreach (var v in e) norm += v * v;
    norm = Math.Sqrt(norm);
    var got = byName[names[i]].ImageEmbedding;
    for (int d = 0; d < 32; d++) worst = Math.Max(worst, Math.Abs(got[d] - e[d] / norm));
}
bool nativeFromNuGet = File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime.so"))
    && File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libSkiaSharp.so"));
Console.WriteLine($"{predictions.Length} images classified; max |embedding - PyTorch golden| = {worst:E2}; native libraries from NuGet packages: {nativeFromNuGet}");

bool packageOk = true;
if (args.Length > 1)
{
    using var zip = System.IO.Compression.ZipFile.OpenRead(args[1]);
    foreach (var entry in new[] { "README.md", "LICENSE", "THIRD-PARTY-NOTICES.md", "lib/net10.0/Vega.MLNet.dll", "lib/net10.0/Vega.MLNet.xml" })
        if (zip.GetEntry(entry) is null) { Console.Error.WriteLine($"the package lacks {entry}"); packageOk = false; }
    using var nuspec = new StreamReader(zip.GetEntry("Vega.MLNet.nuspec")!.Open());
    string spec = nuspec.ReadToEnd();
    foreach (var dependency in new[] { "Microsoft.ML\" version=\"6.0.0", "Microsoft.ML.OnnxRuntime\" version=\"1.32.0", "SkiaSharp\" version=\"3.119.4" })
        if (!spec.Contains("id=\"" + dependency)) { Console.Error.WriteLine($"the nuspec does not declare {dependency}"); packageOk = false; }
}
if (worst > 1e-4 || !nativeFromNuGet || predictions.Length != 12 || !packageOk)
{
    Console.Error.WriteLine("PACKAGE CHECK FAILED");
    return 1;
}
Console.WriteLine("PACKAGE CHECK PASSED");
return 0;

sealed class ImageData
{
    public string ImagePath { get; set; } = "";
}

sealed class Prediction
{
    public string ImagePath { get; set; } = "";
    public string PredictedClass { get; set; } = "";
    public float[] Score { get; set; } = [];
    public float[] ImageEmbedding { get; set; } = [];
}
