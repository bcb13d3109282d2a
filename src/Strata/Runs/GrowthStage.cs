// A stage of constructive growth (Growing Transformers, arXiv 2507.07129, §3): entering it stacks new blocks on the
// frozen stack and attaches the LoRA phase's adapters; during it only the active set trains (the new blocks, or every
// block in a monolithic stage, the final LayerNorm, the head, the stage's adapters); leaving it merges the adapters.
// The same three steps build the model a checkpoint describes (replayed in order) and count every stage's parameter
// budget on the meta device, so what is counted is what trains.
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Runs;

public sealed class GrowthStage
{
    private readonly GrowthPlan _plan;

    public GrowthStage(GrowthPlan plan, int index)
    {
        if (index < 0 || index >= plan.Stages.Count) throw new ArgumentOutOfRangeException(nameof(index));
        (_plan, Index) = (plan, index);
    }

    /// <summary>0-based position in the plan; stage files and messages use <see cref="Number"/>.</summary>
    public int Index { get; }
    public int Number => Index + 1;
    public StageConfig Config => _plan.Stages[Index];
    public int Steps => Config.Steps;
    public string Name => Config.Name;
    public bool IsLast => Index == _plan.Stages.Count - 1;
    /// <summary>Depth of the model once this stage has stacked its blocks.</summary>
    public int Depth => _plan.Stages.Take(Index + 1).Sum(s => s.AddBlocks);
    /// <summary>Where the stage's new blocks go: on top, or under the stage's trainable top blocks. The blocks below
    /// this position are the frozen stack (those a LoRA phase on "frozen" blocks adapts).</summary>
    public int InsertAt => Depth - Config.AddBlocks - Config.TrainableTop;

    /// <summary>Every stage of a plan, in order.</summary>
    public static IReadOnlyList<GrowthStage> All(GrowthPlan plan) => Enumerable.Range(0, plan.Stages.Count).Select(i => new GrowthStage(plan, i)).ToList();

    /// <summary>Seeds are per stage, so a stage draws the same blocks and adapters whether or not the run was resumed.</summary>
    private long Seed => _plan.Training.Seed + 1000L * Index;

    /// <summary>Peak learning rate of the stage, with linear warmup and cosine decay to training.min_learning_rate.</summary>
    public double LearningRate(int step) =>
        LrSchedule.At(step, Steps, Config.WarmupSteps ?? _plan.Training.WarmupSteps, Config.LearningRate ?? _plan.Training.LearningRate,
            _plan.Training.MinLearningRate);

    /// <summary>Stacks the stage's new blocks (GPT-2 initialised for the plan's final depth, then as stages[i].init
    /// says), hands the grown model to <paramref name="grown"/> (a run started from another checkpoint loads its weights
    /// there), then attaches the stage's LoRA adapters. An adapter left unmerged by an earlier stage where this one
    /// attaches is folded into its weights first (it is frozen, so nothing computed changes).</summary>
    public void Enter(LanguageModel model, Action<LanguageModel>? grown = null)
    {
        if (model.Depth != Depth - Config.AddBlocks)
            throw new InvalidOperationException($"stage {Number} expects a model of depth {Depth - Config.AddBlocks}, got {model.Depth}");
        torch.manual_seed(Seed);
        var added = Enumerable.Range(0, Config.AddBlocks).Select(i => model.InsertBlock(InsertAt + i, _plan.FinalDepth)).ToList();
        Initialize(model, added);
        grown?.Invoke(model);
        if (Config.Lora is not { } lora) return;
        torch.manual_seed(Seed + 500);
        foreach (var block in LoraBlocks(model))
        {
            foreach (var t in lora.Targets.Distinct()) block.Projection(t).Merge();
            block.AttachLora(lora.Targets, lora.Rank, lora.Alpha);
        }
    }

    /// <summary>Applies stages[i].init to the blocks the stage just stacked (random ones are left as drawn).</summary>
    private void Initialize(LanguageModel model, IReadOnlyList<DecoderBlock> added)
    {
        if (Config.Init == BlockInit.Random || model.Device.type == DeviceType.META) return;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < added.Count; i++)
        {
            var block = added[i];
            if (Config.Init == BlockInit.ZeroOut)
                foreach (var p in new[] { block.Attention.Dense, block.Mlp.Down })
                {
                    p.Weight.zero_();
                    p.Bias?.zero_();
                }
            else
            {
                int from = Config.Init == BlockInit.CopyLast ? InsertAt - 1 : InsertAt - added.Count + i;    // (blocks below InsertAt kept their places)
                var source = model.Blocks[from];
                if (source.HasLora)
                    throw new StrataException(
                        $"stage {Number} '{Name}': init {Json.EnumName(Config.Init)} would copy block {from + 1}, which carries an unmerged LoRA " +
                            "adapter (set lora.merge to true in the stage that attached it)");
                var weights = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                foreach (var (name, p) in block.named_parameters()) p.copy_(weights[name]);
            }
        }
    }

    /// <summary>Sets requires_grad for the stage: its new blocks and trainable top (or every block when it trains all),
    /// its LoRA adapters, the final LayerNorm and the head; a trainable substrate only when the stage trains all or says
    /// train_embedding. Everything else, adapters left by earlier stages included, is frozen.</summary>
    public void SetTrainable(LanguageModel model)
    {
        var stage = Config;
        bool trainSubstrate = model.Substrate.Spec.Kind == SubstrateKind.Trainable && (stage.Trains == StageTrains.All || stage.TrainEmbedding);
        foreach (var p in model.Substrate.parameters()) p.requires_grad = trainSubstrate;
        int firstTrained = stage.Trains == StageTrains.All ? 0 : InsertAt;
        foreach (var (block, i) in model.Blocks.Select((b, i) => (b, i)))
            foreach (var p in block.parameters()) p.requires_grad = i >= firstTrained;
        if (stage.Lora is { } lora)
            foreach (var block in LoraBlocks(model))
                foreach (var t in lora.Targets)
                    foreach (var p in new[] { block.Projection(t).LoraA, block.Projection(t).LoraB }) p!.requires_grad = true;
        foreach (var p in model.FinalNorm.parameters().Concat(model.Head.parameters())) p.requires_grad = true;
    }

    /// <summary>Merges the stage's adapters into the weights, unless the plan keeps them (lora.merge = false).</summary>
    public void Leave(LanguageModel model)
    {
        if (Config.Lora is { Merge: true } lora)
            foreach (var block in LoraBlocks(model))
                foreach (var t in lora.Targets) block.Projection(t).Merge();
    }

    /// <summary>The blocks the stage's LoRA phase adapts: the frozen stack (below the new blocks), or every block.</summary>
    private IEnumerable<DecoderBlock> LoraBlocks(LanguageModel model) => Config.Lora is not { } lora ? []
        : model.Blocks.Take(lora.Blocks == Runs.LoraBlocks.All ? model.Depth : InsertAt);

    /// <summary>The model of <paramref name="plan"/> as it stands inside stage <paramref name="stageIndex"/> (after
    /// leaving it when <paramref name="stageFinished"/>): every earlier stage entered and left, in order. Weights are
    /// freshly initialised; a checkpoint's are loaded next.</summary>
    public static LanguageModel Build(GrowthPlan plan, int stageIndex, bool stageFinished, Device? device = null, int? tableWidth = null)
    {
        var model = new LanguageModel(plan.Model, SubstrateBuilder.Create(plan.Substrate, plan.Model.VocabSize, plan.Model.DModel, device,
            tableWidth), 0, device);
        try
        {
            for (int i = 0; i <= stageIndex; i++)
            {
                var stage = new GrowthStage(plan, i);
                stage.Enter(model);
                if (i < stageIndex || stageFinished) stage.Leave(model);
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Active / frozen / total parameters of every stage, counted on modules built on the meta device
    /// (nothing allocated) by the same Enter / SetTrainable / Leave steps as training. A stage over
    /// training.max_active_parameters is refused here, before any training.</summary>
    public static IReadOnlyList<ParameterBudget> Budgets(GrowthPlan plan, string source)
    {
        var budgets = Count(plan);
        for (int i = 0; i < budgets.Count; i++)
            if (plan.Training.MaxActiveParameters is { } max && budgets[i].Active > max)
                throw new StrataException($"{source}: stages[{i}]: {budgets[i].Active:N0} active parameters exceed training.max_active_parameters ({max:N0})");
        return budgets;
    }

    private static List<ParameterBudget> Count(GrowthPlan plan)
    {
        using var model = new LanguageModel(plan.Model, SubstrateBuilder.Create(plan.Substrate, plan.Model.VocabSize, plan.Model.DModel, META), 0, META);
        var budgets = new List<ParameterBudget>();
        foreach (var stage in All(plan))
        {
            stage.Enter(model);
            stage.SetTrainable(model);
            budgets.Add(ParameterBudget.Of(model));
            stage.Leave(model);
        }
        return budgets;
    }

    /// <summary>The plan as it trains: LoRA ranks marked fit_budget resolved, and every stage's active parameters
    /// checked against training.max_active_parameters (refused naming the stage, before anything is built).</summary>
    public static GrowthPlan Resolve(GrowthPlan plan, string source)
    {
        plan = FitLoraRanks(plan, source);
        Budgets(plan, source);
        return plan;
    }

    /// <summary>The plan with the rank of every LoRA phase marked fit_budget set to the largest (up to d_model) whose
    /// stage stays within training.max_active_parameters; stages in order, as earlier adapters left unmerged count
    /// in later stages. A plan without such phases comes back as it is.</summary>
    public static GrowthPlan FitLoraRanks(GrowthPlan plan, string source)
    {
        for (int i = 0; i < plan.Stages.Count; i++)
        {
            if (plan.Stages[i].Lora is not { FitBudget: true } lora) continue;
            long max = plan.Training.MaxActiveParameters ?? throw new StrataException(
                $"{source}: stages[{i}].lora.fit_budget: training.max_active_parameters is not set");
            GrowthPlan WithRank(int r) => plan with { Stages = plan.Stages.Select((s, k) => k == i ? s with { Lora = lora with { Rank = r } } : s).ToList() };
            int lo = 0, hi = plan.Model.DModel;                                     // the largest fitting rank is in [lo, hi]; rank 0 "fits"
            while (lo < hi)
            {
                int mid = (lo + hi + 1) / 2;
                if (Count(WithRank(mid))[i].Active <= max) lo = mid; else hi = mid - 1;
            }
            if (lo == 0)
                throw new StrataException(
                    $"{source}: stages[{i}].lora.fit_budget: even rank 1 takes the stage to {Count(WithRank(1))[i].Active:N0} active parameters, " +
                        $"over training.max_active_parameters ({max:N0})");
            plan = WithRank(lo);
        }
        return plan;
    }
}
