using Strata.Modeling;
using Strata.Runs;
using Strata.Training;

namespace Strata.Bench;

/// <summary>
/// The demo plan (plans/demo.json, both stages, 200 steps; its dataset must exist, e.g. after `./strata demo`) trained
/// from the same seed in fp32 and in bf16: final validation loss and mean training tokens/s of each, and their ratios.
/// --seeds S,S,... repeats the pair at each seed (the plan's own by default) and adds the means: the demo's final loss
/// moves by about 2% from one seed to another in either precision, as much as the agreement it is read for.
/// The runs go to a temporary folder and are deleted afterwards.
///   Strata.Bench precision [--seeds 1337,7,3]
/// </summary>
public static class PrecisionRuns
{
    public static void Run(string[] args)
    {
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var plan = GrowthPlan.Load(Path.Combine(home, "plans", "demo.json"));
        var seeds = args.SkipWhile(a => a != "--seeds").Skip(1).FirstOrDefault()?.Split(',').Select(long.Parse).ToList() ?? [plan.Training.Seed];
        var root = Path.Combine(Path.GetTempPath(), $"strata-bench-precision-{Environment.ProcessId}");
        var results = new List<Reading>();
        try
        {
            foreach (var seed in seeds)
                foreach (var precision in new[] { Precision.Fp32, Precision.Bf16 })
                {
                    var dir = Path.Combine(root, $"{seed}-{precision.ToString().ToLowerInvariant()}");
                    var seeded = plan with { Training = plan.Training with { Seed = seed } };
                    var r = Trainer.Run(seeded, new TrainOptions { OutDir = dir, Precision = precision, Log = TextWriter.Null });
                    var tokS = File.ReadLines(r.Run.Metrics).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
                        .Where(n => n["kind"]!.GetValue<string>() == "train").Select(n => n["tokens_per_s"]!.GetValue<double>()).Average();
                    double loss = r.FinalValidationLoss ?? throw new InvalidOperationException("the demo run measured no validation loss");
                    results.Add(new Reading(seed, precision, loss, tokS));
                    Console.WriteLine($"seed {seed}, {precision}: validation loss {r.InitialValidationLoss:F4} -> {loss:F4}, " +
                        $"{tokS:F0} tokens/s (mean over steps)");
                }
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }
        Console.WriteLine();
        Console.WriteLine("| demo plan (200 steps, 2 stages) | fp32 final validation loss | bf16 | bf16 against fp32 | fp32 tokens/s | bf16 | bf16 / fp32 |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        void Row(string name, IEnumerable<Reading> readings)
        {
            double Loss(Precision p) => readings.Where(x => x.Precision == p).Average(x => x.Loss);
            double TokS(Precision p) => readings.Where(x => x.Precision == p).Average(x => x.TokensPerSecond);
            var (fp32, bf16) = (Loss(Precision.Fp32), Loss(Precision.Bf16));
            Console.WriteLine($"| {name} | {fp32:F4} | {bf16:F4} | {100 * (bf16 / fp32 - 1):+0.00;-0.00}% " +
                $"| {TokS(Precision.Fp32):F0} | {TokS(Precision.Bf16):F0} | {TokS(Precision.Bf16) / TokS(Precision.Fp32):F2}x |");
        }
        foreach (var seed in seeds) Row($"seed {seed}", results.Where(x => x.Seed == seed));
        if (seeds.Count > 1) Row("mean", results);
    }

    private sealed record Reading(long Seed, Precision Precision, double Loss, double TokensPerSecond);
}
