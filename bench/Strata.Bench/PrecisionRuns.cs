using Strata.Modeling;
using Strata.Runs;
using Strata.Training;

namespace Strata.Bench;

/// <summary>
/// The demo plan (plans/demo.json, both stages, 200 steps; its dataset must exist, e.g. after `./strata demo`) trained
/// from the same seed in fp32 and in bf16: final validation loss and mean training tokens/s of each, and their ratios.
/// The runs go to a temporary folder and are deleted afterwards.
/// </summary>
public static class PrecisionRuns
{
    public static void Run(string[] args)
    {
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var plan = GrowthPlan.Load(Path.Combine(home, "plans", "demo.json"));
        var root = Path.Combine(Path.GetTempPath(), $"strata-bench-precision-{Environment.ProcessId}");
        var results = new List<(Precision Precision, TrainResult Result, double TokensPerSecond)>();
        try
        {
            foreach (var precision in new[] { Precision.Fp32, Precision.Bf16 })
            {
                var dir = Path.Combine(root, precision.ToString().ToLowerInvariant());
                var r = Trainer.Run(plan, new TrainOptions { OutDir = dir, Precision = precision, Log = TextWriter.Null });
                var tokS = File.ReadLines(r.Run.Metrics).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
                    .Where(n => n["kind"]!.GetValue<string>() == "train").Select(n => n["tokens_per_s"]!.GetValue<double>()).Average();
                results.Add((precision, r, tokS));
                Console.WriteLine($"{precision}: validation loss {r.InitialValidationLoss:F4} -> {r.FinalValidationLoss:F4}, {tokS:F0} tokens/s " +
                    "(mean over steps)");
            }
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }
        var (fp32, bf16) = (results[0], results[1]);
        Console.WriteLine();
        Console.WriteLine("| demo plan (200 steps, 2 stages) | final validation loss (nats/token) | training tokens/s |");
        Console.WriteLine("|---|---|---|");
        foreach (var (p, r, tokS) in results) Console.WriteLine($"| {p.ToString().ToLowerInvariant()} | {r.FinalValidationLoss:F4} | {tokS:F0} |");
        Console.WriteLine($"| bf16 / fp32 | {bf16.Result.FinalValidationLoss / fp32.Result.FinalValidationLoss:F4} | " +
            $"{bf16.TokensPerSecond / fp32.TokensPerSecond:F2}x |");
    }
}
