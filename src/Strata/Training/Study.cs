// A comparative study: several plans (regimes) trained on the same data with the same evaluation protocol, each at one
// or more seeds, then one report: parameters per stage, tokens, training FLOPs, final held-out loss or bits per byte
// (mean and 95% interval over seeds), the gap of each regime to a baseline regime at equal tokens and at equal training
// compute, throughput and memory; and one PNG of every regime's validation loss against tokens seen.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Strata.Util;
using static TorchSharp.torch;

namespace Strata.Training;

/// <summary>One training run of a study: a regime at one seed.</summary>
public sealed record StudyRow(string Name, int SeedIndex, long Seed, string Substrate, IReadOnlyList<long> ActivePerStage, long TotalParameters,
    double FinalValidationLoss, double? BitsPerByte, double TokensPerSecond, double PeakMemoryMib, double Seconds, long Tokens, double Flops)
{
    /// <summary>Bits per byte where the data says how many bytes a token covers, else nats per token.</summary>
    public double Final => BitsPerByte ?? FinalValidationLoss;
}

/// <summary>A mean over seeds with the half-width of its 95% interval (Student's t; 0 for one seed).</summary>
public sealed record Interval(double Mean, double HalfWidth, int Count)
{
    public static Interval Of(IReadOnlyList<double> values)
    {
        double mean = values.Average();
        if (values.Count < 2) return new(mean, 0, values.Count);
        double sd = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return new(mean, StudentT975(values.Count - 1) * sd / Math.Sqrt(values.Count), values.Count);
    }

    /// <summary>The 0.975 quantile of Student's t with <paramref name="dof"/> degrees of freedom (tables; 1.96 past 30).</summary>
    public static double StudentT975(int dof) => dof switch
    {
        1 => 12.706, 2 => 4.303, 3 => 3.182, 4 => 2.776, 5 => 2.571, 6 => 2.447, 7 => 2.365, 8 => 2.306, 9 => 2.262, 10 => 2.228,
        <= 15 => 2.131, <= 20 => 2.086, <= 30 => 2.042, _ => 1.960,
    };

    public string Format(string format, string unit = "") =>
        Count < 2 ? Mean.ToString(format, CultureInfo.InvariantCulture) + unit
            : string.Create(CultureInfo.InvariantCulture, $"{Mean.ToString(format, CultureInfo.InvariantCulture)}{unit} ± {HalfWidth.ToString(format.Split(';')[0].TrimStart('+'), CultureInfo.InvariantCulture)}{unit}");
}

/// <summary>A regime over its seeds. Gaps are in percent of the baseline's final value, paired by seed index; at equal
/// compute the baseline's value is read off its validation curve where it had spent the regime's training FLOPs.</summary>
public sealed record RegimeSummary(string Name, IReadOnlyList<long> ActivePerStage, double ActiveShare, long Tokens, double Flops,
    Interval Final, Interval? GapAtEqualTokens, Interval? GapAtEqualCompute, double TokensPerSecond);

public sealed record StudyReport(string Baseline, string Unit, IReadOnlyList<RegimeSummary> Regimes, IReadOnlyList<StudyRow> Runs);

public static class Study
{
    public const string ReportFile = "report.md", JsonFile = "report.json", PlotFile = "loss_curves.png";

    /// <summary>Trains every plan at <paramref name="seeds"/> seeds (training.seed, +1, +2, ...; finished runs are
    /// reused, interrupted ones resumed) and writes the report. The baseline is the regime named
    /// <paramref name="baseline"/>, or the first plan.</summary>
    public static StudyReport Run(IReadOnlyList<string> planPaths, string outDir, Device device, TextWriter log, CancellationToken stop = default,
        int seeds = 1, string? baseline = null)
    {
        if (planPaths.Count == 0) throw new StrataException("give at least one plan");
        if (seeds is < 1 or > 100) throw new StrataException($"--seeds: 1 to 100, got {seeds}");
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
        baseline ??= names[0];
        if (!names.Contains(baseline)) throw new StrataException($"--baseline: '{baseline}' is not one of the plans' names ({string.Join(", ", names)})");
        using var studyLock = FolderLock.Acquire(outDir, "strata study");

        var rows = new List<StudyRow>();
        foreach (var plan in plans)
            for (int k = 0; k < seeds; k++)
            {
                var seeded = Seeded(plan, k);
                var run = RunOf(outDir, plan.Name, k, seeds);
                string label = seeds == 1 ? plan.Name : $"{plan.Name}, seed {seeded.Training.Seed}";
                bool exists = run.HasCheckpoint;
                if (exists && Checkpoint.ReadInfo(run.Checkpoint).Completed) log.WriteLine($"== {label}: already complete in {run.Path}");
                else
                {
                    log.WriteLine($"== {label}{(exists ? " (resuming)" : "")}");
                    var clock = Stopwatch.StartNew();
                    Trainer.Run(seeded, new TrainOptions { OutDir = run.Path, Resume = exists, Device = device, Log = log, Stop = stop }).ThrowIfInterrupted();
                    log.WriteLine($"   {clock.Elapsed.TotalMinutes:F1} min");
                }
                rows.Add(Row(seeded, k, run));
            }
        var report = Summarise(plans, rows, baseline, outDir, seeds);
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, ReportFile), Markdown(report, plans));
        AtomicFile.WriteAllText(Path.Combine(outDir, JsonFile), Json.Serialize(report));
        Plot(plans, outDir, seeds);
        return report;
    }

    /// <summary>The plan at seed index <paramref name="k"/>: training.seed + k (initialisation and batches change together).</summary>
    public static GrowthPlan Seeded(GrowthPlan plan, int k) => k == 0 ? plan : plan with { Training = plan.Training with { Seed = plan.Training.Seed + k } };

    /// <summary>A regime's run folder: DIR/NAME, or DIR/NAME/seed-K when the study has several seeds.</summary>
    public static RunDirectory RunOf(string outDir, string name, int k, int seeds) =>
        new(seeds == 1 ? Path.Combine(outDir, name) : Path.Combine(outDir, name, $"seed-{k}"));

    /// <summary>A plan's name as a folder inside the study: no separators, no "..", nothing that leaves --out.</summary>
    public static bool IsFolderName(string name) =>
        name.Length is > 0 and <= 100 && name is not ("." or "..") && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '+');

    /// <summary>
    /// Training FLOPs per token of a stage, counted as the growth benchmark does: a block's forward pass costs
    /// 2 x 12 d^2 (its matrices) + 4 T d (attention scores and mixing); a trained block costs 3 forward passes (forward,
    /// backward to activations and to weights), a frozen block that gradients must cross on their way to a trained
    /// block or adapter below it costs 2, a frozen block below all of them 1; the head 3 x 2 d V; each LoRA adapter
    /// 6 r (in + out).
    /// </summary>
    public static double FlopsPerToken(GrowthPlan plan, int stageIndex)
    {
        var stage = plan.Stages[stageIndex];
        double d = plan.Model.DModel, T = plan.Model.ContextLength, V = plan.Model.VocabSize;
        double forward = 2 * 12 * d * d + 4 * T * d;
        var growth = new GrowthStage(plan, stageIndex);
        int depth = growth.Depth, below = growth.InsertAt;                          // the frozen stack under the trained blocks
        int firstTrained = stage.Trains == StageTrains.All ? 0 : below;
        int firstAdapted = stage.Lora is { } l ? 0 : int.MaxValue;
        int lowestBackward = Math.Min(firstTrained, firstAdapted);
        double flops = 6 * d * V;
        for (int j = 0; j < depth; j++)
            flops += forward * (j >= firstTrained ? 3 : j >= lowestBackward ? 2 : 1);
        if (stage.Lora is { } lora)
        {
            int adapted = lora.Blocks == LoraBlocks.All ? depth : below;
            double perBlock = lora.Targets.Distinct().Sum(t => t switch
            {
                Modeling.LoraTarget.Qkv => d + 3 * d, Modeling.LoraTarget.Fc1 => d + 4 * d, Modeling.LoraTarget.Fc2 => 4 * d + d, _ => d + d,
            });
            flops += 6 * lora.Rank * perBlock * adapted;
        }
        return flops;
    }

    /// <summary>Training FLOPs spent by the end of global step <paramref name="step"/>.</summary>
    public static double FlopsAt(GrowthPlan plan, double step)
    {
        double tokensPerStep = (double)plan.Training.BatchSize * plan.Model.ContextLength * plan.Training.GradAccumulation;
        double flops = 0;
        for (int i = 0; i < plan.Stages.Count && step > 0; i++)
        {
            double steps = Math.Min(step, plan.Stages[i].Steps);
            flops += steps * tokensPerStep * FlopsPerToken(plan, i);
            step -= steps;
        }
        return flops;
    }

    private static StudyRow Row(GrowthPlan plan, int k, RunDirectory run)
    {
        var info = Checkpoint.ReadInfo(run.Checkpoint);
        var stages = MetricsLog.ReadStages(run.Metrics).ToList();
        double seconds = stages.Sum(s => s["seconds"]!.GetValue<double>());
        double loss = info.ValidationLoss ?? double.NaN;
        double? bpb = TokensPerByte(plan) is { } r ? Evaluation.ValidationLoss.BitsPerByte(loss, r) : null;
        return new StudyRow(plan.Name, k, plan.Training.Seed, plan.Substrate.Describe(), stages.Select(s => s["active"]!.GetValue<long>()).ToList(),
            stages.Count > 0 ? stages[^1]["total"]!.GetValue<long>() : 0, loss, bpb, seconds > 0 ? info.TokensSeen / seconds : 0,
            stages.Count > 0 ? stages.Max(s => s["peak_rss_mib"]!.GetValue<double>()) : 0, seconds, info.TokensSeen, FlopsAt(plan, info.GlobalStep));
    }

    private static double? TokensPerByte(GrowthPlan plan)
    {
        var datasets = plan.Data.Open();
        try { return datasets.Count == 1 ? datasets[0].Dataset.ValidationTokensPerByte : null; }
        finally { foreach (var (_, d) in datasets) d.Dispose(); }
    }

    private static StudyReport Summarise(IReadOnlyList<GrowthPlan> plans, IReadOnlyList<StudyRow> rows, string baseline, string outDir, int seeds)
    {
        var basePlan = plans.Single(p => p.Name == baseline);
        var baseRuns = rows.Where(r => r.Name == baseline).OrderBy(r => r.SeedIndex).ToList();
        long baseActive = baseRuns[0].ActivePerStage.Max();
        // the baseline's validation curve per seed, against the training FLOPs spent
        var baseCurves = baseRuns.Select(r => MetricsLog.Read(RunOf(outDir, baseline, r.SeedIndex, seeds).Metrics)
            .Where(m => m.Kind == "eval").Select(m => (Flops: FlopsAt(Seeded(basePlan, r.SeedIndex), m.Step), Loss: m.Value)).OrderBy(m => m.Flops).ToList()).ToList();
        var regimes = new List<RegimeSummary>();
        foreach (var plan in plans)
        {
            var runs = rows.Where(r => r.Name == plan.Name).OrderBy(r => r.SeedIndex).ToList();
            Interval? tokens = null, compute = null;
            if (plan.Name != baseline)
            {
                tokens = Interval.Of(runs.Select(r => 100 * (r.FinalValidationLoss / baseRuns[r.SeedIndex].FinalValidationLoss - 1)).ToList());
                compute = Interval.Of(runs.Select(r => 100 * (r.FinalValidationLoss / LossAt(baseCurves[r.SeedIndex], r.Flops) - 1)).ToList());
            }
            regimes.Add(new RegimeSummary(plan.Name, runs[0].ActivePerStage, (double)runs[0].ActivePerStage.Max() / baseActive, runs[0].Tokens, runs[0].Flops,
                Interval.Of(runs.Select(r => r.Final).ToList()), tokens, compute, runs.Average(r => r.TokensPerSecond)));
        }
        return new StudyReport(baseline, rows.All(r => r.BitsPerByte is not null) ? "bits per byte" : "nats per token", regimes, rows);
    }

    /// <summary>A validation curve's loss where <paramref name="flops"/> had been spent (linear between evaluations;
    /// the final value past its end).</summary>
    private static double LossAt(IReadOnlyList<(double Flops, double Loss)> curve, double flops)
    {
        if (flops >= curve[^1].Flops) return curve[^1].Loss;
        int i = 1;
        while (curve[i].Flops < flops) i++;
        var (a, b) = (curve[i - 1], curve[i]);
        return a.Loss + (b.Loss - a.Loss) * (flops - a.Flops) / (b.Flops - a.Flops);
    }

    private static string Markdown(StudyReport report, IReadOnlyList<GrowthPlan> plans)
    {
        var c = CultureInfo.InvariantCulture;
        int seeds = report.Runs.Max(r => r.SeedIndex) + 1;
        var sb = new StringBuilder();
        string unit = report.Unit;
        sb.AppendLine($"| regime | active parameters per stage | largest active set / {report.Baseline}'s | tokens | training TFLOPs | final {unit} ({(seeds > 1 ? $"mean ± 95% interval, {seeds} seeds" : "1 seed")}) | gap to {report.Baseline}, equal tokens | gap, equal compute | tokens/s |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in report.Regimes)
            sb.AppendLine(string.Create(c, $"| {r.Name} | {string.Join(" / ", r.ActivePerStage.Select(a => a.ToString("N0", c)))} | {100 * r.ActiveShare:F0}% | {r.Tokens:N0} | {r.Flops / 1e12:N1} | {r.Final.Format("F4")} | {r.GapAtEqualTokens?.Format("+0.00;-0.00", "%") ?? "(baseline)"} | {r.GapAtEqualCompute?.Format("+0.00;-0.00", "%") ?? "(baseline)"} | {r.TokensPerSecond:F0} |"));
        sb.AppendLine();
        sb.AppendLine($"Every run: {report.Runs.Count} ({plans.Count} regimes x {seeds} seed{(seeds > 1 ? "s" : "")}).");
        sb.AppendLine();
        sb.AppendLine("| regime | seed | final validation loss (nats/token) | bits per byte | tokens/s | peak memory (MiB) | minutes |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in report.Runs)
            sb.AppendLine(string.Create(c, $"| {r.Name} | {r.Seed} | {r.FinalValidationLoss:F4} | {(r.BitsPerByte is { } b ? b.ToString("F4", c) : "-")} | {r.TokensPerSecond:F0} | {r.PeakMemoryMib:F0} | {r.Seconds / 60:F1} |"));
        sb.AppendLine();
        sb.AppendLine($"Data: {string.Join(", ", plans[0].Data.Named().Select(n => $"`{n.Path}`"))}; validation loss = mean over the same {plans[0].Training.EvalBatches} fixed batches of {plans[0].Training.BatchSize} x {plans[0].Model.ContextLength} tokens for every regime and seed. Bits per byte = loss x validation tokens / validation UTF-8 bytes / ln 2.");
        sb.AppendLine($"Seeds: training.seed, +1, +2, ... (initialisation and batch order change together); the interval is mean ± t(0.975, n-1) x sd / sqrt(n). Gaps are paired by seed: 100 x (regime / {report.Baseline} - 1) on the final loss (the same in bits per byte).");
        sb.AppendLine($"Equal compute: the {report.Baseline} run's validation loss read (linearly between evaluations) where it had spent the regime's training FLOPs, which is before its learning-rate schedule ended. FLOPs per token: a block's forward pass = 2 x 12 d^2 + 4 T d; trained block 3 passes, a frozen block that gradients cross 2, a frozen block below everything that trains 1; head 6 d V; LoRA adapters 6 r (in + out).");
        return sb.ToString();
    }

    private static void Plot(IReadOnlyList<GrowthPlan> plans, string outDir, int seeds)
    {
        var plot = new ScottPlot.Plot();
        foreach (var plan in plans)
        {
            long tokensPerStep = (long)plan.Training.BatchSize * plan.Model.ContextLength * plan.Training.GradAccumulation;
            var curves = Enumerable.Range(0, seeds).Select(k => MetricsLog.Read(RunOf(outDir, plan.Name, k, seeds).Metrics)
                .Where(r => r.Kind == "eval" && r.Step > 0).ToDictionary(r => r.Step, r => r.Value)).ToList();
            var steps = curves[0].Keys.Where(s => curves.All(c => c.ContainsKey(s))).Order().ToArray();
            var line = plot.Add.ScatterLine(steps.Select(s => s * (double)tokensPerStep / 1e6).ToArray(), steps.Select(s => curves.Average(c => c[s])).ToArray());
            line.LegendText = plan.Name;
            foreach (var s in MetricsLog.ReadStages(RunOf(outDir, plan.Name, 0, seeds).Metrics).SkipLast(1))
            {
                var v = plot.Add.VerticalLine(s["step"]!.GetValue<long>() * (double)tokensPerStep / 1e6);
                v.LinePattern = ScottPlot.LinePattern.Dotted;
                v.Color = line.Color;
            }
        }
        plot.Title(seeds > 1 ? $"validation loss by regime, mean of {seeds} seeds (dotted: stage boundaries)" : "validation loss by regime (dotted: stage boundaries)");
        plot.XLabel("training tokens (millions)");
        plot.YLabel("validation cross-entropy (nats / token)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(outDir, PlotFile), plot.GetImageBytes(1000, 560, ScottPlot.ImageFormat.Png));
    }
}
