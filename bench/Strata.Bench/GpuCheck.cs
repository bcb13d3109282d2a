using System.Diagnostics;
using System.Text.Json;
using Strata.Formats;
using Strata.Interop;
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
/// Strata's half of bench/gpu-check.sh (`gpu`): on the paper's 9-block model (d 1024, 32 heads, V 65,536, T 1024,
/// B 16; `--tiny` shrinks it for the CPU check in the test suite) the training step's tokens/s for the monolithic model
/// (9 blocks trained) and for stage 3 of constructive growth (6 frozen + 3 trained), in fp32, tf32 and bf16; the
/// memory of 200 bf16 steps (first and last reading); and an export (`strata export` layout) with Strata's logits for
/// transformers to compare. Writes strata.json and export/ under --out. The report (`gpu-report`) joins it with the
/// PyTorch reference (bench/reference/gpt_step.py) and the transformers check (bench/reference/check_export.py).
/// </summary>
public static class GpuCheck
{
    public sealed record Shape(int Layers, int DModel, int Heads, int Vocab, int Context, int Batch, int Frozen)
    {
        public static Shape Paper { get; } = new(9, 1024, 32, 65536, 1024, 16, 6);
        public static Shape Tiny { get; } = new(9, 64, 4, 65536, 32, 2, 6);

        /// <summary>Model FLOPs per token of a step (6 per weight for a trained matmul, 2 for a frozen one; attention
        /// scores and mixing 12 T d per trained block, 4 T d per frozen one; the head always trains).</summary>
        public double FlopsPerToken(int frozen)
        {
            double block = 12.0 * DModel * DModel, attention = 2.0 * Context * DModel;
            return frozen * (2 * block + 2 * attention) + (Layers - frozen) * (6 * block + 6 * attention) + 6.0 * DModel * Vocab;
        }
    }

    public sealed record Row(string Config, string Precision, int Frozen, double TokensPerSecond, double FlopsPerToken);

    /// <summary>The data-parallel path at world size 1: the step's gradients through GradientBuckets and the
    /// collective (NCCL on CUDA), compared with the gradients before it, and the step's speed with it.</summary>
    public sealed record AllReduceCheck(string Library, long BytesPerStep, double MaxDifference, double TokensPerSecond);

    public sealed record Result(string Device, Shape Shape, List<Row> Rows, double MemoryFirstMib, double MemoryLastMib, int MemorySteps, string MemoryMeasure,
        AllReduceCheck? AllReduce = null);

    public static void Run(string[] args)
    {
        string Arg(string name, string dflt) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? dflt;
        bool tiny = args.Contains("--tiny");
        var outDir = Path.GetFullPath(Arg("--out", "gpu-check"));
        int steps = int.Parse(Arg("--steps", tiny ? "2" : "10")), memorySteps = int.Parse(Arg("--memory-steps", tiny ? "20" : "200"));
        var device = Arg("--device", "cuda") == "cuda" ? Cuda() : CPU;
        var shape = tiny ? Shape.Tiny : Shape.Paper;
        Directory.CreateDirectory(outDir);

        var cfg = new ModelConfig { DModel = shape.DModel, NHead = shape.Heads, ContextLength = shape.Context, VocabSize = shape.Vocab };
        var plan = new GrowthPlan
        {
            Name = "gpu-check", Model = cfg, Substrate = new SubstrateSpec(), Data = new DataSpec(),
            Stages = [.. Enumerable.Range(0, shape.Layers / 3).Select(i => new StageConfig { Name = $"stage {i + 1}", AddBlocks = 3, Steps = 1 })],
        };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, plan.Substrate, shape.Layers, device);
        using var batch = torch.randint(0, shape.Vocab, [shape.Batch, shape.Context + 1], device: device);
        var monolithic = plan with { Stages = [new StageConfig { Name = "monolithic", AddBlocks = shape.Layers, Steps = 1, Trains = StageTrains.All }] };
        var configs = new (string Name, int Frozen, GrowthStage Stage)[]
        {
            ("monolithic", 0, new GrowthStage(monolithic, 0)),
            ("stage 3", shape.Frozen, new GrowthStage(plan, 2)),
        };
        var rows = new List<Row>();
        foreach (var precision in new[] { Precision.Fp32, Precision.Tf32, Precision.Bf16 })
            foreach (var (name, frozen, stage) in configs)
            {
                model.SetPrecision(precision);
                stage.SetTrainable(model);
                using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
                for (int i = 0; i < 2; i++) Trainer.Step(model, opt, 1e-5, 1.0, [batch]);          // warm-up (kernels chosen, memory pooled)
                Sync(device);
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < steps; i++) Trainer.Step(model, opt, 1e-5, 1.0, [batch]);
                Sync(device);
                double tokS = (double)shape.Batch * shape.Context * steps / clock.Elapsed.TotalSeconds;
                rows.Add(new Row(name, precision.ToString().ToLowerInvariant(), frozen, tokS, shape.FlopsPerToken(frozen)));
                Console.WriteLine($"strata {name,-10} {precision,-4}: {tokS,10:F0} tokens/s");
            }

        var allReduce = CheckAllReduce(model, configs[1].Stage, batch, steps, shape, device);

        // memory over many bf16 steps of the monolithic model: a leak shows as growth between the readings
        model.SetPrecision(Precision.Bf16);
        configs[0].Stage.SetTrainable(model);
        double first = 0;
        using (var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1))
            for (int i = 1; i <= memorySteps; i++)
            {
                Trainer.Step(model, opt, 1e-5, 1.0, [batch]);
                if (i == 10) { Sync(device); first = MemoryMib(device); }
            }
        Sync(device);
        double last = MemoryMib(device);
        Console.WriteLine($"memory after step 10: {first:F0} MiB, after step {memorySteps}: {last:F0} MiB ({MemoryMeasure(device)})");

        Export(model, plan, Path.Combine(outDir, "export"), device);
        var result = new Result(device.type == DeviceType.CUDA ? "cuda" : "cpu", shape, rows, first, last, memorySteps, MemoryMeasure(device), allReduce);
        AtomicFile.WriteAllText(Path.Combine(outDir, "strata.json"), Json.Serialize(result));
    }

    /// <summary>Stage 3 in bf16 with its gradients averaged over a world of one rank, as data-parallel training does
    /// (ProcessGroup.SingleWithCollectives: NCCL's ncclAllReduce on CUDA; on the CPU the buckets alone, with no MPI).</summary>
    private static AllReduceCheck CheckAllReduce(LanguageModel model, GrowthStage stage, Tensor batch, int steps, Shape shape, Device device)
    {
        model.SetPrecision(Precision.Bf16);
        stage.SetTrainable(model);
        using var group = Distributed.ProcessGroup.SingleWithCollectives();
        using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
        using var buckets = new Distributed.GradientBuckets(group, opt.Parameters);
        double difference;
        using (var scope = torch.NewDisposeScope())
        {
            model.Loss(batch[.., ..^1], batch[.., 1..]).backward();
            var before = opt.Parameters.Select(p => p.grad!.clone()).ToList();
            buckets.Reduce();
            difference = opt.Parameters.Zip(before).Max(x => (x.First.grad! - x.Second).abs().max().item<float>());
            opt.ZeroGrad();
        }
        Trainer.Step(model, opt, 1e-5, 1.0, [batch], buckets, group);                            // warm-up
        Sync(device);
        long bytes = group.BytesReduced;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) Trainer.Step(model, opt, 1e-5, 1.0, [batch], buckets, group);
        Sync(device);
        double tokS = (double)shape.Batch * shape.Context * steps / clock.Elapsed.TotalSeconds;
        var library = device.type == DeviceType.CUDA ? Distributed.ProcessGroup.NcclDescription ?? "NCCL" : "none (CPU, one rank: buckets only)";
        var check = new AllReduceCheck(library, (group.BytesReduced - bytes) / steps, difference, tokS);
        Console.WriteLine($"all-reduce at world size 1 ({library}): {check.BytesPerStep / 1048576.0:F1} MiB per step, gradients changed by " +
            $"{difference:E1}, stage 3 bf16 {tokS:F0} tokens/s");
        return check;
    }

    /// <summary>The model as `strata export --format hf` writes it, plus Strata's fp32 logits on fixed ids
    /// (strata_logits.safetensors: input_ids, logits) for transformers to reproduce.</summary>
    private static void Export(LanguageModel model, GrowthPlan plan, string dir, Device device)
    {
        var checkpoint = Path.Combine(Path.GetTempPath(), $"strata-gpu-check-{Environment.ProcessId}.safetensors");
        try
        {
            var tokenizer = Tokenization.TokenizerIdentity.Of(plan.Data.Tokenizer ?? Tokenization.Tokenizers.Default);
            Checkpoint.Save(checkpoint, model, null, new CheckpointInfo
            {
                Plan = plan, Tokenizer = tokenizer.Name, TokenizerHash = tokenizer.Hash, Depth = model.Depth,
                StageIndex = plan.Stages.Count - 1, StageStep = 1, GlobalStep = plan.TotalSteps, Completed = true,
            });
            HfExport.Export(checkpoint, dir);
        }
        finally { File.Delete(checkpoint); }
        model.SetPrecision(Precision.Fp32);
        using var evalMode = model.EvalScope();
        using var noGrad = torch.no_grad();
        torch.manual_seed(1);
        using var ids = torch.randint(0, model.Config.VocabSize, [2, Math.Min(64, model.Config.ContextLength)], device: device);
        using var logits = model.Forward(ids);
        SafetensorsWriter.Write(Path.Combine(dir, "strata_logits.safetensors"),
            [("input_ids", ids.cpu()), ("logits", logits.cpu())], new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static Device Cuda()
    {
        torch.InitializeDeviceType(DeviceType.CUDA);
        if (!torch.cuda.is_available()) throw new StrataException("CUDA is not available (is LD_LIBRARY_PATH the CUDA libtorch's lib folder?)");
        return CUDA;
    }

    private static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
    }

    private static string MemoryMeasure(Device device) => device.type == DeviceType.CUDA ? "GPU memory of this process, nvidia-smi"
        : "resident memory, /proc/self/status";

    /// <summary>GPU memory this process holds (nvidia-smi), or resident memory on the CPU.</summary>
    private static double MemoryMib(Device device)
    {
        if (device.type != DeviceType.CUDA) return PeakMemory.CurrentMib();
        var info = new ProcessStartInfo("nvidia-smi", "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits") { RedirectStandardOutput = true };
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(',', StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && parts[0] == Environment.ProcessId.ToString() && double.TryParse(parts[1], out var mib)) return mib;
        }
        return double.NaN;
    }

    /// <summary>`gpu-report DIR [--gpu NAME]`: the table of strata.json beside pytorch.json and export.json (when the
    /// PyTorch half ran), printed and written as gpu-check.json.</summary>
    public static void Report(string[] args)
    {
        var dir = Path.GetFullPath(args.FirstOrDefault(a => !a.StartsWith("--")) ?? "gpu-check");
        string gpu = args.SkipWhile(a => a != "--gpu").Skip(1).FirstOrDefault() ?? "";
        var strata = Json.ReadFile<Result>(Path.Combine(dir, "strata.json"));
        var pytorch = ReadJson(Path.Combine(dir, "pytorch.json"));
        var export = ReadJson(Path.Combine(dir, "export.json"));
        // dense peaks (TFLOP/s) of the Hopper SXM parts, from NVIDIA's H100 and H200 data sheets
        var peaks = gpu.Contains("H100") || gpu.Contains("H200") ? new Dictionary<string, double> { ["fp32"] = 67, ["tf32"] = 494.7, ["bf16"] = 989.4 } : null;

        double? Torch(string impl, string config, string precision)
        {
            if (pytorch is not { } doc) return null;
            foreach (var r in doc.RootElement.GetProperty("rows").EnumerateArray())
                if (r.GetProperty("impl").GetString() == impl && r.GetProperty("config").GetString() == config && r.GetProperty(
                    "precision").GetString() == precision)
                    return r.GetProperty("tokens_per_s").GetDouble();
            return null;
        }
        static string F(double? v, string format = "F0") => v is { } x && double.IsFinite(x) ? x.ToString(format) : "-";

        var table = new List<Dictionary<string, object?>>();
        Console.WriteLine($"gpu-check: {strata.Device}{(gpu.Length > 0 ? $" ({gpu})" : "")}, {strata.Shape.Layers} blocks, d " +
            $"{strata.Shape.DModel}, {strata.Shape.Heads} heads, V {strata.Shape.Vocab}, T {strata.Shape.Context}, B {strata.Shape.Batch}");
        Console.WriteLine("| config | precision | Strata tokens/s | PyTorch eager | PyTorch compile | Strata / eager | Strata MFU |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var r in strata.Rows)
        {
            double? eager = Torch("eager", r.Config, r.Precision), compiled = Torch("compile", r.Config, r.Precision);
            double? mfu = peaks is null ? null : 100 * r.TokensPerSecond * r.FlopsPerToken / (peaks[r.Precision] * 1e12);
            Console.WriteLine($"| {r.Config} | {r.Precision} | {r.TokensPerSecond:F0} | {F(eager)} | {F(compiled)} | " +
                $"{F(r.TokensPerSecond / eager, "F2")} | {(mfu is { } m ? $"{m:F0}%" : "-")} |");
            table.Add(new() { ["config"] = r.Config, ["precision"] = r.Precision, ["strata_tokens_per_s"] = r.TokensPerSecond,
                ["pytorch_eager_tokens_per_s"] = eager,
                ["pytorch_compile_tokens_per_s"] = compiled, ["strata_mfu_percent"] = mfu });
        }
        var speedups = new List<Dictionary<string, object?>>();
        foreach (var precision in strata.Rows.Select(r => r.Precision).Distinct())
        {
            var mono = strata.Rows.Single(r => r.Precision == precision && r.Frozen == 0);
            var stage = strata.Rows.Single(r => r.Precision == precision && r.Frozen > 0);
            double measured = stage.TokensPerSecond / mono.TokensPerSecond, predicted = mono.FlopsPerToken / stage.FlopsPerToken;
            Console.WriteLine($"stage 3 / monolithic, {precision}: {measured:F2}x measured, {predicted:F2}x by FLOPs");
            speedups.Add(new() { ["precision"] = precision, ["measured"] = measured, ["predicted_by_flops"] = predicted });
        }
        double growth = strata.MemoryLastMib - strata.MemoryFirstMib;
        Console.WriteLine($"memory ({strata.MemoryMeasure}): {strata.MemoryFirstMib:F0} MiB after step 10, {strata.MemoryLastMib:F0} MiB after " +
            $"step {strata.MemorySteps} ({growth:+0;-0;0} MiB)");
        if (strata.AllReduce is { } ar)
            Console.WriteLine($"all-reduce at world size 1 ({ar.Library}): {ar.BytesPerStep / 1048576.0:F1} MiB per step, gradients changed by " +
                $"{ar.MaxDifference:E1} ({(ar.MaxDifference == 0 ? "unchanged, as they must be" : "CHANGED")}), stage 3 bf16 {ar.TokensPerSecond:F0} tokens/s");
        double? exportDiff = export?.RootElement.GetProperty("max_abs_diff").GetDouble();
        Console.WriteLine(export is null ? "transformers export check: not run (no transformers here)"
            : $"transformers export check: max |logits difference| {exportDiff:E2} ({(exportDiff <= 1e-4 ? "within" : "OUTSIDE")} 1e-4), " +
                $"{export.RootElement.GetProperty("detail").GetString()}");
        if (pytorch is null) Console.WriteLine("PyTorch reference: not run (no PyTorch here)");
        AtomicFile.WriteAllText(Path.Combine(dir, "gpu-check.json"), JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["device"] = strata.Device, ["gpu"] = gpu, ["shape"] = strata.Shape, ["rows"] = table, ["stage3_speedup"] = speedups,
            ["memory"] = new { first_mib = strata.MemoryFirstMib, last_mib = strata.MemoryLastMib, steps = strata.MemorySteps, measure = strata.MemoryMeasure },
            ["export_max_abs_diff"] = exportDiff, ["all_reduce"] = strata.AllReduce,
        }, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static JsonDocument? ReadJson(string path) => File.Exists(path) ? JsonDocument.Parse(File.ReadAllText(path)) : null;
}
