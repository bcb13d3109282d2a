using Strata.Modeling;
using Strata.Substrates;
using Strata.Util;

namespace Strata.Runs;

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
    /// <summary>How conversations become prompts for this model (strata serve's chat endpoint); none for a base model.</summary>
    public Tokenization.ChatTemplate? Chat { get; init; }

    /// <summary>Depth once every stage has added its blocks.</summary>
    public int FinalDepth => Stages.Sum(s => s.AddBlocks);
    public long TotalSteps => Stages.Sum(s => (long)s.Steps);

    /// <summary>Reads and validates a plan; relative data paths are taken relative to the plan file's folder. Each of
    /// <paramref name="overrides"/> ("training.learning_rate=3e-4", "stages[1].steps=200") replaces one field first.</summary>
    public static GrowthPlan Load(string path, IReadOnlyList<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        var json = File.ReadAllText(path);
        if (overrides is { Count: > 0 }) json = Json.WithOverrides(json, overrides, path);
        return Parse(json, path, System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
    }

    /// <summary>Parses and validates a plan read from <paramref name="source"/>; relative data paths are taken relative
    /// to <paramref name="baseDir"/>. Its parameter budgets are checked (and fitted LoRA ranks resolved) by
    /// <see cref="GrowthStage.Resolve"/>, which the trainer applies to every plan it runs.</summary>
    public static GrowthPlan Parse(string json, string source, string baseDir)
    {
        var plan = Json.Parse<GrowthPlan>(json, source).Validate(source);
        plan.Data.Require(source);
        return plan with { Data = plan.Data.Rooted(baseDir) };
    }

    public GrowthPlan Validate(string source)
    {
        string F(string field) => $"{source}: {field}";
        if (FormatVersion is < 1 or > CurrentFormat) throw new StrataException(
            $"{F("format_version")}: {FormatVersion} is not supported (this Strata reads 1 to {CurrentFormat})");
        Data.Validate(source, "data");
        try
        {
            Model.Validate("model");
            Substrate.Validate(Model.VocabSize, Model.DModel, "substrate");
        }
        catch (StrataException e) { throw new StrataException($"{source}: {e.Message}"); }
        Training.Validate(source);
        Chat?.Validate(source);
        if (Stages.Count == 0) throw new StrataException($"{F("stages")}: at least one stage is required");
        for (int i = 0; i < Stages.Count; i++)
        {
            var s = Stages[i];
            string at = $"stages[{i}]";
            if (s.AddBlocks < 0) throw new StrataException($"{F(at + ".add_blocks")}: must be >= 0, got {s.AddBlocks}");
            if (s.Steps is <= 0 or > MaxSteps) throw new StrataException($"{F(at + ".steps")}: must be in 1..{MaxSteps:N0}, got {s.Steps}");
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
                throw new StrataException(
                    $"{F(at + ".init")}: copy_top copies the top {s.AddBlocks} trained blocks, but the model has {below - s.TrainableTop} below this stage");
            if (s.Init == BlockInit.CopyLast && below - s.TrainableTop < 1)
                throw new StrataException($"{F(at + ".init")}: copy_last copies the block below this stage's new blocks, but there is none");
            if (s.Lora is { } lora)
            {
                if (lora.Rank <= 0) throw new StrataException($"{F(at + ".lora.rank")}: must be positive, got {lora.Rank}");
                if (!(lora.Alpha > 0 && double.IsFinite(lora.Alpha))) throw new StrataException(
                    $"{F(at + ".lora.alpha")}: must be positive and finite, got {lora.Alpha}");
                if (lora.Targets.Count == 0) throw new StrataException($"{F(at + ".lora.targets")}: name at least one of qkv, proj, fc1, fc2");
                if (lora.Blocks == LoraBlocks.Frozen && below - s.TrainableTop == 0)
                    throw new StrataException($"{F(at + ".lora.blocks")}: 'frozen' but no earlier stage made blocks to adapt");
                if (lora.FitBudget && Training.MaxActiveParameters is null)
                    throw new StrataException(
                        $"{F(at + ".lora.fit_budget")}: the rank is fitted to training.max_active_parameters, which the plan does not set");
                if (lora.Rank > Model.DModel) throw new StrataException($"{F(at + ".lora.rank")}: {lora.Rank} exceeds d_model {Model.DModel}");
            }
        }
        if (Stages[0].AddBlocks == 0) throw new StrataException($"{F("stages[0].add_blocks")}: the first stage must add at least one block");
        if (Stages.Sum(x => (long)x.AddBlocks) > MaxDepth) throw new StrataException(
            $"{F("stages")}: the stages add {Stages.Sum(x => (long)x.AddBlocks):N0} blocks; at most {MaxDepth} are supported");
        return this;
    }

    /// <summary>Most optimizer steps a stage may ask for (the paper's runs take 60,000; a bound, not a goal).</summary>
    public const int MaxSteps = 1_000_000_000;

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
