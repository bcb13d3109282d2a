using System.Text.Json;
using Strata.Data;
using Strata.Evaluation;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class EvalCliTests
{
    private static readonly Lazy<string> GrownRun = new(() =>
    {
        var plan = SotuData.Plan(2, blocks: 1);
        plan = plan with { Stages = [plan.Stages[0] with { Name = "one" }, plan.Stages[0] with { Name = "two" }] };
        var dir = Path.Combine(TestPaths.TempDir(), "run");
        Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return dir;
    });

    private static string Datasets => TestPaths.Data("datasets");

    [Fact]
    public void Eval_runs_the_papers_benchmarks_from_their_public_layouts()
    {
        var outDir = TestPaths.TempDir();
        var (code, output, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(GrownRun.Value, RunDirectory.CheckpointName),
            "--suite", "mmlu,arc-easy,commonsense-qa,bleu-en-ru,bleu-ru-en", "--data", Datasets, "--out", outDir);
        Assert.True(code == 0, err);
        var report = JsonSerializer.Deserialize<EvalReport>(File.ReadAllText(Path.Combine(outDir, EvalReport.JsonFile)), Json.Options)!;
        Assert.Equal(2, report.Depth);
        string[] mc = ["mmlu", "arc-easy", "commonsense-qa"];
        foreach (var task in mc)
            foreach (var protocol in Protocol.MultipleChoice)
                Assert.Contains(report.Scores, s => s.Task == task && s.Protocol == protocol && s.Metric == "accuracy" && s.Value is >= 0 and <= 100);
        Assert.Equal(3, report.Find("mmlu", Protocol.Generative, "accuracy")!.Items);             // cais-mmlu took precedence over the CSV
        Assert.Equal(2, report.Find("bleu-en-ru", Protocol.Generative, "sentence_bleu_13a")!.Items);
        Assert.Equal(100.0 * 1 / 5, report.Find("commonsense-qa", Protocol.LogLikelihoodCloze, "accuracy")!.Chance!.Value, 6);
        var md = File.ReadAllText(Path.Combine(outDir, EvalReport.MarkdownFile));
        Assert.Contains("| mmlu | loglik-letter | accuracy |", md);
        Assert.Contains("- arc-easy: ARC-Easy validation (allenai/ai2_arc)", md);
        Assert.Contains("greedy, 1 run(s), max_new_tokens 1, first character", output);
    }

    [Fact]
    public void Repeated_sampled_runs_report_the_papers_interval()
    {
        var outDir = TestPaths.TempDir();
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(GrownRun.Value, "stage-1.safetensors"), "--suite", "arc-easy",
            "--protocols", "generative", "--runs", "4", "--temperature", "1", "--data", Datasets, "--out", outDir);
        Assert.True(code == 0, err);
        var s = JsonSerializer.Deserialize<EvalReport>(File.ReadAllText(Path.Combine(outDir, EvalReport.JsonFile)), Json.Options)!.Scores.Single();
        Assert.Equal(("runs", 4), (s.Interval, s.Runs));
        Assert.Contains("temperature 1", s.Settings);
    }

    [Fact]
    public void Eval_compare_draws_metric_vs_depth_for_the_stages_of_a_run()
    {
        var outDir = TestPaths.TempDir();
        var (code, output, err) = CliRunner.Run("eval", "compare", GrownRun.Value, "--suite", "arc-easy,mmlu", "--protocols", "loglik-cloze",
            "--data", Datasets, "--out", outDir);
        Assert.True(code == 0, err);
        var png = File.ReadAllBytes(Path.Combine(outDir, EvalComparison.DepthPlotFile));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        var md = File.ReadAllText(Path.Combine(outDir, EvalComparison.MarkdownFile));
        Assert.Contains("stage-1.safetensors (depth 1) | stage-2.safetensors (depth 2) |", md);
        Assert.Contains("| arc-easy | loglik-cloze | accuracy_norm |", output);
    }

    [Fact]
    public void An_ensemble_is_evaluated_like_a_model()
    {
        var dir = TestPaths.TempDir();
        var other = Path.Combine(dir, "other");
        var plan = SotuData.Plan(2, blocks: 1);
        Trainer.Run(plan with { Training = plan.Training with { Seed = 77 } }, new TrainOptions { OutDir = other, Log = TextWriter.Null });
        var ensemble = Path.Combine(dir, "pair.json");
        var (code, _, err) = CliRunner.Run("compose", Path.Combine(GrownRun.Value, "stage-1.safetensors"), Path.Combine(other,
            RunDirectory.CheckpointName), "--out", ensemble);
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", ensemble, "--suite", "arc-easy", "--data", Datasets, "--out", Path.Combine(dir, "eval"));
        Assert.True(code == 0, err);
        var report = JsonSerializer.Deserialize<EvalReport>(File.ReadAllText(Path.Combine(dir, "eval", EvalReport.JsonFile)), Json.Options)!;
        Assert.Null(report.Depth);
        Assert.Equal(4, report.Scores.Count);                                          // generative, letter, cloze + norm
    }

    [Fact]
    public void Bad_suites_and_missing_benchmark_files_get_one_clear_error()
    {
        var ckpt = Path.Combine(GrownRun.Value, RunDirectory.CheckpointName);
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", ckpt, "--suite", ",");
        Assert.Equal(1, code);
        Assert.StartsWith("error: --suite: empty", err);
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", ckpt, "--suite", "bleu-en-zh", "--data", Datasets);
        Assert.Equal(1, code);
        Assert.Contains(Path.Combine(Datasets, "opus-100/en-zh")
            + ": no validation-*.parquet files; put the public Helsinki-NLP/opus-100 en-zh files there", err);
        // the fixture's only answerable item has a 9-character first answer ("The Volga"): the paper's filter leaves nothing
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", ckpt, "--suite", "squad-v2", "--data", Datasets);
        Assert.Equal("error: squad-v2: no answerable item with an answer of at most 8 characters", err.Trim());
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", ckpt, "--suite", "arc-easy", "--protocols", "loglik-letters", "--data", Datasets);
        Assert.Equal(1, code);
        Assert.StartsWith("error: --protocols: unknown 'loglik-letters'", err);
    }

    [Fact]
    public void Squad_keeps_answerable_items_with_short_first_answers()
    {
        using var file = Strata.Composition.CausalLMFile.Load(Path.Combine(GrownRun.Value, RunDirectory.CheckpointName));
        var scorer = new Scorer(file.Model, Strata.Tokenization.Tokenizers.ByName(file.Tokenizer));
        SquadItem[] items = [new("The Volga flows into the Caspian Sea.", "Which river?", ["Volga", "The Volga"], "a"),
            new("c", "q", ["The Volga river"], "b"), new("c", "q", [], "c")];
        var s = new SquadTask(_ => items).Run(scorer, new EvalSettings { Home = TestPaths.TempDir() }).Single();
        Assert.Equal(1, s.Items);
        Assert.Contains(s.Value, new[] { 0.0, 100.0 });
    }

    [Fact]
    public void Held_out_perplexity_prepares_the_corpus_for_the_models_tokenizer_and_gives_bits_per_byte()
    {
        var home = TestPaths.TempDir();
        Directory.CreateDirectory(Path.Combine(home, "data", "raw"));
        Directory.CreateSymbolicLink(Path.Combine(home, "data", "raw", "sotu"), Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu"));
        using var file = Strata.Composition.CausalLMFile.Load(Path.Combine(GrownRun.Value, RunDirectory.CheckpointName));
        var scorer = new Scorer(file.Model, Strata.Tokenization.Tokenizers.ByName(file.Tokenizer));
        var task = (PerplexityTask)EvalSuites.Resolve("ppl-sotu").Single();
        var scores = task.Run(scorer, new EvalSettings { Home = home, PerplexityTokens = 640 });
        var dir = HeldOutCorpus.Sotu.DatasetDir(home, "codepoint");
        Assert.EndsWith("sotu@codepoint", dir);
        using var dataset = Dataset.Open(dir);
        Assert.All(dataset.Manifest.Inputs.Where(i => i.ValidationDocuments > 0), i => Assert.Matches(@"/20(0[1-9]|1\d|2\d)_", i.Path));
        var meta = dataset.Manifest.Validation;
        double perToken = scores.Single(s => s.Metric == "nats_per_token").Value;
        double bpb = scores.Single(s => s.Metric == "bits_per_byte").Value;
        Assert.Equal(640, scores[0].Items);
        // codepoint ids on English text: about one token per byte, so bits/byte is close to nats/token / ln 2
        double tokensPerByte = (double)meta.Tokens / meta.Bytes;
        Assert.Equal(perToken * tokensPerByte / Math.Log(2), bpb, 6);
        Assert.InRange(tokensPerByte, 0.95, 1.0);
    }
}
