using System.Diagnostics;
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
/// Step time of a 9-block model trained monolithically against its third constructive stage (6 frozen blocks under
/// no_grad + 3 trained + final LN + head), measured alternately in one run, beside the ratio FLOP accounting predicts:
/// a trained block costs forward + backward (3 units), a frozen block forward only (1 unit), the head is always trained.
/// Peak resident memory of each configuration is reported (VmHWM, reset before each).
/// </summary>
public static class GrowthStepTime
{
    public static void Run(string[] args)
    {
        int d = args.SkipWhile(a => a != "--d").Skip(1).Select(int.Parse).FirstOrDefault(512);
        int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(3);
        const int L = 9, T = 256, B = 4, V = 65536;
        var cfg = new ModelConfig { DModel = d, NHead = d / 64, ContextLength = T, VocabSize = V };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), L);
        using var batch = torch.randint(0, V, [B, T + 1]);

        double blockFwd = 2.0 * 12 * d * d + 4.0 * T * d;     // per token: matmuls + attention scores and mixing
        double headFwd = 2.0 * d * V;
        double monoFlops = 3 * (L * blockFwd + headFwd);
        double stageFlops = 6 * blockFwd + 3 * (3 * blockFwd + headFwd);
        double predicted = monoFlops / stageFlops;

        GrowthPlan Plan(params StageConfig[] stages) => new() { Model = cfg, Substrate = new SubstrateSpec(), Data = new DataSpec(), Stages = stages };
        var mono = new GrowthStage(Plan(new StageConfig { AddBlocks = L, Steps = 1, Trains = StageTrains.All }), 0);
        var three = new StageConfig { AddBlocks = 3, Steps = 1 };
        var stage3 = new GrowthStage(Plan(three, three, three), 2);
        double monoTime = 0, stageTime = 0, monoPeak = 0, stagePeak = 0;
        for (int round = 0; round < 2; round++)                 // alternate: round 0 warms up, round 1 is measured
        {
            (double t, double peak) Measure(GrowthStage stage)
            {
                stage.SetTrainable(model);
                using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
                Trainer.Step(model, opt, 1e-4, 1.0, [batch]);
                PeakMemory.Reset();
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < steps; i++) Trainer.Step(model, opt, 1e-4, 1.0, [batch]);
                return (sw.Elapsed.TotalSeconds / steps, PeakMemory.Mib());
            }
            (monoTime, monoPeak) = Measure(mono);
            (stageTime, stagePeak) = Measure(stage3);
        }
        double measured = monoTime / stageTime;
        Console.WriteLine($"9 blocks, d={d}, T={T}, B={B}, V={V:N0}, 16-bit substrate, {steps} timed steps each, threads {torch.get_num_threads()}");
        Console.WriteLine("| configuration | s/step | tokens/s | peak RSS (MiB) |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| monolithic (9 trained) | {monoTime:F2} | {B * T / monoTime:F0} | {monoPeak:F0} |");
        Console.WriteLine($"| stage 3 (6 frozen + 3 trained) | {stageTime:F2} | {B * T / stageTime:F0} | {stagePeak:F0} |");
        Console.WriteLine($"speed-up measured {measured:F2}x, predicted by FLOPs {predicted:F2}x: {100 * measured / predicted:F0}% of predicted");
    }
}
