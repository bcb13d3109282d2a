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
        var seeds = Opt.Int("--seeds", 1, "train every regime at this many seeds (training.seed, +1, ...): means and 95% intervals");
        var baseline = Opt.Text("--baseline", "the regime the others are compared with (a plan's name; the first plan by default)", "NAME");
        var device = Opt.Device();
        var command = new Command("study", "train several regimes on identical data and protocol at one or more seeds; report.md, report.json, loss_curves.png")
            { plans, outDir, seeds, baseline, device };
        command.SetAction(p =>
        {
            var dir = p.GetValue(outDir)!;
            using var graceful = Signals.Graceful();
            var report = Study.Run(p.GetValue(plans)!, dir, Devices.Parse(p.GetValue(device)), output, Signals.Stop, p.GetValue(seeds), p.GetValue(baseline));
            output.WriteLine();
            output.WriteLine(File.ReadAllText(Path.Combine(dir, Study.ReportFile)));
            output.WriteLine($"{dir}: {Study.ReportFile}, {Study.JsonFile}, {Study.PlotFile} ({report.Regimes.Count} regimes, {report.Runs.Count} runs)");
            return 0;
        });
        return command;
    }
}
