using Strata.Formats;
using System.Buffers.Binary;
using System.Text.Json;
using Strata.Interop;
using Strata.Runs;
using Strata.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class ExportImportTests
{
    private static readonly string Fixture = TestPaths.Data("hf-gpt-neox-tiny");

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("pytorch_model.bin")]
    public void Import_of_the_transformers_fixture_reproduces_its_logits(string weights)
    {
        var dir = TestPaths.TempDir();
        File.Copy(Path.Combine(Fixture, "config.json"), Path.Combine(dir, "config.json"));
        File.Copy(Path.Combine(Fixture, weights), Path.Combine(dir, weights));          // embed_out in one, lm_head in the other
        var (model, info) = HfExport.Import(dir, "codepoint");
        using var _ = model;
        Assert.Equal(2, info.Depth);
        using var expected = new SafetensorsFile(Path.Combine(Fixture, "expected.safetensors"));
        using var ng = torch.no_grad();
        model.eval();
        using var got = model.Forward(expected.Read("input_ids"));
        Assert.True((got - expected.Read("logits")).abs().max().item<float>() < 1e-4);
    }

    [Fact]
    public void Export_then_import_gives_bit_identical_weights_and_identical_logits()
    {
        var dir = TestPaths.TempDir();
        var run = Path.Combine(dir, "run");
        Trainer.Run(SotuData.Plan(3), new TrainOptions { OutDir = run, Log = TextWriter.Null });
        var ckpt = Path.Combine(run, RunDirectory.CheckpointName);
        var (code, _, err) = CliRunner.Run("export", "--checkpoint", ckpt, "--format", "hf", "--out", Path.Combine(dir, "hf"));
        Assert.True(code == 0, err);

        // config.json says exactly the paper's GPT-NeoX variant
        using (var cfg = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "hf", "config.json"))))
        {
            var r = cfg.RootElement;
            Assert.False(r.GetProperty("use_parallel_residual").GetBoolean());
            Assert.False(r.GetProperty("tie_word_embeddings").GetBoolean());
            Assert.Equal(1.0, r.GetProperty("rotary_pct").GetDouble());
            Assert.Equal(2, r.GetProperty("num_hidden_layers").GetInt32());
        }
        // an independent minimal parse of the safetensors Strata wrote: header length, JSON, contiguous offsets
        var bytes = File.ReadAllBytes(Path.Combine(dir, "hf", "model.safetensors"));
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using (var header = JsonDocument.Parse(bytes.AsMemory(8, (int)n)))
        {
            long expectedStart = 0;
            foreach (var e in header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__").OrderBy(p => p.Value.GetProperty(
                "data_offsets")[0].GetInt64()))
            {
                var off = e.Value.GetProperty("data_offsets");
                Assert.Equal(expectedStart, off[0].GetInt64());
                long elements = e.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, x) => a * x.GetInt64());
                Assert.Equal(elements * 4, off[1].GetInt64() - off[0].GetInt64());
                Assert.Equal("F32", e.Value.GetProperty("dtype").GetString());
                expectedStart = off[1].GetInt64();
            }
            Assert.Equal(bytes.Length - 8 - n, expectedStart);
            Assert.Equal([65536L, 32], header.RootElement.GetProperty("gpt_neox.embed_in.weight").GetProperty("shape").EnumerateArray().Select(x =>
                x.GetInt64()));
        }

        var back = Path.Combine(dir, "back.safetensors");
        Assert.Equal(0, CliRunner.Run("import", Path.Combine(dir, "hf"), "--out", back).Code);
        Assert.Equal(Checkpoint.ReadInfo(ckpt).Plan.Substrate, Checkpoint.ReadInfo(back).Plan.Substrate);   // the 16-bit code came back
        using var a = new SafetensorsFile(ckpt);
        using var b = new SafetensorsFile(back);
        foreach (var k in a.Entries.Keys.Where(k => k.StartsWith("model.", StringComparison.Ordinal))) Assert.Equal(a.ReadBytes(k), b.ReadBytes(k));
        var (m1, _) = Checkpoint.LoadModel(ckpt);
        var (m2, _) = Checkpoint.LoadModel(back);
        using (m1) using (m2) using (torch.no_grad())
        {
            using var ids = torch.randint(0, 65536, [2, 16]);
            Assert.Equal(m1.Forward(ids).data<float>().ToArray(), m2.Forward(ids).data<float>().ToArray());
        }
    }

    [Fact]
    public void An_imported_checkpoint_keeps_its_tokenizer_beside_it_moves_with_it_and_tokenizer_overrides_the_folder_s()
    {
        var dir = TestPaths.TempDir();
        string Tokenizer(string name, string text)
        {
            var corpus = Path.Combine(dir, name + "-text");
            Directory.CreateDirectory(corpus);
            File.WriteAllText(Path.Combine(corpus, "a.txt"), string.Concat(Enumerable.Repeat(text, 200)));
            var (code, _, err) = CliRunner.Run("tokenizer", "train", corpus, "--vocab-size", "200", "--out", Path.Combine(dir, name));
            Assert.True(code == 0, err);
            return Path.Combine(dir, name, "tokenizer.json");
        }
        var hf = Path.Combine(dir, "hf");
        Directory.CreateDirectory(hf);
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(TestPaths.Data("hf-gpt-neox-tiny", f), Path.Combine(hf, f));
        File.Copy(Tokenizer("cats", "the cat sat on the mat. "), Path.Combine(hf, "tokenizer.json"));
        var other = Tokenizer("dogs", "a dog ran in a fog! ");

        var (imported, _, importErr) = CliRunner.Run("import", hf, "--out", Path.Combine(dir, "a", "model.safetensors"));
        Assert.True(imported == 0, importErr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(hf, "tokenizer.json")), File.ReadAllBytes(Path.Combine(dir, "a", "model.tokenizer.json")));
        Directory.Move(Path.Combine(dir, "a"), Path.Combine(dir, "moved"));
        File.Delete(Path.Combine(hf, "tokenizer.json"));
        var (generated, output, generateErr) = CliRunner.Run("generate", "--checkpoint", Path.Combine(dir, "moved", "model.safetensors"),
            "--prompt", "the cat", "--max-new-tokens", "4");
        Assert.True(generated == 0, generateErr);
        Assert.StartsWith("the cat", output);

        File.Copy(Path.Combine(dir, "cats", "tokenizer.json"), Path.Combine(hf, "tokenizer.json"));
        Assert.Equal(0, CliRunner.Run("import", hf, "--out", Path.Combine(dir, "b", "model.safetensors"), "--tokenizer", other).Code);
        Assert.Equal(File.ReadAllBytes(other), File.ReadAllBytes(Path.Combine(dir, "b", "model.tokenizer.json")));
        Assert.Equal(Tokenization.Tokenizers.ContentHash(Tokenization.Tokenizers.ByName(other)),
            Checkpoint.ReadInfo(Path.Combine(dir, "b", "model.safetensors")).TokenizerHash);
    }

    [Fact]
    public void Config_and_tensor_shapes_that_disagree_are_refused()
    {
        var dir = TestPaths.TempDir();
        File.Copy(Path.Combine(Fixture, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(Fixture, "config.json")).Replace(
            "\"intermediate_size\": 256", "\"intermediate_size\": 128"));
        var e = Assert.Throws<Strata.Util.StrataException>(() => HfExport.Import(dir, "codepoint"));
        Assert.Contains("dense_h_to_4h.weight", e.Message);
        Assert.Contains("[256, 64]", e.Message);
        Assert.Contains("[128, 64]", e.Message);
    }
}
