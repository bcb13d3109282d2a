using Strata.Data;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Training;

/// <summary>
/// A training plan (JSON, docs/PLANS.md): a model shape, a substrate, data and a list of stages. A monolithic run is a
/// one-stage plan; growth adds stages. Shape-defining fields are fixed once a run has a checkpoint.
/// </summary>
public sealed record GrowthPlan
{
    /// <summary>1: the first format (data.train / data.validation shard paths); 2: data.datasets and mixtures.</summary>
    public const int CurrentFormat = 2;

    public int FormatVersion { get; init; } = CurrentFormat;
    public string Name { get; init; } = "run";
    public required ModelConfig Model { get; init; }
    public required SubstrateSpec Substrate { get; init; }
    public required DataSpec Data { get; init; }
    public TrainingConfig Training { get; init; } = new();
    public required IReadOnlyList<StageConfig> Stages { get; init; }

    /// <summary>Depth once every stage has added its blocks.</summary>
    public int FinalDepth => Stages.Sum(s => s.AddBlocks);
    public long TotalSteps => Stages.Sum(s => (long)s.Steps);

    /// <summary>Reads and validates a plan; relative data paths are taken relative to the plan file's folder.</summary>
    public static GrowthPlan Load(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        return Parse(File.ReadAllText(path), path, System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
    }

    /// <summary>Parses and validates a plan read from <paramref name="source"/>; relative data paths are taken relative
    /// to <paramref name="baseDir"/>.</summary>
    public static GrowthPlan Parse(string json, string source, string baseDir)
    {
        var plan = Json.Parse<GrowthPlan>(json, source).Validate(source);
        plan.Data.Require(source);
        plan = GrowthStage.FitLoraRanks(plan, source);
        GrowthStage.Budgets(plan, source);                 // refuses a stage over training.max_active_parameters
        return plan with { Data = plan.Data.Rooted(baseDir) };
    }

    public GrowthPlan Validate(string source)
    {
        string F(string field) => $"{source}: {field}";
        if (FormatVersion is < 1 or > CurrentFormat) throw new StrataException($"{F("format_version")}: {FormatVersion} is not supported (this Strata reads 1 to {CurrentFormat})");
        Data.Validate(source, "data");
        try
        {
            Model.Validate("model");
            Substrate.Validate(Model.VocabSize, Model.DModel, "substrate");
        }
        catch (StrataException e) { throw new StrataException($"{source}: {e.Message}"); }
        Training.Validate(source);
        if (Stages.Count == 0) throw new StrataException($"{F("stages")}: at least one stage is required");
        for (int i = 0; i < Stages.Count; i++)
        {
            var s = Stages[i];
            string at = $"stages[{i}]";
            if (s.AddBlocks < 0) throw new StrataException($"{F(at + ".add_blocks")}: must be >= 0, got {s.AddBlocks}");
            if (s.Steps <= 0) throw new StrataException($"{F(at + ".steps")}: must be positive, got {s.Steps}");
            if (s.LearningRate is { } lr && !(lr > 0 && lr <= TrainingConfig.MaxLearningRate))
                throw new StrataException($"{F(at + ".learning_rate")}: must be in (0, {TrainingConfig.MaxLearningRate}], got {lr}");
            if (s.WarmupSteps is < 0) throw new StrataException($"{F(at + ".warmup_steps")}: must be >= 0, got {s.WarmupSteps}");
            if (s.Mixture is { } mixture) DataSpec.ValidateMixture(mixture, Data, source, at + ".mixture");
            int below = Stages.Take(i).Sum(x => x.AddBlocks);
            if (s.TrainableTop < 0 || s.TrainableTop > below)
                throw new StrataException($"{F(at + ".trainable_top")}: must be in 0..{below} (the blocks earlier stages made), got {s.TrainableTop}");
            if (s.TrainableTop > 0 && s.Trains == StageTrains.All)
                throw new StrataException($"{F(at + ".trainable_top")}: a stage that trains all blocks has no frozen stack to grow under its top");
            if (s.Init == BlockInit.CopyTop && below - s.TrainableTop < s.AddBlocks)
                throw new StrataException($"{F(at + ".init")}: copy_top copies the top {s.AddBlocks} trained blocks, but the model has {below - s.TrainableTop} below this stage");
            if (s.Init == BlockInit.CopyLast && below - s.TrainableTop < 1)
                throw new StrataException($"{F(at + ".init")}: copy_last copies the block below this stage's new blocks, but there is none");
            if (s.Lora is { } lora)
            {
                if (lora.Rank <= 0) throw new StrataException($"{F(at + ".lora.rank")}: must be positive, got {lora.Rank}");
                if (!(lora.Alpha > 0 && double.IsFinite(lora.Alpha))) throw new StrataException($"{F(at + ".lora.alpha")}: must be positive and finite, got {lora.Alpha}");
                if (lora.Targets.Count == 0) throw new StrataException($"{F(at + ".lora.targets")}: name at least one of qkv, proj, fc1, fc2");
                if (lora.Blocks == LoraBlocks.Frozen && below - s.TrainableTop == 0)
                    throw new StrataException($"{F(at + ".lora.blocks")}: 'frozen' but no earlier stage made blocks to adapt");
                if (lora.FitBudget && Training.MaxActiveParameters is null)
                    throw new StrataException($"{F(at + ".lora.fit_budget")}: the rank is fitted to training.max_active_parameters, which the plan does not set");
                if (lora.Rank > Model.DModel) throw new StrataException($"{F(at + ".lora.rank")}: {lora.Rank} exceeds d_model {Model.DModel}");
            }
        }
        if (Stages[0].AddBlocks == 0) throw new StrataException($"{F("stages[0].add_blocks")}: the first stage must add at least one block");
        if (Stages.Sum(x => (long)x.AddBlocks) > MaxDepth) throw new StrataException($"{F("stages")}: the stages add {Stages.Sum(x => (long)x.AddBlocks):N0} blocks; at most {MaxDepth} are supported");
        return this;
    }

    /// <summary>Deepest model a plan may build (far beyond the papers' 16 layers; a bound on what a plan can make Strata build).</summary>
    public const int MaxDepth = 1024;

    /// <summary>This plan with every learning rate (training's peak and minimum, each stage's) multiplied by <paramref name="factor"/>.</summary>
    public GrowthPlan WithLearningRatesScaled(double factor, string source)
    {
        if (!(factor > 0 && factor <= 1e3)) throw new StrataException($"--lr-scale: must be in (0, 1000], got {factor}");
        var scaled = this with
        {
            Training = Training with { LearningRate = Training.LearningRate * factor, MinLearningRate = Training.MinLearningRate * factor },
            Stages = Stages.Select(st => st.LearningRate is { } lr ? st with { LearningRate = lr * factor } : st).ToList(),
        };
        return scaled.Validate(source);
    }
}

/// <summary>The training data: datasets from <c>strata data prepare</c> by name, mixed by weight (format 2), or one pair
/// of token shards (format 1); and the tokenizer that encoded them.</summary>
public sealed record DataSpec
{
    /// <summary>Dataset folders by name (relative to the plan file).</summary>
    public IReadOnlyDictionary<string, string>? Datasets { get; init; }
    /// <summary>Sampling weights by dataset name (normalised); null gives every dataset the same weight. A stage may
    /// give its own.</summary>
    public IReadOnlyDictionary<string, double>? Mixture { get; init; }
    /// <summary>Format 1: a training shard and a validation shard (each with an older meta.json beside it).</summary>
    public string? Train { get; init; }
    public string? Validation { get; init; }
    /// <summary>The tokenizer (a name or the path of a tokenizer.json); null takes the one the datasets record. Either
    /// way every dataset must have been encoded with it (compared by content hash).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>sha256 of the tokenizer's content (<see cref="TokenizerIdentity"/>); null accepts whatever
    /// <see cref="Tokenizer"/> names today. A run records both.</summary>
    public string? TokenizerHash { get; init; }

    /// <summary>The datasets by name (format 1 data is one dataset named "data").</summary>
    public IReadOnlyList<(string Name, string Path)> Named() =>
        Datasets is { } d ? d.Select(kv => (kv.Key, kv.Value)).ToList() : Train is null ? [] : [("data", Train)];

    /// <summary>Field rules that need no files.</summary>
    public void Validate(string source, string at)
    {
        if (Datasets is { } d)
        {
            if (Train is not null || Validation is not null) throw new StrataException($"{source}: {at}: give either datasets or train/validation, not both");
            if (d.Count == 0) throw new StrataException($"{source}: {at}.datasets: name at least one dataset");
            foreach (var name in d.Keys)
                if (name.Length == 0 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                    throw new StrataException($"{source}: {at}.datasets: '{name}' is not a name (letters, digits, '-', '_', '.')");
        }
        else if (Mixture is not null) throw new StrataException($"{source}: {at}.mixture: a mixture needs data.datasets");
        if (Mixture is { } m) ValidateMixture(m, this, source, at + ".mixture");
    }

    /// <summary>Refuses a mixture that names unknown datasets, has a negative or non-finite weight, or weighs nothing.</summary>
    public static void ValidateMixture(IReadOnlyDictionary<string, double> mixture, DataSpec data, string source, string at)
    {
        var names = data.Named().Select(n => n.Name).ToHashSet();
        foreach (var (name, w) in mixture)
        {
            if (!names.Contains(name)) throw new StrataException($"{source}: {at}: '{name}' is not one of data.datasets ({string.Join(", ", names)})");
            if (!(w >= 0 && double.IsFinite(w))) throw new StrataException($"{source}: {at}.{name}: a weight must be >= 0 and finite, got {w}");
        }
        if (!(mixture.Values.Sum() > 0)) throw new StrataException($"{source}: {at}: the weights add up to 0; give one dataset a positive weight");
    }

    /// <summary>Refuses data that names nothing to train on (a plan file must; an imported model's plan need not).</summary>
    public void Require(string source)
    {
        if (Datasets is null && (string.IsNullOrWhiteSpace(Train) || string.IsNullOrWhiteSpace(Validation)))
            throw new StrataException($"{source}: data: name datasets (data.datasets) or a train and a validation shard (data.train, data.validation)");
    }

    /// <summary>This spec with relative paths made absolute from <paramref name="baseDir"/>.</summary>
    public DataSpec Rooted(string baseDir) => this with
    {
        Datasets = Datasets?.ToDictionary(kv => kv.Key, kv => System.IO.Path.GetFullPath(kv.Value, baseDir)),
        Train = Train is null ? null : System.IO.Path.GetFullPath(Train, baseDir),
        Validation = Validation is null ? null : System.IO.Path.GetFullPath(Validation, baseDir),
    };

    /// <summary>The stage's mixture (or the plan's), as (name, weight) for every dataset, normalised.</summary>
    public IReadOnlyList<(string Name, double Weight)> MixtureFor(StageConfig stage)
    {
        var named = Named();
        var weights = stage.Mixture ?? Mixture;
        var list = named.Select(n => (n.Name, weights is null ? 1.0 : weights.GetValueOrDefault(n.Name))).ToList();
        double total = list.Sum(x => x.Item2);
        return list.Select(x => (x.Name, x.Item2 / total)).ToList();
    }

    /// <summary>Opens every dataset (format 1 shards as one dataset named "data").</summary>
    public IReadOnlyList<(string Name, Dataset Dataset)> Open()
    {
        var opened = new List<(string, Dataset)>();
        try
        {
            foreach (var (name, path) in Named())
                opened.Add((name, Datasets is null ? Dataset.FromShards(Train!, Validation!) : Dataset.Open(path)));
            return opened;
        }
        catch
        {
            foreach (var (_, d) in opened) d.Dispose();
            throw;
        }
    }

    /// <summary>This spec with the tokenizer every dataset was encoded with, by name and hash, checked against what the
    /// spec names: a dataset of another tokenizer is refused naming both.</summary>
    public DataSpec WithTokenizerResolved()
    {
        TokenizerIdentity? named = Tokenizer is null ? null : TokenizerHash is { } pinned ? new TokenizerIdentity(Tokenizer, pinned) : TokenizerIdentity.Of(Tokenizer);
        var datasets = Open();
        try
        {
            var id = named ?? datasets.FirstOrDefault().Dataset?.Tokenizer ?? throw new StrataException("data: no dataset to take the tokenizer from");
            foreach (var (name, d) in datasets)
                if (d.Tokenizer.Hash != id.Hash)
                    throw new StrataException($"{d.Path}: dataset '{name}' was encoded with the tokenizer {d.Tokenizer}, the plan's tokenizer is {id}");
            return this with { Tokenizer = id.Name, TokenizerHash = id.Hash };
        }
        finally
        {
            foreach (var (_, d) in datasets) d.Dispose();
        }
    }
}

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
    /// in the stage (<see cref="DivergenceGuard"/>); 0 turns the rule off.</summary>
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
    }
}
