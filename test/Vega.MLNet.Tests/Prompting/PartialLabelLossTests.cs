using Vega.MLNet.Imaging;
using Vega.MLNet.Prompting.PartialLabel;
using Vega.MLNet.Tensors;
using Vega.MLNet.Tests.Infrastructure;
using Vega.MLNet.Tests.Tensors;

namespace Vega.MLNet.Tests.Prompting;

public sealed class PartialLabelLossTests
{
    private static readonly float[] Z = [1f, 2f, 0f, 0.5f, -1f, 3f];
    private static readonly byte[] Mask = [1, 1, 0, 0, 1, 1];
    private static readonly CandidateLabels Sets = CandidateLabels.FromMask(Mask, 2, 3);

    private static double[] P(int row)
    {
        double m = Math.Max(Z[row * 3], Math.Max(Z[row * 3 + 1], Z[row * 3 + 2]));
        var e = Enumerable.Range(0, 3).Select(j => Math.Exp(Z[row * 3 + j] - m)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    private static double Eval(PartialLabelLoss loss)
    {
        using var tape = new Tape();
        return loss.Loss(Tensor.FromArray(Z, 2, 3), [0, 1]).Item();
    }

    [Fact]
    public void EachLossMatchesItsHandComputedValue()
    {
        var p0 = P(0); var p1 = P(1);
        double naive = (-(Math.Log(p0[0]) + Math.Log(p0[1])) / 2 - (Math.Log(p1[1]) + Math.Log(p1[2])) / 2) / 2;
        Assert.Equal(naive, Eval(new PartialLabelLoss(PartialLabelLossKind.Naive, Sets)), 5);
        double cc = (-Math.Log(p0[0] + p0[1]) - Math.Log(p1[1] + p1[2])) / 2;
        Assert.Equal(cc, Eval(new PartialLabelLoss(PartialLabelLossKind.CC, Sets)), 5);
        Assert.Equal(naive, Eval(new PartialLabelLoss(PartialLabelLossKind.RC, Sets)), 5); // uniform confidences at start
        double lws = (-(Math.Log(p0[0]) + Math.Log(p0[1])) / 3 - Math.Log(1 - p0[2]) / 3
                      - (Math.Log(p1[1]) + Math.Log(p1[2])) / 3 - Math.Log(1 - p1[0]) / 3) / 2;
        Assert.Equal(lws, Eval(new PartialLabelLoss(PartialLabelLossKind.LWS, Sets)), 5);
        double lws2 = (-(Math.Log(p0[0]) + Math.Log(p0[1])) / 3 - 2 * Math.Log(1 - p0[2]) / 3
                       - (Math.Log(p1[1]) + Math.Log(p1[2])) / 3 - 2 * Math.Log(1 - p1[0]) / 3) / 2;
        Assert.Equal(lws2, Eval(new PartialLabelLoss(PartialLabelLossKind.LWS, Sets, lwsBeta: 2f)), 5);
        // CAVL: z|1 − z| over the candidates: row 0 → {1·0, 2·1} → class 1; row 1 → {−1·2 = −2, 3·2 = 6} → class 2.
        Assert.Equal((-Math.Log(p0[1]) - Math.Log(p1[2])) / 2, Eval(new PartialLabelLoss(PartialLabelLossKind.CAVL, Sets)), 5);
        var single = CandidateLabels.FromLabels([1, 2], 3);
        Assert.Equal((-Math.Log(p0[1]) - Math.Log(p1[2])) / 2, Eval(new PartialLabelLoss(PartialLabelLossKind.CrossEntropy, single)), 5);
        Assert.Contains("exactly one label", Assert.Throws<ArgumentException>(() => new PartialLabelLoss(PartialLabelLossKind.CrossEntropy, Sets)).Message);
    }

    [Fact]
    public void CavlPicksACandidateEvenWhenEveryCandidateHasANegativeActivation()
    {
        var sets = CandidateLabels.FromMask([1, 1, 0], 1, 3);
        using var tape = new Tape();
        var loss = new PartialLabelLoss(PartialLabelLossKind.CAVL, sets).Loss(Tensor.FromArray([-3f, -1f, 5f], 1, 3), [0]).Item();
        // Candidates' activations: −3·4 = −12 and −1·2 = −2 → class 1 (not the non-candidate 2 with 0 after masking).
        double m = 5, s = Math.Exp(-3 - m) + Math.Exp(-1 - m) + Math.Exp(0);
        Assert.Equal(-(-1 - m - Math.Log(s)), loss, 4);
    }

    [Theory]
    [InlineData(nameof(PartialLabelLossKind.Naive))]
    [InlineData(nameof(PartialLabelLossKind.CC))]
    [InlineData(nameof(PartialLabelLossKind.RC))]
    [InlineData(nameof(PartialLabelLossKind.LWS))]
    [InlineData(nameof(PartialLabelLossKind.CAVL))]
    public void GradientsMatchFiniteDifferences(string kindName)
    {
        var kind = Enum.Parse<PartialLabelLossKind>(kindName);
        var sets = CandidateLabels.Generate([0, 3, 1, 2], 5, 0.5, 11);
        var loss = new PartialLabelLoss(kind, sets);
        // CAVL's target is an argmax of z|1 − z|: shift the logits into z > 1, where it is monotonic, so that the
        // finite differences do not cross a switch of the pseudo-label.
        float shift = kind == PartialLabelLossKind.CAVL ? 2f : 0f;
        GradCheck.Check(t => loss.Loss(Ops.AddScalar(t[0], shift), [0, 1, 2, 3]), GradCheck.Input.Distinct(3, 4, 5));
    }

    [Fact]
    public void ConfidencesAreReestimatedFromTheModelAfterAStep()
    {
        var rc = new PartialLabelLoss(PartialLabelLossKind.RC, Sets);
        var lws = new PartialLabelLoss(PartialLabelLossKind.LWS, Sets);
        using (Tape.NoGrad())
        {
            rc.Update(Tensor.FromArray(Z, 2, 3), [0, 1]);
            lws.Update(Tensor.FromArray(Z, 2, 3), [0, 1]);
        }
        var p0 = P(0); var p1 = P(1);
        Assert.Equal(p0[0] / (p0[0] + p0[1]), rc.Confidence(0)[0], 5);
        Assert.Equal(p0[1] / (p0[0] + p0[1]), rc.Confidence(0)[1], 5);
        Assert.Equal(0f, rc.Confidence(0)[2]);
        Assert.Equal(p1[2] / (p1[1] + p1[2]), rc.Confidence(1)[2], 5);
        // LWS normalises candidates and non-candidates separately.
        Assert.Equal(p0[1] / (p0[0] + p0[1]), lws.Confidence(0)[1], 5);
        Assert.Equal(1.0, lws.Confidence(0)[2], 5);
        Assert.Equal(1.0, lws.Confidence(1)[0], 5);
        // And the loss now uses them.
        double expected = (-(rc.Confidence(0)[0] * Math.Log(p0[0]) + rc.Confidence(0)[1] * Math.Log(p0[1]))
                           - (rc.Confidence(1)[1] * Math.Log(p1[1]) + rc.Confidence(1)[2] * Math.Log(p1[2]))) / 2;
        Assert.Equal(expected, Eval(rc), 5);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.3)]
    [InlineData(0.5)]
    public void GeneratedSetsContainTheTrueLabelAndHaveTheExpectedSize(double q)
    {
        var rng = new Rng(5);
        var labels = Enumerable.Range(0, 20000).Select(_ => rng.NextInt(10)).ToArray();
        var sets = CandidateLabels.Generate(labels, 10, q, 99);
        for (int i = 0; i < labels.Length; i++) Assert.True(sets.Contains(i, labels[i]));
        Assert.Equal(1 + q * 9, sets.MeanSetSize(), 1); // ±0.05; the standard error is ≈ 0.01
        Assert.InRange(sets.MeanSetSize(), 1 + q * 9 - 0.05, 1 + q * 9 + 0.05);
        Assert.Equal(sets.MeanSetSize(), CandidateLabels.Generate(labels, 10, q, 99).MeanSetSize()); // seeded
        Assert.True(CandidateLabels.Generate(labels, 10, 0, 1).IsSingleLabel);
    }

    [Fact]
    public void AlignmentRestrictsTheTeacherAndCarriesTheSameWeightAsThePllTerm()
    {
        var teacher = new float[] { 2f, 0f, 1f, 0f, 0f, 0f };
        var pi = PromptAlignment.RestrictedTeacher(teacher, Sets, [0, 1]);
        double e2 = Math.Exp(2), e0 = 1;
        Assert.Equal(e2 / (e2 + e0), pi[0], 5);
        Assert.Equal(e0 / (e2 + e0), pi[1], 5);
        Assert.Equal(0f, pi[2]);
        Assert.Equal(0.5, pi[4], 5);
        Assert.Equal(0.5, pi[5], 5);

        using var tape = new Tape();
        var z = Tensor.Parameter(Z, [2, 3]);
        var pll = new PartialLabelLoss(PartialLabelLossKind.CC, Sets).Loss(z, [0, 1]);
        var align = PromptAlignment.AlignmentLoss(z, pi);
        var total = PromptAlignment.Combine(pll, align);
        Assert.Equal(2 * pll.Item(), total.Item(), 4); // the rescaled alignment term equals the PLL term
        var p0 = P(0);
        Assert.Equal(-(pi[0] * Math.Log(p0[0]) + pi[1] * Math.Log(p0[1]) + 0.5 * Math.Log(P(1)[1]) + 0.5 * Math.Log(P(1)[2])) / 2, align.Item(), 5);
    }

    [Fact]
    public void ShotsAreBalancedAndSeeded()
    {
        var labels = Enumerable.Range(0, 300).Select(i => i % 3).ToArray();
        var shots = CandidateLabels.SampleShots(labels, 3, 4, 7);
        Assert.Equal(12, shots.Length);
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(4, shots.Count(i => labels[i] == c)));
        Assert.Equal(shots, CandidateLabels.SampleShots(labels, 3, 4, 7));
        Assert.NotEqual(shots, CandidateLabels.SampleShots(labels, 3, 4, 8));
    }

    [Fact]
    public void CandidateSetsFromACsvNameTheBadLine()
    {
        string dir = Fixtures.TempDir();
        File.Copy(Path.Combine(Fixtures.Images, "dots.png"), Path.Combine(dir, "a.png"));
        string csv = Path.Combine(dir, "train.csv");
        File.WriteAllText(csv, "path,candidates\na.png,cat|dog\na.png,dog\na.png,cat|zebra\n");
        var source = ImageSource.FromCsv(csv);
        var e = Assert.Throws<InvalidDataException>(() => CandidateLabels.FromItems(source.Items, ["cat", "dog"]));
        Assert.Contains("line 4", e.Message);
        Assert.Contains("zebra", e.Message);
        var ok = CandidateLabels.FromItems(source.Items.Take(2).ToList(), ["cat", "dog"]);
        Assert.Equal(1.5, ok.MeanSetSize());
    }
}
