using System.Diagnostics;
using System.Text.Json;
using Strata.Distributed;
using Strata.Modeling;
using Strata.Optim;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Bench;

/// <summary>
/// `distributed`: what data parallelism communicates and costs. At paper scale, computed from the plans: gradient
/// bytes all-reduced per step by the monolithic model and by each constructive stage (only the active set trains, so
/// only it is reduced). At the demo shape (d 128, 4 blocks, T 128, B 16, V 65,536), measured: 2 ranks x 1 thread
/// (mpirun) against 1 rank x 2 threads, alternating runs, the median of --rounds of each; per configuration (monolithic:
/// 4 blocks trained; constructive stage 2: 2 frozen + 2 trained) tokens/s, bytes all-reduced per step and the share of
/// step time spent in collectives. `distributed-worker` is one such run (started by the benchmark).
/// </summary>
public static class DataParallel
{
    private const int D = 128, Blocks = 4, T = 128, B = 16, V = 65536;

    public sealed record Measured(string Config, long Active, double TokensPerSecond, double BytesPerStep, double CommShare);

    public static void Run(string[] args)
    {
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(3);
        PaperScale();
        var results = new Dictionary<string, List<List<Measured>>> { ["2 ranks x 1 thread"] = new(), ["1 rank x 2 threads"] = new() };
        for (int round = 1; round <= rounds; round++)
            foreach (var setup in results.Keys)
            {
                var r = Worker(ranks: setup.StartsWith('2') ? 2 : 1);
                results[setup].Add(r);
                Console.WriteLine($"round {round}, {setup}: " + string.Join(", ", r.Select(m => $"{m.Config} {m.TokensPerSecond:F0} tok/s")));
            }
        Console.WriteLine();
        Console.WriteLine($"demo shape (d {D}, {Blocks} blocks, T {T}, B {B} in all, V {V:N0}), median of {rounds} alternating runs:");
        Console.WriteLine("| setup | configuration | active parameters | tokens/s | bytes all-reduced per step | communication share of step time |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var median = results.ToDictionary(kv => kv.Key, kv => kv.Value[0].Select((m, i) => m with
        {
            TokensPerSecond = Readings.Median(kv.Value.Select(r => r[i].TokensPerSecond)),
            BytesPerStep = Readings.Median(kv.Value.Select(r => r[i].BytesPerStep)),
            CommShare = Readings.Median(kv.Value.Select(r => r[i].CommShare)),
        }).ToList());
        foreach (var (setup, rows) in median)
            foreach (var m in rows)
                Console.WriteLine($"| {setup} | {m.Config} | {m.Active:N0} | {m.TokensPerSecond:F0} | " +
                    $"{(m.BytesPerStep > 0 ? $"{m.BytesPerStep / 1048576:F2} MiB" : "0")} | {100 * m.CommShare:F1}% |");
        for (int i = 0; i < median.First().Value.Count; i++)
        {
            var (two, one) = (median["2 ranks x 1 thread"][i], median["1 rank x 2 threads"][i]);
            Console.WriteLine($"{two.Config}: 2 ranks x 1 thread / 1 rank x 2 threads = {two.TokensPerSecond / one.TokensPerSecond:F2}x tokens/s");
        }
    }

    /// <summary>Gradient bytes per step at the paper's scale (fp32 gradients of every trainable parameter).</summary>
    private static void PaperScale()
    {
        var plans = new[] { "paper-9L-monolithic-frozen-16bit.json", "paper-9L-constructive-16bit.json" };
        Console.WriteLine("paper scale (plans/), fp32 gradients of the active set, all-reduced once per optimizer step:");
        Console.WriteLine("| plan | stage | active parameters | bytes all-reduced per step | sent per rank per step, ring of 8 ranks |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var file in plans)
        {
            var plan = GrowthPlan.Load(Path.Combine(StrataHome.Root, "plans", file));
            var budgets = GrowthStage.Budgets(plan, file);
            for (int i = 0; i < budgets.Count; i++)
            {
                double bytes = 4.0 * budgets[i].Active;
                Console.WriteLine($"| {plan.Name} | {i + 1} '{plan.Stages[i].Name}' | {budgets[i].Active / 1e6:F1}M | {bytes / (1 << 20):F0} MiB | " +
                    $"{2 * 7.0 / 8 * bytes / (1 << 20):F0} MiB |");
            }
        }
        Console.WriteLine();
    }

    /// <summary>One worker run (a process, or an mpirun job of <paramref name="ranks"/>), its rank 0's measurements.</summary>
    private static List<Measured> Worker(int ranks)
    {
        var dll = typeof(DataParallel).Assembly.Location;
        ProcessStartInfo psi;
        if (ranks > 1)
        {
            psi = new ProcessStartInfo("mpirun");
            foreach (var a in ProcessGroup.LocalMpirunOptions().Prepend(ranks.ToString()).Prepend("-np")) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("dotnet");
            psi.Environment["OMP_NUM_THREADS"] = "1";
        }
        else
        {
            psi = new ProcessStartInfo("dotnet");
            psi.Environment["OMP_NUM_THREADS"] = "2";
        }
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("distributed-worker");
        psi.RedirectStandardOutput = true;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        // (under mpirun a rank's stdout is a terminal, so .NET may put escape codes before the line)
        var line = output.Split('\n').FirstOrDefault(l => l.Contains("RESULT [")) ?? throw new InvalidOperationException(
            $"the worker failed ({p.ExitCode}):\n{output}");
        return JsonSerializer.Deserialize<List<Measured>>(line[(line.IndexOf("RESULT [") + "RESULT ".Length)..])!;
    }

    public static void RunWorker(string[] args)
    {
        NativeAllocator.KeepFreedMemory();
        using var group = ProcessGroup.Start();
        int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(3);
        var cfg = new ModelConfig { DModel = D, NHead = 4, ContextLength = T, VocabSize = V };
        GrowthPlan Plan(params StageConfig[] stages) => new() { Model = cfg, Substrate = new SubstrateSpec(), Data = new DataSpec(), Stages = stages };
        var two = new StageConfig { AddBlocks = 2, Steps = 1 };
        var configs = new[]
        {
            ("monolithic (4 trained)", new GrowthStage(Plan(new StageConfig { AddBlocks = Blocks, Steps = 1, Trains = StageTrains.All }), 0)),
            ("constructive stage 2 (2 frozen + 2 trained)", new GrowthStage(Plan(two, two), 1)),
        };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), Blocks);
        using var batch = torch.randint(0, V, [B / group.Size, T + 1]);
        var results = new List<Measured>();
        foreach (var (name, stage) in configs)
        {
            stage.SetTrainable(model);
            using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
            using var buckets = new GradientBuckets(group, opt.Parameters);
            Trainer.Step(model, opt, 1e-4, 1.0, [batch], buckets, group);                      // warm-up
            var (bytes, comm) = (group.BytesReduced, group.CommSeconds);
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) Trainer.Step(model, opt, 1e-4, 1.0, [batch], buckets, group);
            double seconds = clock.Elapsed.TotalSeconds;
            results.Add(new Measured(name, ParameterBudget.Of(model).Active, (double)B * T * steps / seconds,
                (double)(group.BytesReduced - bytes) / steps, (group.CommSeconds - comm) / seconds));
        }
        if (group.IsMain) Console.WriteLine("RESULT " + JsonSerializer.Serialize(results));
    }
}
