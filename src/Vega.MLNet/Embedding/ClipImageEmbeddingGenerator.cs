using Microsoft.Extensions.AI;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Embedding;

/// <summary>
/// The image tower of a <see cref="ClipModel"/> as a Microsoft.Extensions.AI embedding generator: encoded images
/// (JPEG or PNG bytes in <see cref="DataContent"/>) in, L2-normalised CLIP image embeddings out, in the same space as
/// <see cref="ClipTextEmbeddingGenerator"/>'s text embeddings. Decoding and preprocessing are the model's
/// (<see cref="ClipModel.Preprocessing"/>).
/// </summary>
public sealed class ClipImageEmbeddingGenerator : IEmbeddingGenerator<DataContent, Embedding<float>>
{
    private readonly ClipModel _model;
    private readonly ImagePreprocessor _preprocessor;
    private readonly DecodeOptions _decode;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>Wraps <paramref name="model"/> (not owned).</summary>
    public ClipImageEmbeddingGenerator(ClipModel model, DecodeOptions? decodeOptions = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _preprocessor = new ImagePreprocessor(model.Preprocessing);
        _decode = decodeOptions ?? DecodeOptions.Default;
        _metadata = new EmbeddingGeneratorMetadata("Vega.MLNet", null, model.Name, model.EmbeddingDimension);
    }

    /// <inheritdoc />
    /// <exception cref="ImageDecodeException">An input is not a decodable JPEG/PNG (the message names it by its
    /// <see cref="DataContent.Name"/> or position).</exception>
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<DataContent> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var inputs = values as IReadOnlyList<DataContent> ?? values.ToList();
        return Task.Run(() =>
        {
            int length = _preprocessor.OutputLength;
            var pixels = new float[(long)inputs.Count * length];
            var image = new RgbImage();
            for (int i = 0; i < inputs.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var content = inputs[i] ?? throw new ArgumentException($"Input {i} is null.", nameof(values));
                if (!content.HasTopLevelMediaType("image"))
                    throw new ArgumentException($"Input {i} ('{content.Name ?? content.MediaType}') has media type {content.MediaType}; image/jpeg or image/png is expected.", nameof(values));
                ImageDecoder.Decode(content.Data.Span, content.Name ?? $"input {i}", _decode, image);
                _preprocessor.Process(image, pixels.AsSpan(i * length, length));
            }
            var matrix = _model.EmbedPixels(pixels, inputs.Count, cancellationToken);
            return ClipTextEmbeddingGenerator.ToGenerated(matrix, _model.Name);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType == typeof(ClipModel)) return _model;
        return null;
    }

    /// <summary>Does nothing: the model is owned by the caller.</summary>
    public void Dispose() { }
}
