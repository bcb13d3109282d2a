using Strata.Composition;
using Strata.Formats;
using Strata.Generation;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class EnsembleTests
{
    private static readonly Scalar Two = 2;   // held through the calls (STRATA002)

    private static readonly Lazy<(string A, string B, string Trainable, string Tiled)> Runs = new(() =>
    {
        var dir = TestPaths.TempDir();
        string Run(string name, GrowthPlan plan)
        {
            Trainer.Run(plan, new TrainOptions { OutDir = Path.Combine(dir, name), Log = TextWriter.Null });
            return Path.Combine(dir, name, RunDirectory.CheckpointName);
        }
        var plan = SotuData.Plan(3);
        return (Run("a", plan), Run("b", plan with { Training = plan.Training with { Seed = 99 } }),
            Run("t", plan with { Substrate = new SubstrateSpec { Kind = SubstrateKind.Trainable } }),
            Run("tile", plan with { Substrate = plan.Substrate with { Lift = SubstrateLift.Tile } }));
    });

    [Fact]
    public void An_ensemble_of_one_is_the_model_and_of_two_the_mean_of_their_logits()
    {
        var (a, b, _, _) = Runs.Value;
        using var ids = torch.randint(0, 65536, [2, 16]);
        using var _ = torch.no_grad();
        using var one = LogitAveragingEnsemble.Load([a]);
        using var two = LogitAveragingEnsemble.Load([a, b]);
        using var la = two.Experts[0].Forward(ids);
        using var lb = two.Experts[1].Forward(ids);
        Assert.Equal(la.data<float>().ToArray(), one.Logits(ids).data<float>().ToArray());
        using var mean = two.Logits(ids);
        Assert.True((mean - la.add(lb, Scalars.One).div(Two)).abs().max().item<float>() < 1e-6);
        Assert.True((mean - la).abs().max().item<float>() > 1e-3);
        Assert.True((mean - lb).abs().max().item<float>() > 1e-3);
    }

    [Fact]
    public void Ensemble_generation_with_per_expert_caches_equals_recomputation()
    {
        var (a, b, _, _) = Runs.Value;
        using var two = LogitAveragingEnsemble.Load([a, b]);
        var cached = TextGenerator.Generate(two, [72, 101, 108], 40, SamplingOptions.Greedy).ToArray();
        var plain = TextGenerator.Generate(two, [72, 101, 108], 29, SamplingOptions.Greedy with { UseCache = false }).ToArray();
        Assert.Equal(plain, cached[..29]);                               // context 32: identical while the window fits
    }

    [Fact]
    public void Models_on_different_interfaces_are_refused_naming_both()
    {
        var (a, _, trainable, tiled) = Runs.Value;
        var e = Assert.Throws<Strata.Util.StrataException>(() => LogitAveragingEnsemble.Load([a, tiled]));
        Assert.Contains("\"lift\":\"tile\"", e.Message);
        Assert.Contains("\"lift\":\"interleave\"", e.Message);
        Assert.Contains(tiled, e.Message);
        Assert.Contains(a, e.Message);
        Assert.Throws<Strata.Util.StrataException>(() => LogitAveragingEnsemble.Load([a, trainable]));
    }

    [Fact]
    public void The_adapter_starts_at_the_mean_learns_with_experts_frozen_and_is_saved_with_the_ensemble()
    {
        var (a, b, _, _) = Runs.Value;
        using var ids = torch.randint(0, 65536, [2, 16]);
        using var two = LogitAveragingEnsemble.Load([a, b]);
        Tensor mean;
        using (torch.no_grad()) mean = two.Logits(ids);
        two.Adapter = new LogitAdapter(2, 65536);
        using (torch.no_grad())
        using (var start = two.Logits(ids))
            Assert.True((start - mean).abs().max().item<float>() < 1e-5, $"{(start - mean).abs().max().item<float>()} {start.dtype}");
        var expertBytes = two.Experts[0].state_dict().Values.Select(t => t.data<float>().ToArray()).ToList();
        using var shard = Strata.Formats.TokenShard.Open(SotuData.TrainShard);
        var losses = two.TrainAdapter(new Strata.Data.BatchSampler(shard, 4, 32, 3), 30, 0.05);
        Assert.True(losses.TakeLast(5).Average() < losses.Take(5).Average(), string.Join(", ", losses.Select(l => l.ToString("F3"))));
        Assert.Equal(expertBytes, two.Experts[0].state_dict().Values.Select(t => t.data<float>().ToArray()).ToList());   // experts frozen

        var path = Path.Combine(TestPaths.TempDir(), "ens.json");
        two.Save(path, [a, b]);
        using var back = LogitAveragingEnsemble.LoadFile(path);
        Assert.NotNull(back.Adapter);
        using var _ = torch.no_grad();
        Assert.Equal(two.Logits(ids).data<float>().ToArray(), back.Logits(ids).data<float>().ToArray());
        mean.Dispose();
    }

    [Fact]
    public void Compose_writes_an_ensemble_that_generate_and_eval_use()
    {
        var (a, b, _, _) = Runs.Value;
        var path = Path.Combine(TestPaths.TempDir(), "ens.json");
        var (code, output, err) = CliRunner.Run("compose", a, b, "--out", path, "--eval", SotuData.Dir, "--eval-batches", "2");
        Assert.True(code == 0, err);
        Assert.Contains("ensemble (mean of logits):", output);
        var (g, text, gerr) = CliRunner.Run("generate", "--checkpoint", path, "--prompt", "The ", "--max-new-tokens", "5", "--temperature", "0");
        Assert.True(g == 0, gerr);
        Assert.StartsWith("The ", text);
    }

    [Fact]
    public void Models_whose_substrate_files_differ_in_content_are_refused_by_hash()
    {
        // the same recipe (a table file at one path) whose content changed between the two trainings
        var dir = TestPaths.TempDir();
        var table = Path.Combine(dir, "table.safetensors");
        string Train(string name, SubstrateSpec code)
        {
            using (var f = SubstrateBuilder.Build(code, 65536)) f.Save(table);
            var plan = SotuData.Plan(2) with { Substrate = new SubstrateSpec { Kind = SubstrateKind.File, Path = table } };
            Trainer.Run(plan, new TrainOptions { OutDir = Path.Combine(dir, name), Log = TextWriter.Null });
            return Path.Combine(dir, name, RunDirectory.CheckpointName);
        }
        var plain = Train("plain", new SubstrateSpec());
        var affine = Train("affine", new SubstrateSpec { Affine = true, Seed = 9 });
        var e = Assert.Throws<Strata.Util.StrataException>(() => LogitAveragingEnsemble.Load([plain, affine]));
        Assert.Equal($"{affine} has the substrate table sha256:{Checkpoint.ReadInfo(affine).SubstrateHash}, {plain} has " +
            $"sha256:{Checkpoint.ReadInfo(plain).SubstrateHash}: they must share the frozen interface", e.Message);
        Assert.NotNull(Checkpoint.ReadInfo(plain).TokenizerHash);
    }

    [Fact]
    public void Models_on_different_vocabularies_are_refused_naming_both_tokenizers_and_hashes()
    {
        var (a, _, _, _) = Runs.Value;
        var dir = TestPaths.TempDir();
        Strata.Data.DataPreparer.Prepare(new Strata.Data.PrepareOptions { Inputs = Corpora.EnglishFiles.Take(6).ToList(), OutDir = dir,
            ValidationFraction = 0.2 });
        var plan = SotuData.Plan(2) with { Data = SotuData.DataAt(dir) };
        Trainer.Run(plan, new TrainOptions { OutDir = Path.Combine(dir, "bvv"), Log = TextWriter.Null });
        var bvv = Path.Combine(dir, "bvv", RunDirectory.CheckpointName);
        var e = Assert.Throws<Strata.Util.StrataException>(() => LogitAveragingEnsemble.Load([a, bvv]));
        Assert.Equal($"{bvv} uses the tokenizer 'bvv241-2-3' (sha256:{Checkpoint.ReadInfo(bvv).TokenizerHash}), {a} uses 'codepoint' " +
            $"(sha256:{Checkpoint.ReadInfo(a).TokenizerHash}): they must share the vocabulary", e.Message);
    }
}
