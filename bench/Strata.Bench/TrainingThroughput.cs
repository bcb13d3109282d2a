using System.Diagnostics;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Bench;

/// <summary>
/// Training tokens/s of the real training step (Trainer.Step: forward, backward, clip, AdamW) for d = 256 and 512, and
/// the model FLOP utilisation: achieved model GFLOP/s over the faster of two torch.mm measurements in the same run
/// (one before the models, one after).
/// Model FLOPs per token = 6 x (matmul weights: 12 d^2 per block + d V head) + 12 L T d (attention scores and mixing,
/// counted as non-causal, as in PaLM appendix B and nanoGPT's estimate_mfu). The frozen 16-bit substrate costs a lookup.
/// </summary>
public static class TrainingThroughput
{
    public static void Run(string[] args)
    {
        int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(4);
        var device = args.SkipWhile(a => a != "--device").Skip(1).FirstOrDefault() == "cuda" ? InitCuda() : CPU;
        Console.WriteLine($"threads {torch.get_num_threads()}, device {device.type}, {steps} timed steps per model (+1 warm-up)");
        double mmBefore = MatmulGflops(device);
        Console.WriteLine($"torch.mm fp32: {mmBefore:F1} GFLOP/s");
        var rows = new List<(int D, double TokS, double Gflops)>();
        foreach (var d in new[] { 256, 512 })
        {
            const int L = 4, T = 256, B = 8, V = 65536;
            var cfg = new ModelConfig { DModel = d, NHead = d / 64, ContextLength = T, VocabSize = V };
            torch.manual_seed(0);
            using var model = new LanguageModel(cfg, new SubstrateSpec(), L, device);
            using var opt = new AdamW(model.named_parameters().Select(p => (p.name, p.parameter)), 0.9, 0.95, 1e-8, 0.1);
            using var batch = torch.randint(0, V, [B, T + 1], device: device);
            Trainer.Step(model, opt, 1e-4, 1.0, [batch]);                                  // warm-up
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) Trainer.Step(model, opt, 1e-4, 1.0, [batch]);
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
            double tokS = (double)B * T * steps / sw.Elapsed.TotalSeconds;
            double flopsPerToken = 6.0 * (12.0 * L * d * d + (double)d * V) + 12.0 * L * T * d;
            rows.Add((d, tokS, tokS * flopsPerToken / 1e9));
            Console.WriteLine($"d={d}: {tokS:F0} tokens/s, {tokS * flopsPerToken / 1e9:F1} model GFLOP/s");
        }
        double mmAfter = MatmulGflops(device);
        double mm = Math.Max(mmBefore, mmAfter);     // the faster of the two: the conservative reference
        Console.WriteLine($"torch.mm fp32 again: {mmAfter:F1} GFLOP/s; reference = the faster, {mm:F1}");
        Console.WriteLine();
        Console.WriteLine("| model (4 layers, T 256, B 8, V 65,536, 16-bit substrate) | tokens/s | model GFLOP/s | MFU vs torch.mm |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var (d, tokS, g) in rows) Console.WriteLine($"| d = {d} | {tokS:F0} | {g:F1} | {100 * g / mm:F0}% |");
    }

    private static Device InitCuda()
    {
        torch.InitializeDeviceType(DeviceType.CUDA);
        return CUDA;
    }

    /// <summary>Best of several fp32 square matmuls (n = 1024 and 2048), in GFLOP/s.</summary>
    public static double MatmulGflops(Device device)
    {
        double best = 0;
        foreach (var n in new[] { 1024, 2048 })
        {
            using var a = torch.randn(n, n, device: device);
            using var b = torch.randn(n, n, device: device);
            for (int rep = 0; rep < 4; rep++)
            {
                var sw = Stopwatch.StartNew();
                using (var c = torch.mm(a, b)) { if (device.type == DeviceType.CUDA) torch.cuda.synchronize(); }
                if (rep > 0) best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
            }
        }
        return best;
    }
}
