using Strata.Composition;
using Strata.Data;
using Strata.Generation;
using Strata.Tokenization;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>The main job on the embedded default: State of the Union addresses (1790-2000 train, 2001-2021 held out),
/// bvv241-2-3 tokens, the demo plan on the frozen 16-bit code grown in two stages (the second with a LoRA phase on the
/// frozen blocks, merged), the per-stage budget, validation loss before and after, a loss-curve PNG and a sample.</summary>
public static class DemoCommand
{
    public const string HeldOutYears = @"^20(0[1-9]|1\d|2\d)_";

    public static int Run(Args a, TextWriter output)
    {
        a.RejectUnknown();
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var corpus = Path.Combine(home, "data", "raw", "sotu", "data");
        if (!Directory.Exists(corpus)) throw new StrataException($"{corpus}: the State of the Union corpus is missing; './strata demo' installs it (scripts/bootstrap.sh)");
        var shards = Path.Combine(home, "data", "sotu");
        if (PreparedData.TryRead(Path.Combine(shards, PreparedData.TrainFile)) is not { Tokenizer: Tokenizers.Default })
        {
            output.WriteLine($"== preparing {corpus} (held out: 2001-2021)");
            DataCommand.Prepare(new Args([corpus, "--out", shards, "--val-match", HeldOutYears], new HashSet<string>()), output);
        }

        var plan = GrowthPlan.Load(Path.Combine(home, "plans", "demo.json"));
        var budgets = Trainer.StageBudgets(plan, "plans/demo.json");
        output.WriteLine("== growth plan: active (trained) parameters per stage, the rest frozen");
        output.WriteLine("| stage | blocks | LoRA | active | frozen | total |");
        output.WriteLine("|---|---|---|---|---|---|");
        int depth = 0;
        foreach (var (s, b) in plan.Stages.Zip(budgets))
        {
            depth += s.AddBlocks;
            output.WriteLine($"| {s.Name} | {depth} | {(s.Lora is { } l ? $"rank {l.Rank} on {l.Blocks.ToString().ToLowerInvariant()} blocks" : "-")} | {b.Active:N0} | {b.Frozen:N0} | {b.Total:N0} |");
        }
        var runDir = Path.Combine(home, "runs", "demo");
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
        output.WriteLine($"== training plan '{plan.Name}' into {runDir}");
        var r = Trainer.Run(plan, new TrainOptions { OutDir = runDir, Log = output, Interactive = Devices.IsTerminal(output) });
        TrainCommand.Report(r, output);

        output.WriteLine("== sample (temperature 0.8, top-k 40)");
        var (model, info) = Checkpoint.LoadModel(r.CheckpointPath);
        using var _ = model;
        var tokenizer = Tokenizers.ByName(info.Tokenizer);
        const string prompt = "The state of the Union is";
        output.Write(prompt);
        foreach (var id in TextGenerator.Generate(model, tokenizer.Encode(prompt), 300, new SamplingOptions { Temperature = 0.8, TopK = 40, Seed = 7 }, tokenizer.EndOfText))
            output.Write(tokenizer.Decode([id]));
        output.WriteLine();
        Compose(home, output);
        return 0;
    }

    /// <summary>Modular composition: an English and a Russian expert on the same frozen code and tokenizer, each
    /// expert and their logit average measured on both languages' held-out text.</summary>
    private static void Compose(string home, TextWriter output)
    {
        var ru = Path.Combine(home, "data", "fortunes-ru");
        if (PreparedData.TryRead(Path.Combine(ru, PreparedData.TrainFile)) is not { Tokenizer: Tokenizers.Default })
        {
            output.WriteLine("== preparing /usr/share/games/fortunes/ru (10% of the files held out)");
            DataCommand.Prepare(new Args(["/usr/share/games/fortunes/ru", "--pattern", "*", "--exclude", @"\.(dat|u8)$", "--out", ru], new HashSet<string>()), output);
        }
        var experts = new List<string>();
        foreach (var lang in new[] { "en", "ru" })
        {
            var plan = GrowthPlan.Load(Path.Combine(home, "plans", $"demo-expert-{lang}.json"));
            var dir = Path.Combine(home, "runs", $"demo-expert-{lang}");
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            output.WriteLine($"== training expert '{plan.Name}' ({plan.Stages[0].Steps} steps)");
            var r = Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
            output.WriteLine($"   validation loss {r.InitialValidationLoss:F4} -> {r.FinalValidationLoss:F4}");
            experts.Add(r.CheckpointPath);
        }
        output.WriteLine("== composing them by averaging their logits (validation loss, nats/token)");
        using var ensemble = LogitAveragingEnsemble.Load(experts);
        output.WriteLine("| validation set | English expert | Russian expert | logit average |");
        output.WriteLine("|---|---|---|---|");
        foreach (var (name, shardPath) in new[] { ("State of the Union 2001-2021", Path.Combine(home, "data", "sotu", PreparedData.ValidationFile)), ("Russian fortunes", Path.Combine(ru, PreparedData.ValidationFile)) })
        {
            var (each, mean) = ensemble.Compare(shardPath, batches: 16, batchSize: 8);
            output.WriteLine($"| {name} | {each[0]:F3} | {each[1]:F3} | {mean:F3} |");
        }
    }
}
