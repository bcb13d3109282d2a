using Strata.Util;
using static TorchSharp.torch;

namespace Strata.Runs;

/// <summary>Open-ended growth: a finished (or stage-boundary) checkpoint continued with more stages.</summary>
public static class Growth
{
    /// <summary>Writes into <paramref name="outDir"/> a checkpoint of <paramref name="checkpoint"/>'s model whose plan is
    /// the old stages followed by <paramref name="more"/>'s, positioned at the end of the old last stage, so that
    /// <c>Trainer.Run(..., Resume = true)</c> starts the first new stage. The model shape and substrate must agree.</summary>
    public static GrowthPlan Prepare(string checkpoint, GrowthPlan more, string outDir, Device? device = null)
    {
        var info = Checkpoint.ReadInfo(checkpoint);
        var old = info.Plan;
        if (old.Model != more.Model)
            throw new StrataException($"the plan's model {Json.Compact(more.Model)} differs from the checkpoint's {Json.Compact(old.Model)} ({checkpoint})");
        if (old.Substrate != more.Substrate)
            throw new StrataException(
                $"the plan's substrate {Json.Compact(more.Substrate)} differs from the checkpoint's {Json.Compact(old.Substrate)} ({checkpoint})");
        if (more.Substrate.Kind == Substrates.SubstrateKind.File && info.SubstrateHash is { } trained)
        {
            using var file = Substrates.SubstrateFile.Read(more.Substrate.Path!);
            Substrates.SubstrateIdentity.Require(trained, checkpoint, file.Hash, more.Substrate.Path!);
        }
        if (info.StageStep < old.Stages[info.StageIndex].Steps)
            throw new StrataException(
                $"{checkpoint}: stage {info.StageIndex + 1} is not finished ({info.StageStep}/{old.Stages[info.StageIndex].Steps} steps); resume " +
                    "it first, or grow from a stage-N.safetensors");
        var run = new RunDirectory(outDir);
        if (run.HasCheckpoint) throw new StrataException($"{outDir} already holds a checkpoint: choose another --out");
        var stages = old.Stages.Take(info.StageIndex + 1).Concat(more.Stages).ToList();
        var grown = more with { Stages = stages };
        grown = GrowthStage.Resolve(grown.Validate("grown plan"), "grown plan");
        var (model, _) = Checkpoint.LoadModel(checkpoint, device);
        using (model)
            Checkpoint.Save(run.Checkpoint, model, null, info with { Plan = grown, Completed = false });
        var metrics = RunDirectory.Of(checkpoint).Metrics;
        if (File.Exists(metrics)) AtomicFile.Copy(metrics, run.Metrics);
        return grown;
    }
}
