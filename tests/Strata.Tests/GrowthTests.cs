using Strata.Formats;
using Strata.Interop;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Constructive growth: stages stack blocks, earlier blocks stay frozen, budgets are counted off the modules.</summary>
[Collection("torch")]
public class GrowthTests
{
    private static GrowthPlan TwoStages(SubstrateKind kind = SubstrateKind.Binary, bool embeddingInStage1 = false) => SotuData.Plan(4, kind: kind,
        checkpointEvery: 1000) with
    {
        Stages =
        [
            new StageConfig { Name = "grow-1", AddBlocks = 2, Steps = 4, TrainEmbedding = embeddingInStage1 },
            new StageConfig { Name = "grow-2", AddBlocks = 1, Steps = 4 },
        ],
    };

    private static TrainResult Train(GrowthPlan plan, string dir, long? stopAfter = null, bool resume = false) =>
        Trainer.Run(plan, new TrainOptions { OutDir = dir, StopAfterStep = stopAfter, Resume = resume, Log = TextWriter.Null });

    private static Dictionary<string, byte[]> Tensors(string file, string prefix)
    {
        using var f = new SafetensorsFile(file);
        return f.Entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(k => k, f.ReadBytes);
    }

    [Fact]
    public void Frozen_blocks_and_substrate_are_bit_identical_after_a_later_stage()
    {
        var dir = TestPaths.TempDir();
        var r = Train(TwoStages(), dir);
        Assert.True(r.Completed);
        var stage1 = Path.Combine(dir, "stage-1.safetensors");
        var stage2 = Path.Combine(dir, "stage-2.safetensors");
        Assert.Equal(2, Checkpoint.ReadInfo(stage1).Depth);
        Assert.Equal(3, Checkpoint.ReadInfo(stage2).Depth);
        foreach (var prefix in new[] { "model.layers.0.", "model.layers.1.", "model.embed_in." })
        {
            var before = Tensors(stage1, prefix);
            var after = Tensors(stage2, prefix);
            Assert.NotEmpty(before);
            Assert.Equal(before.Keys.Order(), after.Keys.Order());
            foreach (var k in before.Keys) Assert.Equal(before[k], after[k]);
        }
        // the head and final LayerNorm kept training
        Assert.NotEqual(Tensors(stage1, "model.embed_out.")["model.embed_out.weight"], Tensors(stage2, "model.embed_out.")["model.embed_out.weight"]);
        // the plot marks the stage boundary
        Assert.Equal([0, 1], MetricsLog.Read(r.Run.Metrics).Select(x => x.Stage).Distinct());
    }

    [Fact]
    public void Resume_inside_a_stage_and_across_the_boundary_repeats_the_uninterrupted_run()
    {
        var plan = TwoStages();
        string straight = TestPaths.TempDir(), a = TestPaths.TempDir(), b = TestPaths.TempDir();
        Train(plan, straight);
        Train(plan, a, stopAfter: 4);                                  // at the stage boundary
        Train(plan, a, resume: true);
        Train(plan, b, stopAfter: 6);                                  // inside stage 2
        Train(plan, b, resume: true);
        List<double> Losses(string d) => MetricsLog.Read(Path.Combine(d, "metrics.jsonl")).Where(x => x.Kind == "train").Select(x => x.Value).ToList();
        Assert.Equal(8, Losses(straight).Count);
        Assert.Equal(Losses(straight), Losses(a));
        Assert.Equal(Losses(straight), Losses(b));
        Assert.Equal(Tensors(Path.Combine(straight, RunDirectory.CheckpointName), "model."), Tensors(Path.Combine(b, RunDirectory.CheckpointName), "model."));
    }

    [Fact]
    public void A_trainable_embedding_trains_in_stage_1_and_is_frozen_after()
    {
        var dir = TestPaths.TempDir();
        Train(TwoStages(SubstrateKind.Trainable, embeddingInStage1: true), dir);
        var budgets = GrowthStage.Budgets(TwoStages(SubstrateKind.Trainable, embeddingInStage1: true), "plan");
        Assert.Equal(budgets[0].Total - 0, budgets[0].Active);                      // stage 1: everything trains
        Assert.Equal(Tensors(Path.Combine(dir, "stage-1.safetensors"), "model.embed_in."), Tensors(Path.Combine(dir, "stage-2.safetensors"),
            "model.embed_in."));
    }

    [Fact]
    public void Paper_scale_budgets_match_the_paper()
    {
        var model = new ModelConfig { DModel = 1024, NHead = 32, ContextLength = 1024, VocabSize = 65536 };
        GrowthPlan Plan(SubstrateKind kind, params StageConfig[] stages) => new()
        {
            Model = model, Substrate = new SubstrateSpec { Kind = kind }, Data = new DataSpec { Train = "x", Validation = "y" }, Stages = stages,
        };
        var three = new StageConfig { AddBlocks = 3, Steps = 1 };
        var constructive = GrowthStage.Budgets(Plan(SubstrateKind.Trainable, three with { TrainEmbedding = false }, three, three), "plan");
        Assert.All(constructive, b => Assert.Equal(104_899_584, b.Active));             // 3 new blocks + final LN + head ("105.0M")
        Assert.Equal(247_585_792, constructive[^1].Total);
        var monolithicFrozen = GrowthStage.Budgets(Plan(SubstrateKind.Trainable, new StageConfig { AddBlocks = 9, Steps = 1 }), "plan");
        Assert.Equal(180_476_928, monolithicFrozen[0].Active);                         // "180.5M"
        var monolithicAll = GrowthStage.Budgets(Plan(SubstrateKind.Trainable, new StageConfig { AddBlocks = 9, Steps = 1, Trains = StageTrains.All }), "plan");
        Assert.Equal(247_585_792, monolithicAll[0].Active);                            // "247.6M"
        var withBias = GrowthStage.Budgets(Plan(SubstrateKind.Binary, three, three, three) with { Model = model with { HeadBias = true } }, "plan");
        Assert.Equal(104_965_120, withBias[2].Active);
    }

    [Fact]
    public void A_stage_over_the_active_budget_is_refused_before_training()
    {
        var plan = TwoStages() with { Training = TwoStages().Training with { MaxActiveParameters = 2_115_000 } };
        var budgets = GrowthStage.Budgets(TwoStages(), "plan");
        Assert.True(budgets[0].Active > 2_115_000 && budgets[1].Active < 2_115_000, $"{budgets[0]} / {budgets[1]}");
        var dir = Path.Combine(TestPaths.TempDir(), "run");
        var e = Assert.Throws<StrataException>(() => Train(plan, dir));
        Assert.Contains("stages[0]", e.Message);
        Assert.Contains("max_active_parameters", e.Message);
        Assert.False(Directory.Exists(dir));
    }
}

[Collection("torch")]
public class GrowCommandTests
{
    [Fact]
    public void Grow_continues_a_finished_run_with_new_stages()
    {
        var dir = TestPaths.TempDir();
        var first = SotuData.Plan(3, blocks: 2);
        Trainer.Run(first, new TrainOptions { OutDir = Path.Combine(dir, "a"), Log = TextWriter.Null });
        var more = first with { Stages = [new StageConfig { Name = "more", AddBlocks = 1, Steps = 3 }] };
        var planPath = Path.Combine(dir, "more.json");
        File.WriteAllText(planPath, Json.Serialize(more));
        var (code, output, err) = CliRunner.Run("grow", "--checkpoint", Path.Combine(dir, "a", RunDirectory.CheckpointName), "--plan", planPath,
            "--out", Path.Combine(dir, "b"));
        Assert.True(code == 0, err);
        Assert.Contains("finished at step 6", output);
        var info = Checkpoint.ReadInfo(Path.Combine(dir, "b", RunDirectory.CheckpointName));
        Assert.Equal(3, info.Depth);
        Assert.Equal(2, info.Plan.Stages.Count);
        using var a = new Strata.Formats.SafetensorsFile(Path.Combine(dir, "a", RunDirectory.CheckpointName));
        using var b = new Strata.Formats.SafetensorsFile(Path.Combine(dir, "b", RunDirectory.CheckpointName));
        foreach (var k in a.Entries.Keys.Where(k => k.StartsWith("model.layers.", StringComparison.Ordinal)))
            Assert.Equal(a.ReadBytes(k), b.ReadBytes(k));
        Assert.Equal(6, MetricsLog.Read(Path.Combine(dir, "b", "metrics.jsonl")).Count(r => r.Kind == "train"));

        var other = more with { Substrate = more.Substrate with { Lift = SubstrateLift.Tile } };
        File.WriteAllText(planPath, Json.Serialize(other));
        var (bad, _, badErr) = CliRunner.Run("grow", "--checkpoint", Path.Combine(dir, "a", RunDirectory.CheckpointName), "--plan", planPath,
            "--out", Path.Combine(dir, "c"));
        Assert.Equal(1, bad);
        Assert.Contains("\"lift\":\"tile\"", badErr);
        Assert.Contains("\"lift\":\"interleave\"", badErr);
        Assert.False(File.Exists(Path.Combine(dir, "c", RunDirectory.CheckpointName)));
    }
}
