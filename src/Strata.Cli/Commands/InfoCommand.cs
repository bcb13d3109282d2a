using System.CommandLine;
using Strata.Runs;

namespace Strata.Cli.Commands;

public static class InfoCommand
{
    public static Command Create(TextWriter output)
    {
        var path = Opt.One("PATH", "a plan (.json), a checkpoint (.safetensors) or a run folder (its checkpoint)");
        var full = Opt.Flag("--plan", "also print the plan in full, as it would run (overrides applied, tokenizer and LoRA ranks resolved)");
        var planOptions = new PlanOptions();
        var command = new Command("info", "shape, depth, stages, parameter counts, precision, data and mixtures") { path, full };
        planOptions.AddTo(command);
        command.SetAction(p =>
        {
            var file = CheckpointPaths.Resolve(p.GetValue(path)!);
            GrowthPlan plan;
            int depth;
            string? substrateHash = null;
            if (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            {
                plan = GrowthStage.Resolve(planOptions.Load(p, file, output), file);
                depth = plan.FinalDepth;
                output.WriteLine($"plan '{plan.Name}': {plan.Stages.Count} stage(s), {plan.TotalSteps} steps");
            }
            else
            {
                var info = Checkpoint.ReadInfo(file);
                plan = info.Plan;
                depth = info.Depth;
                substrateHash = info.SubstrateHash;
                output.WriteLine($"checkpoint of '{plan.Name}': step {info.GlobalStep}, stage {info.StageIndex + 1}/{plan.Stages.Count} step " +
                    $"{info.StageStep}, " +
                                 $"{(info.Completed ? "complete" : "in progress")}, tokenizer {info.Tokenizer}, validation loss {info.ValidationLoss:F4}");
            }
            var m = plan.Model;
            output.WriteLine($"model: d_model {m.DModel}, {m.NHead} heads of {m.HeadSize}, ffn {m.Ffn}, context {m.ContextLength}, vocab " +
                $"{m.VocabSize}, depth {depth}, rope theta {m.RopeTheta}, head bias {m.HeadBias}");
            output.WriteLine($"substrate: {plan.Substrate.Describe()}{(substrateHash is null ? "" : $", table sha256:{substrateHash}")}");
            var budgets = GrowthStage.Budgets(plan, file);
            output.WriteLine($"parameters at depth {plan.FinalDepth}: total {budgets[^1].Total:N0}");
            foreach (var (s, i) in plan.Stages.Select((s, i) => (s, i)))
                output.WriteLine($"  stage {i + 1} '{s.Name}': +{s.AddBlocks} blocks, {s.Steps} steps, trains {s.Trains.ToString().ToLowerInvariant()}" +
                                 (s.TrainEmbedding ? " + embedding" : "") + (s.Mixture is { } stageMix ? $", mixture {Util.Json.Compact(stageMix)}" : "") +
                                 $": {budgets[i]}");
            var t = plan.Training;
            output.WriteLine($"training: {Util.Json.EnumName(t.Precision)}, batch {t.BatchSize} x {t.GradAccumulation} of {plan.Model.ContextLength} tokens, " +
                             $"learning rate {t.LearningRate:G4} -> {t.MinLearningRate:G4} (warmup {t.WarmupSteps}), seed {t.Seed}");
            output.WriteLine($"data: {string.Join(", ", plan.Data.Named().Select(d => $"{d.Name} = {d.Path}"))}" +
                             (plan.Data.Mixture is { } mix ? $", mixture {Util.Json.Compact(mix)}" : "") +
                             (plan.Data.Tokenizer is { } tok ? $", tokenizer {tok}" : ""));
            if (p.GetValue(full)) output.WriteLine(Util.Json.Serialize(plan));
            return 0;
        });
        return command;
    }
}
