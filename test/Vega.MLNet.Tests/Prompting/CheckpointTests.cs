using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Prompting;

/// <summary>
/// Prompt-tuning checkpoints carry a checksum: every single-bit flip anywhere in the file, a truncation or appended
/// bytes is reported on resume as a damaged checkpoint naming the file (the intact checkpoint resumes bit for bit:
/// LinearProbeTests and CoopTests).
/// </summary>
public sealed class CheckpointTests
{
    private static (string Path, Func<TuningResult> Resume) WriteCheckpoint()
    {
        var (x, y, _) = LinearProbeTests.Synthetic(40, 3, 8, 1.0, 77);
        var candidates = CandidateLabels.Generate(y, 3, 0.5, 1);
        string dir = Fixtures.TempDir("vega-ckpt");
        var settings = new PllTrainingSettings { Epochs = 2, LearningRate = 1e-3, WeightDecay = 1e-4, WarmupEpochs = 0 };
        LinearProbeTests.Probe(x, candidates, PartialLabelLossKind.RC, settings, y, checkpoint: dir); // RC: confidences are saved too
        var more = settings with { Epochs = 2 };
        return (Path.Combine(dir, Checkpoint.FileName), () => LinearProbeTests.Probe(x, candidates, PartialLabelLossKind.RC, more, y, checkpoint: dir));
    }

    [Fact]
    public void EverySingleBitFlipIsReportedAsADamagedCheckpointNamingTheFile()
    {
        var (path, _) = WriteCheckpoint();
        var good = File.ReadAllBytes(path);
        Checkpoint.ReadVerified(path); // intact: no error
        string damaged = path + ".damaged";
        int undetected = 0;
        for (int bit = 0; bit < good.Length * 8; bit++)
        {
            var bytes = (byte[])good.Clone();
            bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            File.WriteAllBytes(damaged, bytes);
            try
            {
                Checkpoint.ReadVerified(damaged);
                undetected++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains(damaged, e.Message);
                Assert.Contains("damaged", e.Message);
            }
        }
        Assert.Equal(0, undetected);
        // Truncated, extended, emptied.
        foreach (var bytes in new[] { good[..(good.Length / 2)], [.. good, 0, 0, 0, 0], [] })
        {
            File.WriteAllBytes(damaged, bytes);
            Assert.Contains(damaged, Assert.Throws<InvalidDataException>(() => Checkpoint.ReadVerified(damaged)).Message);
        }
    }

    [Fact]
    public void ResumingFromADamagedCheckpointFailsWithAnErrorNamingIt()
    {
        var (path, resume) = WriteCheckpoint();
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x10; // a bit of the last tensor's data
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => resume());
        Assert.Contains(path, e.Message);
        Assert.Contains("checksum", e.Message);
        Assert.Contains("Delete it", e.Message);
    }
}
