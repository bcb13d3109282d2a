using Strata.Modeling;
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
            foreach (var p in model.parameters().Where(p => p.requires_grad)) p.add_(torch.randn_like(p) * 0.02);
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
            var (copy, source) = (model.Blocks[3 + i].named_parameters().ToList(), model.Blocks[1 + i].named_parameters().ToDictionary(p => p.name, p => p.parameter));
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

    [Fact]
    public void Seeds_change_the_run_the_same_seed_repeats_it_and_the_report_gives_intervals()
    {
        var dir = TestPaths.TempDir();
        var constructive = SotuData.Plan(2, evalEvery: 1) with
        {
            Name = "constructive",
            Stages = [new StageConfig { Name = "a", AddBlocks = 1, Steps = 2 }, new StageConfig { Name = "b", AddBlocks = 1, Steps = 2, Init = BlockInit.ZeroOut }],
        };
        var monolithic = constructive with { Name = "monolithic", Stages = [new StageConfig { Name = "all", AddBlocks = 2, Steps = 4, Trains = StageTrains.All }] };
        string p1 = Path.Combine(dir, "m.json"), p2 = Path.Combine(dir, "c.json");
        File.WriteAllText(p1, Json.Serialize(monolithic));
        File.WriteAllText(p2, Json.Serialize(constructive));
        var first = Study.Run([p1, p2], Path.Combine(dir, "one"), CPU, TextWriter.Null, seeds: 3);
        var again = Study.Run([p1, p2], Path.Combine(dir, "two"), CPU, TextWriter.Null, seeds: 3);
        Assert.Equal(6, first.Runs.Count);
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
        Assert.True(Directory.Exists(Path.Combine(dir, "one", "constructive", "seed-2")));
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
        Assert.Equal(6 * 2 * forward + 3 * 3 * forward + head + 6 * 4 * (d + 3 * d) * 6, Study.FlopsPerToken(plan, 2), 6);  // LoRA: gradients cross the frozen blocks
        double tokensPerStep = 4 * 32;
        Assert.Equal(10 * tokensPerStep * Study.FlopsPerToken(plan, 0) + 5 * tokensPerStep * Study.FlopsPerToken(plan, 1), Study.FlopsAt(plan, 15), 3);
    }
}
