namespace Vega.MLNet.Onnx;

/// <summary>Graph fusions applied to the execution plan (see docs/onnx-interpreter.md).</summary>
internal static class OnnxFusion
{
    public static int Apply(List<OnnxInterpreter.Step> steps, OnnxValue?[] constants, bool[] pinned, string source) => 0;
}
