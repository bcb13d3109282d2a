using Strata.Training;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class CliTests
{
    [Fact]
    public void Readme_cli_reference_lists_every_command()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var section = readme[readme.IndexOf("## CLI reference", StringComparison.Ordinal)..];
        foreach (var c in Strata.Cli.Program.Commands) Assert.Contains($"`strata {c.Name}", section);
        var documented = System.Text.RegularExpressions.Regex.Matches(section, @"^\| `strata ([a-z]+(?: [a-z]+)?)", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(Strata.Cli.Program.Commands.Select(c => c.Name).ToHashSet(), documented);
    }

    [Fact]
    public void Info_reports_the_plans_parameter_budget()
    {
        var (code, output, _) = CliRunner.Run("info", Path.Combine(TestPaths.RepoRoot, "plans", "demo.json"));
        Assert.Equal(0, code);
        Assert.Contains("frozen 1,048,576", output);                          // the 65,536 x 16 code table
    }

    [Fact]
    public void Prepare_train_generate_from_the_cli()
    {
        var dir = TestPaths.TempDir();
        var plan = Path.Combine(dir, "plan.json");
        File.WriteAllText(plan, $$"""
            { "name": "cli", "model": { "d_model": 32, "n_head": 2, "context_length": 16 }, "substrate": { "kind": "binary" },
              "data": { "train": "{{SotuData.Train}}", "validation": "{{SotuData.Validation}}" },
              "training": { "batch_size": 2, "eval_every": 3, "eval_batches": 1, "checkpoint_every": 2 },
              "stages": [ { "name": "only", "add_blocks": 1, "steps": 3 } ] }
            """);
        var run = Path.Combine(dir, "run");
        var (code, output, err) = CliRunner.Run("train", "--plan", plan, "--out", run);
        Assert.True(code == 0, err);
        Assert.Contains("finished at step 3", output);
        Assert.True(File.Exists(Path.Combine(run, "loss_curve.png")));
        var ckpt = Path.Combine(run, Checkpoint.FileName);
        var (g, text, gerr) = CliRunner.Run("generate", "--checkpoint", ckpt, "--prompt", "The ", "--max-new-tokens", "12", "--temperature", "0");
        Assert.True(g == 0, gerr);
        Assert.StartsWith("The ", text);
        var (i, info, _) = CliRunner.Run("info", ckpt);
        Assert.Equal(0, i);
        Assert.Contains("step 3", info);
        Assert.Contains("complete", info);
    }
}
