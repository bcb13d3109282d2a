// The training loop: stages in order, each adds its blocks, picks what trains, builds AdamW over exactly that set and
// steps through its schedule. Every step runs in its own dispose scope. Batches depend only on (seed, step) and the
// whole optimizer state is checkpointed, so a resumed run repeats an uninterrupted one exactly.
using System.Diagnostics;
using Strata.Data;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Training;

public sealed record TrainOptions
{
    /// <summary>Run folder: checkpoint.safetensors, metrics.jsonl, tb/, loss_curve.png.</summary>
    public required string OutDir { get; init; }
    /// <summary>Continue the run in <see cref="OutDir"/> from its checkpoint (the plan stored there wins).</summary>
    public bool Resume { get; init; }
    /// <summary>A checkpoint of the same shape whose weights replace the first stage's initialisation.</summary>
    public string? InitFrom { get; init; }
    /// <summary>Stop, with a checkpoint, once this many optimizer steps are done (the run can be resumed).</summary>
    public long? StopAfterStep { get; init; }
    public Device Device { get; init; } = CPU;
    public TextWriter Log { get; init; } = Console.Out;
    /// <summary>Draw the progress bar in place (a terminal); otherwise print a line every log_every steps.</summary>
    public bool Interactive { get; init; }
}

public sealed record TrainResult(string RunDir, long GlobalStep, double? InitialValidationLoss, double? FinalValidationLoss,
    double TokensPerSecond, bool Completed, ParameterBudget Budget)
{
    /// <summary>Validation tokens per UTF-8 byte of the validation text (from the shards' meta.json), if known:
    /// loss x this / ln 2 = bits per byte, comparable across tokenizers.</summary>
    public double? TokensPerByte { get; init; }
    public double? BitsPerByte(double? loss) => loss is { } l && TokensPerByte is { } r ? l * r / Math.Log(2) : null;

    public string CheckpointPath => Path.Combine(RunDir, Checkpoint.FileName);
    public string MetricsPath => Path.Combine(RunDir, "metrics.jsonl");
    public string LossCurvePath => Path.Combine(RunDir, "loss_curve.png");
}

public static class Trainer
{
    /// <summary>Optimizer steps between returns of freed native memory to the kernel (Util/NativeAllocator.cs).</summary>
    public const int TrimEvery = 10;

    public static TrainResult Run(GrowthPlan plan, TrainOptions o)
    {
        var log = o.Log;
        var ckptPath = Path.Combine(o.OutDir, Checkpoint.FileName);
        CheckpointInfo? resume = null;
        if (o.Resume)
        {
            if (!File.Exists(ckptPath)) throw new StrataException($"{o.OutDir}: no {Checkpoint.FileName} to resume from");
            resume = Checkpoint.ReadInfo(ckptPath);
            if (Json.Serialize(resume.Plan) != Json.Serialize(plan))
                log.WriteLine($"note: resuming with the plan stored in {ckptPath}; the plan given differs and is ignored");
            plan = resume.Plan;
        }
        else if (File.Exists(ckptPath))
            throw new StrataException($"{o.OutDir} already holds a checkpoint: pass --resume to continue it, or choose another --out");

        var t = plan.Training;
        var budgets = StageBudgets(plan, o.Resume ? ckptPath : "plan");
        using var trainShard = TokenShard.Open(plan.Data.Train);
        using var valShard = TokenShard.Open(plan.Data.Validation);
        foreach (var s in new[] { trainShard, valShard })
            if (s.VocabSize > plan.Model.VocabSize)
                throw new StrataException($"{s.Path}: tokens from a vocabulary of {s.VocabSize}, the model's head has {plan.Model.VocabSize}");
        var tokenizer = PreparedData.TryRead(plan.Data.Train)?.Tokenizer ?? "unknown";
        string? tokenizerHash = tokenizer == "unknown" ? null : Tokenization.Tokenizers.ContentHash(Tokenization.Tokenizers.ByName(tokenizer));
        if (plan.Substrate.Kind == SubstrateKind.Visual && tokenizerHash is not null && Tokenization.Tokenizers.ByName(plan.Substrate.Tokenizer).Name != tokenizer)
            throw new StrataException($"substrate.tokenizer: the visual substrate draws the entries of '{plan.Substrate.Tokenizer}' but {plan.Data.Train} was encoded with '{tokenizer}'");
        var sampler = new BatchSampler(trainShard, t.BatchSize, plan.Model.ContextLength, t.Seed);
        var valSampler = new BatchSampler(valShard, t.BatchSize, plan.Model.ContextLength, t.Seed);
        if (resume?.Completed == true)
        {
            log.WriteLine($"{o.OutDir}: the run is already complete ({resume.GlobalStep} steps)");
            return new TrainResult(o.OutDir, resume.GlobalStep, null, resume.ValidationLoss, 0, true, budgets[^1]);
        }

        LanguageModel model;
        if (resume is not null) model = Checkpoint.LoadModel(ckptPath, o.Device).Model;
        else
        {
            torch.manual_seed(t.Seed);
            model = new LanguageModel(plan.Model, Substrate.Create(plan.Substrate, plan.Model, o.Device), 0, o.Device);
        }
        using var _model = model;
        int si = resume?.StageIndex ?? 0, startStep = resume?.StageStep ?? 0;
        if (resume is not null && startStep >= plan.Stages[si].Steps) { si++; startStep = 0; }
        // the first stage to run gets its blocks (and --init-from weights) before anything is written
        if (si < plan.Stages.Count && startStep == 0) BeginStage(model, plan, si, o.InitFrom);

        Directory.CreateDirectory(o.OutDir);
        using var metrics = new MetricsLog(Path.Combine(o.OutDir, "metrics.jsonl"), resume?.GlobalStep ?? -1);
        using var tb = new TensorBoardWriter(Path.Combine(o.OutDir, "tb"));

        long globalStep = resume?.GlobalStep ?? 0, tokensSeen = resume?.TokensSeen ?? 0;
        double elapsedBase = resume?.ElapsedSeconds ?? 0;
        double? initialVal = null, lastVal = resume?.ValidationLoss;
        var clock = Stopwatch.StartNew();
        var bar = new ProgressBar(log, plan.TotalSteps, t.LogEvery, o.Interactive);
        double tokensPerSecond = 0;
        long tokensPerStep = (long)t.BatchSize * plan.Model.ContextLength * t.GradAccumulation;

        ParameterBudget budget = ParameterBudget.Of(model);
        for (bool first = true; si < plan.Stages.Count; si++, startStep = 0, first = false)
        {
            var stage = plan.Stages[si];
            bool midStage = resume is not null && si == resume.StageIndex && startStep > 0;
            if (!midStage && !first) BeginStage(model, plan, si, o.InitFrom);
            SetTrainable(model, stage);
            using var optimizer = new AdamW(OptimizedParameters(model), t.Beta1, t.Beta2, t.Epsilon, t.WeightDecay);
            if (midStage) Checkpoint.LoadOptimizer(optimizer, ckptPath, resume!.OptimizerStep);
            budget = ParameterBudget.Of(model);
            bar.Message($"stage {si + 1}/{plan.Stages.Count} '{stage.Name}': depth {model.Depth}, parameters {budget}");
            PeakMemory.Reset();
            var stageClock = Stopwatch.StartNew();

            if (globalStep == 0)
            {
                initialVal = lastVal = Evaluate(model, valSampler, t.EvalBatches, o.Device);
                metrics.Write(new { kind = "eval", step = 0L, stage = si, val_loss = lastVal });
                tb.Scalar("val/loss", 0, (float)lastVal.Value);
                bar.Message($"validation loss before training: {lastVal:F4}");
            }

            for (int step = startStep; step < stage.Steps; step++)
            {
                var stepClock = Stopwatch.StartNew();
                double lr = LrSchedule.At(step, stage.Steps, stage.WarmupSteps ?? t.WarmupSteps, stage.LearningRate ?? t.LearningRate, t.MinLearningRate);
                double trainLoss = Step(model, optimizer, lr, t.GradClip,
                    Enumerable.Range(0, t.GradAccumulation).Select(micro => sampler.Batch(globalStep * t.GradAccumulation + micro, o.Device)));
                globalStep++;
                tokensSeen += tokensPerStep;
                if (globalStep % TrimEvery == 0) NativeAllocator.Trim();
                double stepSeconds = stepClock.Elapsed.TotalSeconds;
                tokensPerSecond = tokensPerSecond == 0 ? tokensPerStep / stepSeconds : 0.9 * tokensPerSecond + 0.1 * tokensPerStep / stepSeconds;
                double elapsed = elapsedBase + clock.Elapsed.TotalSeconds;
                metrics.Write(new { kind = "train", step = globalStep, stage = si, loss = trainLoss, lr, tokens_per_s = tokensPerStep / stepSeconds, elapsed_s = elapsed });
                tb.Scalar("train/loss", globalStep, (float)trainLoss);
                tb.Scalar("train/lr", globalStep, (float)lr);
                bar.Report(globalStep, $"loss {trainLoss:F4} lr {lr:E2} {tokensPerSecond:F0} tok/s");

                bool stageEnd = step == stage.Steps - 1;
                bool stopping = globalStep == o.StopAfterStep;
                if (stageEnd && stage.Lora is { Merge: true })
                {
                    model.MergeLora();
                    bar.Message($"stage {si + 1}: LoRA adapters merged into the weights");
                }
                if (stageEnd)
                    metrics.Write(new { kind = "stage", step = globalStep, stage = si, name = stage.Name, depth = model.Depth, active = budget.Active, frozen = budget.Frozen,
                        total = budget.Total, peak_rss_mib = PeakMemory.Mib(), seconds = stageClock.Elapsed.TotalSeconds });
                if (globalStep % t.EvalEvery == 0 || stageEnd)
                {
                    lastVal = Evaluate(model, valSampler, t.EvalBatches, o.Device);
                    metrics.Write(new { kind = "eval", step = globalStep, stage = si, val_loss = lastVal });
                    tb.Scalar("val/loss", globalStep, (float)lastVal.Value);
                    bar.Message($"step {globalStep}: validation loss {lastVal:F4}");
                }
                if (globalStep % t.CheckpointEvery == 0 || stageEnd || stopping)
                {
                    bool completed = stageEnd && si == plan.Stages.Count - 1;
                    Checkpoint.Save(ckptPath, model, completed ? null : optimizer, new CheckpointInfo
                    {
                        Plan = plan, Tokenizer = tokenizer, TokenizerHash = tokenizerHash, Depth = model.Depth, StageIndex = si, StageStep = step + 1,
                        GlobalStep = globalStep, OptimizerStep = optimizer.StepCount, Completed = completed,
                        ElapsedSeconds = elapsedBase + clock.Elapsed.TotalSeconds, TokensSeen = tokensSeen, ValidationLoss = lastVal,
                    });
                    tb.Flush();
                    if (stageEnd) CopyAtomically(ckptPath, Path.Combine(o.OutDir, $"stage-{si + 1}.safetensors"));
                }
                if (stopping)
                {
                    bar.Message($"stopped after step {globalStep}; continue with --resume");
                    return new TrainResult(o.OutDir, globalStep, initialVal, lastVal, tokensPerSecond, false, budget);
                }
            }
        }
        LossCurvePlot.Save(metrics.Path, Path.Combine(o.OutDir, "loss_curve.png"), $"{plan.Name}: {plan.Substrate.Kind.ToString().ToLowerInvariant()} substrate, depth {model.Depth}");
        return new TrainResult(o.OutDir, globalStep, initialVal, lastVal, tokensPerSecond, true, budget) { TokensPerByte = TokensPerByte(plan) };
    }

    /// <summary>One optimizer step over micro-batches [B, T+1] (inputs [:, :-1], targets [:, 1:]), gradients averaged,
    /// clipped to <paramref name="clip"/> (0 = off); all of it inside one dispose scope. Returns the mean loss.</summary>
    public static double Step(LanguageModel model, AdamW optimizer, double lr, double clip, IEnumerable<Tensor> microBatches)
    {
        using var scope = torch.NewDisposeScope();
        var batches = microBatches.ToList();
        double lossSum = 0;
        foreach (var batch in batches)
        {
            var loss = model.Loss(batch[.., ..^1], batch[.., 1..]);
            (loss / batches.Count).backward();
            lossSum += loss.item<float>();
        }
        if (clip > 0) nn.utils.clip_grad_norm_(optimizer.Parameters, clip);
        optimizer.Step(lr);
        optimizer.ZeroGrad();
        return lossSum / batches.Count;
    }

    /// <summary>Stacks a stage's new blocks, seeded by the stage index so they are the same whether or not the run was
    /// resumed; the first stage may take its weights from another checkpoint of the same shape.</summary>
    private static void BeginStage(LanguageModel model, GrowthPlan plan, int si, string? initFrom)
    {
        torch.manual_seed(plan.Training.Seed + 1000L * si);
        for (int b = 0; b < plan.Stages[si].AddBlocks; b++) model.AddBlock(plan.FinalDepth);
        if (si == 0 && initFrom is not null)
        {
            var planned = model.Substrate.ContentHash;
            Checkpoint.LoadWeights(model, initFrom);
            if (model.Substrate.ContentHash != planned)
                throw new StrataException($"{initFrom} was trained on the substrate table sha256:{model.Substrate.ContentHash}, the plan's substrate is sha256:{planned}");
        }
        AttachLora(model, plan.Stages[si], plan.Training.Seed + 1000L * si + 500);
    }

    /// <summary>Attaches a stage's LoRA adapters (to the blocks made before it, or to every block), seeded.</summary>
    public static void AttachLora(LanguageModel model, StageConfig stage, long? seed = null)
    {
        if (stage.Lora is not { } lora) return;
        if (seed is { } s) torch.manual_seed(s);
        int count = lora.Blocks == LoraBlocks.All ? model.Depth : model.Depth - stage.AddBlocks;
        foreach (var block in model.Blocks.Take(count)) block.AttachLora(lora.Targets, lora.Rank, lora.Alpha);
    }

    /// <summary>Everything an optimizer of this model may step: its parameters and its LoRA adapters ("lora." names).</summary>
    public static IEnumerable<(string Name, TorchSharp.Modules.Parameter Param)> OptimizedParameters(LanguageModel model) =>
        model.named_parameters().Select(p => (p.name, p.parameter)).Concat(model.AdapterParameters().Select(p => ("lora." + p.Name, p.Parameter)));

    private static void CopyAtomically(string from, string to)
    {
        var tmp = to + ".tmp";
        File.Copy(from, tmp, overwrite: true);
        File.Move(tmp, to, overwrite: true);
    }

    private static double? TokensPerByte(GrowthPlan plan) =>
        PreparedData.TryRead(plan.Data.Validation) is { ValidationBytes: > 0 } m ? (double)m.ValidationTokens / m.ValidationBytes : null;

    /// <summary>Sets requires_grad for a stage: its new blocks (the last AddBlocks) or every block, always the final
    /// LayerNorm and the head; a trainable substrate only when the stage trains all or says train_embedding.</summary>
    public static void SetTrainable(LanguageModel model, StageConfig stage)
    {
        int firstTrained = stage.Trains == StageTrains.All ? 0 : model.Depth - stage.AddBlocks;
        bool embedding = model.Substrate.Spec.Kind == SubstrateKind.Trainable && (stage.Trains == StageTrains.All || stage.TrainEmbedding);
        foreach (var p in model.Substrate.parameters()) p.requires_grad = embedding;
        foreach (var (block, i) in model.Blocks.Select((b, i) => (b, i)))
            foreach (var p in block.parameters()) p.requires_grad = i >= firstTrained;
        foreach (var p in model.FinalNorm.parameters().Concat(model.Head.parameters())) p.requires_grad = true;
    }

    /// <summary>Active / frozen / total parameters of every stage of a plan, counted on modules built on the meta
    /// device (nothing allocated). A stage over training.max_active_parameters is refused here, before any training.</summary>
    public static IReadOnlyList<ParameterBudget> StageBudgets(GrowthPlan plan, string source)
    {
        using var model = new LanguageModel(plan.Model, Substrate.Create(plan.Substrate, plan.Model, META), 0, META);
        var budgets = new List<ParameterBudget>();
        for (int si = 0; si < plan.Stages.Count; si++)
        {
            for (int b = 0; b < plan.Stages[si].AddBlocks; b++) model.AddBlock(plan.FinalDepth);
            SetTrainable(model, plan.Stages[si]);
            AttachLora(model, plan.Stages[si]);
            var budget = ParameterBudget.Of(model);
            if (plan.Stages[si].Lora is { Merge: true }) model.MergeLora();
            if (plan.Training.MaxActiveParameters is { } max && budget.Active > max)
                throw new StrataException($"{source}: stages[{si}]: {budget.Active:N0} active parameters exceed training.max_active_parameters ({max:N0})");
            budgets.Add(budget);
        }
        return budgets;
    }

    /// <summary>Mean validation loss over the fixed evaluation batches (nats per token), for a model or an ensemble.</summary>
    public static double Evaluate(ICausalLM model, BatchSampler sampler, int batches, Device device)
    {
        bool wasTraining = model.Training;
        model.SetTraining(false);
        double sum = 0;
        using (torch.no_grad())
            for (int i = 0; i < batches; i++)
            {
                using var scope = torch.NewDisposeScope();
                var batch = sampler.EvalBatch(i, batches, device);                       // [B, T+1]
                var logits = model.Logits(batch[.., ..^1]);                              // [B, T, V]
                sum += nn.functional.cross_entropy(logits.view(-1, model.Config.VocabSize), batch[.., 1..].reshape(-1)).item<float>();
            }
        model.SetTraining(wasTraining);
        return sum / batches;
    }
}
