using Microsoft.Extensions.AI;
using Vega.MLNet.Imaging;
using Vega.MLNet.Models;

namespace Vega.MLNet.Embedding;

/// <summary>
/// The image tower of a CLIP model package as a Microsoft.Extensions.AI embedding generator: encoded images
/// (JPEG, PNG, WebP, GIF or BMP bytes in <see cref="DataContent"/>) in, L2-normalised CLIP image embeddings out, in the
/// same space as <see cref="ClipTextEmbeddingGenerator"/>'s text embeddings. Decoding and preprocessing are the model's
/// (Pillow-exact, docs/imaging.md).
/// </summary>
public sealed class ClipImageEmbeddingGenerator : IEmbeddingGenerator<DataContent, Embedding<float>>
{
    private readonly ClipModel _model;
    private readonly bool _owned;
    private readonly ImagePreprocessor _preprocessor;
    private readonly DecodeOptions _decode;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>Loads the model package at <paramref name="modelPath"/> (a folder or its clip.json); disposing the generator releases it.</summary>
    /// <param name="modelPath">The CLIP model package (OpenAI or Hugging Face layout, docs/models.md).</param>
    /// <param name="modelOptions">Device, threads and the optimised-model cache (null: CPU, one thread per core).</param>
    /// <param name="decodeOptions">Decoding (EXIF orientation; off by default, as in the reference preprocessing).</param>
    /// <exception cref="ClipModelException">The package cannot be loaded; the message names the file and the fix.</exception>
    public ClipImageEmbeddingGenerator(string modelPath, ClipModelOptions? modelOptions = null, DecodeOptions? decodeOptions = null)
        : this(ClipModel.Load(modelPath, modelOptions ?? new ClipModelOptions()), decodeOptions) => _owned = true;

    /// <summary>Wraps <paramref name="model"/> (not owned).</summary>
    internal ClipImageEmbeddingGenerator(ClipModel model, DecodeOptions? decodeOptions = null)
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
        return null;
    }

    /// <summary>Releases the model if this generator loaded it.</summary>
    public void Dispose()
    {
        if (_owned) _model.Dispose();
    }
}
