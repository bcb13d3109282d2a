// A comparative study: several plans (regimes) trained on the same data with the same evaluation protocol, then
// one report: parameters per stage, final validation loss and bits per byte, throughput, peak memory, and one PNG of
// every regime's validation loss against tokens seen, stage boundaries marked.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Strata.Util;
using static TorchSharp.torch;

namespace Strata.Training;

public sealed record StudyRow(string Name, string Substrate, IReadOnlyList<long> ActivePerStage, long TotalParameters, double FinalValidationLoss,
    double? BitsPerByte, double TokensPerSecond, double PeakMemoryMib, double Seconds, long Tokens);

public static class Study
{
    public const string ReportFile = "report.md", JsonFile = "report.json", PlotFile = "loss_curves.png";

    public static IReadOnlyList<StudyRow> Run(IReadOnlyList<string> planPaths, string outDir, Device device, TextWriter log, CancellationToken stop = default)
    {
        if (planPaths.Count == 0) throw new StrataException("give at least one plan");
        var plans = planPaths.Select(GrowthPlan.Load).ToList();
        var first = plans[0];
        foreach (var (p, path) in plans.Zip(planPaths).Skip(1))
        {
            if (Json.Compact(p.Data) != Json.Compact(first.Data)) throw new StrataException($"{path}: a study compares regimes on identical data, but its data {Json.Compact(p.Data)} differs from {planPaths[0]}'s {Json.Compact(first.Data)}");
            if (p.Model.ContextLength != first.Model.ContextLength || p.Training.EvalBatches != first.Training.EvalBatches || p.Training.BatchSize != first.Training.BatchSize)
                throw new StrataException($"{path}: context_length, batch_size and eval_batches must equal {planPaths[0]}'s, so that every regime is evaluated on the same windows");
        }
        var names = plans.Select(p => p.Name).ToList();
        if (names.Distinct().Count() != names.Count) throw new StrataException("every plan in a study needs its own name (each gets a run folder)");
        foreach (var (name, path) in names.Zip(planPaths))
            if (!IsFolderName(name))
                throw new StrataException($"{path}: name: '{name}' cannot name a run folder inside --out (letters, digits, '.', '-', '_', '+', at most 100, not '.' or '..')");
        using var studyLock = FolderLock.Acquire(outDir, "strata study");

        var rows = new List<StudyRow>();
        foreach (var plan in plans)
        {
            var run = new RunDirectory(Path.Combine(outDir, plan.Name));
            bool exists = run.HasCheckpoint;
            if (exists && Checkpoint.ReadInfo(run.Checkpoint).Completed) log.WriteLine($"== {plan.Name}: already complete in {run.Path}");
            else
            {
                log.WriteLine($"== {plan.Name}{(exists ? " (resuming)" : "")}");
                var clock = Stopwatch.StartNew();
                Trainer.Run(plan, new TrainOptions { OutDir = run.Path, Resume = exists, Device = device, Log = log, Stop = stop }).ThrowIfInterrupted();
                log.WriteLine($"   {clock.Elapsed.TotalMinutes:F1} min");
            }
            rows.Add(Row(plan, run));
        }
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, ReportFile), Markdown(rows, plans));
        AtomicFile.WriteAllText(Path.Combine(outDir, JsonFile), Json.Serialize(rows));
        Plot(plans, outDir);
        return rows;
    }

    /// <summary>A plan's name as a folder inside the study: no separators, no "..", nothing that leaves --out.</summary>
    public static bool IsFolderName(string name) =>
        name.Length is > 0 and <= 100 && name is not ("." or "..") && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '+');

    private static StudyRow Row(GrowthPlan plan, RunDirectory run)
    {
        var metrics = run.Metrics;
        var info = Checkpoint.ReadInfo(run.Checkpoint);
        var stages = MetricsLog.ReadStages(metrics).ToList();
        double seconds = stages.Sum(s => s["seconds"]!.GetValue<double>());
        long tokens = info.TokensSeen;
        double loss = info.ValidationLoss ?? double.NaN;
        double? tokensPerByte;
        var datasets = plan.Data.Open();
        try { tokensPerByte = datasets.Count == 1 ? datasets[0].Dataset.ValidationTokensPerByte : null; }
        finally { foreach (var (_, d) in datasets) d.Dispose(); }
        double? bpb = tokensPerByte is { } r ? Evaluation.ValidationLoss.BitsPerByte(loss, r) : null;
        return new StudyRow(plan.Name, plan.Substrate.Describe(), stages.Select(s => s["active"]!.GetValue<long>()).ToList(),
            stages.Count > 0 ? stages[^1]["total"]!.GetValue<long>() : 0, loss, bpb, seconds > 0 ? tokens / seconds : 0,
            stages.Count > 0 ? stages.Max(s => s["peak_rss_mib"]!.GetValue<double>()) : 0, seconds, tokens);
    }

    private static string Markdown(IReadOnlyList<StudyRow> rows, IReadOnlyList<GrowthPlan> plans)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| regime | substrate | active parameters per stage | total parameters | tokens | final validation loss (nats/token) | bits per byte | tokens/s | peak memory (MiB) | minutes |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(c, $"| {r.Name} | {r.Substrate} | {string.Join(" / ", r.ActivePerStage.Select(a => a.ToString("N0", c)))} | {r.TotalParameters:N0} | {r.Tokens:N0} | {r.FinalValidationLoss:F4} | {(r.BitsPerByte is { } b ? b.ToString("F4", c) : "-")} | {r.TokensPerSecond:F0} | {r.PeakMemoryMib:F0} | {r.Seconds / 60:F1} |"));
        sb.AppendLine();
        sb.AppendLine($"Data: {string.Join(", ", plans[0].Data.Named().Select(n => $"`{n.Path}`"))}; validation loss = mean over the same {plans[0].Training.EvalBatches} fixed batches of {plans[0].Training.BatchSize} x {plans[0].Model.ContextLength} tokens for every regime. Bits per byte = loss x validation tokens / validation UTF-8 bytes / ln 2. Peak memory is the process's resident high-water mark during the run (reset at each stage); freed tensor memory is kept by the allocator, so it shows the largest step rather than what a stage needs.");
        return sb.ToString();
    }

    private static void Plot(IReadOnlyList<GrowthPlan> plans, string outDir)
    {
        var plot = new ScottPlot.Plot();
        foreach (var plan in plans)
        {
            var metrics = new RunDirectory(Path.Combine(outDir, plan.Name)).Metrics;
            long tokensPerStep = (long)plan.Training.BatchSize * plan.Model.ContextLength * plan.Training.GradAccumulation;
            var evals = MetricsLog.Read(metrics).Where(r => r.Kind == "eval" && r.Step > 0).ToList();
            var line = plot.Add.ScatterLine(evals.Select(e => e.Step * (double)tokensPerStep / 1e6).ToArray(), evals.Select(e => e.Value).ToArray());
            line.LegendText = plan.Name;
            foreach (var s in MetricsLog.ReadStages(metrics).SkipLast(1))
            {
                var v = plot.Add.VerticalLine(s["step"]!.GetValue<long>() * (double)tokensPerStep / 1e6);
                v.LinePattern = ScottPlot.LinePattern.Dotted;
                v.Color = line.Color;
            }
        }
        plot.Title("validation loss by regime (dotted: stage boundaries)");
        plot.XLabel("training tokens (millions)");
        plot.YLabel("validation cross-entropy (nats / token)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(outDir, PlotFile), plot.GetImageBytes(1000, 560, ScottPlot.ImageFormat.Png));
    }
}
