using Strata.Formats;
using Strata.Interop;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class LoraTests
{
    private static LanguageModel Model()
    {
        torch.manual_seed(4);
        var cfg = new ModelConfig { DModel = 32, NHead = 4, ContextLength = 16, VocabSize = 200 };
        return new LanguageModel(cfg, SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.Trainable }, cfg.VocabSize, cfg.DModel), 2);
    }

    [Theory]
    [InlineData(new long[] { 1, 24 })]
    [InlineData(new long[] { 5, 1, 24 })]
    [InlineData(new long[] { 2, 3, 24 })]
    [InlineData(new long[] { 32, 24 })]
    [InlineData(new long[] { 3, 11, 24 })]
    public void A_projection_of_few_rows_without_gradient_gives_the_linear_of_its_weight_bias_and_adapter(long[] shape)
    {
        torch.manual_seed(7);
        using var projection = new LoraLinear(24, 40, hasBias: true);
        projection.Attach(4, 8);
        using (torch.no_grad()) projection.LoraB!.normal_();
        using var x = torch.randn(shape);
        using Scalar scaling = projection.Scaling;
        using var expected = nn.functional.linear(x, projection.Weight, projection.Bias)
            .add(x.matmul(projection.LoraA!.t()).matmul(projection.LoraB!.t()), alpha: scaling);
        using var withGradient = projection.call(x);
        Tensor decoding;
        using (torch.no_grad()) decoding = projection.call(x);                   // at most 32 rows: (W x^T)^T, a view
        using (decoding)
        {
            Assert.Equal([.. shape[..^1], 40L], decoding.shape);
            Assert.True(decoding.allclose(expected, rtol: 1e-5, atol: 1e-5));
            Assert.True(withGradient.allclose(expected, rtol: 1e-5, atol: 1e-5));
            Assert.True(decoding.select(-1, 3).allclose(expected.select(-1, 3), rtol: 1e-5, atol: 1e-5));
        }
    }

    [Fact]
    public void An_attached_adapter_starts_as_no_change_and_merging_keeps_the_logits()
    {
        using var model = Model();
        model.eval();
        using var _ = torch.no_grad();
        using var ids = torch.randint(0, 200, [2, 16]);
        using var before = model.Forward(ids);
        foreach (var b in model.Blocks) b.AttachLora(Enum.GetValues<LoraTarget>(), rank: 4, alpha: 8);
        using (var atInit = model.Forward(ids)) Assert.Equal(0f, (atInit - before).abs().max().item<float>());   // B = 0
        var adapters = model.state_dict().Keys.Where(LoraLinear.IsAdapterName).ToList();
        Assert.Equal(2 * 4 * 2, adapters.Count);                                          // registered parameters of the model
        Assert.Contains("layers.1.mlp.dense_4h_to_h.lora_B", adapters);
        foreach (var (_, p) in model.named_parameters().Where(p => p.name.EndsWith("lora_B"))) p.normal_(0, 0.05);
        using var adapted = model.Forward(ids);
        Assert.True((adapted - before).abs().max().item<float>() > 1e-3);
        model.MergeLora();
        Assert.DoesNotContain(model.state_dict().Keys, LoraLinear.IsAdapterName);
        using var merged = model.Forward(ids);
        double diff = (merged - adapted).abs().max().item<float>();
        Assert.True(diff < 1e-5, $"merged vs adapted logits differ by {diff:E3}");
        Assert.Equal(new[] { "embed_in.weight" }, model.state_dict().Keys.Where(k => k.Contains("embed_in")));   // names unchanged
    }

    private static GrowthPlan WithLora(int rank = 4) => SotuData.Plan(4, checkpointEvery: 1000) with
    {
        Stages =
        [
            new StageConfig { Name = "grow-1", AddBlocks = 2, Steps = 4 },
            new StageConfig { Name = "grow-2 + lora", AddBlocks = 1, Steps = 4, Lora = new LoraConfig { Rank = rank, Alpha = 2 * rank, Targets =
                [LoraTarget.Qkv, LoraTarget.Fc2] } },
        ],
    };

    [Fact]
    public void A_lora_phase_readjusts_frozen_blocks_inside_its_budget_and_is_merged()
    {
        var plan = WithLora();
        var budgets = GrowthStage.Budgets(plan, "plan");
        // stage 2: one new block + final LN + head + adapters on 2 frozen blocks x (qkv [96x32] + fc2 [32x128]) at rank 4
        long adapters = 2 * (4 * 32 + 96 * 4 + 4 * 128 + 32 * 4);
        var noLora = GrowthStage.Budgets(plan with { Stages = [plan.Stages[0], plan.Stages[1] with { Lora = null }] }, "plan");
        Assert.Equal(noLora[1].Active + adapters, budgets[1].Active);
        Assert.Equal(noLora[1].Frozen, budgets[1].Frozen);                                // the adapted blocks stay frozen for dense updates

        var dir = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        using var s1 = new SafetensorsFile(Path.Combine(dir, "stage-1.safetensors"));
        using var s2 = new SafetensorsFile(Path.Combine(dir, "stage-2.safetensors"));
        Assert.DoesNotContain(s2.Entries.Keys, k => k.Contains("lora_"));
        Assert.NotEqual(s1.ReadBytes("model.layers.0.attention.query_key_value.weight"), s2.ReadBytes("model.layers.0.attention.query_key_value.weight"));
        Assert.Equal(s1.ReadBytes("model.layers.0.attention.dense.weight"), s2.ReadBytes("model.layers.0.attention.dense.weight"));   // not a target
        Assert.Equal(s1.ReadBytes("model.layers.0.attention.query_key_value.bias"), s2.ReadBytes("model.layers.0.attention.query_key_value.bias"));
    }

    [Fact]
    public void Resume_inside_a_lora_phase_repeats_the_uninterrupted_run()
    {
        var plan = WithLora();
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = straight, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, StopAfterStep = 6, Log = TextWriter.Null });
        using (var mid = new SafetensorsFile(Path.Combine(split, RunDirectory.CheckpointName)))
            Assert.Contains(mid.Entries.Keys, k => k.StartsWith("model.layers.0.attention.query_key_value.lora_A"));
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, Log = TextWriter.Null });
        List<double> Losses(string d) => MetricsLog.Read(Path.Combine(d, "metrics.jsonl")).Where(x => x.Kind == "train").Select(x => x.Value).ToList();
        Assert.Equal(Losses(straight), Losses(split));
    }

    [Fact]
    public void Unknown_lora_target_and_lora_without_frozen_blocks_are_refused()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "p.json");
        File.WriteAllText(path, """
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" },
              "stages": [ { "add_blocks": 1, "steps": 1 }, { "add_blocks": 1, "steps": 1, "lora": { "targets": ["qkv", "attn"] } } ] }
            """);
        var e = Assert.Throws<Strata.Util.StrataException>(() => GrowthPlan.Load(path));
        Assert.Contains("$.stages[1].lora.targets", e.Message);
        File.WriteAllText(path, """
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" },
              "stages": [ { "add_blocks": 1, "steps": 1, "lora": {} } ] }
            """);
        e = Assert.Throws<Strata.Util.StrataException>(() => GrowthPlan.Load(path));
        Assert.Contains("stages[0].lora.blocks", e.Message);
    }

    /// <summary>Stage 2 keeps its adapters (merge: false); stage 3 trains on top with them frozen; stage 4 attaches new
    /// qkv adapters where stage 2's still sit (those are folded in first) and merges its own.</summary>
    private static GrowthPlan Unmerged() => SotuData.Plan(4, checkpointEvery: 1000) with
    {
        Stages =
        [
            new StageConfig { Name = "a", AddBlocks = 2, Steps = 3 },
            new StageConfig { Name = "b + kept lora", AddBlocks = 1, Steps = 3, Lora = new LoraConfig { Rank = 2, Alpha = 4, Targets =
                [LoraTarget.Qkv, LoraTarget.Fc1], Merge = false } },
            new StageConfig { Name = "c", AddBlocks = 1, Steps = 3 },
            new StageConfig { Name = "d + lora", AddBlocks = 1, Steps = 3, Lora = new LoraConfig { Rank = 2, Alpha = 4, Targets = [LoraTarget.Qkv] } },
        ],
    };

    [Fact]
    public void Unmerged_adapters_stay_frozen_in_later_stages_and_every_checkpoint_loads_resumes_and_exports()
    {
        var plan = Unmerged();
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = straight, Log = TextWriter.Null });
        var run = new RunDirectory(straight);
        using (var s2 = new SafetensorsFile(run.Stage(2)))
        using (var s3 = new SafetensorsFile(run.Stage(3)))
        using (var s4 = new SafetensorsFile(run.Stage(4)))
        {
            var kept = s2.Entries.Keys.Where(k => k.StartsWith("model.") && k.Contains("lora_")).ToList();
            Assert.Equal(2 * 2 * 2, kept.Count);                                           // blocks 0-1 x (qkv, fc1) x (A, B)
            foreach (var k in kept) Assert.Equal(s2.ReadBytes(k), s3.ReadBytes(k));       // frozen through stage 3
            // stage 4 folded the kept qkv adapters in before attaching its own, and merged its own at its end; the
            // kept fc1 adapters are still there, unchanged
            Assert.Equal(kept.Where(k => k.Contains("dense_h_to_4h")), s4.Entries.Keys.Where(k => k.StartsWith("model.") && k.Contains("lora_")));
            foreach (var k in kept.Where(k => k.Contains("dense_h_to_4h"))) Assert.Equal(s2.ReadBytes(k), s4.ReadBytes(k));
        }
        foreach (var stage in new[] { run.Stage(2), run.Stage(3), run.Checkpoint })
        {
            var (m, _) = Checkpoint.LoadModel(stage);
            m.Dispose();
        }

        // interrupted inside stage 3 (adapters of stage 2 attached) and at the boundary into stage 4, then resumed
        Trainer.Run(plan, new TrainOptions { OutDir = split, StopAfterStep = 7, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, StopAfterStep = 9, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, Log = TextWriter.Null });
        List<double> Losses(string d) => MetricsLog.Read(new RunDirectory(d).Metrics).Where(x => x.Kind == "train").Select(x => x.Value).ToList();
        Assert.Equal(Losses(straight), Losses(split));
        using (var a = new SafetensorsFile(run.Checkpoint))
        using (var b = new SafetensorsFile(new RunDirectory(split).Checkpoint))
            foreach (var k in a.Entries.Keys) Assert.Equal(a.ReadBytes(k), b.ReadBytes(k));

        // the stage-3 file (unmerged adapters) exports to what it computes
        AssertExportComputesTheCheckpoint(run.Stage(3));
    }

    [Fact]
    public void An_export_taken_inside_a_lora_phase_gives_the_adapted_models_logits()
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(WithLora(), new TrainOptions { OutDir = dir, StopAfterStep = 6, Log = TextWriter.Null });
        var checkpoint = new RunDirectory(dir).Checkpoint;
        using (var mid = new SafetensorsFile(checkpoint))
            Assert.Contains(mid.Entries.Keys, k => k.EndsWith("lora_B"));
        AssertExportComputesTheCheckpoint(checkpoint);
    }

    /// <summary>Exports, imports the export back, and compares logits with the checkpoint's own model (adapters and all).</summary>
    private static void AssertExportComputesTheCheckpoint(string checkpoint)
    {
        var dir = TestPaths.TempDir();
        HfExport.Export(checkpoint, Path.Combine(dir, "hf"));
        var (exported, _) = HfExport.Import(Path.Combine(dir, "hf"));
        var (adapted, _) = Checkpoint.LoadModel(checkpoint);
        using (exported)
        using (adapted)
        using (torch.no_grad())
        {
            Assert.True(adapted.HasLora);
            Assert.False(exported.HasLora);
            exported.eval();
            adapted.eval();
            using var ids = torch.randint(0, 200, [2, 16]);
            double diff = (exported.Forward(ids) - adapted.Forward(ids)).abs().max().item<float>();
            Assert.True(diff < 1e-5, $"exported vs adapted logits differ by {diff:E3}");
        }
    }
}
