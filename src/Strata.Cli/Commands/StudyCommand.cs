using System.CommandLine;
using Strata.Training;

namespace Strata.Cli.Commands;

/// <summary>strata study PLAN... --out DIR: train regimes on identical data and protocol, then report.</summary>
public static class StudyCommand
{
    public static Command Create(TextWriter output)
    {
        var plans = Opt.Many("PLAN", "the regimes' plans (same data, context, batch size and evaluation batches)");
        var outDir = Opt.Required("--out", "the study folder: one run folder per plan, report.md, report.json, loss_curves.png", "DIR");
        var device = Opt.Device();
        var command = new Command("study", "train several regimes on identical data and protocol; report.md, report.json, loss_curves.png") { plans, outDir, device };
        command.SetAction(p =>
        {
            var dir = p.GetValue(outDir)!;
            using var graceful = Signals.Graceful();
            var rows = Study.Run(p.GetValue(plans)!, dir, Devices.Parse(p.GetValue(device)), output, Signals.Stop);
            output.WriteLine();
            output.WriteLine(File.ReadAllText(Path.Combine(dir, Study.ReportFile)));
            output.WriteLine($"{dir}: {Study.ReportFile}, {Study.JsonFile}, {Study.PlotFile} ({rows.Count} regimes)");
            return 0;
        });
        return command;
    }
}
