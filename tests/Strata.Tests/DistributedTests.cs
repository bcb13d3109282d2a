using System.Diagnostics;
using Strata.Formats;
using Strata.Runs;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Data-parallel training through Open MPI (mpirun, installed by bootstrap): 2 ranks of 1 thread, as CI's 2
/// cores allow. Each run is a CLI process; the single-rank reference runs with 1 thread too.</summary>
[Collection("torch")]
public class DistributedTests
{
    private static readonly string Cli = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll");

    /// <summary>The largest difference the tests accept between 2 ranks x B/2 and 1 rank x B (the reduction order of
    /// the loss and gradient sums differs; everything else is the same arithmetic).</summary>
    private const double Tolerance = 1e-5;

    private static (int Code, string Output, TimeSpan Took) Run(IEnumerable<string> command, TimeSpan limit, Action<Process>? during = null)
    {
        var psi = new ProcessStartInfo(command.First()) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["STRATA_COMM_TIMEOUT"] = "30";
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        during?.Invoke(p);
        if (!p.WaitForExit(limit)) { p.Kill(true); throw new TimeoutException(string.Join(' ', command)); }
        p.WaitForExit();
        return (p.ExitCode, output.Result + error.Result, clock.Elapsed);
    }

    private static (int Code, string Output) Train(int ranks, params string[] args)
    {
        var command = new List<string> { "dotnet", Cli, "train" };
        command.AddRange(args);
        if (ranks > 1) command.AddRange(["--ranks", ranks.ToString()]);
        var (code, output, _) = Run(command, TimeSpan.FromMinutes(4));
        return (code, output);
    }

    private static string PlanFile(string name = "dp", int steps = 4)
    {
        var plan = SotuData.Plan(4, batch: 4, checkpointEvery: 2, evalEvery: 3) with
        {
            Name = name,
            Stages =
            [
                new StageConfig { Name = "a", AddBlocks = 2, Steps = steps },
                new StageConfig { Name = "b + lora", AddBlocks = 1, Steps = steps, Lora = new LoraConfig { Rank = 2, Alpha = 4, Targets =
                    [Modeling.LoraTarget.Qkv, Modeling.LoraTarget.Fc2] } },
            ],
        };
        var path = Path.Combine(TestPaths.TempDir(), $"{name}.json");
        File.WriteAllText(path, Json.Serialize(plan));
        return path;
    }

    private static readonly Lazy<(string Plan, RunDirectory Run)> Reference = new(() =>
    {
        var plan = PlanFile();
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "one-rank"));
        var (code, output) = Train(1, "--plan", plan, "--out", run.Path);
        Assert.True(code == 0, output);
        return (plan, run);
    });

    private static double[] Losses(RunDirectory run) =>
        File.ReadLines(run.Metrics).Where(l => l.Contains("\"kind\":\"train\"")).Select(l => System.Text.Json.JsonDocument.Parse(
            l).RootElement.GetProperty("loss").GetDouble()).ToArray();

    /// <summary>The largest difference of the losses and of every tensor of the final checkpoints.</summary>
    private static double Difference(RunDirectory a, RunDirectory b)
    {
        var (la, lb) = (Losses(a), Losses(b));
        Assert.Equal(la.Length, lb.Length);
        double worst = la.Zip(lb).Max(x => Math.Abs(x.First - x.Second));
        using var fa = new SafetensorsFile(a.Checkpoint);
        using var fb = new SafetensorsFile(b.Checkpoint);
        Assert.Equal(fa.Entries.Keys.Order(), fb.Entries.Keys.Order());
        foreach (var name in fa.Entries.Keys)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            worst = Math.Max(worst, (fa.Read(name).to(TorchSharp.torch.float64) - fb.Read(name).to(TorchSharp.torch.float64)).abs().max().item<double>());
        }
        return worst;
    }

    [Fact]
    public void Two_ranks_of_half_the_rows_take_the_same_steps_as_one_rank_of_the_whole_batch()
    {
        var (plan, reference) = Reference.Value;
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "two-ranks"));
        var (code, output) = Train(2, "--plan", plan, "--out", run.Path);
        Assert.True(code == 0, output);
        Assert.Contains("data parallel: 2 ranks of 2 rows each, 1 threads per rank", output);
        Assert.Single(output.Split('\n'), l => l.StartsWith("finished at step 8"));          // rank 0 alone reports
        Assert.True(File.Exists(run.Stage(1)) && File.Exists(run.Stage(2)));
        double diff = Difference(reference, run);
        Assert.True(diff < Tolerance, $"2 ranks differ from 1 rank by {diff}");
        Assert.True(diff > 0 || Losses(reference).Length == 8);                               // (a real comparison: 8 steps)
    }

    [Fact]
    public void A_two_rank_run_resumes_with_one_rank_and_a_one_rank_run_with_two()
    {
        var (plan, reference) = Reference.Value;
        foreach (var (first, then) in new[] { (2, 1), (1, 2) })
        {
            var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), $"resume-{first}-{then}"));
            var (code, output) = Train(first, "--plan", plan, "--out", run.Path, "--stop-after", "5");     // inside the LoRA stage
            Assert.True(code == 0, output);
            (code, output) = Train(then, "--resume", "--out", run.Path);
            Assert.True(code == 0, output);
            Assert.Contains("finished at step 8", output);
            double diff = Difference(reference, run);
            Assert.True(diff < Tolerance, $"{first} then {then} ranks differ from 1 rank by {diff}");
        }
    }

    [Fact]
    public void A_killed_rank_ends_the_job_with_a_clear_message_and_the_run_resumes()
    {
        var plan = PlanFile("long", steps: 400);
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "killed"));
        TimeSpan sinceKill = default;
        var (code, output, took) = Run(["dotnet", Cli, "train", "--plan", plan, "--out", run.Path, "--ranks", "2"], TimeSpan.FromMinutes(3), launcher =>
        {
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(run.Checkpoint) && File.Exists(run.Metrics) && Losses(run).Length >= 3))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "the job never reached step 3");
                Thread.Sleep(100);
            }
            var ranks = RanksOf(launcher.Id);
            Assert.Equal(2, ranks.Count);
            Process.GetProcessById(ranks[^1]).Kill();                                            // SIGKILL
            sinceKill = clock.Elapsed;
        });
        Assert.NotEqual(0, code);
        Assert.True(took - sinceKill < TimeSpan.FromSeconds(60), $"the job took {took - sinceKill} to end after the kill");
        Assert.Matches("exited on signal 9|lost rank [01] \\(on |stopped while waiting \\d+ s for rank [01] \\(on ", output);
        var (resumed, again) = Train(1, "--resume", "--out", run.Path, "--stop-after", "6");
        Assert.True(resumed == 0, again);
        Assert.Contains("stopped after step 6", again);
    }

    [Fact]
    public void A_rank_started_with_another_plan_is_refused_by_name()
    {
        var (plan, _) = Reference.Value;
        var other = PlanFile("other");
        var run = Path.Combine(TestPaths.TempDir(), "mixed");
        var mpirun = Distributed.ProcessGroup.LocalMpirunOptions().Prepend("mpirun").ToList();
        var (code, output, took) = Run([.. mpirun, "-np", "1", "dotnet", Cli, "train", "--plan", plan, "--out", run, ":",
            "-np", "1", "dotnet", Cli, "train", "--plan", other, "--out", run], TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, code);
        Assert.Contains("this rank (1) was started with plan 'other'", output);
        Assert.Contains("rank 1 was started with another plan, rank 0 with plan 'dp'", output);
        Assert.False(File.Exists(Path.Combine(run, RunDirectory.CheckpointName)));
    }

    /// <summary>The rank processes mpirun (a child of the launching CLI) started.</summary>
    private static List<int> RanksOf(int launcher)
    {
        static IEnumerable<int> Children(int pid) =>
            Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsDigit)).Select(int.Parse!)
                .Where(p => { try { return File.ReadAllText($"/proc/{p}/stat").Split(") ")[1].Split(' ')[1] == pid.ToString(); } catch (
                    IOException) { return false; } });
        var mpirun = Children(launcher).Single();
        return Children(mpirun).Order().ToList();
    }
}
