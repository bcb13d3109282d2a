using Strata.Runs;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class StudyTests
{
    [Fact]
    public void A_study_trains_each_regime_and_reports_them_side_by_side()
    {
        var dir = TestPaths.TempDir();
        var constructive = SotuData.Plan(3, evalEvery: 2) with
        {
            Name = "constructive",
            Stages = [new StageConfig { Name = "a", AddBlocks = 1, Steps = 3 }, new StageConfig { Name = "b", AddBlocks = 1, Steps = 3 }],
        };
        var monolithic = constructive with { Name = "monolithic", Stages = [new StageConfig { Name = "all", AddBlocks = 2, Steps = 6, Trains =
            StageTrains.All }] };
        string p1 = Path.Combine(dir, "c.json"), p2 = Path.Combine(dir, "m.json");
        File.WriteAllText(p1, Json.Serialize(constructive));
        File.WriteAllText(p2, Json.Serialize(monolithic));
        var (code, output, err) = CliRunner.Run("study", p1, p2, "--out", Path.Combine(dir, "study"));
        Assert.True(code == 0, err);
        var report = File.ReadAllText(Path.Combine(dir, "study", "report.md"));
        Assert.Contains("| constructive |", report);
        Assert.Contains("| monolithic |", report);
        var budgets = GrowthStage.Budgets(constructive, "c");
        Assert.Contains($"{budgets[0].Active:N0} / {budgets[1].Active:N0}", report.Replace("\u00a0", ","));
        Assert.True(new FileInfo(Path.Combine(dir, "study", "loss_curves.png")).Length > 10_000);
        Assert.Contains("already complete", CliRunner.Run("study", p1, p2, "--out", Path.Combine(dir, "study")).Out);   // finished runs are reused
        File.WriteAllText(p1, Json.Serialize(constructive with { Training = constructive.Training with { LearningRate = 1e-3 } }));
        var (changed, _, changedErr) = CliRunner.Run("study", p1, p2, "--out", Path.Combine(dir, "study"));   // ... but not for a changed plan
        Assert.Equal(1, changed);
        Assert.Contains("holds a run of another plan than constructive's", changedErr);
        File.WriteAllText(p1, Json.Serialize(constructive));

        // --jobs 2: every run a 'strata train' process of its own (one thread each), its console in its folder
        var (jobsCode, jobsOut, jobsErr) = CliRunner.Run("study", p1, p2, "--seeds", "2", "--jobs", "2", "--out", Path.Combine(dir, "jobs"));
        Assert.True(jobsCode == 0, jobsErr + jobsOut);
        foreach (var (name, seed) in new[] { ("constructive", 5), ("constructive", 6), ("monolithic", 5), ("monolithic", 6) })
        {
            var run = Path.Combine(dir, "jobs", name, $"seed-{seed}");
            Assert.True(Checkpoint.ReadInfo(Path.Combine(run, "checkpoint.safetensors")).Completed, run);
            Assert.Contains("finished at step 6", File.ReadAllText(Path.Combine(run, "train.log")));
            Assert.True(File.Exists(Path.Combine(dir, "jobs", "plans", $"{name}.seed-{seed}.json")));
        }
        Assert.Contains("mean ± 95% interval, 2 seeds", File.ReadAllText(Path.Combine(dir, "jobs", "report.md")));

        File.WriteAllText(p2, Json.Serialize(monolithic with { Data = SotuData.DataAt(SotuData.Dir, "other") }));
        var (bad, _, badErr) = CliRunner.Run("study", p1, p2, "--out", Path.Combine(dir, "study2"));
        Assert.Equal(1, bad);
        Assert.Contains("identical data", badErr);
    }
}
