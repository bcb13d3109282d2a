using Strata.Training;

namespace Strata.Cli.Commands;

/// <summary>strata study PLAN... --out DIR: train regimes on identical data and protocol, then report.</summary>
public static class StudyCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var outDir = a.Require("out");
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        var rows = Study.Run(a.Positionals, outDir, device, output);
        output.WriteLine();
        output.WriteLine(File.ReadAllText(Path.Combine(outDir, "report.md")));
        output.WriteLine($"{outDir}: report.md, report.json, loss_curves.png ({rows.Count} regimes)");
        return 0;
    }
}
