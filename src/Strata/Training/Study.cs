// A comparative study: several plans (regimes) trained on the same data with the same evaluation protocol, each at one
// or more seeds, then one report: the largest active share, tokens, training FLOPs, final held-out loss or bits per
// byte (mean and 95% interval over seeds), the gap of each regime to a baseline regime at equal training compute and at
// equal tokens, throughput and memory; and one PNG of every regime's validation curve against tokens and against FLOPs.
// Twins of chosen regimes given the baseline's FLOPs (more tokens for a constructive regime) answer the question a
// fixed compute budget asks.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Strata.Runs;
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
            : string.Create(CultureInfo.InvariantCulture,
                $"{Mean.ToString(format, CultureInfo.InvariantCulture)}{unit} ± " +
                    $"{HalfWidth.ToString(format.Split(';')[0].TrimStart('+'), CultureInfo.InvariantCulture)}{unit}");
}

/// <summary>A regime over its seeds. Gaps are in percent of the baseline's value, paired by seed index, and compare the
/// two where both had spent the same: at equal training compute the one that spent more is read off its validation
/// curve where it had spent the other's training FLOPs (linearly between evaluations); at equal tokens likewise.</summary>
public sealed record RegimeSummary(string Name, IReadOnlyList<long> ActivePerStage, double ActiveShare, long Tokens, double Flops,
    Interval Final, Interval? GapAtEqualCompute, Interval? GapAtEqualTokens, double TokensPerSecond)
{
    /// <summary>The regime trains a frozen stack under newer blocks in some stage (not monolithic).</summary>
    public bool Constructive { get; init; }
    /// <summary>A twin given the baseline's training FLOPs (study --equal-compute): its stages' steps scaled.</summary>
    public string? EqualComputeOf { get; init; }
}

public sealed record StudyReport(string Baseline, string Unit, IReadOnlyList<RegimeSummary> Regimes, IReadOnlyList<StudyRow> Runs);

/// <summary>How a study runs.</summary>
public sealed record StudyOptions
{
    /// <summary>Seeds per regime: training.seed, +1, +2, ...</summary>
    public int Seeds { get; init; } = 1;
    /// <summary>The regime the others are compared with (a plan's name); the first plan by default.</summary>
    public string? Baseline { get; init; }
    /// <summary>Regimes that also run as twins given the baseline's training FLOPs.</summary>
    public IReadOnlyList<string>? EqualCompute { get; init; }
    /// <summary>Runs trained at once, each in a process of its own started by <see cref="Launch"/> (1: one after another,
    /// in this process). Small models use two cores better as two one-thread runs than as one two-thread run.</summary>
    public int Jobs { get; init; } = 1;
    /// <summary>Starts a training run in another process: (plan file, run folder, resume, console log file, stop) -> its
    /// exit code. The CLI starts 'strata train' with one thread per job.</summary>
    public Func<string, string, bool, string, CancellationToken, Task<int>>? Launch { get; init; }
    public Device Device { get; init; } = CPU;
    public CancellationToken Stop { get; init; }
}

public static class Study
{
    public const string ReportFile = "report.md", JsonFile = "report.json", PlotFile = "loss_curves.png";
    /// <summary>The name of a regime's twin at the baseline's training compute.</summary>
    public const string EqualComputeSuffix = "+equal-flops";

    /// <summary>Trains every plan at <see cref="StudyOptions.Seeds"/> seeds (training.seed, +1, +2, ...; finished runs
    /// are reused, interrupted ones resumed) and writes the report. The baseline is the regime named
    /// <see cref="StudyOptions.Baseline"/>, or the first plan. Each regime named in <see cref="StudyOptions.EqualCompute"/>
    /// also runs as a twin whose stages' steps are scaled to spend the baseline's training FLOPs.</summary>
    public static StudyReport Run(IReadOnlyList<string> planPaths, string outDir, TextWriter log, StudyOptions? options = null)
    {
        var o = options ?? new StudyOptions();
        int seeds = o.Seeds;
        if (planPaths.Count == 0) throw new StrataException("give at least one plan");
        if (seeds is < 1 or > 100) throw new StrataException($"--seeds: 1 to 100, got {seeds}");
        if (o.Jobs is < 1 or > 256) throw new StrataException($"--jobs: 1 to 256, got {o.Jobs}");
        var plans = planPaths.Select(p => GrowthStage.Resolve(GrowthPlan.Load(p), p)).ToList();
        var first = plans[0];
        foreach (var (p, path) in plans.Zip(planPaths).Skip(1))
        {
            if (Json.Compact(p.Data) != Json.Compact(first.Data)) throw new StrataException(
                $"{path}: a study compares regimes on identical data, but its data {Json.Compact(p.Data)} differs from {planPaths[0]}'s " +
                    $"{Json.Compact(first.Data)}");
            if (p.Model.ContextLength != first.Model.ContextLength || p.Training.EvalBatches != first.Training.EvalBatches
                || p.Training.BatchSize != first.Training.BatchSize)
                throw new StrataException(
                    $"{path}: context_length, batch_size and eval_batches must equal {planPaths[0]}'s, so that every regime is evaluated on the same windows");
        }
        var names = plans.Select(p => p.Name).ToList();
        if (names.Distinct().Count() != names.Count) throw new StrataException("every plan in a study needs its own name (each gets a run folder)");
        foreach (var (name, path) in names.Zip(planPaths))
            if (!IsFolderName(name) || name.EndsWith(EqualComputeSuffix, StringComparison.Ordinal))
                throw new StrataException(
                    $"{path}: name: '{name}' cannot name a run folder inside --out (letters, digits, '.', '-', '_', '+', at most {MaxNameLength}, " +
                        $"not '.' or '..', not ending in '{EqualComputeSuffix}')");
        string baseline = o.Baseline ?? names[0];
        if (!names.Contains(baseline)) throw new StrataException($"--baseline: '{baseline}' is not one of the plans' names ({string.Join(", ", names)})");
        var basePlan = plans.Single(p => p.Name == baseline);
        var twins = new Dictionary<string, string>();                                   // twin name -> the regime it doubles
        foreach (var name in o.EqualCompute ?? [])
        {
            if (!names.Contains(name)) throw new StrataException($"--equal-compute: '{name}' is not one of the plans' names ({string.Join(", ", names)})");
            if (name == baseline) throw new StrataException($"--equal-compute: '{name}' is the baseline; its twin would be itself");
            if (twins.ContainsValue(name)) continue;
            var twin = AtComputeOf(plans.Single(p => p.Name == name), basePlan);
            plans.Add(twin);
            twins[twin.Name] = name;
        }
        if (o.Jobs > 1 && o.Launch is null) throw new StrataException(
            "--jobs above 1 runs each training in a process of its own, which this caller cannot start");
        using var studyLock = FolderLock.Acquire(outDir, "strata study");

        var runs = plans.SelectMany(plan => Enumerable.Range(0, seeds).Select(k => (Plan: plan, K: k, Seeded: Seeded(plan, k)))).ToList();
        if (o.Jobs == 1)
            foreach (var r in runs) TrainOne(r.Seeded, RunOf(outDir, r.Seeded, seeds), seeds, o, log);
        else
        {
            using var gate = new SemaphoreSlim(o.Jobs);
            Task.WaitAll(runs.Select(r => Task.Run(async () =>
            {
                await gate.WaitAsync(o.Stop);
                try { await TrainElsewhere(r.Seeded, RunOf(outDir, r.Seeded, seeds), outDir, seeds, o, log); }
                finally { gate.Release(); }
            })).ToArray());
        }
        var rows = runs.Select(r => Row(r.Seeded, r.K, RunOf(outDir, r.Seeded, seeds))).ToList();
        var report = Summarise(plans, rows, baseline, outDir, seeds, twins);
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, ReportFile), Markdown(report, plans));
        AtomicFile.WriteAllText(Path.Combine(outDir, JsonFile), Json.Serialize(report));
        Plot(plans, report, outDir, seeds);
        return report;
    }

    private static string Label(GrowthPlan seeded, int seeds) => seeds == 1 ? seeded.Name : $"{seeded.Name}, seed {seeded.Training.Seed}";

    /// <summary>Whether the run folder holds a run of this very plan (its data as resolved aside): a study that reuses
    /// or resumes a run trained on another plan would report that plan under this one's name.</summary>
    private static bool Started(GrowthPlan seeded, RunDirectory run)
    {
        if (!run.HasCheckpoint) return false;
        run.Recover();
        var stored = Checkpoint.ReadInfo(run.Checkpoint).Plan;
        if (Json.Compact(stored with { Data = seeded.Data }) != Json.Compact(seeded))
            throw new StrataException(
                $"{run.Path} holds a run of another plan than {seeded.Name}'s now (it was changed since): delete that folder to train it again, or " +
                    "study into another --out");
        return true;
    }

    /// <summary>One run, in this process: skipped when complete, resumed when started.</summary>
    private static void TrainOne(GrowthPlan seeded, RunDirectory run, int seeds, StudyOptions o, TextWriter log)
    {
        bool exists = Started(seeded, run);
        if (exists && Checkpoint.ReadInfo(run.Checkpoint).Completed) { log.WriteLine($"== {Label(seeded, seeds)}: already complete in {run.Path}"); return; }
        log.WriteLine($"== {Label(seeded, seeds)}{(exists ? " (resuming)" : "")}");
        var clock = Stopwatch.StartNew();
        Trainer.Run(seeded, new TrainOptions { OutDir = run.Path, Resume = exists, Device = o.Device, Log = log, Stop = o.Stop }).ThrowIfInterrupted();
        log.WriteLine($"   {clock.Elapsed.TotalMinutes:F1} min");
    }

    /// <summary>One run in a process of its own (<see cref="StudyOptions.Launch"/>): its plan written to
    /// DIR/plans/NAME.seed-S.json, its console to its run folder's train.log.</summary>
    private static async Task TrainElsewhere(GrowthPlan seeded, RunDirectory run, string outDir, int seeds, StudyOptions o, TextWriter log)
    {
        bool exists = Started(seeded, run);
        if (exists && Checkpoint.ReadInfo(run.Checkpoint).Completed) { lock (log) log.WriteLine(
            $"== {Label(seeded, seeds)}: already complete in {run.Path}"); return; }
        var planFile = Path.Combine(outDir, "plans", $"{seeded.Name}.seed-{seeded.Training.Seed}.json");
        Directory.CreateDirectory(Path.GetDirectoryName(planFile)!);
        AtomicFile.WriteAllText(planFile, Json.Serialize(seeded));
        Directory.CreateDirectory(run.Path);
        lock (log) log.WriteLine($"== {Label(seeded, seeds)}{(exists ? " (resuming)" : "")}: started, console in {Path.Combine(run.Path, "train.log")}");
        var clock = Stopwatch.StartNew();
        int code = await o.Launch!(planFile, run.Path, exists, Path.Combine(run.Path, "train.log"), o.Stop);
        if (o.Stop.IsCancellationRequested) throw new StrataException(
            $"interrupted; every run saved a checkpoint: continue with the same 'strata study' command");
        if (code != 0) throw new StrataException($"{Label(seeded, seeds)} failed (exit {code}); its console is in {Path.Combine(run.Path, "train.log")}");
        lock (log) log.WriteLine($"== {Label(seeded, seeds)}: {clock.Elapsed.TotalMinutes:F1} min");
    }

    /// <summary>Longest regime name: a twin adds <see cref="EqualComputeSuffix"/> to it, within 100 characters.</summary>
    public const int MaxNameLength = 100 - 12;

    /// <summary><paramref name="plan"/> with every stage's steps scaled by the same factor so that its training FLOPs
    /// come as close as whole steps allow to <paramref name="target"/>'s (the last stage takes the rounding).</summary>
    public static GrowthPlan AtComputeOf(GrowthPlan plan, GrowthPlan target)
    {
        double goal = FlopsAt(target, target.TotalSteps), factor = goal / FlopsAt(plan, plan.TotalSteps);
        var stages = plan.Stages.Select(s => s with { Steps = Math.Max(1, (int)Math.Round(s.Steps * factor)) }).ToList();
        GrowthPlan With(int lastSteps) => plan with
        {
            Name = plan.Name + EqualComputeSuffix,
            Stages = stages.Select((s, i) => i == stages.Count - 1 ? s with { Steps = lastSteps } : s).ToList(),
        };
        int last = stages[^1].Steps;
        double perStep = FlopsAt(With(last + 1), last + 1 + stages.SkipLast(1).Sum(s => (long)s.Steps)) - FlopsAt(With(last), With(last).TotalSteps);
        last = Math.Max(1, last + (int)Math.Round((goal - FlopsAt(With(last), With(last).TotalSteps)) / perStep));
        return With(last);
    }
    /// <summary>The plan at seed index <paramref name="k"/>: training.seed + k (initialisation and batches change together).</summary>
    public static GrowthPlan Seeded(GrowthPlan plan, int k) => k == 0 ? plan : plan with { Training = plan.Training with { Seed = plan.Training.Seed + k } };

    /// <summary>A run's folder: DIR/NAME, or DIR/NAME/seed-S (S its training.seed) when the study has several seeds.</summary>
    public static RunDirectory RunOf(string outDir, GrowthPlan seeded, int seeds) =>
        new(seeds == 1 ? Path.Combine(outDir, seeded.Name) : Path.Combine(outDir, seeded.Name, $"seed-{seeded.Training.Seed}"));

    /// <summary>A plan's name as a folder inside the study: no separators, no "..", nothing that leaves --out.</summary>
    public static bool IsFolderName(string name) =>
        name.Length is > 0 and <= MaxNameLength && name is not ("." or "..") && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '+');

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

    /// <summary>A run's validation curve: (tokens, training FLOPs, loss) at every evaluation, step 0 included.</summary>
    private static List<(double Tokens, double Flops, double Loss)> Curve(GrowthPlan seeded, RunDirectory run)
    {
        double tokensPerStep = (double)seeded.Training.BatchSize * seeded.Model.ContextLength * seeded.Training.GradAccumulation;
        return MetricsLog.Read(run.Metrics).Where(m => m.Kind == "eval").GroupBy(m => m.Step).Select(g => g.Last())
            .Select(m => (m.Step * tokensPerStep, FlopsAt(seeded, m.Step), m.Value)).OrderBy(m => m.Item1).ToList();
    }

    private static StudyReport Summarise(IReadOnlyList<GrowthPlan> plans, IReadOnlyList<StudyRow> rows, string baseline, string outDir, int seeds,
        IReadOnlyDictionary<string, string> twins)
    {
        var basePlan = plans.Single(p => p.Name == baseline);
        var baseRuns = rows.Where(r => r.Name == baseline).OrderBy(r => r.SeedIndex).ToList();
        long baseActive = baseRuns[0].ActivePerStage.Max();
        var baseCurves = baseRuns.Select(r => Curve(Seeded(basePlan, r.SeedIndex), RunOf(outDir, Seeded(basePlan, r.SeedIndex), seeds))).ToList();
        var regimes = new List<RegimeSummary>();
        foreach (var plan in plans)
        {
            var runs = rows.Where(r => r.Name == plan.Name).OrderBy(r => r.SeedIndex).ToList();
            Interval? tokens = null, compute = null;
            if (plan.Name != baseline)
            {
                var curves = runs.Select(r => Curve(Seeded(plan, r.SeedIndex), RunOf(outDir, Seeded(plan, r.SeedIndex), seeds))).ToList();
                compute = Interval.Of(runs.Select(r => Gap(curves[r.SeedIndex], baseCurves[r.SeedIndex], c => c.Flops)).ToList());
                tokens = Interval.Of(runs.Select(r => Gap(curves[r.SeedIndex], baseCurves[r.SeedIndex], c => c.Tokens)).ToList());
            }
            regimes.Add(new RegimeSummary(plan.Name, runs[0].ActivePerStage, (double)runs[0].ActivePerStage.Max() / baseActive, runs[0].Tokens, runs[0].Flops,
                Interval.Of(runs.Select(r => r.Final).ToList()), compute, tokens, runs.Average(r => r.TokensPerSecond))
            {
                Constructive = GrowthStage.All(plan).Any(s => s.Config.Trains == StageTrains.New && s.InsertAt > 0),
                EqualComputeOf = twins.GetValueOrDefault(plan.Name),
            });
        }
        return new StudyReport(baseline, rows.All(r => r.BitsPerByte is not null) ? "bits per byte" : "nats per token", regimes, rows);
    }

    /// <summary>The gap in percent between two runs where both had spent the same (by <paramref name="axis"/>): the one
    /// that went further is read off its curve where the other ended.</summary>
    private static double Gap(List<(double Tokens, double Flops, double Loss)> regime, List<(double Tokens, double Flops, double Loss)> baseline,
        Func<(double Tokens, double Flops, double Loss), double> axis)
    {
        double end = Math.Min(axis(regime[^1]), axis(baseline[^1]));
        return 100 * (LossAt(regime, axis, end) / LossAt(baseline, axis, end) - 1);
    }

    /// <summary>A validation curve's loss at <paramref name="x"/> on <paramref name="axis"/> (linear between evaluations;
    /// the final value past its end).</summary>
    private static double LossAt(IReadOnlyList<(double Tokens, double Flops, double Loss)> curve, Func<(double Tokens, double Flops, double Loss),
        double> axis, double x)
    {
        if (x >= axis(curve[^1])) return curve[^1].Loss;
        int i = 1;
        while (axis(curve[i]) < x) i++;
        var (a, b) = (curve[i - 1], curve[i]);
        return a.Loss + (b.Loss - a.Loss) * (x - axis(a)) / (axis(b) - axis(a));
    }

    private static string Markdown(StudyReport report, IReadOnlyList<GrowthPlan> plans)
    {
        var c = CultureInfo.InvariantCulture;
        int seeds = report.Runs.Max(r => r.SeedIndex) + 1;
        var sb = new StringBuilder();
        string unit = report.Unit;
        sb.AppendLine($"| regime | largest active set / {report.Baseline}'s | tokens | training TFLOPs | final {unit} " +
            $"({(seeds > 1 ? $"mean ± 95% interval, {seeds} seeds" : "1 seed")}) | gap to {report.Baseline} at equal compute | gap at equal tokens " +
                "| active parameters per stage | tokens/s |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in report.Regimes)
            sb.AppendLine(string.Create(c,
                $"| {r.Name} | {100 * r.ActiveShare:F1}% | {r.Tokens:N0} | {r.Flops / 1e12:N2} | {r.Final.Format("F4")} | " +
                    $"{r.GapAtEqualCompute?.Format("+0.00;-0.00", "%") ?? "(baseline)"} | " +
                        $"{r.GapAtEqualTokens?.Format("+0.00;-0.00", "%") ?? "(baseline)"} | " +
                            $"{string.Join(" / ", r.ActivePerStage.Select(a => a.ToString("N0", c)))} | {r.TokensPerSecond:F0} |"));
        sb.AppendLine();
        var constructive = report.Regimes.Where(r => r.Constructive && r.GapAtEqualCompute is not null).ToList();   // (not the baseline)
        if (constructive.Count > 0)
        {
            var best = constructive.MinBy(r => r.GapAtEqualCompute!.Mean)!;
            var bestTokens = constructive.MinBy(r => r.GapAtEqualTokens!.Mean)!;
            sb.AppendLine(string.Create(c,
                $"Best constructive regime at equal compute: {best.Name}, {best.GapAtEqualCompute!.Format("+0.00;-0.00", "%")}; at equal tokens: " +
                    $"{bestTokens.Name}, {bestTokens.GapAtEqualTokens!.Format("+0.00;-0.00", "%")}. Largest active share of any constructive " +
                        $"regime: {100 * constructive.Max(r => r.ActiveShare):F1}%."));
            sb.AppendLine();
        }
        sb.AppendLine($"Every run: {report.Runs.Count} ({plans.Count} regimes x {seeds} seed{(seeds > 1 ? "s" : "")}).");
        sb.AppendLine();
        sb.AppendLine("| regime | seed | final validation loss (nats/token) | bits per byte | tokens/s | peak memory (MiB) | minutes |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in report.Runs)
            sb.AppendLine(string.Create(c,
                $"| {r.Name} | {r.Seed} | {r.FinalValidationLoss:F4} | {(r.BitsPerByte is { } b ? b.ToString("F4", c) : "-")} | " +
                    $"{r.TokensPerSecond:F0} | {r.PeakMemoryMib:F0} | {r.Seconds / 60:F1} |"));
        sb.AppendLine();
        sb.AppendLine($"Data: {string.Join(", ", plans[0].Data.Named().Select(n => $"`{n.Path}`"))}; validation loss = mean over the same " +
            $"{plans[0].Training.EvalBatches} fixed batches of {plans[0].Training.BatchSize} x {plans[0].Model.ContextLength} tokens for every " +
                "regime and seed. Bits per byte = loss x validation tokens / validation UTF-8 bytes / ln 2.");
        sb.AppendLine($"Seeds: training.seed, +1, +2, ... (initialisation and batch order change together); the interval is mean ± t(0.975, n-1) x " +
            $"sd / sqrt(n). Gaps are paired by seed: 100 x (regime / {report.Baseline} - 1) on the loss (the same in bits per byte).");
        sb.AppendLine($"Equal compute: of the two runs, the one that spent more training FLOPs is read off its validation curve (linearly between " +
            $"evaluations) where it had spent the other's; equal tokens likewise. A regime ending in '{EqualComputeSuffix}' is a twin of the " +
                $"regime before the suffix with every stage's steps scaled to spend {report.Baseline}'s training FLOPs. FLOPs per token: a block's " +
                    "forward pass = 2 x 12 d^2 + 4 T d; trained block 3 passes, a frozen block that gradients cross 2, a frozen block below " +
                        "everything that trains 1; head 6 d V; LoRA adapters 6 r (in + out).");
        sb.AppendLine($"Active share: the largest active (trainable) parameter count of any stage, against {report.Baseline}'s, read off the modules.");
        return sb.ToString();
    }

    /// <summary>Two panels, validation loss (bits per byte where known) against training tokens and against training
    /// FLOPs: each regime's mean over seeds as a line of its own colour and pattern, the 95% interval of its seeds shaded.</summary>
    private static void Plot(IReadOnlyList<GrowthPlan> plans, StudyReport report, string outDir, int seeds)
    {
        var palette = new ScottPlot.Palettes.Category10();
        var patterns = new[] { ScottPlot.LinePattern.Solid, ScottPlot.LinePattern.Dashed, ScottPlot.LinePattern.DenselyDashed, ScottPlot.LinePattern.Dotted };
        bool bpb = report.Unit == "bits per byte";
        var panels = new[] { (Title: "against training tokens", X: "training tokens (millions)", Scale: 1e6, Axis: 0), (
            Title: "against training compute", X: "training FLOPs (10^12)", Scale: 1e12, Axis: 1) };
        var plots = panels.Select(_ => new ScottPlot.Plot()).ToArray();
        double top = double.MinValue, bottom = double.MaxValue;
        foreach (var (plan, i) in plans.Select((p, i) => (p, i)))
        {
            double? perByte = report.Runs.First(r => r.Name == plan.Name) is { BitsPerByte: { } b } row ? b / row.FinalValidationLoss : null;
            var curves = Enumerable.Range(0, seeds).Select(k => Curve(Seeded(plan, k), RunOf(outDir, Seeded(plan, k), seeds)).Where(c =>
                c.Tokens > 0).ToList()).ToList();
            int n = curves.Min(c => c.Count);
            if (n == 0) continue;
            var points = Enumerable.Range(0, n).Select(j =>
            {
                var values = curves.Select(c => c[j].Loss * (bpb && perByte is { } f ? f : 1)).ToList();
                var iv = Interval.Of(values);
                return (curves[0][j].Tokens, curves[0][j].Flops, iv.Mean, iv.HalfWidth);
            }).ToList();
            top = Math.Max(top, points[Math.Min(2, n - 1)].Mean);
            bottom = Math.Min(bottom, points.Min(p => p.Mean - p.HalfWidth));
            var color = palette.GetColor(i);
            foreach (var (plot, panel) in plots.Zip(panels))
            {
                double[] x = points.Select(p => (panel.Axis == 0 ? p.Tokens : p.Flops) / panel.Scale).ToArray();
                if (seeds > 1)
                {
                    var band = plot.Add.FillY(x, points.Select(p => p.Mean - p.HalfWidth).ToArray(), points.Select(p => p.Mean + p.HalfWidth).ToArray());
                    band.FillColor = color.WithAlpha(0.18);
                    band.LineWidth = 0;
                }
                var line = plot.Add.ScatterLine(x, points.Select(p => p.Mean).ToArray());
                line.Color = color;
                line.LineWidth = 2;
                line.LinePattern = patterns[i % patterns.Length];
                if (panel.Axis == 1) line.LegendText = plan.Name;
            }
        }
        foreach (var (plot, panel) in plots.Zip(panels))
        {
            plot.Title(seeds > 1 ? $"{panel.Title} (mean of {seeds} seeds, 95% interval shaded)" : panel.Title);
            plot.XLabel(panel.X);
            plot.YLabel(bpb ? "validation bits per byte" : "validation cross-entropy (nats / token)");
            if (top > bottom) plot.Axes.SetLimitsY(bottom - 0.02 * (top - bottom), top);
        }
        plots[1].ShowLegend(ScottPlot.Edge.Right);
        const int height = 640, left = 780, right = 1020;                              // the right panel carries the legend
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(left + right, height));
        surface.Canvas.Clear(SkiaSharp.SKColors.White);
        foreach (var (plot, x, w) in new[] { (plots[0], 0, left), (plots[1], left, right) })
        {
            using var panel = SkiaSharp.SKImage.FromEncodedData(plot.GetImageBytes(w, height, ScottPlot.ImageFormat.Png));
            surface.Canvas.DrawImage(panel, x, 0);
        }
        using var image = surface.Snapshot();
        using var png = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(Path.Combine(outDir, PlotFile), png.ToArray());
    }
}
