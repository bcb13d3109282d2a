using Strata.Composition;
using Strata.Data;
using Strata.Modeling;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>strata compose CKPT CKPT... --out ENSEMBLE.json [--eval SHARD...] [--eval-batches 8] [--batch-size 8]</summary>
public static class ComposeCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var outPath = a.Require("out");
        var evalShards = (a.Get("eval") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        int batches = a.Int("eval-batches", 8), batch = a.Int("batch-size", 8);
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        if (a.Positionals.Count < 1) throw new StrataException("give the checkpoints to compose");
        using var ensemble = LogitAveragingEnsemble.Load(a.Positionals, device);
        LogitAveragingEnsemble.Save(outPath, a.Positionals);
        output.WriteLine($"{outPath}: mean of the logits of {ensemble.Experts.Count} experts ({ensemble.Experts.Sum(e => ParameterBudget.Of(e).Total):N0} parameters in all)");
        foreach (var shardPath in evalShards)
        {
            using var shard = TokenShard.Open(shardPath);
            var sampler = new BatchSampler(shard, batch, ensemble.Config.ContextLength, 1);
            output.WriteLine($"validation loss on {shardPath} ({batches} x {batch} x {ensemble.Config.ContextLength} tokens):");
            for (int k = 0; k < ensemble.Experts.Count; k++)
                output.WriteLine($"  expert {k + 1} ({a.Positionals[k]}): {Trainer.Evaluate(ensemble.Experts[k], sampler, batches, device):F4}");
            output.WriteLine($"  ensemble: {Trainer.Evaluate(ensemble, sampler, batches, device):F4}");
        }
        return 0;
    }
}
