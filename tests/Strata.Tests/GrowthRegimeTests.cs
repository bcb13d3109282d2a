using Strata.Modeling;
using Strata.Optim;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>How new blocks start (stages[i].init), the study's seeds and its FLOP accounting.</summary>
[Collection("torch")]
public class GrowthRegimeTests
{
    private static GrowthPlan Plan(BlockInit init, int below = 3, int added = 2) => SotuData.Plan(2) with
    {
        Stages =
        [
            new StageConfig { Name = "first", AddBlocks = below, Steps = 2 },
            new StageConfig { Name = "grown", AddBlocks = added, Steps = 2, Init = init },
        ],
    };

    /// <summary>A model after stage 1, its weights moved off their initialisation by a few random steps' worth.</summary>
    private static LanguageModel AfterStageOne(GrowthPlan plan)
    {
        torch.manual_seed(3);
        var model = new LanguageModel(plan.Model, plan.Substrate, 0);
        new GrowthStage(plan, 0).Enter(model);
        using (torch.no_grad())
        using (Scalar scale = 0.02)
            foreach (var p in model.parameters().Where(p => p.requires_grad)) p.add_(torch.randn_like(p), alpha: scale);
        return model;
    }

    [Fact]
    public void Zero_out_blocks_keep_the_logits_at_the_stage_boundary_and_then_train()
    {
        var plan = Plan(BlockInit.ZeroOut);
        using var model = AfterStageOne(plan);
        using var ids = torch.randint(0, 65536, [2, 16]);
        using var before = model.Forward(ids);
        new GrowthStage(plan, 1).Enter(model);
        Assert.Equal(5, model.Depth);
        using (var after = model.Forward(ids))
            Assert.True(before.eq(after).all().item<bool>(), "a zero_out stage changed the logits");

        // the new blocks do train: one step moves their output projections off zero and the logits with them
        var stage = new GrowthStage(plan, 1);
        stage.SetTrainable(model);
        using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
        using var batch = torch.randint(0, 65536, [2, 17]);
        Trainer.Step(model, opt, 1e-3, 1.0, [batch]);
        Assert.True(model.Blocks[4].Attention.Dense.Weight.abs().max().item<float>() > 0);
        using var moved = model.Forward(ids);
        Assert.False(before.eq(moved).all().item<bool>());

        // random init (the paper's) changes the function at the boundary
        var random = Plan(BlockInit.Random);
        using var other = AfterStageOne(random);
        using var b2 = other.Forward(ids);
        new GrowthStage(random, 1).Enter(other);
        using var a2 = other.Forward(ids);
        Assert.False(b2.eq(a2).all().item<bool>());
    }

    [Fact]
    public void Copy_top_copies_the_top_trained_blocks_bit_for_bit()
    {
        var plan = Plan(BlockInit.CopyTop);
        using var model = AfterStageOne(plan);
        new GrowthStage(plan, 1).Enter(model);
        Assert.Equal(5, model.Depth);
        for (int i = 0; i < 2; i++)
        {
            var (copy, source) = (model.Blocks[3 + i].named_parameters().ToList(), model.Blocks[1 + i].named_parameters().ToDictionary(p => p.name,
                p => p.parameter));
            Assert.Equal(source.Count, copy.Count);
            foreach (var (name, p) in copy)
            {
                Assert.True(p.eq(source[name]).all().item<bool>(), $"block {4 + i} {name} is not block {2 + i}'s");
            }
        }
        var refused = Assert.Throws<StrataException>(() => Plan(BlockInit.CopyTop, below: 1, added: 2).Validate("p.json"));
        Assert.Contains("copy_top copies the top 2 trained blocks, but the model has 1 below this stage", refused.Message);
        Assert.Contains("\"init\": \"copy_top\"", Json.Serialize(plan));
    }

    private static void AssertSameWeights(DecoderBlock copy, DecoderBlock source, string what)
    {
        var weights = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in copy.named_parameters())
            Assert.True(p.eq(weights[name]).all().item<bool>(), $"{what}: {name} differs");
    }

    [Fact]
    public void Copy_last_starts_every_new_block_as_the_last_frozen_block()
    {
        var plan = Plan(BlockInit.CopyLast);
        using var model = AfterStageOne(plan);
        new GrowthStage(plan, 1).Enter(model);
        Assert.Equal(5, model.Depth);
        AssertSameWeights(model.Blocks[3], model.Blocks[2], "block 4");
        AssertSameWeights(model.Blocks[4], model.Blocks[2], "block 5");
        Assert.Contains("\"init\": \"copy_last\"", Json.Serialize(plan));
        var first = plan.Stages[0] with { Init = BlockInit.CopyLast };
        Assert.Contains("copy_last copies the block below", Assert.Throws<StrataException>(() => (plan with { Stages = [first,
            plan.Stages[1]] }).Validate("p.json")).Message);
    }

    /// <summary>stages[i].trainable_top: the top blocks keep training and the new blocks go under them.</summary>
    [Fact]
    public void A_trainable_top_keeps_its_blocks_on_top_trains_them_and_new_blocks_go_below()
    {
        var plan = Plan(BlockInit.ZeroOut) with { };
        plan = plan with { Stages = [plan.Stages[0], plan.Stages[1] with { TrainableTop = 1 }] };
        using var model = AfterStageOne(plan);
        var top = model.Blocks[2];
        var topWeights = top.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone());
        using var ids = torch.randint(0, 65536, [2, 16]);
        using var before = model.Forward(ids);
        var stage = new GrowthStage(plan, 1);
        Assert.Equal(2, stage.InsertAt);
        stage.Enter(model);
        Assert.Equal(5, model.Depth);
        Assert.Same(top, model.Blocks[4]);                                                   // the old top is still the top
        foreach (var (name, p) in model.named_parameters().Where(p => p.name.StartsWith("layers.4.")))
            Assert.True(p.eq(topWeights[name["layers.4.".Length..]]).all().item<bool>(), $"{name} is not the old top's");
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"layers.{i}.input_layernorm.weight"),
            model.named_parameters().Select(p => p.name).Where(n => n.EndsWith(".input_layernorm.weight")));   // names follow the stack
        using (var after = model.Forward(ids))
            Assert.True(before.eq(after).all().item<bool>(), "zero_out blocks inserted under the top changed the logits");
        stage.SetTrainable(model);
        Assert.Equal([false, false, true, true, true], model.Blocks.Select(b => b.parameters().All(p => p.requires_grad)));
        var budget = ParameterBudget.Of(model);
        long block = model.Blocks[0].parameters().Sum(p => p.numel());
        Assert.Equal(3 * block + model.FinalNorm.parameters().Sum(p => p.numel()) + model.Head.parameters().Sum(p => p.numel()), budget.Active);
        Assert.Equal(budget.Active, GrowthStage.Budgets(plan, "p")[1].Active);
        // FLOPs: the two frozen blocks run forward only, the three trained ones three times
        double d = 32, T = 32, forward = 24 * d * d + 4 * T * d;
        Assert.Equal(2 * forward + 3 * 3 * forward + 6 * d * 65536, Study.FlopsPerToken(plan, 1), 6);
        Assert.Contains("trainable_top: must be in 0..3", Assert.Throws<StrataException>(() =>
            (plan with { Stages = [plan.Stages[0], plan.Stages[1] with { TrainableTop = 4 }] }).Validate("p.json")).Message);
    }

    [Fact]
    public void A_run_with_a_trainable_top_resumes_exactly_across_its_boundary()
    {
        var plan = SotuData.Plan(3, checkpointEvery: 100) with
        {
            Stages =
            [
                new StageConfig { Name = "a", AddBlocks = 2, Steps = 3 },
                new StageConfig { Name = "b", AddBlocks = 1, Steps = 3, TrainableTop = 1, Init = BlockInit.CopyLast },
            ],
        };
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = straight, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, StopAfterStep = 4, Log = TextWriter.Null });
        Trainer.Run(null, new TrainOptions { OutDir = split, Resume = true, Log = TextWriter.Null });
        static List<double> Losses(string dir) => MetricsLog.Read(new RunDirectory(dir).Metrics).Where(r => r.Kind == "train").Select(r => r.Value).ToList();
        Assert.Equal(Losses(straight), Losses(split));
        var (model, _) = Checkpoint.LoadModel(new RunDirectory(split).Checkpoint);
        using (model) Assert.Equal(3, model.Depth);
    }

    /// <summary>lora.fit_budget: the largest rank whose stage stays within training.max_active_parameters.</summary>
    [Fact]
    public void A_fitted_lora_rank_is_the_largest_that_keeps_the_stage_within_the_budget()
    {
        var baseline = Plan(BlockInit.Random, below: 2, added: 2);                            // both stages train 2 blocks
        long cap = GrowthStage.Budgets(baseline, "p")[1].Active + 3000;
        var lora = new LoraConfig { Rank = 1, Targets = [LoraTarget.Qkv, LoraTarget.Fc2], FitBudget = true };
        var plan = baseline with
        {
            Training = baseline.Training with { MaxActiveParameters = cap },
            Stages = [baseline.Stages[0], baseline.Stages[1] with { Lora = lora }],
        };
        var fitted = GrowthStage.FitLoraRanks(plan, "p");
        int r = fitted.Stages[1].Lora!.Rank;
        // per rank and frozen block: qkv (32 + 96) + fc2 (128 + 32) = 288; 2 frozen blocks: 576 per rank
        Assert.Equal(3000 / 576, r);
        Assert.True(GrowthStage.Budgets(fitted, "p")[1].Active <= cap);
        var over = fitted with { Stages = [fitted.Stages[0], fitted.Stages[1] with { Lora = lora with { Rank = r + 1 } }] };
        Assert.Throws<StrataException>(() => GrowthStage.Budgets(over, "p"));
        Assert.Equal(Json.Serialize(fitted), Json.Serialize(GrowthStage.FitLoraRanks(fitted, "p")));   // resolving again changes nothing
        Assert.Contains("max_active_parameters", Assert.Throws<StrataException>(() =>
            (plan with { Training = plan.Training with { MaxActiveParameters = null } }).Validate("p.json")).Message);
    }

    [Fact]
    public void Seeds_change_the_run_the_same_seed_repeats_it_and_the_report_gives_intervals()
    {
        var dir = TestPaths.TempDir();
        var constructive = SotuData.SmallVocabPlan(2, evalEvery: 1) with
        {
            Name = "constructive",
            Stages = [new StageConfig { Name = "a", AddBlocks = 1, Steps = 2 }, new StageConfig { Name = "b", AddBlocks = 1, Steps = 2, Init =
                BlockInit.ZeroOut }],
        };
        var monolithic = constructive with { Name = "monolithic", Stages = [new StageConfig { Name = "all", AddBlocks = 2, Steps = 4, Trains =
            StageTrains.All }] };
        string p1 = Path.Combine(dir, "m.json"), p2 = Path.Combine(dir, "c.json");
        File.WriteAllText(p1, Json.Serialize(monolithic));
        File.WriteAllText(p2, Json.Serialize(constructive));
        var first = Study.Run([p1, p2], Path.Combine(dir, "one"), TextWriter.Null, new StudyOptions { Seeds = 3, EqualCompute = ["constructive"] });
        var again = Study.Run([p1, p2], Path.Combine(dir, "two"), TextWriter.Null, new StudyOptions { Seeds = 3, EqualCompute = ["constructive"] });
        Assert.Equal(9, first.Runs.Count);
        foreach (var name in new[] { "monolithic", "constructive" })
        {
            var losses = first.Runs.Where(r => r.Name == name).Select(r => r.FinalValidationLoss).ToList();
            Assert.Equal(3, losses.Distinct().Count());                                                  // every seed its own run
            Assert.Equal(losses, again.Runs.Where(r => r.Name == name).Select(r => r.FinalValidationLoss));   // and repeatable
        }
        Assert.Equal([5L, 6L, 7L], first.Runs.Where(r => r.Name == "constructive").Select(r => r.Seed));
        var c = first.Regimes.Single(r => r.Name == "constructive");
        Assert.Equal(3, c.Final.Count);
        Assert.True(c.Final.HalfWidth > 0);
        Assert.NotNull(c.GapAtEqualTokens);
        Assert.NotNull(c.GapAtEqualCompute);
        Assert.Null(first.Regimes.Single(r => r.Name == "monolithic").GapAtEqualTokens);
        var report = File.ReadAllText(Path.Combine(dir, "one", Study.ReportFile));
        Assert.Contains("mean ± 95% interval, 3 seeds", report);
        Assert.Contains("| constructive |", report);
        Assert.True(Directory.Exists(Path.Combine(dir, "one", "constructive", "seed-7")));                // folders by the seed used

        // the twin at the baseline's compute: more steps than the regime, its FLOPs the baseline's to within a step
        var twin = first.Regimes.Single(r => r.Name == "constructive" + Study.EqualComputeSuffix);
        var mono = first.Regimes.Single(r => r.Name == "monolithic");
        Assert.Equal("constructive", twin.EqualComputeOf);
        Assert.True(twin.Constructive && c.Constructive && !mono.Constructive);
        Assert.True(twin.Tokens > c.Tokens, $"{twin.Tokens} tokens");
        double perStep = Study.FlopsPerToken(constructive, 1) * 4 * 32;
        Assert.InRange(twin.Flops, mono.Flops - perStep, mono.Flops + perStep);
        Assert.Equal(first.Runs.Where(r => r.Name == twin.Name).Select(r => r.FinalValidationLoss), again.Runs.Where(r => r.Name == twin.Name).Select(
            r => r.FinalValidationLoss));
        Assert.Contains("at equal compute", report);
        Assert.True(new FileInfo(Path.Combine(dir, "one", Study.PlotFile)).Length > 10_000);
        Assert.Contains("--equal-compute: 'monolithic' is the baseline", Assert.Throws<StrataException>(() =>
            Study.Run([p1, p2], Path.Combine(dir, "three"), TextWriter.Null, new StudyOptions { EqualCompute = ["monolithic"] })).Message);
    }

    [Fact]
    public void Training_flops_count_trained_blocks_three_times_and_frozen_ones_once()
    {
        var plan = SotuData.Plan(1, d: 64, context: 32) with
        {
            Stages =
            [
                new StageConfig { AddBlocks = 3, Steps = 10 }, new StageConfig { AddBlocks = 3, Steps = 10 },
                new StageConfig { AddBlocks = 3, Steps = 10, Lora = new LoraConfig { Rank = 4, Targets = [LoraTarget.Qkv] } },
            ],
        };
        double d = 64, T = 32, V = 65536, forward = 24 * d * d + 4 * T * d, head = 6 * d * V;
        Assert.Equal(3 * 3 * forward + head, Study.FlopsPerToken(plan, 0), 6);
        Assert.Equal(3 * forward + 3 * 3 * forward + head, Study.FlopsPerToken(plan, 1), 6);
        // LoRA: gradients cross the frozen blocks
        Assert.Equal(6 * 2 * forward + 3 * 3 * forward + head + 6 * 4 * (d + 3 * d) * 6, Study.FlopsPerToken(plan, 2), 6);
        double tokensPerStep = 4 * 32;
        Assert.Equal(10 * tokensPerStep * Study.FlopsPerToken(plan, 0) + 5 * tokensPerStep * Study.FlopsPerToken(plan, 1), Study.FlopsAt(plan, 15), 3);
    }
}
