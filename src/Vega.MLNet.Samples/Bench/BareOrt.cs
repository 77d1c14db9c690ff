using Microsoft.ML.OnnxRuntime;

namespace Vega.MLNet.Samples.Bench;

/// <summary>
/// The baseline of the speed comparisons: Microsoft.ML.OnnxRuntime's <see cref="InferenceSession.Run(RunOptions, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string})"/>
/// called directly on prepared tensors, the way an application would without this library.
/// </summary>
internal sealed class BareOrt : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();

    /// <param name="modelPath">The ONNX file.</param>
    /// <param name="threads">Intra-op threads; null leaves ONNX Runtime's own default (physical cores).</param>
    public BareOrt(string modelPath, int? threads)
    {
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (threads is int t) so.IntraOpNumThreads = t;
        _session = new InferenceSession(modelPath, so);
    }

    /// <summary>One run over float32 input <paramref name="name"/>; the outputs are fetched and released.</summary>
    public void Run(string name, float[] data, int offset, int length, long[] shape, string output)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, data.AsMemory(offset, length), shape);
        using var results = _session.Run(_run, [name], [value], [output]);
    }

    /// <summary>One run over int64 inputs (token ids and an optional mask).</summary>
    public void Run(IReadOnlyList<(string Name, long[] Data, long[] Shape)> inputs, string output)
    {
        var values = inputs.Select(i => OrtValue.CreateTensorValueFromMemory(i.Data, i.Shape)).ToArray();
        try
        {
            using var results = _session.Run(_run, inputs.Select(i => i.Name).ToArray(), values, [output]);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose()
    {
        _session.Dispose();
        _run.Dispose();
    }
}
