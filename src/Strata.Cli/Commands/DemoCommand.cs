using System.CommandLine;
using Strata.Composition;
using Strata.Data;
using Strata.Evaluation;
using Strata.Generation;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>The main job on the embedded default: State of the Union addresses (1790-2000 train, 2001-2021 held out),
/// bvv241-2-3 tokens, the demo plan on the frozen 16-bit code grown in two stages (the second with a LoRA phase on the
/// frozen blocks, merged), the per-stage budget, validation loss before and after, a loss-curve PNG and a sample; then
/// each stage evaluated, and two experts composed.</summary>
public static class DemoCommand
{
    public static Command Create(TextWriter output)
    {
        var substrate = Opt.Text("--substrate", "binary", "the frozen interface: the 16-bit code (binary) or the visual Unicode glyphs (visual)",
            "binary|visual");
        substrate.AcceptOnlyFromAmong("binary", "visual");
        var command = new Command("demo",
            "prepare the data, grow the demo model (with a LoRA phase), report, plot, sample, evaluate each stage, then compose two experts") { substrate };
        command.SetAction(p => Run(p.GetValue(substrate)!, output));
        return command;
    }

    private static int Run(string substrate, TextWriter output)
    {
        var suffix = substrate == "visual" ? "-visual" : "";
        var home = StrataHome.Root;
        HeldOutCorpus.Sotu.Prepare(home, Tokenizers.Default, output);

        var plan = OnSubstrate(DemoPlan("demo.json"), substrate);
        var budgets = GrowthStage.Budgets(plan, "plans/demo.json");
        output.WriteLine("== growth plan: active (trained) parameters per stage, the rest frozen");
        output.WriteLine("| stage | blocks | LoRA | active | frozen | total |");
        output.WriteLine("|---|---|---|---|---|---|");
        int depth = 0;
        foreach (var (s, b) in plan.Stages.Zip(budgets))
        {
            depth += s.AddBlocks;
            output.WriteLine($"| {s.Name} | {depth} | " +
                $"{(s.Lora is { } l ? $"rank {l.Rank} on {l.Blocks.ToString().ToLowerInvariant()} blocks" : "-")} | {b.Active:N0} | {b.Frozen:N0} " +
                    $"| {b.Total:N0} |");
        }
        var run = new RunDirectory(Path.Combine(home, "runs", "demo" + suffix));
        if (Directory.Exists(run.Path)) Directory.Delete(run.Path, recursive: true);
        output.WriteLine($"== training plan '{plan.Name}' into {run.Path}");
        var r = Trainer.Run(plan, new TrainOptions { OutDir = run.Path, Log = output, Interactive = Devices.IsTerminal(output) });
        output.WriteLine(r.Summary());

        output.WriteLine("== sample (temperature 0.8, top-k 40)");
        using (var file = CausalLMFile.Load(run.Checkpoint))
        {
            var tokenizer = Tokenizers.ByName(file.Tokenizer);
            const string prompt = "The state of the Union is";
            output.Write(prompt);
            foreach (var id in TextGenerator.Generate(file.Model, tokenizer.Encode(prompt), 300, new SamplingOptions { Temperature = 0.8, TopK = 40,
                Seed = 7 }, tokenizer.EndOfText))
                output.Write(tokenizer.Decode([id]));
            output.WriteLine();
        }
        Evaluate(home, run, plan.Stages.Count, output);
        Compose(home, substrate, suffix, output);
        return 0;
    }

    /// <summary>A demo plan: HOME/plans/NAME when it exists (the repository), otherwise the copy built into Strata
    /// (an installed tool), read as if it were there.</summary>
    private static GrowthPlan DemoPlan(string name)
    {
        var path = Path.Combine(StrataHome.Root, "plans", name);
        if (File.Exists(path)) return GrowthPlan.Load(path);
        using var stream = typeof(DemoCommand).Assembly.GetManifestResourceStream("plans/" + name)
            ?? throw new InvalidOperationException($"the built-in plan {name} is missing from the assembly");
        return GrowthPlan.Parse(new StreamReader(stream).ReadToEnd(), $"(built-in) plans/{name}", Path.GetDirectoryName(path)!);
    }

    /// <summary>The demo's plans on the 16-bit code as written, or on the visual Unicode substrate (bvv241-2-3 glyphs,
    /// its leading principal axes up to d_model).</summary>
    private static GrowthPlan OnSubstrate(GrowthPlan plan, string substrate) => substrate == "visual"
        ? plan with { Name = plan.Name + "-visual", Substrate = new SubstrateSpec { Kind = SubstrateKind.Visual, Lift = SubstrateLift.Truncate } }
        : plan;

    /// <summary>Each stage's held-out bits per byte (on the first 32,768 held-out tokens) and one real multiple-choice
    /// set (capitals, four choices) under the log-likelihood cloze protocol and the paper's generative one.</summary>
    private static void Evaluate(string home, RunDirectory run, int stages, TextWriter output)
    {
        output.WriteLine("== evaluation per stage (strata eval --suite demo --ppl-tokens 32768; quiz-capitals: 221 questions, chance 25%)");
        var settings = new EvalSettings { Home = home, Protocols = [Protocol.LogLikelihoodCloze, Protocol.Generative], PerplexityTokens = 32768 };
        var tasks = EvalSuites.Resolve("demo");
        output.WriteLine("| stage | depth | SOTU 2001-2021 bits/byte | capitals, loglik-cloze acc % | capitals, generative acc % |");
        output.WriteLine("|---|---|---|---|---|");
        var reports = new List<EvalReport>();
        for (int i = 1; i <= stages; i++)
        {
            var report = CausalLMFile.Evaluate(run.Stage(i), tasks, "demo", settings);
            reports.Add(report);
            string Cell(string task, string protocol, string metric) => report.Find(task, protocol, metric) is { } s ? EvalReport.Format(s) : "-";
            output.WriteLine($"| {i} | {report.Depth} | {Cell("ppl-sotu", Protocol.Perplexity, "bits_per_byte")} | " +
                $"{Cell("quiz-capitals", Protocol.LogLikelihoodCloze, "accuracy")} | {Cell("quiz-capitals", Protocol.Generative, "accuracy")} |");
        }
        EvalComparison.Save(run.Eval, reports);
    }

    /// <summary>Modular composition: an English and a Russian expert on the same frozen code and tokenizer, each
    /// expert and their logit average measured on both languages' held-out text.</summary>
    private static void Compose(string home, string substrate, string suffix, TextWriter output)
    {
        var ru = HeldOutCorpus.FortunesRu.Prepare(home, Tokenizers.Default, output);
        var experts = new List<string>();
        foreach (var lang in new[] { "en", "ru" })
        {
            var plan = OnSubstrate(DemoPlan($"demo-expert-{lang}.json"), substrate);
            var dir = Path.Combine(home, "runs", $"demo-expert-{lang}{suffix}");
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            output.WriteLine($"== training expert '{plan.Name}' ({plan.Stages[0].Steps} steps)");
            var r = Trainer.Run(plan, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
            output.WriteLine($"   validation loss {r.InitialValidationLoss:F4} -> {r.FinalValidationLoss:F4}");
            experts.Add(r.Run.Checkpoint);
        }
        output.WriteLine("== composing them by averaging their logits (validation loss, nats/token)");
        using var ensemble = LogitAveragingEnsemble.Load(experts);
        output.WriteLine("| validation set | English expert | Russian expert | logit average |");
        output.WriteLine("|---|---|---|---|");
        foreach (var (name, dataset) in new[] { ("State of the Union 2001-2021", HeldOutCorpus.Sotu.DatasetDir(home, Tokenizers.Default)), (
            "Russian fortunes", ru) })
        {
            var (each, mean) = ensemble.Compare(dataset, batches: 16, batchSize: 8);
            output.WriteLine($"| {name} | {each[0]:F3} | {each[1]:F3} | {mean:F3} |");
        }
    }
}
