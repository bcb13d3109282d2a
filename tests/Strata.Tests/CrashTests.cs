using System.Diagnostics;
using Strata.Formats;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>kill -9 at exact points of a two-stage run with a LoRA phase (KillPoint: STRATA_KILL_AT), then resume until
/// done: every artefact equals an uninterrupted run's (tensors bit for bit, the metrics' losses, the stage files, the
/// plot), and nothing temporary is left.</summary>
[Collection("torch")]
public class CrashTests
{
    private static readonly string Cli = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll");

    private static (int Code, string Output) Strata(string killAt, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Cli);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (killAt.Length > 0) psi.Environment["STRATA_KILL_AT"] = killAt;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); throw new TimeoutException(string.Join(' ', args)); }
        return (p.ExitCode, output.Result + error.Result);
    }

    private static string PlanFile()
    {
        var plan = SotuData.Plan(4, checkpointEvery: 2, evalEvery: 3) with
        {
            Stages =
            [
                new StageConfig { Name = "a", AddBlocks = 2, Steps = 4 },
                new StageConfig { Name = "b + lora", AddBlocks = 1, Steps = 4, Lora = new LoraConfig { Rank = 2, Alpha = 4, Targets =
                    [Modeling.LoraTarget.Qkv, Modeling.LoraTarget.Fc2] } },
            ],
        };
        var path = Path.Combine(TestPaths.TempDir(), "plan.json");
        File.WriteAllText(path, Json.Serialize(plan));
        return path;
    }

    private static readonly Lazy<(string Plan, RunDirectory Reference)> Reference = new(() =>
    {
        var plan = PlanFile();
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "reference"));
        var (code, output) = Strata("", "train", "--plan", plan, "--out", run.Path);
        Assert.True(code == 0, output);
        return (plan, run);
    });

    public static TheoryData<string> KillPoints => new()
    {
        "step.after-optimizer#1", "step.after-optimizer#3", "step.after-optimizer#6",
        "metrics.mid-record#2", "metrics.mid-record#9",
        "atomic.before-rename#1", "atomic.before-rename#3", "atomic.before-rename#6",
        "checkpoint.between-renames#1", "checkpoint.between-renames#3",
        "stage-file.before-checkpoint#1", "stage-file.before-checkpoint#2",
        "checkpoint.after#2", "checkpoint.after#4",
    };

    [Theory]
    [MemberData(nameof(KillPoints))]
    public void A_run_killed_at_any_point_resumes_to_the_same_artefacts(string killAt)
    {
        var (plan, reference) = Reference.Value;
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "run"));
        var (code, output) = Strata(killAt, "train", "--plan", plan, "--out", run.Path);
        Assert.True(code is 137 or -9 or 0, $"exit {code}: {output}");
        // resume at least once (a run killed after its last checkpoint still holds its folder) until it is complete
        for (int attempt = 0; attempt == 0 || attempt < 3 && !(File.Exists(run.Checkpoint) && Checkpoint.ReadInfo(run.Checkpoint).Completed); attempt++)
        {
            (code, output) = run.HasCheckpoint || File.Exists(Path.Combine(run.Path, "checkpoint.next.safetensors"))
                ? Strata("", "train", "--resume", "--out", run.Path)
                : Strata("", "train", "--plan", plan, "--out", run.Path);
            Assert.True(code == 0, $"after {killAt}: exit {code}: {output}");
        }
        AssertSameArtefacts(reference, run);
    }

    [Fact]
    public void A_resume_while_another_process_holds_the_folder_is_refused()
    {
        var (plan, _) = Reference.Value;
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "run"));
        Assert.Equal(0, Strata("", "train", "--plan", plan, "--out", run.Path, "--stop-after", "2").Code);
        using (FolderLock.Acquire(run.Path, "a test"))
        {
            var (code, output) = Strata("", "train", "--resume", "--out", run.Path);
            Assert.Equal(1, code);
            Assert.Contains($"is in use by process {Environment.ProcessId}", output);
        }
    }

    private static void AssertSameArtefacts(RunDirectory expected, RunDirectory actual)
    {
        void SameTensors(string a, string b)
        {
            using var fa = new SafetensorsFile(a);
            using var fb = new SafetensorsFile(b);
            Assert.Equal(fa.Entries.Keys.Order(), fb.Entries.Keys.Order());
            foreach (var k in fa.Entries.Keys) Assert.True(fa.ReadBytes(k).AsSpan().SequenceEqual(fb.ReadBytes(k)), $"{b}: tensor {k} differs");
            var (ia, ib) = (Checkpoint.ReadInfo(a), Checkpoint.ReadInfo(b));
            Assert.Equal(ia with { ElapsedSeconds = 0 }, ib with { ElapsedSeconds = 0, Plan = ia.Plan });
            Assert.Equal(Json.Serialize(ia.Plan), Json.Serialize(ib.Plan));
        }
        SameTensors(expected.Checkpoint, actual.Checkpoint);
        foreach (var n in new[] { 1, 2 }) SameTensors(expected.Stage(n), actual.Stage(n));
        static List<(string, long, double)> Values(RunDirectory r) => MetricsLog.Read(r.Metrics).Select(x => (x.Kind, x.Step, x.Value)).ToList();
        Assert.Equal(Values(expected), Values(actual));
        Assert.Equal(2, MetricsLog.ReadStages(actual.Metrics).Count());
        Assert.True(new FileInfo(actual.LossCurve).Length > 10_000);
        Assert.Empty(Directory.GetFiles(actual.Path, "*" + AtomicFile.TempMarker + "*"));
        Assert.False(File.Exists(Path.Combine(actual.Path, FolderLock.HolderFileName)));
    }
}
