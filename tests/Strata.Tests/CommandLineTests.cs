using Strata.Runs;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>What a newcomer types: plan fields changed from the command line, a run folder wherever a model goes, a
/// prepared dataset scored by eval, progress and summaries that say where a run stands.</summary>
[Collection("torch")]
public class CommandLineTests
{
    private static string PlanFile()
    {
        var path = Path.Combine(TestPaths.TempDir(), "plan.json");
        File.WriteAllText(path, Json.Serialize(SotuData.Plan(4, checkpointEvery: 2, evalEvery: 2)));
        return path;
    }

    [Fact]
    public void Set_and_the_shortcuts_change_the_plan_and_the_run_folder_records_the_plan_it_follows()
    {
        var plan = PlanFile();
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "run"));
        var (code, output, err) = CliRunner.Run("train", "--plan", plan, "--out", run.Path, "--steps", "3", "--lr", "0.002", "--seed", "9",
            "--set", "training.eval_every=3", "--set", "name=changed");
        Assert.True(code == 0, err);
        Assert.Contains("with stages[0].steps=3, training.learning_rate=0.002, training.seed=9, training.eval_every=3, name=changed", output);
        var followed = Json.ReadFile<GrowthPlan>(run.Plan);
        Assert.Equal((3, 0.002, 9L, 3, "changed"), (followed.Stages[0].Steps, followed.Training.LearningRate, followed.Training.Seed,
            followed.Training.EvalEvery, followed.Name));
        Assert.Equal(3, Checkpoint.ReadInfo(run.Checkpoint).GlobalStep);

        var bad = CliRunner.Run("train", "--plan", plan, "--out", Path.Combine(TestPaths.TempDir(), "x"), "--set", "training.lerning_rate=1");
        Assert.Equal(1, bad.Code);
        Assert.Contains("unknown field 'lerning_rate' (did you mean 'learning_rate'?)", bad.Err);
        Assert.DoesNotContain("Strata.Runs", bad.Err);                                            // no .NET type names
        Assert.Contains("the plan has 1 item(s) there, no [3]",
            CliRunner.Run("info", plan, "--set", "stages[3].steps=2").Err);
        Assert.Contains("--steps applies to a one-stage plan", CliRunner.Run("info", Path.Combine(TestPaths.RepoRoot, "plans", "demo.json"),
            "--steps", "5").Err);
        Assert.Contains("a resumed run follows the plan its checkpoint stores",
            CliRunner.Run("train", "--resume", "--out", run.Path, "--lr", "0.1").Err);
    }

    [Fact]
    public void Info_shows_precision_data_and_the_resolved_plan_and_takes_a_run_folder()
    {
        var plan = PlanFile();
        var (code, output, err) = CliRunner.Run("info", plan, "--plan", "--set", "training.precision=bf16");
        Assert.True(code == 0, err);
        Assert.Contains("training: bf16, batch 4 x 1 of 32 tokens", output);
        Assert.Contains("data: sotu = ", output);
        Assert.Contains("\"tokenizer_hash\"", output);                                           // the plan as it would run, in full
        var run = Path.Combine(TestPaths.TempDir(), "run");
        Assert.Equal(0, CliRunner.Run("train", "--plan", plan, "--out", run).Code);
        var info = CliRunner.Run("info", run);
        Assert.True(info.Code == 0, info.Err);
        Assert.Contains("checkpoint of 'test': step 4", info.Out);
        var generated = CliRunner.Run("generate", "--checkpoint", run, "--prompt", "The", "--max-new-tokens", "3");
        Assert.True(generated.Code == 0, generated.Err);
        Assert.Contains("a folder without checkpoint.safetensors", CliRunner.Run("info", TestPaths.TempDir()).Err);
    }

    [Fact]
    public void Eval_scores_a_prepared_dataset_with_intervals_and_each_suite_keeps_its_own_report()
    {
        var run = Path.Combine(TestPaths.TempDir(), "run");
        Assert.Equal(0, CliRunner.Run("train", "--plan", PlanFile(), "--out", run).Code);
        var (code, output, err) = CliRunner.Run("eval", "--checkpoint", run, "--dataset", SotuData.Dir, "--ppl-tokens", "4000");
        Assert.True(code == 0, err);
        var name = Path.GetFileName(SotuData.Dir);
        var report = Path.Combine(run, "eval", $"checkpoint-{name}", "eval.json");
        Assert.True(File.Exists(report), output);
        var scores = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(report))!["scores"]!.AsArray();
        foreach (var metric in new[] { "nats_per_token", "perplexity", "bits_per_byte" })
        {
            var s = scores.Single(x => (string)x!["metric"]! == metric)!;
            Assert.Equal(name, (string)s["task"]!);
            Assert.True((double)s["ci95"]! > 0, metric);
        }
        Assert.Equal(0, CliRunner.Run("eval", "--checkpoint", run, "--suite", "quiz-capitals", "--limit", "4").Code);
        Assert.True(File.Exists(report));                                                           // not replaced by the second one
        Assert.True(File.Exists(Path.Combine(run, "eval", "checkpoint-quiz-capitals", "eval.json")));
        Assert.Contains("not a dataset", CliRunner.Run("eval", "--checkpoint", run, "--dataset", TestPaths.TempDir()).Err);
    }

    [Fact]
    public void Progress_says_elapsed_and_left_and_a_resumed_run_summarises_from_its_start()
    {
        var plan = PlanFile();
        var run = Path.Combine(TestPaths.TempDir(), "run");
        var first = CliRunner.Run("train", "--plan", plan, "--out", run, "--stop-after", "2", "--set", "training.log_every=1");
        Assert.True(first.Code == 0, first.Err);
        Assert.Matches(@"step 1/4 loss \d+\.\d+ lr \S+ \d+ tok/s, \d+:\d\d elapsed, \d+:\d\d left", first.Out);
        Assert.True(File.Exists(Path.Combine(run, "loss_curve.png")));                              // drawn at the checkpoint
        var resumed = CliRunner.Run("train", "--resume", "--out", run);
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Matches(@"finished at step 4: validation loss \d+\.\d{4} -> \d+\.\d{4}", resumed.Out);
    }
}
