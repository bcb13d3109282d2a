using Xunit;
using Strata.Runs;

namespace Strata.Tests;

[Collection("torch")]
public class CliTests
{
    [Fact]
    public void Readme_cli_reference_lists_every_command()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var section = readme[readme.IndexOf("## CLI reference", StringComparison.Ordinal)..];
        foreach (var c in Strata.Cli.Program.CommandNames) Assert.Contains($"`strata {c}", section);
        var documented = System.Text.RegularExpressions.Regex.Matches(section, @"^\| `strata ([a-z]+(?: [a-z]+)?)",
            System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(Strata.Cli.Program.CommandNames.ToHashSet(), documented);
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
              "data": { "datasets": { "sotu": "{{SotuData.Dir}}" } },
              "training": { "batch_size": 2, "eval_every": 3, "eval_batches": 1, "checkpoint_every": 2 },
              "stages": [ { "name": "only", "add_blocks": 1, "steps": 3 } ] }
            """);
        var run = Path.Combine(dir, "run");
        var (code, output, err) = CliRunner.Run("train", "--plan", plan, "--out", run);
        Assert.True(code == 0, err);
        Assert.Contains("finished at step 3", output);
        Assert.True(File.Exists(Path.Combine(run, "loss_curve.png")));
        var ckpt = Path.Combine(run, RunDirectory.CheckpointName);
        var (g, text, gerr) = CliRunner.Run("generate", "--checkpoint", ckpt, "--prompt", "The ", "--max-new-tokens", "12", "--temperature", "0");
        Assert.True(g == 0, gerr);
        Assert.StartsWith("The ", text);
        var (i, info, _) = CliRunner.Run("info", ckpt);
        Assert.Equal(0, i);
        Assert.Contains("step 3", info);
        Assert.Contains("complete", info);
    }

    [Fact]
    public void Help_is_generated_from_each_commands_options()
    {
        var (code, train, _) = CliRunner.Run("train", "--help");
        Assert.Equal(0, code);
        Assert.Contains("strata train [options]", train);
        Assert.Contains("--init-from <CKPT>", train);
        var (_, eval, _) = CliRunner.Run("eval", "--help");
        Assert.Contains("--ppl-tokens", eval);
        Assert.Contains("compare", eval);                                                // its subcommand
    }

    [Fact]
    public void A_misspelt_option_or_command_gets_the_closest_one_suggested()
    {
        var (code, _, err) = CliRunner.Run("train", "--plna", "p.json", "--out", "run");
        Assert.Equal(2, code);
        Assert.Equal("error: unknown option --plna (did you mean --plan?) (see 'strata train --help')", err.Trim());
        (code, _, err) = CliRunner.Run("evla", "--suite", "demo");
        Assert.Equal(2, code);
        Assert.Contains("did you mean eval?", err);
    }

    [Fact]
    public void Completion_offers_commands_and_options_for_the_words_typed()
    {
        Assert.Contains("train", CliRunner.Run("__complete", "9", "strata tr").Out.Split('\n'));
        var options = CliRunner.Run("__complete", "19", "strata train --ini").Out.Split('\n');
        Assert.Contains("--init-from", options);
        Assert.DoesNotContain("--plan", options);
        Assert.Contains("complete -o default -F _strata_complete strata", CliRunner.Run("completion", "bash").Out);
    }
}
