using Strata.Data;
using Strata.Formats;
using Strata.Interop;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using TorchSharp;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class TrainingTests
{
    private static TrainResult Train(GrowthPlan plan, string dir, long? stopAfter = null, bool resume = false) =>
        Trainer.Run(plan, new TrainOptions { OutDir = dir, StopAfterStep = stopAfter, Resume = resume, Log = TextWriter.Null });

    private static List<double> Losses(string runDir) =>
        MetricsLog.Read(Path.Combine(runDir, "metrics.jsonl")).Where(r => r.Kind == "train").Select(r => r.Value).ToList();

    [Fact]
    public void Resume_repeats_an_uninterrupted_run_exactly()
    {
        var plan = SotuData.Plan(steps: 8, checkpointEvery: 100) with { Training = SotuData.Plan(8).Training with { GradAccumulation = 2 } };
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Train(plan, straight);
        var first = Train(plan, split, stopAfter: 4);
        Assert.False(first.Completed);
        Assert.Equal(4, Checkpoint.ReadInfo(first.Run.Checkpoint).GlobalStep);
        var second = Train(plan, split, resume: true);
        Assert.True(second.Completed);

        var a = Losses(straight);
        Assert.Equal(8, a.Count);
        Assert.Equal(a, Losses(split));                                             // bit-identical losses, step by step
        using var fa = new SafetensorsFile(Path.Combine(straight, RunDirectory.CheckpointName));
        using var fb = new SafetensorsFile(Path.Combine(split, RunDirectory.CheckpointName));
        foreach (var name in fa.Entries.Keys) Assert.Equal(fa.ReadBytes(name), fb.ReadBytes(name));
    }

    [Fact]
    public void Live_tensor_count_does_not_grow_with_steps()
    {
        long LiveAfter(int steps)
        {
            var dir = TestPaths.TempDir();
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Train(SotuData.Plan(steps, evalEvery: 2, checkpointEvery: 2), dir);
            GC.Collect();
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
        }
        LiveAfter(2);                                    // warm-up: lazily created statics
        long few = LiveAfter(2), many = LiveAfter(10);
        Assert.Equal(few, many);
    }

    [Fact]
    public void Validation_loss_on_held_out_speeches_drops_below_the_unigram_entropy()
    {
        // The bound: cross-entropy of the held-out years under the training text's character frequencies (add-one
        // smoothed over the characters seen), i.e. the best a model that ignores context can do.
        using var train = TokenShard.Open(SotuData.TrainShard);
        using var val = TokenShard.Open(SotuData.ValidationShard);
        var counts = new Dictionary<int, double>();
        foreach (var t in train.ReadAll()) counts[t] = counts.GetValueOrDefault(t) + 1;
        var valTokens = val.ReadAll();
        foreach (var t in valTokens) counts.TryAdd(t, 0);
        double total = counts.Values.Sum() + counts.Count;
        double unigram = -valTokens.Average(t => Math.Log((counts[t] + 1) / total));

        var plan = SotuData.Plan(steps: 100, d: 64, blocks: 2, context: 64, batch: 8, lr: 8e-3, evalEvery: 25, warmup: 10);
        var r = Train(plan, TestPaths.TempDir());
        Assert.True(r.InitialValidationLoss > 10.5, $"untrained loss {r.InitialValidationLoss} should be near ln(65536) = 11.09");
        var evals = string.Join(", ", MetricsLog.Read(r.Run.Metrics).Where(x => x.Kind == "eval").Select(x => $"{x.Step}:{x.Value:F3}"));
        Assert.True(r.FinalValidationLoss < unigram - 0.15, evals + " " +
            $"validation loss {r.FinalValidationLoss:F3} nats should be below the unigram entropy {unigram:F3} - 0.3");
        Assert.True(File.Exists(r.Run.LossCurve) && new FileInfo(r.Run.LossCurve).Length > 10_000);
        Assert.True(Directory.EnumerateFiles(Path.Combine(r.Run.Path, "tb")).Any());
    }

    [Fact]
    public void Trains_on_the_trainable_substrate_too()
    {
        var plan = SotuData.Plan(steps: 30, kind: SubstrateKind.Trainable, evalEvery: 30, lr: 1e-2);
        var r = Train(plan with { Stages = [plan.Stages[0] with { Trains = StageTrains.All }] }, TestPaths.TempDir());
        Assert.True(r.FinalValidationLoss < 5, $"{r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        Assert.Equal(r.Budget.Total, r.Budget.Active);                              // nothing frozen
    }
}
