using System.CommandLine;
using Strata.Runs;
using Strata.Training;

namespace Strata.Cli.Commands;

/// <summary>strata grow --checkpoint CKPT --plan PLAN --out DIR: continue a finished run with the plan's stages.</summary>
public static class GrowCommand
{
    public static Command Create(TextWriter output)
    {
        var checkpoint = Opt.Required("--checkpoint", "a finished run's checkpoint.safetensors, or a stage-N.safetensors", "CKPT");
        var plan = Opt.Required("--plan", "the plan whose stages continue it (same model and substrate)", "FILE");
        var outDir = Opt.Required("--out", "the new run folder", "DIR");
        var device = Opt.Device();
        var command = new Command("grow", "continue a finished run (or a stage-N.safetensors) with the plan's stages: growth is open-ended")
            { checkpoint, plan, outDir, device };
        command.SetAction(p =>
        {
            var dev = Devices.Parse(p.GetValue(device));
            var more = GrowthPlan.Load(p.GetValue(plan)!);
            var run = new RunDirectory(p.GetValue(outDir)!);
            var grown = Growth.Prepare(CheckpointPaths.Resolve(p.GetValue(checkpoint)!), more, run.Path, dev);
            output.WriteLine($"{run.Path}: continuing '{grown.Name}' at depth {Checkpoint.ReadInfo(run.Checkpoint).Depth} with {more.Stages.Count} " +
                "more stage(s)");
            using var graceful = Signals.Graceful();
            var r = Trainer.Run(grown, new TrainOptions { OutDir = run.Path, Resume = true, Device = dev, Log = output, Interactive =
                Devices.IsTerminal(output), Stop = Signals.Stop });
            output.WriteLine(r.Summary());
            r.ThrowIfInterrupted();
            return 0;
        });
        return command;
    }
}
