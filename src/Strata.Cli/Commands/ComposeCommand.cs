using System.CommandLine;
using Strata.Composition;
using Strata.Data;
using Strata.Modeling;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>strata compose CKPT CKPT... --out ENSEMBLE.json: the paper's modular composition.</summary>
public static class ComposeCommand
{
    public static Command Create(TextWriter output)
    {
        var checkpoints = Opt.Many("CKPT", "the experts: checkpoints trained on one frozen substrate and tokenizer");
        var outPath = Opt.Required("--out", "the ensemble file to write", "ENSEMBLE.json");
        var eval = Opt.Text("--eval", "datasets whose validation splits each expert and the ensemble are measured on", "DATASET[,DATASET]");
        var evalBatches = Opt.Int("--eval-batches", 8, "fixed batches per validation shard");
        var batchSize = Opt.Int("--batch-size", 8, "sequences per batch");
        var trainAdapter = Opt.Text("--train-adapter",
            "train a small adapter over the experts' logits on this dataset's training split (experts frozen)", "DATASET");
        var adapterSteps = Opt.Int("--adapter-steps", 100, "adapter training steps");
        var adapterLr = Opt.Double("--adapter-lr", 0.01, "adapter learning rate");
        var device = Opt.Device();
        var command = new Command("compose",
            "a logit-averaging ensemble of models on one frozen interface; optionally each expert's and the ensemble's validation loss")
            { checkpoints, outPath, eval, evalBatches, batchSize, trainAdapter, adapterSteps, adapterLr, device };
        command.SetAction(p =>
        {
            var experts = p.GetValue(checkpoints)!;
            int batches = p.GetValue(evalBatches), batch = p.GetValue(batchSize);
            var evalShards = (p.GetValue(eval) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
            using var ensemble = LogitAveragingEnsemble.Load(experts, Devices.Parse(p.GetValue(device)));
            void Evaluate(string label)
            {
                foreach (var shardPath in evalShards)
                {
                    var (each, mean) = ensemble.Compare(shardPath, batches, batch);
                    output.WriteLine($"validation loss on {shardPath} ({batches} x {batch} x {ensemble.Config.ContextLength} tokens):");
                    if (ensemble.Adapter is null)
                        for (int k = 0; k < each.Length; k++) output.WriteLine($"  expert {k + 1} ({experts[k]}): {each[k]:F4}");
                    output.WriteLine($"  ensemble ({label}): {mean:F4}");
                }
            }
            Evaluate("mean of logits");
            if (p.GetValue(trainAdapter) is { } adapterData)
            {
                using var dataset = Dataset.Open(adapterData);
                var windows = new Strata.Data.Windows(dataset.Shards(DatasetSplit.Train), ensemble.Config.ContextLength, $"{adapterData} (training)");
                int steps = p.GetValue(adapterSteps);
                var losses = ensemble.TrainAdapter(new BatchSampler([(windows, 1.0)], batch, 2), steps, p.GetValue(adapterLr));
                output.WriteLine($"adapter trained on {adapterData} for {steps} steps, experts frozen: loss {losses[0]:F4} -> {losses[^1]:F4}");
                Evaluate("adapter");
            }
            var path = p.GetValue(outPath)!;
            ensemble.Save(path, experts);
            output.WriteLine($"{path}: {(ensemble.Adapter is null ? "mean of the logits" : "trained adapter over the logits")} of " +
                $"{ensemble.Experts.Count} experts ({ensemble.Experts.Sum(e => ParameterBudget.Of(e).Total):N0} parameters in all)");
            return 0;
        });
        return command;
    }
}
