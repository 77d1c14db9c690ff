using Vega.MLNet.Embedding;
using Vega.MLNet.Tensors;

namespace Vega.MLNet.Prompting.Aape;

/// <summary>
/// A synthetic few-shot task in an embedding space, for tests and benchmarks (no CLIP model needed). Each class has a
/// random unit prototype μ_c. Images are normalize(μ_c + σ_x·ε). Text embeddings carry a shared "modality gap"
/// offset m, as in real CLIP. The handcrafted prompt is biased towards the next class:
/// w_c = normalize(μ_c + β·μ_(c+1) + σ_w·ε + γ·m), so zero-shot is weak; most descriptions are informative,
/// normalize(μ_c + σ_p·ε + γ·m), and a fraction are irrelevant, normalize(ε' + γ·m). ε has N(0, 1/D) entries.
/// </summary>
internal sealed record SyntheticTask(
    int Dimension, string[] ClassNames,
    EmbeddingMatrix TrainImages, int[] TrainLabels, EmbeddingMatrix TestImages, int[] TestLabels,
    EmbeddingMatrix ClassWeights, DescriptionEmbeddings Descriptions)
{
    public static SyntheticTask Create(int classes, int dimension, int trainPerClass, int testPerClass, int descriptionsPerClass, ulong seed,
        double imageNoise = 1.5, double promptBias = 0.8, double promptNoise = 0.5, double descriptionNoise = 0.6, double irrelevant = 0.3, double gap = 0.5)
    {
        var rng = new Rng(seed);
        int d = dimension;
        float[] Noise(double scale)
        {
            var v = new float[d];
            rng.FillNormal(v, 0, scale / Math.Sqrt(d));
            return v;
        }
        float[] Unit(float[] v)
        {
            EmbeddingMatrix.NormalizeInPlace(v);
            return v;
        }
        var prototypes = Enumerable.Range(0, classes).Select(_ => Unit(Noise(1))).ToArray();
        var gapVector = Unit(Noise(1));
        float[] Combine(params (float[] V, double W)[] parts)
        {
            var r = new float[d];
            foreach (var (v, w) in parts)
                for (int j = 0; j < d; j++) r[j] += (float)(w * v[j]);
            return Unit(r);
        }
        (EmbeddingMatrix, int[]) Images(int perClass)
        {
            var m = new EmbeddingMatrix(classes * perClass, d);
            var labels = new int[classes * perClass];
            for (int i = 0; i < labels.Length; i++)
            {
                int c = i % classes;
                labels[i] = c;
                Combine((prototypes[c], 1), (Noise(imageNoise), 1)).CopyTo(m.Row(i));
            }
            return (m, labels);
        }
        var (train, trainLabels) = Images(trainPerClass);
        var (test, testLabels) = Images(testPerClass);
        var weights = new EmbeddingMatrix(classes, d);
        for (int c = 0; c < classes; c++)
            Combine((prototypes[c], 1), (prototypes[(c + 1) % classes], promptBias), (Noise(promptNoise), 1), (gapVector, gap)).CopyTo(weights.Row(c));
        var perClass = new EmbeddingMatrix[classes];
        int bad = (int)Math.Round(irrelevant * descriptionsPerClass);
        for (int c = 0; c < classes; c++)
        {
            perClass[c] = new EmbeddingMatrix(descriptionsPerClass, d);
            for (int j = 0; j < descriptionsPerClass; j++)
            {
                var row = j < descriptionsPerClass - bad
                    ? Combine((prototypes[c], 1), (Noise(descriptionNoise), 1), (gapVector, gap))
                    : Combine((Noise(1), 1), (gapVector, gap));
                row.CopyTo(perClass[c].Row(j));
            }
        }
        var names = Enumerable.Range(0, classes).Select(c => $"class {c}").ToArray();
        return new SyntheticTask(d, names, train, trainLabels, test, testLabels, weights, DescriptionEmbeddings.Create(names, perClass));
    }

    /// <summary>The training set for <see cref="AapeTrainer"/>.</summary>
    public AapeTrainingSet TrainingSet => new()
    {
        Images = TrainImages, Labels = TrainLabels, ClassNames = ClassNames, ClassWeights = ClassWeights, Descriptions = Descriptions,
    };

    /// <summary>Accuracy of logits [N, C] against labels.</summary>
    public static double Accuracy(float[] logits, int[] labels, int classes)
    {
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
            if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(logits.AsSpan(i * classes, classes)) == labels[i]) correct++;
        return (double)correct / labels.Length;
    }
}
