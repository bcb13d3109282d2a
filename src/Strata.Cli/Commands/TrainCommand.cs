using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class TrainCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var planPath = a.Get("plan");
        var outDir = a.Require("out");
        bool resume = a.Flag("resume");
        var initFrom = a.Get("init-from");
        long stopAfter = a.Long("stop-after", -1);
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        GrowthPlan plan;
        if (planPath is not null) plan = GrowthPlan.Load(planPath);
        else if (resume) plan = Checkpoint.ReadInfo(Path.Combine(outDir, Checkpoint.FileName)).Plan;
        else throw new StrataException("--plan is required (or --resume with --out of an existing run)");
        var r = Trainer.Run(plan, new TrainOptions
        {
            OutDir = outDir, Resume = resume, InitFrom = initFrom, StopAfterStep = stopAfter > 0 ? stopAfter : null,
            Device = device, Log = output, Interactive = Devices.IsTerminal(output),
        });
        Report(r, output);
        return 0;
    }

    public static void Report(TrainResult r, TextWriter output)
    {
        output.WriteLine($"{(r.Completed ? "finished" : "stopped")} at step {r.GlobalStep}: validation loss {Fmt(r.InitialValidationLoss)} -> {Fmt(r.FinalValidationLoss)} nats/token" +
                         (r.BitsPerByte(r.FinalValidationLoss) is { } bpb ? $" ({Fmt(r.BitsPerByte(r.InitialValidationLoss))} -> {bpb:F4} bits/byte)" : "") + $", {r.TokensPerSecond:F0} tokens/s");
        output.WriteLine($"  checkpoint {r.CheckpointPath}\n  metrics    {r.MetricsPath}" + (r.Completed ? $"\n  loss curve {r.LossCurvePath}" : ""));
    }

    private static string Fmt(double? v) => v is { } x ? x.ToString("F4") : "-";
}
