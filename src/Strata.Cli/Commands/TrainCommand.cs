using System.CommandLine;
using Strata.Runs;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class TrainCommand
{
    public static Command Create(TextWriter output)
    {
        var plan = Opt.Text("--plan", "the growth plan (JSON); with --resume the plan stored in the run is used", "FILE");
        var outDir = Opt.Required("--out", "the run folder: checkpoint.safetensors, stage-N.safetensors, metrics.jsonl, tb/, loss_curve.png", "DIR");
        var resume = Opt.Flag("--resume", "continue the run in --out from its checkpoint");
        var initFrom = Opt.Text("--init-from", "start the first stage from this checkpoint's weights (same shape and substrate)", "CKPT");
        var stopAfter = Opt.OptionalLong("--stop-after", "stop with a checkpoint after this many optimizer steps (resume later)");
        var lrScale = new Option<double?>("--lr-scale") { Description =
            "with --resume: multiply every learning rate of the plan by this from now on (after a non-finite loss, e.g. 0.5)" };
        var rewind = Opt.Flag("--rewind", "with --resume: continue from the checkpoint before the latest one (the latest is dropped)");
        var precision = new Option<Modeling.Precision?>("--precision") { Description =
            "fp32, tf32 (CUDA tensor cores) or bf16 matrix products, instead of the plan's training.precision (weights and checkpoints stay fp32)",
                HelpName = "fp32|tf32|bf16" };
        var device = Opt.Device();
        var ranks = Opt.OptionalInt("--ranks",
            "data-parallel: start this many ranks on this machine with mpirun (each takes batch_size / N rows); under mpirun or srun leave it out");
        var threads = Opt.OptionalInt("--threads", "CPU threads for libtorch's operations (default: every core)");
        var planOptions = new PlanOptions();
        var command = new Command("train",
            "run a plan's stages; checkpoints, metrics.jsonl, TensorBoard events, loss_curve.png; SIGINT/SIGTERM stop with a checkpoint")
            { plan, outDir, resume, initFrom, stopAfter, lrScale, rewind, precision, device, ranks, threads };
        planOptions.AddTo(command);
        command.SetAction(p =>
        {
            if (p.GetValue(threads) is { } t)
            {
                if (t is < 1 or > 4096) throw new StrataException($"--threads: 1 to 4096, got {t}");
                TorchSharp.torch.set_num_threads(t);
            }
            if (p.GetValue(ranks) is { } count)
            {
                if (count < 1) throw new StrataException($"--ranks: at least 1, got {count}");
                if (count > 1) return LocalLaunch.Run(count, WithoutRanks(p), output, p.InvocationConfiguration.Error);
            }
            var group = Distributed.ProcessGroup.Start();
            var log = group.IsMain ? output : TextWriter.Null;                                 // rank 0 speaks for the job
            using var stopping = Signals.Stop.Register(group.StopRequested);
            var run = new RunDirectory(p.GetValue(outDir)!);
            if (p.GetValue(plan) is null && planOptions.Overrides(p, null).Count > 0)
                throw new StrataException("--set, --steps, --lr, --batch-size and --seed change a plan (--plan); a resumed run follows the plan its " +
                                          "checkpoint stores (--lr-scale changes its learning rates)");
            var growthPlan = p.GetValue(plan) is { } path ? planOptions.Load(p, path, log)
                : p.GetValue(resume) ? null                                                    // the plan stored in the checkpoint
                : throw new StrataException("--plan is required (or --resume with --out of an existing run)");
            using var graceful = Signals.Graceful();
            var r = Trainer.Run(growthPlan, new TrainOptions
            {
                OutDir = run.Path, Resume = p.GetValue(resume), InitFrom = p.GetValue(initFrom),
                StopAfterStep = p.GetValue(stopAfter) is > 0 and var n ? n : null, LearningRateScale = p.GetValue(lrScale), Rewind = p.GetValue(rewind),
                Precision = p.GetValue(precision),
                Device = Devices.Parse(p.GetValue(device)), Log = log, Interactive = Devices.IsTerminal(output), Stop = Signals.Stop, Group = group,
            });
            log.WriteLine(r.Summary());
            r.ThrowIfInterrupted();
            group.Dispose();                                      // MPI_Finalize on success only: it waits for every rank
            return 0;
        });
        return command;
    }

    /// <summary>The command line as given, less --ranks and its value (what each rank runs).</summary>
    private static IEnumerable<string> WithoutRanks(ParseResult p)
    {
        var tokens = p.Tokens.Select(t => t.Value).ToList();
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] == "--ranks") { i++; continue; }
            if (tokens[i].StartsWith("--ranks=", StringComparison.Ordinal)) continue;
            yield return tokens[i];
        }
    }
}
