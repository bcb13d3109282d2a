using Strata.Data;
using Strata.Formats;
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
        Trainer.Run(plan, new TrainOptions { OutDir = dir, StopAfterStep = stopAfter, Resume = resume, LearningRateScale = lrScale, Rewind = rewind, Log = TextWriter.Null });

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

    [Fact]
    public void A_diverging_run_stops_at_the_first_non_finite_loss_keeps_its_last_checkpoint_and_resumes_with_a_lower_rate()
    {
        var plan = SotuData.Plan(40, checkpointEvery: 2) with
        {
            Training = SotuData.Plan(40).Training with { LearningRate = 10, MinLearningRate = 10, WarmupSteps = 0, WeightDecay = 0, GradClip = 0, Beta2 = 0, CheckpointEvery = 2 },
        };
        var dir = TestPaths.TempDir();
        var e = Assert.Throws<StrataException>(() => Train(plan, dir));
        Assert.Matches(@"^step \d+ \(stage 1 'monolithic'\): the (loss|gradient norm) is (NaN|-?∞|Infinity|-Infinity)", e.Message);
        Assert.Contains("--lr-scale", e.Message);
        var run = new RunDirectory(dir);
        var saved = Checkpoint.ReadInfo(run.Checkpoint);
        Assert.True(saved.GlobalStep >= 2);
        var (model, _) = Checkpoint.LoadModel(run.Checkpoint);                           // loads: every weight is finite
        model.Dispose();
        // this divergence poisoned the last checkpoint already (finite weights, non-finite next loss): the message says
        // so, and the one before it continues
        e = Assert.Throws<StrataException>(() => Train(plan, dir, resume: true, lrScale: 1e-4));
        Assert.Contains("--rewind", e.Message);
        var r = Train(plan, dir, resume: true, lrScale: 1e-4, rewind: true);
        Assert.True(r.Completed);
        Assert.Equal(10 * 1e-4, Checkpoint.ReadInfo(run.Checkpoint).Plan.Training.LearningRate, 12);
        Assert.All(Losses(dir), l => Assert.True(double.IsFinite(l)));
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
            { "model": { "d_model": 1048576, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" }, "stages": [ { "add_blocks": 1, "steps": 1 } ] }
            """);
        Assert.Contains("model.d_model: must be in 1..65536", CliRunner.Run("info", plan).Err);
        File.WriteAllText(plan, """
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "train": "a", "validation": "b" }, "training": { "learning_rate": 1e400 }, "stages": [ { "add_blocks": 1, "steps": 1 } ] }
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
            SafetensorsWriter.Write(Path.Combine(dir, "nan.safetensors"), tensors, file.Metadata);
        }
        var e = Assert.Throws<StrataException>(() => Checkpoint.LoadModel(Path.Combine(dir, "nan.safetensors")));
        Assert.Contains("'embed_out.weight' holds values that are not finite", e.Message);
    }
}
