namespace Strata.Runs;

/// <summary>What trains in a stage.</summary>
public enum StageTrains
{
    /// <summary>The blocks this stage adds, the final LayerNorm and the LM head; earlier blocks stay frozen (the
    /// paper's constructive growth, Growing Transformers, arXiv 2507.07129).</summary>
    New,
    /// <summary>Every block, the final LayerNorm, the head and a trainable substrate (a monolithic run).</summary>
    All,
}

/// <summary>One stage of a plan.</summary>
public sealed record StageConfig
{
    public string Name { get; init; } = "stage";
    /// <summary>Blocks stacked on top at the start of the stage.</summary>
    public int AddBlocks { get; init; }
    /// <summary>Optimizer steps in the stage.</summary>
    public int Steps { get; init; }
    /// <summary>How the stage's new blocks start (<see cref="BlockInit"/>).</summary>
    public BlockInit Init { get; init; } = BlockInit.Random;
    public StageTrains Trains { get; init; } = StageTrains.New;
    /// <summary>The top this many blocks of the stack stay trainable in this stage, and the new blocks are inserted below
    /// them (a trainable "global head" over a growing frozen body, as SegProp's; 0: new blocks go on top, the paper's).</summary>
    public int TrainableTop { get; init; }
    /// <summary>Also train a trainable substrate in this stage (the paper's "trainable in stage 1, then frozen" variant);
    /// a frozen substrate (the binary code) never trains.</summary>
    public bool TrainEmbedding { get; init; }
    /// <summary>An optional LoRA phase run together with this stage: adapters on earlier blocks, trained with the stage
    /// and merged at its end.</summary>
    public LoraConfig? Lora { get; init; }
    /// <summary>Peak learning rate of this stage; null takes training.learning_rate.</summary>
    public double? LearningRate { get; init; }
    public int? WarmupSteps { get; init; }
    /// <summary>This stage's sampling weights by dataset name (the paper's later runs change the mixture across stages);
    /// null takes data.mixture.</summary>
    public IReadOnlyDictionary<string, double>? Mixture { get; init; }
}

/// <summary>How a stage's new blocks start.</summary>
public enum BlockInit
{
    /// <summary>GPT-2's initialisation for the plan's final depth (the paper's choice).</summary>
    Random,
    /// <summary>Random, then the two projections into the residual stream (attention.dense, mlp.dense_4h_to_h) and their
    /// biases set to zero: each new block starts as the identity, so the grown model computes exactly what the
    /// previous one did (function-preserving growth as in Net2Net, Chen et al. 2016, and LiGO / MSG / LEMON; the zero
    /// residual branch as in ReZero and Fixup).</summary>
    ZeroOut,
    /// <summary>The new blocks start as copies of the top trained blocks, in order (layer stacking: G_stack, Du et al.
    /// 2024, "Stacking Your Transformers"; the copies train, the originals stay frozen).</summary>
    CopyTop,
    /// <summary>Every new block starts as a copy of the block right below where the new blocks go (the last block of
    /// the frozen stack): stacking by copying the previous layer, which Agarwal et al. 2024 ("Stacking as accelerated
    /// gradient descent") analyse as the initialisation that speeds up training.</summary>
    CopyLast,
}

/// <summary>Which blocks a LoRA phase adapts.</summary>
public enum LoraBlocks
{
    /// <summary>The blocks earlier stages trained (frozen for dense updates): the paper's global readjustment.</summary>
    Frozen,
    /// <summary>Every block, the stage's new ones too.</summary>
    All,
}

/// <summary>A LoRA phase (Growing Transformers, arXiv 2507.07129; rank, alpha and targets are not in the papers:
/// these defaults are Strata's choice).</summary>
public sealed record LoraConfig
{
    public int Rank { get; init; } = 8;
    /// <summary>The update is scaled by alpha / rank (LoRA paper §4.1).</summary>
    public double Alpha { get; init; } = 16;
    public IReadOnlyList<Strata.Modeling.LoraTarget> Targets { get; init; } =
        [Strata.Modeling.LoraTarget.Qkv, Strata.Modeling.LoraTarget.Proj, Strata.Modeling.LoraTarget.Fc1, Strata.Modeling.LoraTarget.Fc2];
    public LoraBlocks Blocks { get; init; } = LoraBlocks.Frozen;
    /// <summary>Fold the adapters into the weights at the end of the stage (the paper reports merged models).</summary>
    public bool Merge { get; init; } = true;
    /// <summary>Take the largest rank whose stage stays within training.max_active_parameters (the rank given is
    /// replaced when the plan is loaded; the resolved plan records the one used).</summary>
    public bool FitBudget { get; init; }
}
