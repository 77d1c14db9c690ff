using System.IO.Compression;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Vega.MLNet.Tests.Tensors;

/// <summary>
/// Reads Debian's dataset-fashion-mnist and trains a 784-256-10 MLP on it end to end (needs the package; the test
/// fails with an installation hint when it is missing).
/// </summary>
public sealed class FashionMnistTrainingTests(ITestOutputHelper output)
{
    private static readonly Lazy<(FashionMnist.Split Train, FashionMnist.Split Test)> Data = new(() =>
        (FashionMnist.Load(train: true), FashionMnist.Load(train: false)));

    [Fact]
    public void IdxFilesDecodeToTheDocumentedSplits()
    {
        var (train, test) = Data.Value;
        Assert.Equal((60000, 28, 28), (train.Count, train.Rows, train.Cols));
        Assert.Equal((10000, 28, 28), (test.Count, test.Rows, test.Cols));
        Assert.Equal(new byte[] { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7 }, test.Labels[..10]);
        for (int c = 0; c < 10; c++)
        {
            Assert.Equal(6000, train.Labels.Count(l => l == c));
            Assert.Equal(1000, test.Labels.Count(l => l == c));
        }
        Assert.Contains(train.Pixels, p => p == 255);
        Assert.Contains(train.Pixels, p => p == 0);
    }

    [Fact]
    public void BadIdxFilesAreRejected()
    {
        string path = Path.Combine(Fixtures.TempDir(), "bad-idx1-ubyte.gz");
        using (var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest))
            gz.Write([0, 0, 0x0D, 1, 0, 0, 0, 5]); // float IDX, not unsigned bytes
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.ReadIdx(path));
        Assert.Contains(path, e.Message);
        string truncated = Path.Combine(Fixtures.TempDir(), "short-idx1-ubyte.gz");
        using (var gz = new GZipStream(File.Create(truncated), CompressionLevel.Fastest))
            gz.Write([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => FashionMnist.ReadIdx(truncated)).Message);
        var missing = Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(true, Fixtures.TempDir()));
        Assert.Contains("dataset-fashion-mnist", missing.Message);
    }

    [Fact]
    public void MlpReachesAtLeast85PercentTestAccuracy()
    {
        var (train, test) = Data.Value;
        var rng = new Rng(2024);
        var w1 = Init.KaimingUniform(Tensor.Parameter([256, 784], "fc1.weight"), rng);
        var b1 = Tensor.Parameter([256], "fc1.bias");
        var w2 = Init.XavierUniform(Tensor.Parameter([10, 256], "fc2.weight"), rng);
        var b2 = Tensor.Parameter([10], "fc2.bias");
        Tensor[] parameters = [w1, b1, w2, b2];
        const int batch = 128, epochs = 3;
        int stepsPerEpoch = train.Count / batch;
        var opt = new AdamW(parameters, new AdamWOptions(2e-3, WeightDecay: 1e-4));
        var schedule = new CosineWithWarmupSchedule(2e-3, 50, epochs * stepsPerEpoch, 1e-5);
        var x = new float[batch * 784];
        var y = new int[batch];
        double lastLoss = double.NaN;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var order = rng.Permutation(train.Count);
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                for (int i = 0; i < batch; i++)
                {
                    int idx = order[s * batch + i];
                    y[i] = train.Labels[idx];
                    var px = train.Pixels.AsSpan(idx * 784, 784);
                    for (int j = 0; j < 784; j++) x[i * 784 + j] = px[j] * (1f / 255f) - 0.5f;
                }
                using var tape = new Tape();
                var h = Ops.Relu(Ops.Linear(Tensor.FromArray(x, batch, 784), w1, b1));
                var loss = Ops.CrossEntropy(Ops.Linear(h, w2, b2), y);
                opt.ZeroGrad();
                tape.Backward(loss);
                GradClip.ClipNorm(parameters, 5.0);
                schedule.Apply(opt);
                opt.Step();
                lastLoss = loss.Item();
            }
        }
        Assert.True(lastLoss < 0.6, $"training loss went down ({lastLoss})");

        int correct = 0;
        using (Tape.NoGrad())
        {
            for (int start = 0; start < test.Count; start += 1000)
            {
                using var scope = new TensorScope();
                var xt = Ops.AddScalar(FashionMnist.ImagesAsTensor(test, start, 1000), -0.5f);
                var logits = Ops.Linear(Ops.Relu(Ops.Linear(xt, w1, b1)), w2, b2);
                var pred = Ops.ArgMax(logits, 1);
                for (int i = 0; i < 1000; i++) if (pred[i] == test.Labels[start + i]) correct++;
            }
        }
        double accuracy = correct / (double)test.Count;
        output.WriteLine($"784-256-10 MLP, {epochs} epochs × {stepsPerEpoch} steps of {batch}: final training loss {lastLoss:F4}, test accuracy {accuracy:P2}");
        Assert.True(accuracy >= 0.85, $"test accuracy {accuracy:P2} is below 85 %");

        // The trained parameters survive a safetensors round trip exactly and give the same predictions.
        string path = Path.Combine(Fixtures.TempDir(), "mlp.safetensors");
        SafeTensors.SaveParameters(path, parameters);
        var restored = parameters.Select(p => Tensor.Parameter(p.Shape, p.Name)).ToArray();
        SafeTensors.LoadInto(path, restored);
        for (int i = 0; i < parameters.Length; i++) Assert.Equal(parameters[i].ToArray(), restored[i].ToArray());
    }
}
