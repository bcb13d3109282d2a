using System.Text.Json;
using Strata.Generation;
using Strata.Interop;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>ONNX exports run by ONNX Runtime itself: Strata's logits on a left-padded batch, the greedy text of
/// `strata generate` through the KV-cache inputs, and a model past protobuf's 2 GB through external data.</summary>
[Collection("torch")]
public class OnnxExportTests(ITestOutputHelper log)
{
    public static TheoryData<string> Kinds => new(ExportModels.Kinds);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Onnx_runtime_gives_strata_s_logits_on_a_padded_batch_and_its_greedy_text_through_the_cache(string kind)
    {
        var checkpoint = ExportModels.Checkpoint(kind);
        var dir = Path.Combine(TestPaths.TempDir(), "onnx");
        var (code, output, err) = CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "onnx", "--out", dir);
        Assert.True(code == 0, err);
        Assert.Equal(kind == "lora-kept", output.Contains("LoRA adapter(s) merged"));
        foreach (var f in new[] { "config.json", "generation_config.json", "genai_config.json", OnnxExport.ModelFile })
            Assert.True(File.Exists(Path.Combine(dir, f)), f);

        var (model, info) = Checkpoint.LoadModel(checkpoint);
        using var _ = model;
        model.eval();
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        // a BPE vocabulary travels as tokenizer.json (the code-point tokenizer is an algorithm, not a file)
        Assert.Equal(tokenizer is Strata.Tokenization.BpeTokenizer, File.Exists(Path.Combine(dir, "tokenizer.json")));
        var c = model.Config;
        using var onnx = new OnnxDecoder(Path.Combine(dir, OnnxExport.ModelFile), model.Depth, c.NHead, c.HeadSize);
        Assert.Equal(["input_ids", "attention_mask", "position_ids", .. Enumerable.Range(0, model.Depth).SelectMany(l => new[]
            { $"past_key_values.{l}.key", $"past_key_values.{l}.value" })], onnx.InputNames);

        // two prompts of different lengths, the shorter left-padded (pad id 0, masked)
        var rows = GgufExportTests.Prompts.Take(2).Select(p => tokenizer.Encode(p)).ToArray();
        int width = rows.Max(r => r.Length);
        var ids = new long[rows.Length, width];
        var mask = new long[rows.Length, width];
        for (int r = 0; r < rows.Length; r++)
            for (int j = 0; j < rows[r].Length; j++) (ids[r, width - rows[r].Length + j], mask[r, width - rows[r].Length + j]) = (rows[r][j], 1);
        var (logits, vocab, _, _) = onnx.Run(ids, mask, null, 0);
        double worst = 0;
        using (torch.no_grad())
            for (int r = 0; r < rows.Length; r++)
            {
                using var expected = model.Forward(torch.tensor(rows[r].Select(i => (long)i).ToArray(), [1, rows[r].Length]));
                var want = expected.data<float>().ToArray();
                int pad = width - rows[r].Length;
                for (int j = 0; j < rows[r].Length * vocab; j++)
                    worst = Math.Max(worst, Math.Abs(logits[(r * width + pad) * vocab + j] - want[j]));
            }
        log.WriteLine($"{kind}: largest |logit difference| on a padded batch of {rows.Length}: {worst:E2}");
        Assert.True(worst < 1e-4, $"{kind}: ONNX Runtime's logits differ from Strata's by up to {worst:E2}");

        // 32 greedy tokens, the prompt in one call and then one token a call with the cache: `strata generate`'s text
        foreach (var prompt in GgufExportTests.Prompts)
        {
            var generated = onnx.Greedy(tokenizer.Encode(prompt), 32, tokenizer.EndOfText);
            var (gcode, text, gerr) = CliRunner.Run("generate", "--checkpoint", checkpoint, "--prompt", prompt, "--max-new-tokens", "32",
                "--temperature", "0");
            Assert.True(gcode == 0, gerr);
            Assert.Equal(text.TrimEnd('\n'), prompt + tokenizer.Decode(generated));
        }
    }

    [Fact]
    public void Transformers_js_loads_the_folder_and_generates_strata_s_greedy_text()
    {
        var checkpoint = ExportModels.Checkpoint("visual");                    // bvv241-2-3: a tokenizer.json travels with it
        var dir = Path.Combine(TestPaths.TempDir(), "model");
        Assert.Equal(0, CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "onnx", "--out", dir).Code);
        var (model, info) = Checkpoint.LoadModel(checkpoint);
        using var _ = model;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        foreach (var prompt in GgufExportTests.Prompts)
        {
            using var result = JsonDocument.Parse(NodeScript.Run("generate.mjs", dir, prompt, "32"));
            var ids = tokenizer.Encode(prompt);
            Assert.Equal(ids, result.RootElement.GetProperty("prompt").EnumerateArray().Select(x => x.GetInt32()));
            var expected = TextGenerator.Generate(model, ids, 32, SamplingOptions.Greedy, tokenizer.EndOfText).ToList();
            Assert.NotEmpty(expected);
            var generated = result.RootElement.GetProperty("generated").EnumerateArray().Select(x => x.GetInt32()).ToList();
            if (generated.Count > expected.Count) Assert.Equal(tokenizer.EndOfText, generated[expected.Count]);   // transformers.js keeps the eos
            Assert.Equal(expected, generated.Take(expected.Count));
        }
    }

    [Fact]
    public void A_model_past_two_gigabytes_round_trips_through_external_data()
    {
        // the paper's 9 blocks over the 65,536-id vocabulary at d_model 2048 (738M parameters, 2.95 GB in fp32), untrained
        var plan = SotuData.Plan(1) with
        {
            Model = new ModelConfig { DModel = 2048, NHead = 16, ContextLength = 64, VocabSize = 65536 },
            Stages = [new StageConfig { Name = "untrained", AddBlocks = 9, Steps = 1 }],
        };
        var dir = Path.Combine(TestPaths.TempDir(), "big");
        long[] prompt = GgufExportTests.Prompts[0].Select(ch => (long)ch).ToArray();
        float[] want;
        var model = GrowthStage.Build(plan.Validate("big"), 0, stageFinished: true);
        using (var src = ExportSource.From(model, new CheckpointInfo { Plan = plan, Tokenizer = "codepoint", Depth = 9 }))
        {
            model.eval();
            using (torch.no_grad())
            using (var expected = model.Forward(torch.tensor(prompt, [1, prompt.Length])))
                want = expected.data<float>().ToArray();
            var summary = OnnxExport.Export(src, dir, force: false, external: null);
            Assert.Contains(summary.Notes, n => n.Contains("external data"));
        }
        var data = new FileInfo(Path.Combine(dir, "onnx", OnnxExport.DataFile));
        var graph = new FileInfo(Path.Combine(dir, OnnxExport.ModelFile));
        log.WriteLine($"model.onnx {graph.Length / 1e6:F1} MB, model.onnx_data {data.Length / 1e9:F2} GB");
        Assert.True(data.Length > 2L << 30, $"only {data.Length} bytes of external data");
        Assert.True(graph.Length < 10 << 20);
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))))
            Assert.True(config.RootElement.GetProperty("transformers.js_config").GetProperty("use_external_data_format").GetBoolean());

        using var onnx = new OnnxDecoder(graph.FullName, 9, 16, 128);
        var ids = new long[1, prompt.Length];
        var mask = new long[1, prompt.Length];
        for (int j = 0; j < prompt.Length; j++) (ids[0, j], mask[0, j]) = (prompt[j], 1);
        var (logits, _, _, _) = onnx.Run(ids, mask, null, 0);
        double worst = want.Select((w, i) => (double)Math.Abs(w - logits[i])).Max();
        log.WriteLine($"largest |logit difference| {worst:E2}");
        Assert.True(worst < 1e-4, $"logits differ by up to {worst:E2}");
    }

    [Fact]
    public void A_folder_in_use_is_kept_without_force_and_a_failed_export_leaves_nothing()
    {
        var checkpoint = ExportModels.Checkpoint("frozen-16bit");
        var root = TestPaths.TempDir();
        var dir = Path.Combine(root, "onnx");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "mine");
        var (code, _, err) = CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "onnx", "--out", dir);
        Assert.NotEqual(0, code);
        Assert.Contains("--force", err);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(dir, "notes.txt")));
        Assert.Equal(0, CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "onnx", "--out", dir, "--force").Code);
        Assert.False(File.Exists(Path.Combine(dir, "notes.txt")));
        Assert.Equal(["onnx"], Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName));    // no staging folder left

        // a model with a head bias has no place in GPT-NeoX: one line, nothing written
        var biased = Path.Combine(root, "biased");
        Training.Trainer.Run(SotuData.Plan(1) with { Model = SotuData.Plan(1).Model with { HeadBias = true } },
            new Training.TrainOptions { OutDir = biased, Log = TextWriter.Null });
        (code, _, err) = CliRunner.Run("export", "--checkpoint", biased, "--format", "onnx", "--out", Path.Combine(root, "b"));
        Assert.NotEqual(0, code);
        Assert.Contains("bias", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Equal(["biased", "onnx"], Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
