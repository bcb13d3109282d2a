// Benchmarks that print ratios measured side by side in one run (these machines are noisy): never timed assertions.
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll train [--steps N] [--rounds N] [--device cpu|cuda]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll profile [--d 256] [--rounds 5]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll precision
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll tokenizer
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll growth [--d 512] [--steps 3]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll eval [--questions 100]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll substrate
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll serve [--threads N] [--rounds 2] [--d 256] [--blocks 6]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll decode-profile [--threads N] [--steps 200]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll data [--gb 1,5] [--rounds N] [--dir DIR] [--read-threads 1,2]
//   dotnet bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll distributed [--rounds 3]   (needs mpirun)
//   bench/gpu-check.sh (gpu, gpu-report: the GPU check's Strata half and its report)
// Results and the commands behind them: docs/BENCHMARKS.md.
using Strata.Bench;
using Strata.Util;

NativeAllocator.KeepFreedMemory();
OpenMpWaiting.SpinBriefly();
var which = args.FirstOrDefault() ?? "train";
switch (which)
{
    case "train":
        TrainingThroughput.Run(args.Skip(1).ToArray());
        break;
    case "profile":
        StepProfile.Run(args.Skip(1).ToArray());
        break;
    case "growth":
        GrowthStepTime.Run(args.Skip(1).ToArray());
        break;
    case "substrate":
        SubstrateBuildTime.Run(args.Skip(1).ToArray());
        break;
    case "eval":
        EvalThroughput.Run(args.Skip(1).ToArray());
        break;
    case "data":
        DataThroughput.Run(args.Skip(1).ToArray());
        break;
    case "precision":
        PrecisionRuns.Run(args.Skip(1).ToArray());
        break;
    case "gpu":
        GpuCheck.Run(args.Skip(1).ToArray());
        break;
    case "gpu-report":
        GpuCheck.Report(args.Skip(1).ToArray());
        break;
    case "distributed":
        DataParallel.Run(args.Skip(1).ToArray());
        break;
    case "distributed-worker":
        DataParallel.RunWorker(args.Skip(1).ToArray());
        break;
    case "serve":
        ServeThroughput.Run(args.Skip(1).ToArray());
        break;
    case "decode-profile":
        DecodeProfile.Run(args.Skip(1).ToArray());
        break;
    case "tokenizer":
        TokenizerThroughput.Run(args.Skip(1).ToArray());
        break;
    default:
        Console.Error.WriteLine(
            $"unknown benchmark '{which}' (known: train, profile, precision, growth, tokenizer, data, eval, substrate, serve, decode-profile, " +
            "distributed, gpu, gpu-report)");
        return 2;
}
return 0;
