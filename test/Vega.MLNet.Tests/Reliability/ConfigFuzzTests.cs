using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Text;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Seeded fuzzing of the configuration readers (issue 17): config.json, preprocessor_config.json, clip.json, class
/// files and CSV manifests, mutated at the byte level and at the JSON level (wrong types, huge and tiny numbers, deep
/// nesting, duplicate and missing keys). No exception escapes but the documented one of each reader
/// (<see cref="ClipModelException"/> for model configurations, <see cref="InvalidDataException"/> for class files and
/// CSV headers), and each run ends within its bound (a guard, not a speed measurement).
/// </summary>
public sealed class ConfigFuzzTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);
    private const int Iterations = 1500;

    private static readonly string ClipJson = """
        {"name": "m", "image_model": "v.onnx", "text_model": "t.onnx", "tokenizer": "vocab", "image_input": "pixel_values",
         "image_output": "image_embeds", "text_input": "input_ids", "text_mask_input": null, "text_output": "text_embeds",
         "image_size": 224, "resize_shortest_edge": 256, "resize": "shortest_edge", "resample": "bicubic", "crop_rounding": "floor",
         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "rescale_factor": 0.00392156862745098, "context_length": 77,
         "pad_id": 0, "logit_scale": 100, "normalized": false}
        """;

    private static async Task Bounded(Action run)
    {
        var task = Task.Run(run);
        Assert.True(await Task.WhenAny(task, Task.Delay(Guard)) == task, "the fuzz run did not finish in time (a hang?)");
        await task;
    }

    /// <summary>Runs <paramref name="read"/> on <see cref="Iterations"/> mutations of <paramref name="seed"/>; only <typeparamref name="TDocumented"/> may escape.</summary>
    private static (int Accepted, int Refused) Fuzz<TDocumented>(string fileName, byte[] seed, ulong rngSeed, bool json, Action<string> read) where TDocumented : Exception
    {
        var rng = new Rng(rngSeed);
        string dir = Fixtures.TempDir("vega-fuzz");
        string path = Path.Combine(dir, fileName);
        int accepted = 0, refused = 0;
        var failures = new List<string>();
        for (int i = 0; i < Iterations; i++)
        {
            byte[] bytes = json && rng.NextInt(3) > 0 ? MutateJson(seed, rng) : MutateBytes(seed, rng);
            File.WriteAllBytes(path, bytes);
            try
            {
                read(path);
                accepted++;
            }
            catch (TDocumented e)
            {
                refused++;
                if (!e.Message.Contains(fileName, StringComparison.Ordinal) && !e.Message.Contains(path, StringComparison.Ordinal))
                    failures.Add($"#{i}: the message does not name the file: {e.Message}");
            }
            catch (Exception e)
            {
                failures.Add($"#{i}: {e.GetType().Name}: {e.Message}\n  input: {Printable(bytes)}\n  {e.StackTrace?.Split('\n').FirstOrDefault(l => l.Contains("Vega.MLNet.") && !l.Contains("Tests."))?.Trim()}");
            }
            if (failures.Count >= 5) break;
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        return (accepted, refused);
    }

    private static string Printable(byte[] b)
    {
        string s = Encoding.UTF8.GetString(b, 0, Math.Min(b.Length, 400));
        return s.Replace("\n", "\\n") + (b.Length > 400 ? $"… ({b.Length} bytes)" : "");
    }

    // ------------------------------------------------------------------ mutations

    private static byte[] MutateBytes(byte[] seed, Rng rng)
    {
        var b = new List<byte>(seed);
        int edits = 1 + rng.NextInt(8);
        for (int e = 0; e < edits; e++)
        {
            int at = b.Count == 0 ? 0 : rng.NextInt(b.Count);
            switch (rng.NextInt(7))
            {
                case 0 when b.Count > 0: b[at] ^= (byte)(1 << rng.NextInt(8)); break;
                case 1 when b.Count > 0: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.NextInt(16))); break;
                case 2: b.InsertRange(at, Enumerable.Range(0, 1 + rng.NextInt(8)).Select(_ => (byte)rng.NextInt(256))); break;
                case 3 when b.Count > 0: { int len = Math.Min(b.Count - at, 1 + rng.NextInt(32)); b.InsertRange(rng.NextInt(b.Count), b.GetRange(at, len)); break; }
                case 4: b.InsertRange(at, Encoding.UTF8.GetBytes(Pick(rng, Tokens))); break;
                case 5 when b.Count > 0: b.RemoveRange(at, b.Count - at); break; // truncation
                default: b.Insert(at, (byte)Pick(rng, [0, 0xFF, 0xC3, 0x80, (int)'\n', (int)'\r', (int)'"', (int)'#', 0x0B, 0x1B])); break;
            }
        }
        return b.ToArray();
    }

    private static readonly string[] Tokens =
    [
        "\"", "{", "}", "[", "]", ",", ":", "null", "true", "1e400", "-1e400", "1e-400", "99999999999999999999", "-0", "NaN", "\\u0000",
        "\\ud800", "\u2028", "\u0085", "\uFEFF", "#", "\t", "/*", "*/", "//",
    ];

    private static T Pick<T>(Rng rng, IReadOnlyList<T> list) => list[rng.NextInt(list.Count)];

    private static byte[] MutateJson(byte[] seed, Rng rng)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(seed); }
        catch (JsonException) { return MutateBytes(seed, rng); }
        int edits = 1 + rng.NextInt(4);
        for (int e = 0; e < edits; e++)
        {
            var all = Walk(root).ToList();
            var (parent, key, index) = Pick(rng, all);
            var value = RandomValue(rng, 0);
            if (parent is JsonObject o && key is not null)
            {
                switch (rng.NextInt(4))
                {
                    case 0: o.Remove(key); break;
                    case 1: o[key + (rng.NextInt(2) == 0 ? "_x" : "")] = value; break;
                    default: o[key] = value; break;
                }
            }
            else if (parent is JsonArray a && index >= 0 && index < a.Count)
            {
                if (rng.NextInt(3) == 0) a.RemoveAt(index);
                else a[index] = value;
            }
            else root = value;
        }
        string text = root?.ToJsonString() ?? "null";
        while (text.Contains($"\"{DeepMarker}\"", StringComparison.Ordinal))
        {
            int depth = Pick(rng, new[] { 63, 64, 65, 100, 5000 });
            int at = text.IndexOf($"\"{DeepMarker}\"", StringComparison.Ordinal);
            text = text[..at] + new string('[', depth) + new string(']', depth) + text[(at + DeepMarker.Length + 2)..];
        }
        if (rng.NextInt(10) == 0 && text.Length > 2 && text[0] == '{')
            text = "{\"image_size\": 1, " + text[1..] + ""; // duplicate-key style edit at the text level
        return Encoding.UTF8.GetBytes(text);
    }

    private static IEnumerable<(JsonNode? Parent, string? Key, int Index)> Walk(JsonNode? node)
    {
        yield return (null, null, -1);
        var stack = new Stack<JsonNode>();
        if (node is not null) stack.Push(node);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n is JsonObject o)
                foreach (var (k, v) in o) { yield return (o, k, -1); if (v is not null) stack.Push(v); }
            else if (n is JsonArray a)
                for (int i = 0; i < a.Count; i++) { yield return (a, null, i); if (a[i] is { } v) stack.Push(v); }
        }
    }

    private const string DeepMarker = "__deep__";

    private static JsonNode? RandomValue(Rng rng, int depth)
    {
        switch (rng.NextInt(depth > 3 ? 9 : 12))
        {
            case 0: return null;
            case 1: return JsonValue.Create(rng.NextInt(2) == 0);
            case 2: return JsonValue.Create(Pick(rng, new long[] { 0, 1, 2, 3, -1, 7, 77, 224, 49407, int.MaxValue, (long)int.MaxValue + 1, long.MinValue, long.MaxValue }));
            case 3: return JsonValue.Create(Pick(rng, new double[] { 0.5, -0.5, 1e-300, 1e300, double.Epsilon, 2.6592, 1.0 / 255, 77.5, -1e-12, 1e308 }));
            case 4: return JsonNode.Parse(Pick(rng, new[] { "1e400", "-1e400", "1e-400", "123456789012345678901234567890", "-0.0", "0e0" }));
            case 5: return JsonValue.Create(Pick(rng, new[] { "", "4.0", "224", "true", "null", "bicubic", "squash", "half_even", "\u0000", "a\nb", new string('x', 100_000) }));
            case 6: return new JsonArray();
            case 7: return new JsonObject();
            case 8: return JsonValue.Create(DeepMarker); // replaced by deeply nested arrays in the text
            case 9: return new JsonArray(RandomValue(rng, depth + 1), RandomValue(rng, depth + 1), RandomValue(rng, depth + 1));
            case 10: return new JsonObject { ["height"] = RandomValue(rng, depth + 1), ["width"] = RandomValue(rng, depth + 1), ["shortest_edge"] = RandomValue(rng, depth + 1) };
            default: return new JsonArray(Enumerable.Range(0, rng.NextInt(5)).Select(_ => (JsonNode?)JsonValue.Create(rng.NextDouble())).ToArray());
        }
    }

    // ------------------------------------------------------------------ the readers

    [Fact]
    public async Task ConfigJson()
    {
        byte[] seed = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "hf", "config.json"));
        (int Accepted, int Refused) r = default;
        await Bounded(() => r = Fuzz<ClipModelException>("config.json", seed, 1, json: true, path => ClipManifest.ReadConfig(path)));
        Assert.True(r.Accepted > 50 && r.Refused > 50, $"accepted {r.Accepted}, refused {r.Refused}: the mutations should exercise both paths");
    }

    [Fact]
    public async Task PreprocessorConfigJson()
    {
        byte[] seed = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "hf", "preprocessor_config.json"));
        (int Accepted, int Refused) r = default;
        await Bounded(() => r = Fuzz<ClipModelException>("preprocessor_config.json", seed, 2, json: true, path =>
        {
            var m = ClipManifest.ReadPreprocessorConfig(path, new ClipManifest());
            m.ToPreprocessing(m.ImageSize ?? 224, path); // the settings the pipeline would run with
        }));
        Assert.True(r.Accepted > 50 && r.Refused > 50, $"accepted {r.Accepted}, refused {r.Refused}");
    }

    [Fact]
    public async Task ClipJsonManifest()
    {
        byte[] seed = Encoding.UTF8.GetBytes(ClipJson);
        (int Accepted, int Refused) r = default;
        await Bounded(() => r = Fuzz<ClipModelException>("clip.json", seed, 3, json: true, path =>
        {
            var m = ClipManifest.Read(path);
            m.ToPreprocessing(m.ImageSize ?? 224, path);
        }));
        Assert.True(r.Accepted > 50 && r.Refused > 50, $"accepted {r.Accepted}, refused {r.Refused}");
    }

    [Fact]
    public async Task ClassFiles()
    {
        byte[] seed = Encoding.UTF8.GetBytes("# classes\ncat\ndog\n\n  guinea pig  \nT-shirt/top\nAnkle boot\néclair\n");
        (int Accepted, int Refused) r = default;
        await Bounded(() => r = Fuzz<InvalidDataException>("classes.txt", seed, 4, json: false, path =>
        {
            var names = PromptTemplates.ReadClassNames(path);
            PromptTemplates.ValidateClassNames(names); // what the reader returns is a valid class list
        }));
        Assert.True(r.Accepted > 50 && r.Refused > 50, $"accepted {r.Accepted}, refused {r.Refused}");
    }

    [Fact]
    public async Task CsvManifests()
    {
        byte[] seed = Encoding.UTF8.GetBytes("path,label,candidates\nimages/a.jpg,cat,cat|dog\n\"b, c.png\",dog,\n/abs/d.png,,bird\n\"q\"\"x.jpg\",bird,cat|bird\n");
        (int Accepted, int Refused) r = default;
        await Bounded(() => r = Fuzz<InvalidDataException>("manifest.csv", seed, 5, json: false, path =>
        {
            var source = ImageSource.FromCsv(path);
            foreach (var item in source.Items)
            {
                Assert.Null(ImageSource.LineBreakingCharacter(item.Id));
                if (item.Label is { } l) Assert.Null(ImageSource.LineBreakingCharacter(l));
                Assert.True(Path.IsPathRooted(item.Path));
            }
            _ = source.SkippedReport();
        }));
        Assert.True(r.Accepted > 50 && r.Refused > 10, $"accepted {r.Accepted}, refused {r.Refused}");
    }

    [Fact]
    public async Task WholeModelPackagesWithMutatedConfigs()
    {
        // The same mutations through ClipModel.Load (tower binding, probing, preprocessing) on a small real package.
        string model = TinyClip.Create();
        var rng = new Rng(6);
        byte[] config = File.ReadAllBytes(Path.Combine(Fixtures.Onnx, "hf", "config.json"));
        byte[] pre = Encoding.UTF8.GetBytes("""{"crop_size": {"height": 8, "width": 8}, "size": {"shortest_edge": 8}, "do_resize": true, "do_center_crop": true, "resample": 3, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 0.00392156862745098, "do_rescale": true, "do_normalize": true}""");
        var failures = new List<string>();
        int loaded = 0;
        await Bounded(() =>
        {
            for (int i = 0; i < 150; i++)
            {
                File.WriteAllBytes(Path.Combine(model, "config.json"), MutateJson(config, rng));
                File.WriteAllBytes(Path.Combine(model, "preprocessor_config.json"), MutateJson(pre, rng));
                try
                {
                    using var m = ClipModel.Load(model);
                    m.EmbedTexts(["a photo of a cat"]);
                    loaded++;
                }
                catch (ClipModelException) { }
                catch (Exception e) { failures.Add($"#{i}: {e.GetType().Name}: {e.Message}"); }
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(loaded > 0, "no mutated package loaded: the test does not exercise the success path");
    }

    [Fact]
    public async Task OversizedDeeplyNestedAndSpecialConfigFilesAreRefused()
    {
        string dir = Fixtures.TempDir();
        string config = Path.Combine(dir, "config.json");
        await Bounded(() =>
        {
            File.WriteAllText(config, new string('[', 100_000) + new string(']', 100_000));
            Assert.Contains("not valid JSON", Assert.Throws<ClipModelException>(() => ClipManifest.ReadConfig(config)).Message);
            using (var f = File.Create(config)) { f.Write("{\"a\": \""u8); f.SetLength(JsonFields.MaxFileBytes + 10); }
            Assert.Contains("too large", Assert.Throws<ClipModelException>(() => ClipManifest.ReadConfig(config)).Message);
            File.Delete(config);
            ImageFileTests.MakeFifo(config);
            Assert.Contains("named pipe", Assert.Throws<ClipModelException>(() => ClipManifest.ReadConfig(config)).Message);
        });
    }
}
