using System.Diagnostics;
using System.Globalization;
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Bench;

/// <summary>
/// The real training step (Trainer.Step: forward, backward, clip, AdamW; 4 blocks, T 256, B 8, V 65,536, 16-bit
/// substrate) at d = 256 and 512, in fp32 and bf16, with the model FLOP utilisation against torch.mm of the same dtype
/// (square 2048 matrices) measured between them: every reading (one torch.mm reading of each dtype, then each model
/// for a few steps) alternates, the rounds repeat, and a last torch.mm reading closes the last round. Each model lives
/// in a process of its own and takes its warm-up steps there (ModelProcess): four models alternating in one process
/// mixed their blocks in one heap, so d=512's steps took 64-128 MiB of fresh pages from the kernel every step, which a
/// training run, one model to a process, does not. A torch.mm
/// reading is taken as a model reading is, products back to back for about a second and their mean rate
/// ("sustained"); the fastest single product of the reading ("burst") is printed beside it. Rates are medians of their
/// readings; an MFU is the median over rounds of the round's model rate against the mean of the torch.mm readings that
/// open and close the round, so that it compares readings seconds apart (this machine's torch.mm rate has moved 2x
/// between runs minutes apart), and a speed-up over fp32 the median of each round's. Where the step's time goes,
/// part by part: StepProfile.
/// Model FLOPs per token = 6 x (matmul weights: 12 d^2 per block + d V head) + 12 L T d (attention scores and mixing,
/// counted as non-causal, as in PaLM appendix B and nanoGPT's estimate_mfu). The frozen 16-bit substrate costs a lookup.
/// Beside each model, the median over rounds of its minor page faults per step (fresh pages from the kernel).
/// Then the demo's shape (d 128, 4 blocks, T 128, B 16): seconds and peak resident memory of one step with the head's
/// cross-entropy over the whole [B*T, V] logits (the path before the chunked head) and with the chunked head.
/// </summary>
public static class TrainingThroughput
{
    public static void Run(string[] args)
    {
        int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(2);
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(3);
        int warmUp = args.SkipWhile(a => a != "--warm-up").Skip(1).Select(int.Parse).FirstOrDefault(5);
        bool cuda = args.SkipWhile(a => a != "--device").Skip(1).FirstOrDefault() == "cuda";
        if (args.SkipWhile(a => a != "--model").Skip(1).Take(2).ToArray() is [var d0, var p0])
        {
            ServeModel(int.Parse(d0), Enum.Parse<Precision>(p0, ignoreCase: true), cuda ? InitCuda() : CPU, warmUp);
            return;
        }
        var device = cuda ? InitCuda() : CPU;
        Console.WriteLine($"threads {torch.get_num_threads()} (GOMP_SPINCOUNT {OpenMpWaiting.SpinCount() ?? "unset"}), device {device.type}, " +
            $"{rounds} alternating rounds of {steps} timed steps per model, each model in a process of its own after {warmUp} warm-up steps");
        var precisions = new[] { Precision.Fp32, Precision.Bf16 };
        var mm = precisions.ToDictionary(p => p, _ => new List<double>());
        var burst = precisions.ToDictionary(p => p, _ => new List<double>());
        var models = new List<(int D, Precision P, ModelProcess Process, List<double> TokS, List<double> Faults)>();
        foreach (var d in new[] { 256, 512 })
            foreach (var p in precisions)
                models.Add((d, p, new ModelProcess(d, p, cuda, warmUp), new List<double>(), new List<double>()));
        void ReadYardstick()
        {
            foreach (var p in precisions)
            {
                var (sustained, fastest) = MatmulReading(device, p.ComputeType());
                mm[p].Add(sustained);
                burst[p].Add(fastest);
            }
        }
        for (int round = 0; round < rounds; round++)
        {
            ReadYardstick();
            foreach (var m in models)
            {
                var (tokS, faults) = m.Process.Measure(steps);
                m.TokS.Add(tokS);
                m.Faults.Add(faults);
            }
            Console.WriteLine($"round {round + 1}: torch.mm {string.Join(", ", precisions.Select(p => $"{p} {mm[p][^1]:F0}"))} GFLOP/s; " +
                string.Join(", ", models.Select(m => $"d={m.D} {m.P} {m.TokS[^1]:F0} tok/s ({m.Faults[^1]:F0} faults/step)")));
        }
        ReadYardstick();                                                                    // the reading that closes the last round
        foreach (var m in models) m.Process.Dispose();
        Console.WriteLine($"closing torch.mm reading: {string.Join(", ", precisions.Select(p => $"{p} {mm[p][^1]:F0}"))} GFLOP/s");
        Console.WriteLine();
        Console.WriteLine($"| model ({L} blocks, T {T}, B {B}, V 65,536, 16-bit substrate) | precision | tokens/s | model GFLOP/s | torch.mm " +
            "GFLOP/s, sustained (burst) | MFU vs torch.mm sustained (burst) | tokens/s vs fp32 | page faults per step |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var m in models)
        {
            double tokS = Readings.Median(m.TokS), flopsPerToken = 6.0 * (12.0 * L * m.D * m.D + (double)m.D * V) + 12.0 * L * T * m.D;
            double gflops = tokS * flopsPerToken / 1e9, reference = Readings.Median(mm[m.P]), fastest = Readings.Median(burst[m.P]);
            var fp32 = models.Single(x => x.D == m.D && x.P == Precision.Fp32).TokS;                 // this d's fp32 readings, round by round
            // each round's model rate against the torch.mm readings on either side of it
            double Mfu(List<double> yardstick) =>
                Readings.Median(m.TokS.Select((t, r) => t * flopsPerToken / 1e9 / ((yardstick[r] + yardstick[r + 1]) / 2)));
            Console.WriteLine($"| d = {m.D} | {m.P.ToString().ToLowerInvariant()} | {tokS:F0} | {gflops:F1} | {reference:F1} ({fastest:F1}) | " +
                $"{100 * Mfu(mm[m.P]):F0}% ({100 * Mfu(burst[m.P]):F0}%) | {Readings.Median(m.TokS.Select((t, r) => t / fp32[r])):F2}x | " +
                $"{Readings.Median(m.Faults):F0} |");
        }
        if (cuda) return;
        OptimizerUpdate(rounds);
        HeadMemory(rounds);
    }

    private const int L = 4, T = 256, B = 8, V = 65536;

    /// <summary>A child process (<c>train --model D PRECISION</c>) that holds one model and its optimizer, takes its
    /// warm-up steps, then runs the number of steps each line of its standard input asks for and answers with
    /// "tokens/s faults-per-step": the parent alternates models and torch.mm readings as if they shared a process,
    /// while each model's memory stays its own, as in a training run.</summary>
    private sealed class ModelProcess : IDisposable
    {
        private readonly Process _process;

        public ModelProcess(int d, Precision p, bool cuda, int warmUp)
        {
            var psi = ChildProcess.StartInfo(["train", "--model", d.ToString(), p.ToString(), "--warm-up", warmUp.ToString(), "--device",
                cuda ? "cuda" : "cpu"]);
            (psi.RedirectStandardInput, psi.RedirectStandardOutput) = (true, true);
            _process = Process.Start(psi)!;
            if (_process.StandardOutput.ReadLine() != "ready") throw new InvalidOperationException($"the d={d} {p} model's process did not start");
        }

        public (double TokS, double Faults) Measure(int steps)
        {
            _process.StandardInput.WriteLine(steps);
            var answer = _process.StandardOutput.ReadLine()?.Split(' ') ?? throw new InvalidOperationException("a model's process ended");
            return (double.Parse(answer[0], CultureInfo.InvariantCulture), double.Parse(answer[1], CultureInfo.InvariantCulture));
        }

        public void Dispose()
        {
            _process.StandardInput.Close();
            _process.WaitForExit();
            _process.Dispose();
        }
    }

    /// <summary>The child's side of <see cref="ModelProcess"/>.</summary>
    private static void ServeModel(int d, Precision p, Device device, int warmUp)
    {
        var cfg = new ModelConfig { DModel = d, NHead = d / 64, ContextLength = T, VocabSize = V };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), L, device);
        model.SetPrecision(p);
        using var opt = new AdamW(model.named_parameters().Select(x => (x.name, x.parameter)), 0.9, 0.95, 1e-8, 0.1);
        using var batch = torch.randint(0, V, [B, T + 1], device: device);
        for (int i = 0; i < warmUp; i++) Trainer.Step(model, opt, 1e-4, 1.0, [batch]);
        Console.WriteLine("ready");
        while (Console.ReadLine() is { } line)
        {
            int steps = int.Parse(line);
            long faults = MinorPageFaults();
            var sw = Stopwatch.StartNew();
            var ends = new List<double>();
            for (int i = 0; i < steps; i++)
            {
                Trainer.Step(model, opt, 1e-4, 1.0, [batch]);
                ends.Add(sw.Elapsed.TotalMilliseconds);
            }
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
            double tokS = (double)B * T * steps / sw.Elapsed.TotalSeconds, perStep = (double)(MinorPageFaults() - faults) / steps;
            Console.Error.WriteLine($"d={d} {p}: step ms {string.Join(", ", ends.Select((e, i) => (e - (i == 0 ? 0 : ends[i - 1])).ToString("F0")))}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{tokS} {perStep}"));
        }
    }

    /// <summary>The process's minor page faults so far (Linux /proc/self/stat; 0 elsewhere): pages the kernel gave it
    /// fresh, at several microseconds each on a virtual machine.</summary>
    private static long MinorPageFaults()
    {
        try { return long.Parse(File.ReadAllText("/proc/self/stat").Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[7]); }
        catch (IOException) { return 0; }
    }

    /// <summary>Seconds and peak resident memory of one demo-shape step, whole-logits cross-entropy against the chunked
    /// head, alternating; freed memory is returned to the kernel before each reading so each peak is the step's own.</summary>
    private static void HeadMemory(int rounds)
    {
        const int B = 16, T = 128, V = 65536;
        var cfg = new ModelConfig { DModel = 128, NHead = 4, ContextLength = T, VocabSize = V };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), 4);
        using var opt = new AdamW(model.named_parameters().Select(x => (x.name, x.parameter)), 0.9, 0.95, 1e-8, 0.1);
        using var batch = torch.randint(0, V, [B, T + 1]);
        var paths = new (string Name, Action Step)[]
        {
            ("cross-entropy of the whole [B*T, V] logits", () => WholeLogitsStep(model, opt, batch)),
            ("chunked head (ChunkedCrossEntropy)", () => Trainer.Step(model, opt, 1e-4, 1.0, [batch])),
        };
        var seconds = paths.Select(_ => new List<double>()).ToArray();
        var peaks = paths.Select(_ => new List<double>()).ToArray();
        foreach (var p in paths) p.Step();                                                  // warm-up
        for (int round = 0; round < rounds; round++)
            for (int k = 0; k < paths.Length; k++)
            {
                GC.Collect();
                NativeAllocator.Trim();
                PeakMemory.Reset();
                double before = PeakMemory.CurrentMib();
                var sw = Stopwatch.StartNew();
                paths[k].Step();
                seconds[k].Add(sw.Elapsed.TotalSeconds);
                peaks[k].Add(PeakMemory.Mib() - before);
            }
        Console.WriteLine();
        Console.WriteLine($"demo shape (d 128, 4 blocks, T {T}, B {B}, V 65,536), one training step, median of {rounds} alternating readings:");
        Console.WriteLine("| head and loss | s/step | step's peak resident memory above the model and optimizer (MiB) |");
        Console.WriteLine("|---|---|---|");
        for (int k = 0; k < paths.Length; k++) Console.WriteLine($"| {paths[k].Name} | {Readings.Median(seconds[k]):F3} | {Readings.Median(peaks[k]):F0} |");
        Console.WriteLine($"peak memory of the step: {100 * (1 - Readings.Median(peaks[1]) / Readings.Median(peaks[0])):F0}% lower; time " +
            $"{Readings.Median(seconds[0]) / Readings.Median(seconds[1]):F2}x faster");
    }

    /// <summary>Trainer.Step with the loss taken from the whole logits, as before the chunked head.</summary>
    private static void WholeLogitsStep(LanguageModel model, AdamW opt, Tensor batch)
    {
        using var scope = torch.NewDisposeScope();
        var logits = model.Logits(batch[.., ..^1]);                                          // [B, T, V]
        var loss = nn.functional.cross_entropy(logits.view(-1, model.Config.VocabSize), batch[.., 1..].reshape(-1));
        loss.backward();
        var (_, scale) = opt.ClipScale(1.0);
        opt.Step(1e-4, scale);
        opt.ZeroGrad();
    }

    private static Device InitCuda()
    {
        torch.InitializeDeviceType(DeviceType.CUDA);
        return CUDA;
    }

    /// <summary>One torch.mm reading: square products of 2048 back to back (after one untimed) for at least a second,
    /// in GFLOP/s: their mean rate (sustained) and the fastest single product (burst).</summary>
    public static (double Sustained, double Burst) MatmulReading(Device device, ScalarType dtype = ScalarType.Float32, double seconds = 1.0)
    {
        const int n = 2048;
        const double flops = 2.0 * n * n * n;
        using var a = torch.randn(n, n, device: device).to(dtype);
        using var b = torch.randn(n, n, device: device).to(dtype);
        using (torch.mm(a, b)) { }
        double fastest = 0;
        int count = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            var sw = Stopwatch.StartNew();
            using (var c = torch.mm(a, b)) { if (device.type == DeviceType.CUDA) torch.cuda.synchronize(); }
            fastest = Math.Max(fastest, flops / sw.Elapsed.TotalSeconds / 1e9);
            count++;
        }
        return (flops * count / total.Elapsed.TotalSeconds / 1e9, fastest);
    }

    /// <summary>The optimizer part of a d=256 step (the trained parameters of the model above, most of them the head's):
    /// gradient clipping and AdamW as before this benchmark's CPU kernel (clip_grad_norm_, which rescales the
    /// gradients in place, then AdamW's tensor operations) against ClipScale and the one-pass kernel, alternating.</summary>
    private static void OptimizerUpdate(int rounds)
    {
        var cfg = new ModelConfig { DModel = 256, NHead = 4, ContextLength = 256, VocabSize = 65536 };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), 4);
        var trained = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        foreach (var (_, p) in trained) p.grad = torch.randn_like(p).DetachFromDisposeScope();
        using var tensorOps = new AdamW(trained, 0.9, 0.95, 1e-8, 0.1) { UseCpuKernel = false };
        using var kernel = new AdamW(trained, 0.9, 0.95, 1e-8, 0.1);
        var paths = new (string Name, Action Step)[]
        {
            ("clip_grad_norm_, then AdamW's tensor operations", () => { nn.utils.clip_grad_norm_(tensorOps.Parameters, 1.0); tensorOps.Step(1e-6); }),
            ("ClipScale, then the one-pass CPU kernel", () => { var (_, scale) = kernel.ClipScale(1.0); kernel.Step(1e-6, scale); }),
        };
        var ms = paths.Select(_ => new List<double>()).ToArray();
        foreach (var p in paths) p.Step();                                                  // warm-up (and the moments' allocation)
        for (int round = 0; round < rounds; round++)
            for (int k = 0; k < paths.Length; k++)
            {
                var sw = Stopwatch.StartNew();
                paths[k].Step();
                ms[k].Add(sw.Elapsed.TotalMilliseconds);
            }
        Console.WriteLine();
        Console.WriteLine($"optimizer of the d = 256 model ({trained.Sum(p => p.parameter.numel()) / 1e6:F1}M trained parameters), median of " +
            $"{rounds} alternating readings:");
        Console.WriteLine("| clipping and AdamW | ms per step |");
        Console.WriteLine("|---|---|");
        for (int k = 0; k < paths.Length; k++) Console.WriteLine($"| {paths[k].Name} | {Readings.Median(ms[k]):F1} |");
        Console.WriteLine($"the one-pass kernel: {Readings.Median(ms[0]) / Readings.Median(ms[1]):F2}x faster");
    }
}
