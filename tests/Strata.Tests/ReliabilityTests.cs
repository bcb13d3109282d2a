using Strata.Data;
using Strata.Formats;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Run folders that survive what an unlucky user does to them: two runs at once, torn logs, leftover temporary
/// files, planted links, a diverging run, hostile sizes (docs/RELIABILITY.md).</summary>
[Collection("torch")]
public class ReliabilityTests
{
    private static TrainResult Train(GrowthPlan plan, string dir, long? stopAfter = null, bool resume = false, double? lrScale = null, bool rewind = false) =>
        Trainer.Run(plan, new TrainOptions { OutDir = dir, StopAfterStep = stopAfter, Resume = resume, LearningRateScale = lrScale, Rewind = rewind,
            Log = TextWriter.Null });

    private static List<double> Losses(string dir) =>
        MetricsLog.Read(new RunDirectory(dir).Metrics).Where(r => r.Kind == "train").Select(r => r.Value).ToList();

    [Fact]
    public void A_second_run_into_a_locked_folder_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over()
    {
        var dir = TestPaths.TempDir();
        var plan = SotuData.Plan(2);
        using (FolderLock.Acquire(dir, "another run"))
        {
            var e = Assert.Throws<StrataException>(() => Train(plan, dir));
            Assert.Contains($"is in use by process {Environment.ProcessId}", e.Message);
            Assert.Contains("another run", e.Message);
            Assert.False(new RunDirectory(dir).HasCheckpoint);
        }
        // a process that died holding it left its name in the file but holds no lock
        File.WriteAllText(Path.Combine(dir, FolderLock.HolderFileName), "process 999999 on elsewhere (strata train, since 2026-01-01 00:00:00 UTC)\n");
        var log = new StringWriter();
        Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = log });
        Assert.Contains("was locked by process 999999", log.ToString());
        Assert.False(File.Exists(Path.Combine(dir, FolderLock.HolderFileName)));          // released: nobody named
    }

    [Fact]
    public void A_torn_metrics_record_and_leftover_temporary_files_do_not_stop_a_resume()
    {
        var plan = SotuData.Plan(6, checkpointEvery: 3);
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Train(plan, straight);
        Train(plan, split, stopAfter: 3);
        var run = new RunDirectory(split);
        File.AppendAllText(run.Metrics, "{\"kind\":\"train\",\"step\":4,\"stage\":0,\"lo");              // a write cut short
        var leftover = run.Checkpoint + AtomicFile.TempMarker + "12345-deadbeef";
        File.WriteAllBytes(leftover, new byte[1000]);
        var log = new StringWriter();
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, Log = log });
        Assert.Contains("dropped 1 record(s) that do not parse", log.ToString());
        Assert.False(File.Exists(leftover));
        Assert.Equal(Losses(straight), Losses(split));
    }

    [Fact]
    public void Links_planted_where_strata_writes_are_replaced_or_refused_never_written_through()
    {
        var victim = Path.Combine(TestPaths.TempDir(), "victim.txt");
        File.WriteAllText(victim, "precious");
        var dir = TestPaths.TempDir();
        var run = new RunDirectory(dir);
        File.CreateSymbolicLink(run.Stage(1), victim);                                   // the rename replaces the link
        File.CreateSymbolicLink(run.Checkpoint + ".tmp", victim);                        // fixed temp names are not used at all
        Train(SotuData.Plan(2), dir);
        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.Null(new FileInfo(run.Stage(1)).LinkTarget);

        var other = new RunDirectory(TestPaths.TempDir());
        File.CreateSymbolicLink(other.Metrics, victim);                                  // an append would follow it: refused
        var e = Assert.Throws<StrataException>(() => Train(SotuData.Plan(2), other.Path));
        Assert.Contains("is a symbolic link", e.Message);
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    /// <summary>A run whose loss turns non-finite at step 7 while the learning rate is above 1e-3 (the loss is injected,
    /// so the test does not depend on how this machine's arithmetic reaches NaN).</summary>
    private static TrainResult TrainFaulty(GrowthPlan plan, string dir, Func<long, double, double, double> fault, bool resume = false,
        double? lrScale = null, bool rewind = false) =>
        Trainer.Run(plan, new TrainOptions { OutDir = dir, Resume = resume, LearningRateScale = lrScale, Rewind = rewind, Log = TextWriter.Null,
            ReportedLoss = fault });

    [Theory]
    [InlineData(double.NaN, "the loss is NaN")]
    [InlineData(double.PositiveInfinity, "the loss is infinite")]
    public void A_non_finite_loss_stops_the_run_unapplied_keeps_its_last_checkpoint_and_resumes_with_a_lower_rate(double bad, string said)
    {
        var plan = SotuData.Plan(12, checkpointEvery: 2) with { Training = SotuData.Plan(12).Training with { CheckpointEvery = 3, WarmupSteps = 0 } };
        var dir = TestPaths.TempDir();
        double Fault(long step, double lr, double loss) => step >= 7 && lr > 1e-3 ? bad : loss;
        var e = Assert.Throws<StrataException>(() => TrainFaulty(plan, dir, Fault));
        Assert.StartsWith($"step 7 (stage 1 'monolithic'): {said}; the step was not applied and nothing was saved from it", e.Message);
        Assert.Contains("the last checkpoint", e.Message);
        Assert.Contains("--lr-scale", e.Message);
        var run = new RunDirectory(dir);
        Assert.Equal(6, Checkpoint.ReadInfo(run.Checkpoint).GlobalStep);
        Assert.Equal(6, Losses(dir).Count);                                              // step 7 logged nothing

        // the same rate again: the checkpoint at step 6 already leads to it, so the message points at --rewind
        e = Assert.Throws<StrataException>(() => TrainFaulty(plan, dir, Fault, resume: true, lrScale: 0.9));
        Assert.Contains("already gives it", e.Message);
        Assert.Contains("--rewind", e.Message);
        var r = TrainFaulty(plan, dir, Fault, resume: true, lrScale: 0.1, rewind: true);  // from step 3, at a tenth of the rate
        Assert.True(r.Completed);
        Assert.Equal(plan.Training.LearningRate * 0.1, Checkpoint.ReadInfo(run.Checkpoint).Plan.Training.LearningRate, 12);
        Assert.All(Losses(dir), l => Assert.True(double.IsFinite(l)));
        Assert.Equal(12, Losses(dir).Count);
    }

    [Fact]
    public void A_loss_that_climbs_past_the_divergence_factor_stops_the_run_before_the_step_is_applied()
    {
        var plan = SotuData.Plan(12) with { Training = SotuData.Plan(12).Training with { CheckpointEvery = 4, WarmupSteps = 0 } };
        var dir = TestPaths.TempDir();
        // from step 6 the loss reported triples: finite, but the moving average passes 2x its best within two steps
        var e = Assert.Throws<StrataException>(() => TrainFaulty(plan, dir, (step, lr, loss) => step >= 6 && lr > 1e-3 ? 100 * loss : loss));
        Assert.Matches(@"^step (6|7) \(stage 1 'monolithic'\): the training loss has diverged: its moving average [0-9.]+ is over 2 x the best it reached",
            e.Message);
        Assert.Contains("the step was not applied", e.Message);
        Assert.Equal(4, Checkpoint.ReadInfo(new RunDirectory(dir).Checkpoint).GlobalStep);
        Assert.DoesNotContain(Losses(dir), l => l > 50);                                   // the diverging step logged nothing
        var r = TrainFaulty(plan, dir, (step, lr, loss) => step >= 6 && lr > 1e-3 ? 100 * loss : loss, resume: true, lrScale: 0.2);
        Assert.True(r.Completed);
        // off (factor 0), the same losses train on
        var off = plan with { Training = plan.Training with { DivergenceFactor = 0 } };
        Assert.True(TrainFaulty(off, TestPaths.TempDir(), (step, lr, loss) => step >= 6 ? 100 * loss : loss).Completed);
    }

    [Fact]
    public void The_divergence_rule_follows_a_moving_average_of_the_loss_against_the_stages_best()
    {
        var guard = new DivergenceGuard(2.0);
        foreach (var l in new[] { 8.0, 6, 5, 4, 3.5, 3, 9, 3, 3 }) Assert.Null(guard.Check(l));   // one hard batch (9) passes
        Assert.InRange(guard.Best, 3.0, 8.0);
        double best = guard.Best;
        string? stop = null;
        int steps = 0;
        while (stop is null && steps < 100) { stop = guard.Check(60); steps++; }
        Assert.NotNull(stop);
        Assert.InRange(steps, 1, 10);
        Assert.Contains("over 2 x the best", stop);
        guard.StartStage();                                                                  // a new stage: a higher start is no divergence
        Assert.Null(guard.Check(30));
        Assert.Null(new DivergenceGuard(0).Check(1e9));
        Assert.Null(guard.Check(double.NaN));                                                // reported by the non-finite check
        Assert.True(best > 0);
    }

    [Fact]
    public void Hostile_sizes_are_refused_before_anything_is_allocated()
    {
        var dir = TestPaths.TempDir();
        var plan = Path.Combine(dir, "deep.json");
        File.WriteAllText(plan, """
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" },
              "stages": [ { "add_blocks": 100000, "steps": 1 } ] }
            """);
        Assert.Contains("at most 1024", CliRunner.Run("info", plan).Err);
        File.WriteAllText(plan, """
            { "model": { "d_model": 1048576, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" },
              "stages": [ { "add_blocks": 1, "steps": 1 } ] }
            """);
        Assert.Contains("model.d_model: must be in 1..65536", CliRunner.Run("info", plan).Err);
        File.WriteAllText(plan, """
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" },
              "training": { "learning_rate": 1e400 }, "stages": [ { "add_blocks": 1, "steps": 1 } ] }
            """);
        Assert.Contains("training.learning_rate: must be in (0, 10], got Infinity", CliRunner.Run("info", plan).Err);

        // a checkpoint whose plan claims a model far larger than its tensors: refused from the header alone
        var run = new RunDirectory(TestPaths.TempDir());
        Train(SotuData.Plan(1), run.Path);
        using (var file = new SafetensorsFile(run.Checkpoint))
        {
            var info = Checkpoint.ReadInfo(run.Checkpoint);
            var huge = info with { Plan = info.Plan with { Model = info.Plan.Model with { DModel = 8192, NHead = 64, ContextLength = 1 << 20 } } };
            var tensors = file.Entries.Keys.Select(k => (k, file.Read(k))).ToList();
            SafetensorsWriter.Write(Path.Combine(run.Path, "huge.safetensors"), tensors, new Dictionary<string, string>
            {
                ["format"] = "strata-checkpoint", ["strata"] = System.Text.Json.JsonSerializer.Serialize(huge, Json.Options),
            });
        }
        PeakMemory.Reset();
        double before = PeakMemory.Mib();
        var err = Assert.Throws<StrataException>(() => Checkpoint.LoadModel(Path.Combine(run.Path, "huge.safetensors")));
        Assert.Contains("its plan gives", err.Message);
        Assert.True(PeakMemory.Mib() - before < 256, $"peak grew by {PeakMemory.Mib() - before:F0} MiB");
    }

    [Fact]
    public void Output_paths_stay_inside_the_folder_given_and_a_file_is_not_a_folder()
    {
        var dir = TestPaths.TempDir();
        var plan = SotuData.Plan(1) with { Name = "../escape" };
        var path = Path.Combine(dir, "p.json");
        File.WriteAllText(path, Json.Serialize(plan));
        var (code, _, err) = CliRunner.Run("study", path, "--out", Path.Combine(dir, "study"));
        Assert.Equal(1, code);
        Assert.Contains("cannot name a run folder inside --out", err);
        Assert.False(Directory.Exists(Path.Combine(dir, "escape")));

        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "");
        (code, _, err) = CliRunner.Run("train", "--plan", path.Replace("p.json", "p.json"), "--out", file);
        Assert.Equal(1, code);
        Assert.Contains("is a file, not a folder", err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    [Fact]
    public void A_corpus_walk_skips_fifos_and_ends_at_link_loops()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "a.txt"), "The state of the Union is strong.");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllText(Path.Combine(dir, "sub", "b.txt"), "And growing.");
        Directory.CreateSymbolicLink(Path.Combine(dir, "sub", "loop"), dir);             // sub/loop -> .. (a cycle)
        using (var mk = System.Diagnostics.Process.Start("mkfifo", Path.Combine(dir, "pipe.txt"))) mk.WaitForExit();
        var found = Corpus.Find([dir]);
        Assert.Equal(["a.txt", Path.Combine("sub", "b.txt")], found.Select(f => f.Name));
        var e = Assert.Throws<StrataException>(() => Corpus.Find([Path.Combine(dir, "pipe.txt")]));
        Assert.Contains("not a regular file", e.Message);
    }

    [Fact]
    public void Tables_and_weights_that_are_not_finite_are_refused_on_load()
    {
        var dir = TestPaths.TempDir();
        var txt = Path.Combine(dir, "embeddings.txt");
        File.WriteAllText(txt, "0\n[0, 1]\n1\n[nan, 0]\n");
        Assert.Contains("not finite", Assert.Throws<StrataException>(() => Strata.Substrates.SubstrateFile.Read(txt)).Message);

        var run = new RunDirectory(dir);
        Train(SotuData.Plan(1), run.Path);
        using (var file = new SafetensorsFile(run.Checkpoint))
        {
            var tensors = file.Entries.Keys.Select(k => (k, file.Read(k))).ToList();
            var head = tensors.First(t => t.k == "model.embed_out.weight").Item2;
            head[3, 4] = TorchSharp.torch.tensor(float.NaN);
            // as Strata would write it (its checksums taken over the NaN): the finite check, not the checksum, refuses it
            SafetensorsWriter.Write(Path.Combine(dir, "nan.safetensors"), tensors,
                file.Metadata.Where(kv => kv.Key != SafetensorsFile.ChecksumKey).ToDictionary(), checksums: true);
        }
        var e = Assert.Throws<StrataException>(() => Checkpoint.LoadModel(Path.Combine(dir, "nan.safetensors")));
        Assert.Contains("'embed_out.weight' holds values that are not finite", e.Message);
    }
}
