// What a caller asks of a training run (TrainOptions) and what it gets back (TrainResult).
using System.Diagnostics;
using Strata.Data;
using Strata.Distributed;
using Strata.Evaluation;
using Strata.Formats;
using Strata.Modeling;
using Strata.Optim;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Training;

public sealed record TrainOptions
{
    /// <summary>Run folder (<see cref="RunDirectory"/>).</summary>
    public required string OutDir { get; init; }
    /// <summary>Continue the run in <see cref="OutDir"/> from its checkpoint (the plan stored there wins).</summary>
    public bool Resume { get; init; }
    /// <summary>A checkpoint of the same shape whose weights replace the first stage's initialisation.</summary>
    public string? InitFrom { get; init; }
    /// <summary>Stop, with a checkpoint, once this many optimizer steps are done (the run can be resumed).</summary>
    public long? StopAfterStep { get; init; }
    /// <summary>On resume: multiply every learning rate of the plan (training and stages) by this from now on, e.g.
    /// 0.5 after a run stopped at a non-finite loss. Recorded in the checkpoint's plan.</summary>
    public double? LearningRateScale { get; init; }
    /// <summary>On resume: continue from the checkpoint before the latest one (the latest is dropped), e.g. when the
    /// latest already gives a non-finite loss.</summary>
    public bool Rewind { get; init; }
    /// <summary>The arithmetic, replacing the plan's training.precision (recorded in the checkpoint's plan; a resumed
    /// run may change it, since checkpoints are fp32 in every precision).</summary>
    public Precision? Precision { get; init; }
    /// <summary>Cancelled by SIGINT / SIGTERM: the step in progress finishes, a checkpoint is written, the run returns.</summary>
    public CancellationToken Stop { get; init; }
    /// <summary>The ranks of a data-parallel job (<see cref="ProcessGroup.Start"/>): each takes its share of every
    /// batch's rows, gradients are averaged over the ranks, rank 0 alone writes. One process by default.</summary>
    public ProcessGroup Group { get; init; } = ProcessGroup.Single;
    public Device Device { get; init; } = CPU;
    public TextWriter Log { get; init; } = Console.Out;
    /// <summary>Draw the progress bar in place (a terminal); otherwise print a line every log_every steps.</summary>
    public bool Interactive { get; init; }
    /// <summary>Called on the training thread after every optimizer step and every validation (rank 0 only).</summary>
    public Action<TrainingProgress>? Progress { get; init; }
    /// <summary>What <see cref="RunStart"/> settles from these options.</summary>
    internal RunRequest Request => new()
    {
        OutDir = OutDir, Resume = Resume, InitFrom = InitFrom, LearningRateScale = LearningRateScale, Rewind = Rewind, Precision = Precision,
        Group = Group, Device = Device, Log = Log,
    };
    /// <summary>Test hook: the loss a step reports, from (global step it would become, learning rate, measured loss);
    /// drives the non-finite and divergence checks deterministically.</summary>
    internal Func<long, double, double, double>? ReportedLoss { get; init; }
}

/// <summary>Where a run stands: after <see cref="Step"/> of <see cref="TotalSteps"/> optimizer steps, in stage
/// <see cref="Stage"/> (0-based), with the step's training loss, or right after a validation its loss.</summary>
public sealed record TrainingProgress(long Step, long TotalSteps, int Stage, double? Loss, double? ValidationLoss, double ElapsedSeconds);

public sealed record TrainResult(RunDirectory Run, long GlobalStep, double? InitialValidationLoss, double? FinalValidationLoss,
    double TokensPerSecond, bool Completed, ParameterBudget Budget)
{
    /// <summary>Stopped by a signal (with a checkpoint to resume from).</summary>
    public bool Interrupted { get; init; }
    /// <summary>Validation tokens per UTF-8 byte of the validation text (from the dataset's manifest), if known.</summary>
    public double? TokensPerByte { get; init; }
    public double? BitsPerByte(double? loss) => loss is { } l && TokensPerByte is { } r ? ValidationLoss.BitsPerByte(l, r) : null;

    /// <summary>For a run stopped by a signal: the one-line error that says how to continue.</summary>
    public void ThrowIfInterrupted()
    {
        if (Interrupted)
            throw new StrataException($"interrupted at step {GlobalStep}; the checkpoint is saved: continue with 'strata train --resume --out {Run.Path}'");
    }

    /// <summary>What the run reached and where its files are, for the console.</summary>
    public string Summary()
    {
        static string F(double? v) => v is { } x ? x.ToString("F4") : "-";
        var bpb = BitsPerByte(FinalValidationLoss) is { } b ? $" ({F(BitsPerByte(InitialValidationLoss))} -> {b:F4} bits/byte)" : "";
        return $"{(Completed ? "finished" : Interrupted ? "interrupted" : "stopped")} at step {GlobalStep}: validation loss " +
            $"{F(InitialValidationLoss)} -> {F(FinalValidationLoss)} nats/token{bpb}, {TokensPerSecond:F0} tokens/s\n" +
               $"  checkpoint {Run.Checkpoint}\n  metrics    {Run.Metrics}" + (Completed ? $"\n  loss curve {Run.LossCurve}" : "");
    }
}
