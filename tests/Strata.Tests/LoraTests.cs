using Strata.Interop;
using Strata.Modeling;
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
        return new LanguageModel(cfg, Substrate.Create(new SubstrateSpec { Kind = SubstrateKind.Trainable }, cfg), 2);
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
        foreach (var (_, p) in model.AdapterParameters().Where(p => p.Name.EndsWith("lora_B"))) p.normal_(0, 0.05);
        using var adapted = model.Forward(ids);
        Assert.True((adapted - before).abs().max().item<float>() > 1e-3);
        Assert.Equal(2 * 4 * 2, model.AdapterParameters().Count());
        model.MergeLora();
        Assert.Empty(model.AdapterParameters());
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
            new StageConfig { Name = "grow-2 + lora", AddBlocks = 1, Steps = 4, Lora = new LoraConfig { Rank = rank, Alpha = 2 * rank, Targets = [LoraTarget.Qkv, LoraTarget.Fc2] } },
        ],
    };

    [Fact]
    public void A_lora_phase_readjusts_frozen_blocks_inside_its_budget_and_is_merged()
    {
        var plan = WithLora();
        var budgets = Trainer.StageBudgets(plan, "plan");
        // stage 2: one new block + final LN + head + adapters on 2 frozen blocks x (qkv [96x32] + fc2 [32x128]) at rank 4
        long adapters = 2 * (4 * 32 + 96 * 4 + 4 * 128 + 32 * 4);
        var noLora = Trainer.StageBudgets(plan with { Stages = [plan.Stages[0], plan.Stages[1] with { Lora = null }] }, "plan");
        Assert.Equal(noLora[1].Active + adapters, budgets[1].Active);
        Assert.Equal(noLora[1].Frozen, budgets[1].Frozen);                                // the adapted blocks stay frozen for dense updates

        var dir = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        using var s1 = new SafetensorsFile(Path.Combine(dir, "stage-1.safetensors"));
        using var s2 = new SafetensorsFile(Path.Combine(dir, "stage-2.safetensors"));
        Assert.DoesNotContain(s2.Entries.Keys, k => k.StartsWith("lora."));
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
        using (var mid = new SafetensorsFile(Path.Combine(split, Checkpoint.FileName)))
            Assert.Contains(mid.Entries.Keys, k => k.StartsWith("lora.layers.0.attention.query_key_value.lora_A"));
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
}
