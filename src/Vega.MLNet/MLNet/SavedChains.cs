using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Vega.MLNet.Embedding;
using Vega.MLNet.Onnx;
using Vega.MLNet.Onnx.Proto;
using Vega.MLNet.Saving;

namespace Vega.MLNet;

/// <summary>
/// What each Vega.MLNet transformer saves as. ML.NET keeps the writers of a saved model internal, so a hand-written
/// transformer cannot store its own state; it hands <c>ml.Model.Save</c> a chain of ML.NET's own transformers instead,
/// which <c>ml.Model.Load</c> restores in any process after <c>ml.ComponentCatalog.RegisterAssembly(typeof(VegaCatalog).Assembly)</c>:
/// <list type="bullet">
/// <item>a stateless CustomMapping that decodes the image (path or encoded bytes) exactly as the fitted transformer does;</item>
/// <item>ApplyOnnxModel running one graph the project writes (Pillow-exact preprocessing as ONNX nodes, the model's image
/// tower, L2 normalisation and, for classifiers, the class matrix, the logit scale and the softmax — docs/onnx-export.md),
/// whose bytes the saved model carries;</item>
/// <item>for classifiers, a CustomMapping from the arg-max to a class index and MapValue to the class-name key.</item>
/// </list>
/// The loaded model gives the same columns (the embedding and Score as vectors of the same size, PredictedLabel as a key
/// over the same class names) and the same values to float rounding; it runs one row per ONNX Runtime call, as
/// ApplyOnnxModel does.
/// </summary>
internal static class SavedChains
{
    private static MLContext Ml => new(seed: 0);

    public static ICanSaveModel ImageEmbedding(ImageEmbeddingTransformer t) => ImageChain(t, head: null, scoreColumn: null, labelColumn: null, classNames: null);

    /// <summary>
    /// The prompt-tuning classifier: its class weights are constants (CoOp's learnt prompts run through the text tower once,
    /// or the probe's weights), so it saves like the zero-shot classifier: the head graph over the embedding column, with
    /// the probe's bias added to the logits.
    /// </summary>
    public static ICanSaveModel PromptTuning(PromptTuningTransformer t)
    {
        var h = t.Head;
        bool cosine = t.Method == Prompting.PartialLabel.TuningMethod.CoOp;
        var head = new ZeroShotHead(new EmbeddingMatrix((float[])h.Weights.Clone(), h.ClassNames.Count, h.EmbeddingDimension), h.Scale,
            h.Bias is null ? null : (float[])h.Bias.Clone(), unitRows: cosine);
        return HeadChain(ClipGraphComposer.ComposeHeadModel(head), ClipGraphComposer.EmbeddingInput, ClipGraphComposer.ScoreOutput,
            t.FeatureColumnName, t.EmbeddingDimension, t.ScoreColumnName, t.PredictedLabelColumnName, t.ClassNames);
    }

    /// <summary>
    /// The AAPE classifier: its head depends on the image (w_c(x) = ReLU(G·[w_c; h(x)] + g)), so it is the exported ONNX
    /// graph of the head (<see cref="Prompting.Aape.AapeOnnxExport"/>) with an arg-max added, run by ApplyOnnxModel.
    /// </summary>
    public static ICanSaveModel Aape(AapeTransformer t)
    {
        var graph = Prompting.Aape.AapeOnnxExport.Build(t.Head);
        // One row per call, as ApplyOnnxModel feeds it: batch 1, and the arg-max as the zero-shot head's index output.
        foreach (var io in graph.Graph.Input.Concat(graph.Graph.Output))
        {
            var dim = io.Type.TensorType.Shape.Dim[0];
            dim.DimValue = 1;
        }
        SavedGraph.DropOutput(graph, Prompting.Aape.AapeOnnxExport.LogitsName);
        var argMax = new NodeProto { OpType = "ArgMax", Name = "vega_argmax" };
        argMax.Input.Add(Prompting.Aape.AapeOnnxExport.ProbabilitiesName);
        argMax.Output.Add(ClipGraphComposer.IndexOutput);
        argMax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
        argMax.Attribute.Add(new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        argMax.Attribute.Add(new AttributeProto { Name = "select_last_index", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        graph.Graph.Node.Add(argMax);
        var index = new ValueInfoProto { Name = ClipGraphComposer.IndexOutput, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Int64, Shape = new TensorShapeProto() } } };
        index.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 1 });
        index.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 1 });
        graph.Graph.Output.Add(index);
        return HeadChain(graph, Prompting.Aape.AapeOnnxExport.InputName, Prompting.Aape.AapeOnnxExport.ProbabilitiesName,
            t.FeatureColumnName, t.EmbeddingDimension, t.ScoreColumnName, t.PredictedLabelColumnName, t.ClassNames);
    }

    public static ICanSaveModel ZeroShotPipeline(ImageEmbeddingTransformer embed, ZeroShotTransformer zeroShot) =>
        ImageChain(embed, Head(zeroShot), zeroShot.ScoreColumnName, zeroShot.PredictedLabelColumnName, zeroShot.ClassNames);

    public static ICanSaveModel ZeroShot(ZeroShotTransformer t) =>
        HeadChain(ClipGraphComposer.ComposeHeadModel(Head(t)), ClipGraphComposer.EmbeddingInput, ClipGraphComposer.ScoreOutput,
            t.FeatureColumnName, t.EmbeddingDimension, t.ScoreColumnName, t.PredictedLabelColumnName, t.ClassNames);

    /// <summary>
    /// A classifier head graph over an embedding column (input <paramref name="input"/> [1, D]; outputs
    /// <paramref name="scoreOutput"/> [1, C] and the arg-max <see cref="ClipGraphComposer.IndexOutput"/> [1, 1]) as
    /// ApplyOnnxModel → class index → MapValue to the class-name key.
    /// </summary>
    private static ICanSaveModel HeadChain(ModelProto graph, string input, string scoreOutput, string featureColumn, int dimension,
        string scoreColumn, string predictedLabelColumn, IReadOnlyList<string> classNames)
    {
        var ml = Ml;
        SavedGraph.RenameInputs(graph, new() { [input] = featureColumn });
        SavedGraph.Vector(graph, scoreOutput, scoreColumn);
        SavedGraph.IndexOrMissing(graph, scoreColumn, SavedColumns.Index);
        var empty = EmptyDataView.With(featureColumn, new VectorDataViewType(NumberDataViewType.Single, dimension));
        IEstimator<ITransformer> chain = ml.Transforms.ApplyOnnxModel([scoreColumn, SavedColumns.Index], [featureColumn], Stream(graph));
        chain = Classes(ml, chain, predictedLabelColumn, classNames);
        return Fit(chain.Append(ml.Transforms.DropColumns(SavedColumns.Index, SavedColumns.Class)), empty);
    }

    public static ICanSaveModel VegaAlignment(VegaAlignmentTransformer t)
    {
        var ml = Ml;
        var o = t.Options;
        var head = new ZeroShotHead(new EmbeddingMatrix((float[])t.ClassEmbeddings.Clone(), t.ClassNames.Count, t.EmbeddingDimension), (float)(1 / t.Temperature));
        var graph = ClipGraphComposer.ComposeHeadModel(head);
        SavedGraph.RenameInputs(graph, new() { [ClipGraphComposer.EmbeddingInput] = o.ImageEmbeddingColumnName });
        const string probabilities = "__VegaProbabilities";
        SavedGraph.Vector(graph, ClipGraphComposer.ScoreOutput, probabilities);
        SavedGraph.IndexOrMissing(graph, probabilities, SavedColumns.Index);
        SavedGraph.MaxOf(graph, probabilities, SavedColumns.Node);
        SavedGraph.DropOutput(graph, probabilities);
        var input = EmptyDataView.With(o.ImageEmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, t.EmbeddingDimension));
        IEstimator<ITransformer> chain = ml.Transforms.ApplyOnnxModel([SavedColumns.Node, SavedColumns.Index], [o.ImageEmbeddingColumnName], Stream(graph))
            .Append(ml.Transforms.CustomMapping(new SavedFirstElement().GetMapping(), SavedFirstElement.Contract))
            .Append(ml.Transforms.CopyColumns(o.NodeScoreColumnName, SavedColumns.NodeScalar));
        chain = Classes(ml, chain, o.PseudoLabelColumnName, t.ClassNames);
        return Fit(chain.Append(ml.Transforms.DropColumns(SavedColumns.Index, SavedColumns.Class, SavedColumns.Node, SavedColumns.NodeScalar)), input);
    }

    public static ICanSaveModel TextEmbedding(TextEmbeddingTransformer t) =>
        throw new NotSupportedException("Saving a TextEmbeddingTransformer is not supported: keep the fitted transformer, or save the text embeddings as data.");

    private static ZeroShotHead Head(ZeroShotTransformer t) =>
        new(new EmbeddingMatrix((float[])t.ClassEmbeddings.Clone(), t.ClassNames.Count, t.EmbeddingDimension), t.LogitScale);

    /// <summary>The chain of an image embedding transform, optionally with a zero-shot head on the same graph.</summary>
    private static ICanSaveModel ImageChain(ImageEmbeddingTransformer t, ZeroShotHead? head, string? scoreColumn, string? labelColumn, IReadOnlyList<string>? classNames)
    {
        var o = t.Options;
        if (o.ImageFolder is not null)
            throw new NotSupportedException(
                $"A saved model cannot keep ImageFolder ('{o.ImageFolder}'): ML.NET's saved transforms have no setting for it. Give the image column absolute paths (or paths relative to the working directory) and leave ImageFolder null, then save again.");
        var ml = Ml;
        var kind = t.InputKind;
        bool missing = o.OnError == EmbeddingErrorHandling.MissingValue;
        var graph = ClipGraphComposer.ComposeImageModel(t.Model, head, includePreprocessing: kind != ImageInputKind.Image);
        var outputs = new List<string> { o.OutputColumnName };
        SavedGraph.Vector(graph, ClipGraphComposer.EmbeddingOutput, o.OutputColumnName);
        if (head is not null)
        {
            SavedGraph.Vector(graph, ClipGraphComposer.ScoreOutput, scoreColumn!);
            SavedGraph.IndexOrMissing(graph, scoreColumn!, SavedColumns.Index);
            outputs.Add(scoreColumn!);
            outputs.Add(SavedColumns.Index);
        }
        IEstimator<ITransformer> chain;
        var drop = new List<string>();
        if (kind == ImageInputKind.Image)
        {
            // An MLImage column: ML.NET's own resize (shortest side, centre crop) and pixel extraction, as exact as its
            // decoder and resampler; the graph normalises the raw 0..255 planes.
            int s = t.Model.Preprocessing.ImageSize;
            SavedGraph.RawPixels(graph, SavedColumns.Pixels, t.Model.Preprocessing);
            chain = ml.Transforms.ResizeImages(SavedColumns.Resized, s, s, o.InputColumnName, ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center)
                .Append(ml.Transforms.ExtractPixels(SavedColumns.Pixels, SavedColumns.Resized, ImagePixelExtractingEstimator.ColorBits.Rgb,
                    ImagePixelExtractingEstimator.ColorsOrder.ARGB, interleavePixelColors: false))
                .Append(ml.Transforms.ApplyOnnxModel([.. outputs], [SavedColumns.Pixels], Stream(graph)));
            drop.AddRange([SavedColumns.Resized, SavedColumns.Pixels]);
        }
        else
        {
            SavedGraph.RenameInputs(graph, new()
            {
                [ClipPreprocessGraph.RgbInput] = SavedColumns.Rgb,
                [ClipPreprocessGraph.HeightInput] = SavedColumns.Height,
                [ClipPreprocessGraph.WidthInput] = SavedColumns.Width,
            });
            var inputs = new List<string> { SavedColumns.Rgb, SavedColumns.Height, SavedColumns.Width };
            if (missing)
            {
                SavedGraph.MaskWithValid(graph, o.OutputColumnName, SavedColumns.Valid);
                inputs.Add(SavedColumns.Valid);
            }
            var decode = Decoder(ml, kind, o.ApplyExifOrientation, missing);
            chain = ml.Transforms.CopyColumns(SavedColumns.Source, o.InputColumnName)
                .Append(decode)
                .Append(ml.Transforms.ApplyOnnxModel([.. outputs], [.. inputs], Stream(graph)));
            if (missing) chain = chain.Append(ml.Transforms.CopyColumns(t.ErrorColumnName!, SavedColumns.Error));
            drop.AddRange([SavedColumns.Source, SavedColumns.Rgb, SavedColumns.Height, SavedColumns.Width, SavedColumns.Valid, SavedColumns.Error]);
        }
        if (head is not null)
        {
            chain = Classes(ml, chain, labelColumn!, classNames!);
            drop.AddRange([SavedColumns.Index, SavedColumns.Class]);
        }
        return Fit(chain.Append(ml.Transforms.DropColumns([.. drop])), EmptyDataView.With(o.InputColumnName, t.InputType));
    }

    private static IEstimator<ITransformer> Decoder(MLContext ml, ImageInputKind kind, bool exif, bool missing) => (kind, exif, missing) switch
    {
        (ImageInputKind.Path, false, false) => ml.Transforms.CustomMapping(new SavedDecodePath().GetMapping(), SavedDecodePath.Contract),
        (ImageInputKind.Path, true, false) => ml.Transforms.CustomMapping(new SavedDecodePathExif().GetMapping(), SavedDecodePathExif.Contract),
        (ImageInputKind.Path, false, true) => ml.Transforms.CustomMapping(new SavedDecodePathOrMissing().GetMapping(), SavedDecodePathOrMissing.Contract),
        (ImageInputKind.Path, true, true) => ml.Transforms.CustomMapping(new SavedDecodePathExifOrMissing().GetMapping(), SavedDecodePathExifOrMissing.Contract),
        (_, false, false) => ml.Transforms.CustomMapping(new SavedDecodeBytes().GetMapping(), SavedDecodeBytes.Contract),
        (_, true, false) => ml.Transforms.CustomMapping(new SavedDecodeBytesExif().GetMapping(), SavedDecodeBytesExif.Contract),
        (_, false, true) => ml.Transforms.CustomMapping(new SavedDecodeBytesOrMissing().GetMapping(), SavedDecodeBytesOrMissing.Contract),
        (_, true, true) => ml.Transforms.CustomMapping(new SavedDecodeBytesExifOrMissing().GetMapping(), SavedDecodeBytesExifOrMissing.Contract),
    };

    /// <summary>Arg-max index → 0-based class → a key over the class names (in class order), as the fitted transformers' keys.</summary>
    private static IEstimator<ITransformer> Classes(MLContext ml, IEstimator<ITransformer> chain, string keyColumn, IReadOnlyList<string> classNames) =>
        chain.Append(ml.Transforms.CustomMapping(new SavedClassFromIndex().GetMapping(), SavedClassFromIndex.Contract))
            .Append(ml.Transforms.Conversion.MapValue(keyColumn, classNames.Select((c, i) => new KeyValuePair<uint, string>((uint)i, c)), SavedColumns.Class, treatValuesAsKeyType: true));

    private static MemoryStream Stream(ModelProto graph) => new(ClipGraphComposer.ToBytes(graph), writable: false);

    private static TransformerChain<ITransformer> Fit(IEstimator<ITransformer> chain, IDataView input)
    {
        var fitted = chain.Fit(input);
        return fitted as TransformerChain<ITransformer> ?? new TransformerChain<ITransformer>(fitted);
    }
}

/// <summary>A data view with one typed column and no rows: the input the saved chains are fitted on (they read no data).</summary>
internal sealed class EmptyDataView(DataViewSchema schema) : IDataView
{
    public static EmptyDataView With(string column, DataViewType type)
    {
        var b = new DataViewSchema.Builder();
        b.AddColumn(column, type);
        return new EmptyDataView(b.ToSchema());
    }

    public bool CanShuffle => false;
    public DataViewSchema Schema => schema;
    public long? GetRowCount() => 0;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(schema);
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => [new Cursor(schema)];

    private sealed class Cursor(DataViewSchema schema) : DataViewRowCursor
    {
        public override long Position => -1;
        public override long Batch => 0;
        public override DataViewSchema Schema => schema;
        public override bool MoveNext() => false;
        public override bool IsColumnActive(DataViewSchema.Column column) => true;
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => (ref TValue _) => throw new InvalidOperationException("The empty data view has no rows.");
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId _) => throw new InvalidOperationException("The empty data view has no rows.");
    }
}
