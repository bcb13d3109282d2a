using Strata.Substrates;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class SubstrateCliTests
{
    private static void AssertPng(string path) => Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(path)[..4]);

    [Fact]
    public void Build_writes_substrate_files_and_show_draws_them()
    {
        var dir = TestPaths.TempDir();
        var affine = Path.Combine(dir, "affine.safetensors");
        var (code, output, err) = CliRunner.Run("substrate", "build", "--kind", "binary", "--affine", "--seed", "3", "--out", affine);
        Assert.True(code == 0, err);
        using (var f = SubstrateFile.Load(affine))
        {
            Assert.Contains($"sha256:{f.Hash}", output);
            Assert.True(f.Recipe.Spec.Affine);
            Assert.Equal([65536L, 16], f.Table.shape);
        }
        var published = Path.Combine(dir, "published.safetensors");
        (code, output, err) = CliRunner.Run("substrate", "build", "--from", TestPaths.Data("pytorch", "normalized_embeddings_weights.pt"), "--out", published);
        Assert.True(code == 0, err);
        Assert.Contains("300 x 16", output);
        (code, _, err) = CliRunner.Run("substrate", "show", published, "--out", Path.Combine(dir, "show-pt"));
        Assert.True(code == 0, err);
        AssertPng(Path.Combine(dir, "show-pt", "projection.png"));

        var visual = VisualTable.TwoThree.Value;
        var cached = Directory.GetFiles(SubstrateBuilder.CacheDir(VisualTable.Home), "visual-2-3-*.safetensors").Single();
        (code, output, err) = CliRunner.Run("substrate", "show", cached, "--tokens", "A,中,\u05B6,ing", "--out", Path.Combine(dir, "show-visual"));
        Assert.True(code == 0, err);
        AssertPng(Path.Combine(dir, "show-visual", "glyphs.png"));
        AssertPng(Path.Combine(dir, "show-visual", "projection.png"));
        Assert.Equal(65536, visual.Recipe.VocabSize);

        (code, _, err) = CliRunner.Run("substrate", "build", "--kind", "glyphs");
        Assert.Equal(1, code);
        Assert.Equal("error: --kind: unknown 'glyphs' (visual, binary, random, file)", err.Trim());
    }
}
