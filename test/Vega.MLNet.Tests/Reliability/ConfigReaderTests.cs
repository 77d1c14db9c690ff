using Vega.MLNet.Imaging;
using Vega.MLNet.Models;
using Vega.MLNet.Tests.Infrastructure;

namespace Vega.MLNet.Tests.Reliability;

/// <summary>
/// Issue 17 items 3 and 6: config.json and preprocessor_config.json fields of the wrong type are errors naming the file
/// and the field (never a silent default, never an InvalidOperationException); the preprocessing flags are honoured or
/// refused with the reason; a top-level pad_token_id is used.
/// </summary>
public sealed class ConfigReaderTests
{
    private const string Pre8 = """{"crop_size": {"height": 8, "width": 8}, "size": {"shortest_edge": 8}, "resample": 3}""";

    private static ClipModelException LoadFails(string? config = null, string? pre = null)
    {
        string dir = TinyClip.Create(configJson: config, preprocessorJson: pre);
        return Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
    }

    [Theory]
    [InlineData("""{"logit_scale": "4.0"}""", "logit_scale", "the string \"4.0\"")]
    [InlineData("""{"logit_scale_init_value": [2.6]}""", "logit_scale_init_value", "an array")]
    [InlineData("""{"logit_scale": 1e400}""", "logit_scale", "a finite number")]
    [InlineData("""{"text_config": {"pad_token_id": "1"}}""", "text_config.pad_token_id", "the string \"1\"")]
    [InlineData("""{"text_config": {"pad_token_id": -1}}""", "text_config.pad_token_id", "between 0 and")]
    [InlineData("""{"text_config": {"max_position_embeddings": 77.5}}""", "text_config.max_position_embeddings", "an integer")]
    [InlineData("""{"text_config": {"max_position_embeddings": 99999999999999}}""", "text_config.max_position_embeddings", "between 3 and")]
    [InlineData("""{"text_config": []}""", "text_config", "an object")]
    [InlineData("""{"vision_config": {"image_size": "224"}}""", "vision_config.image_size", "the string \"224\"")]
    [InlineData("""{"pad_token_id": true}""", "pad_token_id", "true")]
    public void AWronglyTypedConfigFieldIsAnErrorNamingFileAndField(string config, string field, string found)
    {
        var e = LoadFails(config: config);
        Assert.Contains("config.json'", e.Message);
        Assert.Contains($"\"{field}\"", e.Message);
        Assert.Contains(found, e.Message);
    }

    [Theory]
    [InlineData("""{"do_normalize": "no"}""", "do_normalize", "true or false")]
    [InlineData("""{"do_rescale": 0}""", "do_rescale", "true or false")]
    [InlineData("""{"rescale_factor": "1/255"}""", "rescale_factor", "a number")]
    [InlineData("""{"rescale_factor": -1}""", "rescale_factor", "between")]
    [InlineData("""{"resample": "3"}""", "resample", "an integer")]
    [InlineData("""{"resample": 1}""", "resample", "PIL filter 1")]
    [InlineData("""{"image_mean": [0.5, "x", 0.5]}""", "image_mean", "a number")]
    [InlineData("""{"image_std": [0.5, 0.5]}""", "image_std", "got 2 values")]
    [InlineData("""{"image_std": [0.5, 0, 0.5]}""", "image_std", "between")]
    [InlineData("""{"crop_size": {"height": 8, "width": 6}}""", "crop_size", "not square")]
    [InlineData("""{"crop_size": "8"}""", "crop_size", "an integer")]
    [InlineData("""{"size": {"longest_edge": 8}}""", "size", "shortest_edge")]
    [InlineData("""{"do_resize": false}""", "do_resize", "cannot honour")]
    [InlineData("""{"do_center_crop": false, "size": {"shortest_edge": 8}}""", "do_center_crop", "different shapes")]
    [InlineData("""{"crop_size": 8, "size": {"height": 16, "width": 16}}""", "crop_size", "squashes images to 16")]
    [InlineData("""{"crop_size": 8, "size": {"shortest_edge": 4}}""", "size", "smaller than")]
    [InlineData("""[1, 2]""", "", "a JSON object")]
    [InlineData("""{"a": 1, "a": 2}""", "", "not valid JSON")]
    public void APreprocessorFieldThatIsWrongOrCannotBeHonouredIsAnErrorNamingFileAndField(string pre, string field, string found)
    {
        var e = LoadFails(pre: pre);
        Assert.Contains("preprocessor_config.json'", e.Message);
        if (field.Length > 0) Assert.Contains($"\"{field}\"", e.Message);
        Assert.Contains(found, e.Message);
    }

    [Theory]
    [InlineData("""{"logit_scale": "100"}""", "logit_scale")]
    [InlineData("""{"image_size": 224.5}""", "image_size")]
    [InlineData("""{"mean": [1, 2]}""", "mean")]
    [InlineData("""{"normalized": "yes"}""", "normalized")]
    [InlineData("""{"text_mask_input": 3}""", "text_mask_input")]
    public void AWronglyTypedClipJsonKeyIsAnErrorNamingFileAndKey(string manifest, string key)
    {
        string dir = TinyClip.Create();
        File.WriteAllText(Path.Combine(dir, "clip.json"), manifest);
        var e = Assert.Throws<ClipModelException>(() => ClipModel.Load(dir));
        Assert.Contains("clip.json'", e.Message);
        Assert.Contains($"\"{key}\"", e.Message);
    }

    [Fact]
    public void DoNormalizeAndDoRescaleAreHonoured()
    {
        // Oracle: the same image through the default settings is (x·factor − mean) / std of the raw bytes in float32.
        using var plain = ClipModel.Load(TinyClip.Create(preprocessorJson: Pre8));
        using var raw = ClipModel.Load(TinyClip.Create(preprocessorJson: Pre8[..^1] + ""","do_normalize": false, "do_rescale": false}"""));
        using var half = ClipModel.Load(TinyClip.Create(preprocessorJson: Pre8[..^1] + ""","do_normalize": false, "rescale_factor": 0.5}"""));
        Assert.Equal([0f, 0f, 0f], raw.Preprocessing.Mean);
        Assert.Equal([1f, 1f, 1f], raw.Preprocessing.Std);
        Assert.Equal(1.0, raw.Preprocessing.RescaleFactor);
        Assert.Equal(0.5, half.Preprocessing.RescaleFactor);
        Assert.Equal(1.0 / 255, plain.Preprocessing.RescaleFactor);

        var source = ImageSource.FromIdx(TinyClip.Idx(3));
        var image = source.Load(source.Items[1]);
        var p = new ImagePreprocessor(plain.Preprocessing).Process(image);
        var r = new ImagePreprocessor(raw.Preprocessing).Process(image);
        var h = new ImagePreprocessor(half.Preprocessing).Process(image);
        var mean = PreprocessSettings.ClipMean;
        var std = PreprocessSettings.ClipStd;
        for (int i = 0; i < r.Length; i++)
        {
            int c = i / 64;
            Assert.Equal(Math.Round(r[i]), r[i]); // raw bytes
            Assert.Equal((r[i] / 255f - mean[c]) / std[c], p[i]);
            Assert.Equal((float)(r[i] * 0.5), h[i]);
        }
    }

    [Fact]
    public void ASquareSizeWithoutCentreCropSquashes()
    {
        using var m = ClipModel.Load(TinyClip.Create(preprocessorJson: """{"size": {"height": 8, "width": 8}, "do_center_crop": false, "crop_size": 5}"""));
        Assert.Equal(ResizeMode.Squash, m.Preprocessing.ResizeMode);
        Assert.Equal(8, m.Preprocessing.ImageSize);
        using var scalar = ClipModel.Load(TinyClip.Create(preprocessorJson: """{"crop_size": 8, "size": 8, "image_mean": 0.5, "image_std": 0.25}"""));
        Assert.Equal([0.5f, 0.5f, 0.5f], scalar.Preprocessing.Mean);
        Assert.Equal([0.25f, 0.25f, 0.25f], scalar.Preprocessing.Std);
    }

    [Fact]
    public void TheTopLevelPadTokenIdIsUsedAndTextConfigsWins()
    {
        using (var m = ClipModel.Load(TinyClip.Create(configJson: """{"pad_token_id": 7}""")))
            Assert.Equal(7, m.PadId);
        using (var m = ClipModel.Load(TinyClip.Create(configJson: """{"pad_token_id": 7, "text_config": {"pad_token_id": 5}}""")))
            Assert.Equal(5, m.PadId);
        using (var m = ClipModel.Load(TinyClip.Create(configJson: """{"pad_token_id": null, "logit_scale": null, "logit_scale_init_value": 2}""")))
        {
            Assert.Equal(0, m.PadId);
            Assert.Equal(MathF.Exp(2f), m.LogitScale);
        }
    }

    [Fact]
    public void TheFixtureConfigsStillLoadUnchanged()
    {
        using var model = ClipModel.Load(Path.Combine(Fixtures.Onnx, "hf"));
        Assert.Equal(49407, model.PadId);
        Assert.Equal(1.0 / 255, model.Preprocessing.RescaleFactor);
        Assert.Equal(PreprocessSettings.ClipMean, model.Preprocessing.Mean);
        Assert.Equal(14.284856f, model.LogitScale, 4);
    }
}
