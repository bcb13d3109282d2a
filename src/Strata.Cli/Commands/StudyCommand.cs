using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Strata.Training;
using Strata.Util;

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
        var equalCompute = Opt.Text("--equal-compute",
            "also run these regimes (plan names, comma-separated) with their stages' steps scaled to the baseline's training FLOPs", "NAME[,NAME]");
        var jobs = Opt.Int("--jobs", 1,
            "runs trained at once, each a 'strata train' process with cores / jobs threads (1: one after another in this process; results depend " +
                "on the thread count)");
        var device = Opt.Device();
        var command = new Command("study", "train several regimes on identical data and protocol at one or more seeds; report.md, report.json, loss_curves.png")
            { plans, outDir, seeds, baseline, equalCompute, jobs, device };
        command.SetAction(p =>
        {
            var dir = p.GetValue(outDir)!;
            using var graceful = Signals.Graceful();
            int n = p.GetValue(jobs);
            var deviceName = p.GetValue(device)!;
            var report = Study.Run(p.GetValue(plans)!, dir, output, new StudyOptions
            {
                Seeds = p.GetValue(seeds), Baseline = p.GetValue(baseline), Jobs = n, Device = Devices.Parse(deviceName), Stop = Signals.Stop,
                EqualCompute = p.GetValue(equalCompute)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Launch = (plan, run, resume, console, stop) => Launch(plan, run, resume, console, Math.Max(1, Environment.ProcessorCount / Math.Max(
                    1, n)), deviceName, stop),
            });
            output.WriteLine();
            output.WriteLine(File.ReadAllText(Path.Combine(dir, Study.ReportFile)));
            output.WriteLine($"{dir}: {Study.ReportFile}, {Study.JsonFile}, {Study.PlotFile} ({report.Regimes.Count} regimes, {report.Runs.Count} runs)");
            return 0;
        });
        return command;
    }

    /// <summary>'strata train --plan PLAN --out RUN [--resume] --threads N' in a process of its own, its console to a
    /// file; a stop request reaches it as SIGTERM (it finishes its step and writes a checkpoint).</summary>
    private static async Task<int> Launch(string plan, string run, bool resume, string console, int threads, string device, CancellationToken stop)
    {
        var self = Environment.ProcessPath ?? throw new StrataException("cannot tell which program is running to start it again");
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(StudyCommand).Assembly.Location);
        foreach (var a in new[] { "train", "--plan", plan, "--out", run, "--threads", threads.ToString(), "--device", device }.Concat(resume
            ? ["--resume"] : []))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        await using var log = new StreamWriter(console, append: true) { AutoFlush = true };
        var pumps = new[] { Pump(p.StandardOutput, log), Pump(p.StandardError, log) };
        using (stop.Register(() => { try { Kill(p.Id, 15); } catch (Exception) { } }))
            await p.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAll(pumps);
        return p.ExitCode;
    }

    private static async Task Pump(StreamReader from, StreamWriter to)
    {
        while (await from.ReadLineAsync() is { } line)
            lock (to) to.WriteLine(line);
    }

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
