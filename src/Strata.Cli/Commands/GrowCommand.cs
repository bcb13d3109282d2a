using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

/// <summary>strata grow --checkpoint CKPT --plan PLAN --out DIR: continue a finished run with the plan's stages.</summary>
public static class GrowCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var ckpt = a.Require("checkpoint");
        var plan = GrowthPlan.Load(a.Require("plan"));
        var outDir = a.Require("out");
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        var grown = Growth.Prepare(ckpt, plan, outDir, device);
        output.WriteLine($"{outDir}: continuing '{grown.Name}' at depth {Checkpoint.ReadInfo(Path.Combine(outDir, Checkpoint.FileName)).Depth} with {plan.Stages.Count} more stage(s)");
        var r = Trainer.Run(grown, new TrainOptions
        {
            OutDir = outDir, Resume = true, Device = device, Log = output,
            Interactive = Devices.IsTerminal(output),
        });
        TrainCommand.Report(r, output);
        return 0;
    }
}
