using Strata.Composition;
using Strata.Data;
using Strata.Modeling;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>strata compose CKPT CKPT... --out ENSEMBLE.json [--eval SHARD...] [--eval-batches 8] [--batch-size 8]
/// [--train-adapter SHARD --adapter-steps 100 --adapter-lr 0.01]</summary>
public static class ComposeCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var outPath = a.Require("out");
        var evalShards = (a.Get("eval") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        int batches = a.Int("eval-batches", 8), batch = a.Int("batch-size", 8);
        var adapterData = a.Get("train-adapter");
        int adapterSteps = a.Int("adapter-steps", 100);
        double adapterLr = a.Double("adapter-lr", 0.01);
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        if (a.Positionals.Count < 1) throw new StrataException("give the checkpoints to compose");
        using var ensemble = LogitAveragingEnsemble.Load(a.Positionals, device);
        void Evaluate(string label)
        {
            foreach (var shardPath in evalShards)
            {
                var (experts, mean) = ensemble.Compare(shardPath, batches, batch);
                output.WriteLine($"validation loss on {shardPath} ({batches} x {batch} x {ensemble.Config.ContextLength} tokens):");
                if (ensemble.Adapter is null)
                    for (int k = 0; k < experts.Length; k++) output.WriteLine($"  expert {k + 1} ({a.Positionals[k]}): {experts[k]:F4}");
                output.WriteLine($"  ensemble ({label}): {mean:F4}");
            }
        }
        Evaluate("mean of logits");
        if (adapterData is not null)
        {
            using var shard = TokenShard.Open(adapterData);
            var losses = ensemble.TrainAdapter(new BatchSampler(shard, batch, ensemble.Config.ContextLength, 2), adapterSteps, adapterLr);
            output.WriteLine($"adapter trained on {adapterData} for {adapterSteps} steps, experts frozen: loss {losses[0]:F4} -> {losses[^1]:F4}");
            Evaluate("adapter");
        }
        ensemble.Save(outPath, a.Positionals);
        output.WriteLine($"{outPath}: {(ensemble.Adapter is null ? "mean of the logits" : "trained adapter over the logits")} of {ensemble.Experts.Count} experts ({ensemble.Experts.Sum(e => ParameterBudget.Of(e).Total):N0} parameters in all)");
        return 0;
    }
}
