using Strata.Composition;
using Strata.Data;
using Strata.Evaluation;
using Strata.Substrates;
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
    public static int Run(Args a, TextWriter output)
    {
        var substrate = a.Get("substrate") ?? "binary";
        a.RejectUnknown();
        if (substrate is not ("binary" or "visual")) throw new StrataException($"--substrate: binary or visual, got '{substrate}'");
        var suffix = substrate == "visual" ? "-visual" : "";
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        HeldOutCorpus.Sotu.Prepare(home, Tokenizers.Default, output);

        var plan = OnSubstrate(GrowthPlan.Load(Path.Combine(home, "plans", "demo.json")), substrate);
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
        var runDir = Path.Combine(home, "runs", "demo" + suffix);
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
        Evaluate(home, r.RunDir, plan.Stages.Count, output);
        Compose(home, substrate, suffix, output);
        return 0;
    }

    /// <summary>The demo's plans on the 16-bit code as written, or on the visual Unicode substrate (bvv241-2-3 glyphs,
    /// its leading principal axes up to d_model).</summary>
    private static GrowthPlan OnSubstrate(GrowthPlan plan, string substrate) => substrate == "visual"
        ? plan with { Name = plan.Name + "-visual", Substrate = new SubstrateSpec { Kind = SubstrateKind.Visual, Lift = SubstrateLift.Truncate } }
        : plan;

    /// <summary>Each stage's held-out bits per byte (on the first 32,768 held-out tokens) and one real multiple-choice
    /// set (capitals, four choices) under the log-likelihood cloze protocol and the paper's generative one.</summary>
    private static void Evaluate(string home, string runDir, int stages, TextWriter output)
    {
        output.WriteLine("== evaluation per stage (strata eval --suite demo --ppl-tokens 32768; quiz-capitals: 221 questions, chance 25%)");
        var settings = new EvalSettings { Home = home, Protocols = [Protocol.LogLikelihoodCloze, Protocol.Generative], PerplexityTokens = 32768 };
        var tasks = EvalSuites.Resolve("demo");
        output.WriteLine("| stage | depth | SOTU 2001-2021 bits/byte | capitals, loglik-cloze acc % | capitals, generative acc % |");
        output.WriteLine("|---|---|---|---|---|");
        var reports = new List<EvalReport>();
        for (int i = 1; i <= stages; i++)
        {
            var path = Path.Combine(runDir, $"stage-{i}.safetensors");
            var report = EvalCommand.Evaluate(path, tasks, "demo", settings, null, TextWriter.Null);
            reports.Add(report);
            string Cell(string task, string protocol, string metric) => report.Find(task, protocol, metric) is { } s ? EvalReport.Format(s) : "-";
            output.WriteLine($"| {i} | {report.Depth} | {Cell("ppl-sotu", Protocol.Perplexity, "bits_per_byte")} | {Cell("quiz-capitals", Protocol.LogLikelihoodCloze, "accuracy")} | {Cell("quiz-capitals", Protocol.Generative, "accuracy")} |");
        }
        EvalComparison.Save(Path.Combine(runDir, "eval"), reports);
    }

    /// <summary>Modular composition: an English and a Russian expert on the same frozen code and tokenizer, each
    /// expert and their logit average measured on both languages' held-out text.</summary>
    private static void Compose(string home, string substrate, string suffix, TextWriter output)
    {
        var ru = HeldOutCorpus.FortunesRu.Prepare(home, Tokenizers.Default, output);
        var experts = new List<string>();
        foreach (var lang in new[] { "en", "ru" })
        {
            var plan = OnSubstrate(GrowthPlan.Load(Path.Combine(home, "plans", $"demo-expert-{lang}.json")), substrate);
            var dir = Path.Combine(home, "runs", $"demo-expert-{lang}{suffix}");
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
