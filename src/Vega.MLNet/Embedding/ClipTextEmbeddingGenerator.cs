using Microsoft.Extensions.AI;
using Vega.MLNet.Models;

namespace Vega.MLNet.Embedding;

/// <summary>
/// The text tower of a CLIP model package as a Microsoft.Extensions.AI embedding generator: texts in,
/// L2-normalised CLIP text embeddings out (in the same space as the image embeddings of
/// <see cref="ClipImageEmbeddingGenerator"/>).
/// </summary>
public sealed class ClipTextEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly ClipModel _model;
    private readonly bool _owned;
    private readonly TextEmbeddingOptions _options;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>Loads the model package at <paramref name="modelPath"/> (a folder or its clip.json); disposing the generator releases it.</summary>
    /// <param name="modelPath">The CLIP model package (OpenAI or Hugging Face layout, docs/models.md).</param>
    /// <param name="modelOptions">Device, threads and the optimised-model cache (null: CPU, one thread per core).</param>
    /// <param name="options">Prompt handling (truncation of over-long texts).</param>
    /// <exception cref="ClipModelException">The package cannot be loaded; the message names the file and the fix.</exception>
    public ClipTextEmbeddingGenerator(string modelPath, ClipModelOptions? modelOptions = null, TextEmbeddingOptions? options = null)
        : this(ClipModel.Load(modelPath, modelOptions ?? new ClipModelOptions()), options) => _owned = true;

    /// <summary>Wraps <paramref name="model"/> (not owned: disposing the generator does not dispose the model).</summary>
    internal ClipTextEmbeddingGenerator(ClipModel model, TextEmbeddingOptions? options = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? TextEmbeddingOptions.Default;
        _metadata = new EmbeddingGeneratorMetadata("Vega.MLNet", null, model.Name, model.EmbeddingDimension);
    }

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values as IReadOnlyList<string> ?? values.ToList();
        return Task.Run(() =>
        {
            var matrix = _model.EmbedTexts(texts, _options, cancellationToken);
            return ToGenerated(matrix, _model.Name);
        }, cancellationToken);
    }

    internal static GeneratedEmbeddings<Embedding<float>> ToGenerated(EmbeddingMatrix matrix, string modelId)
    {
        var result = new GeneratedEmbeddings<Embedding<float>>(matrix.Count);
        for (int i = 0; i < matrix.Count; i++)
            result.Add(new Embedding<float>(matrix.Data.AsMemory(i * matrix.Dimension, matrix.Dimension)) { ModelId = modelId, CreatedAt = DateTimeOffset.UtcNow });
        return result;
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
