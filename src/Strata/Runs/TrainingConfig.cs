using Strata.Optim;
using Strata.Util;

namespace Strata.Runs;

/// <summary>Optimizer, schedule and bookkeeping shared by all stages (the papers give few of these values: the defaults are Strata's).</summary>
public sealed record TrainingConfig
{
    /// <summary>Sequences per micro-batch (B).</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Micro-batches whose gradients add up to one optimizer step.</summary>
    public int GradAccumulation { get; init; } = 1;
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>The cosine schedule ends here.</summary>
    public double MinLearningRate { get; init; } = 1e-4;
    public int WarmupSteps { get; init; } = 20;
    /// <summary>AdamW decoupled weight decay, on matrices (2-D parameters) only.</summary>
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Global gradient-norm clip; 0 disables it.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>Stop the run when the moving average of the training loss exceeds this multiple of the best it reached
    /// in the stage (Training.DivergenceGuard); 0 turns the rule off.</summary>
    public double DivergenceFactor { get; init; } = 2.0;
    /// <summary>If set, a stage whose active (trainable) parameters exceed this is refused before training starts.</summary>
    public long? MaxActiveParameters { get; init; }
    public long Seed { get; init; } = 1337;
    /// <summary>fp32, tf32 (CUDA tensor cores) or bf16 matrix products; weights, checkpoints and AdamW stay fp32.</summary>
    public Strata.Modeling.Precision Precision { get; init; } = Strata.Modeling.Precision.Fp32;
    public int EvalEvery { get; init; } = 100;
    public int EvalBatches { get; init; } = 8;
    public int CheckpointEvery { get; init; } = 100;
    public int LogEvery { get; init; } = 10;

    /// <summary>Largest learning rate a plan may ask for (AdamW steps are ~lr per parameter; 10 is already absurd).</summary>
    public const double MaxLearningRate = 10;

    public void Validate(string source)
    {
        void Check(bool ok, string field, object value, string rule) { if (!ok) throw new StrataException($"{source}: training.{field}: {rule}, got {value}"); }
        Check(BatchSize is > 0 and <= 1 << 20, "batch_size", BatchSize, "must be in 1..1048576");
        Check(GradAccumulation is > 0 and <= 1 << 16, "grad_accumulation", GradAccumulation, "must be in 1..65536");
        Check(LearningRate is > 0 and <= MaxLearningRate, "learning_rate", LearningRate, $"must be in (0, {MaxLearningRate}]");
        Check(MinLearningRate >= 0 && MinLearningRate <= LearningRate, "min_learning_rate", MinLearningRate, "must be in [0, learning_rate]");
        Check(WarmupSteps >= 0, "warmup_steps", WarmupSteps, "must be >= 0");
        Check(WeightDecay is >= 0 and <= 1, "weight_decay", WeightDecay, "must be in [0, 1]");
        Check(Beta1 is >= 0 and < 1, "beta1", Beta1, "must be in [0, 1)");
        Check(Beta2 is >= 0 and < 1, "beta2", Beta2, "must be in [0, 1)");
        Check(Epsilon is > 0 and <= 1, "epsilon", Epsilon, "must be in (0, 1]");
        Check(GradClip >= 0 && double.IsFinite(GradClip), "grad_clip", GradClip, "must be >= 0 and finite");
        Check(DivergenceFactor == 0 || DivergenceFactor is > 1 and <= 1e6, "divergence_factor", DivergenceFactor, "must be 0 (off) or in (1, 1e6]");
        Check(MaxActiveParameters is null or > 0, "max_active_parameters", MaxActiveParameters ?? 0, "must be positive");
        Check(EvalEvery > 0, "eval_every", EvalEvery, "must be positive");
        Check(EvalBatches is > 0 and <= 1 << 20, "eval_batches", EvalBatches, "must be in 1..1048576");
        Check(CheckpointEvery > 0, "checkpoint_every", CheckpointEvery, "must be positive");
        Check(LogEvery > 0, "log_every", LogEvery, "must be positive");
        Check(Seed >= 0, "seed", Seed, "must be >= 0");
    }
}
