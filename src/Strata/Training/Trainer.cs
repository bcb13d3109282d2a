// The training loop: the plan's growth stages in order. Each is entered (blocks stacked, adapters attached), trains
// its active set with AdamW built over exactly that set, and is left (adapters merged) with a stage checkpoint. Every
// step runs in its own dispose scope. Batches depend only on (seed, step) and the whole optimizer state is
// checkpointed, so a resumed run repeats an uninterrupted one exactly.
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

/// <summary>When the loop evaluates, checkpoints and stops, from the plan's intervals and the run's requests (one
/// place for the cadence, as torchtitan's checkpoint and metrics managers keep theirs).</summary>
internal readonly record struct Cadence(int EvalEvery, int CheckpointEvery, long? StopAfter)
{
    public bool Evaluate(long step, bool stageEnd) => step % EvalEvery == 0 || stageEnd;
    public bool Stop(long step, bool interrupted) => step == StopAfter || interrupted;
    public bool Checkpoint(long step, bool stageEnd, bool stop) => step % CheckpointEvery == 0 || stageEnd || stop;
}

public sealed class Trainer : IDisposable
{
    /// <summary>Optimizer steps between looks at the native heap's growth, which trim it when it grew
    /// (Util/NativeAllocator.cs).</summary>
    public const int HeapCheckEvery = 10;

    private readonly GrowthPlan _plan;
    private readonly TrainOptions _o;
    private readonly RunStart _start;
    private readonly RunDirectory _run;
    private readonly ProcessGroup _group;
    private readonly TrainingData _data;
    private readonly LanguageModel _model;
    private readonly TrainingLog _log;
    private readonly Cadence _cadence;
    private readonly DivergenceGuard _divergence;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew(), _stageClock = new();
    private readonly long _tokensPerStep;
    private BatchSampler? _sampler;
    private GradientBuckets? _buckets;

    // the position: the stage in progress and the steps done in it
    private int _stageIndex, _stageStep;
    private long _globalStep, _tokensSeen, _lastSavedStep;
    private double? _initialVal, _lastVal;
    private ParameterBudget _budget;

    /// <summary>Runs (or resumes) a plan to its end, or to <see cref="TrainOptions.StopAfterStep"/>. A resumed run
    /// continues with the plan its checkpoint stores (<paramref name="plan"/> may then be null).</summary>
    public static TrainResult Run(GrowthPlan? plan, TrainOptions options)
    {
        using var trainer = new Trainer(new RunStart(plan, options.Request), options);
        return trainer.RunStages();
    }

    private TrainResult RunStages()
    {
        if (_start.Completed)
        {
            _o.Log.WriteLine($"{_run.Path}: the run is already complete ({_globalStep} steps)");
            if (_group.IsMain && !File.Exists(_run.LossCurve)) SaveLossCurve();
            return Result(completed: true);
        }
        for (; _stageIndex < _plan.Stages.Count; _stageIndex++, _stageStep = 0)
        {
            var stage = new GrowthStage(_plan, _stageIndex);
            using var optimizer = EnterStage(stage);
            while (_stageStep < stage.Steps)
            {
                var step = TrainStep(stage, optimizer);
                bool stageEnd = _stageStep == stage.Steps, interrupted = _group.Any(_o.Stop.IsCancellationRequested);
                bool stop = _cadence.Stop(_globalStep, interrupted);
                if (stageEnd) LeaveStage(stage);
                if (_cadence.Evaluate(_globalStep, stageEnd)) Evaluate();
                if (_cadence.Checkpoint(_globalStep, stageEnd, stop)) SaveCheckpoint(stage, optimizer, stageEnd);
                if (stop)
                {
                    _log.Message(interrupted ? $"interrupted after step {_globalStep}, checkpoint written"
                        : $"stopped after step {_globalStep}; continue with --resume");
                    return Result(completed: false) with { Interrupted = interrupted };
                }
            }
        }
        return Result(completed: true);                                                  // (the last stage's end drew the loss curve)
    }

    /// <summary>Enters the stage (unless the run resumed inside it: the checkpoint's model is inside already), marks
    /// what trains, builds AdamW over exactly that set (with its state when resuming inside the stage), and evaluates
    /// the untrained model at step 0.</summary>
    private AdamW EnterStage(GrowthStage stage)
    {
        var t = _plan.Training;
        if (_stageStep == 0) stage.Enter(_model, _start.WhenGrown(stage.Index));
        stage.SetTrainable(_model);
        _sampler = _data.SamplerFor(stage.Config);
        var optimizer = new AdamW(TrainableParameters(_model), t.Beta1, t.Beta2, t.Epsilon, t.WeightDecay);
        if (_stageStep > 0) _start.LoadOptimizer(optimizer);
        _buckets?.Dispose();
        _buckets = new GradientBuckets(_group, optimizer.Parameters);
        _divergence.StartStage();
        _budget = ParameterBudget.Of(_model);
        _log.Message($"stage {stage.Number}/{_plan.Stages.Count} '{stage.Name}': depth {_model.Depth}, parameters {_budget}");
        PeakMemory.Reset();
        _stageClock.Restart();
        if (_globalStep == 0)
        {
            Evaluate();
            _initialVal = _lastVal;
            _log.Message($"validation loss before training: {_lastVal:F4}");
        }
        return optimizer;
    }

    /// <summary>One optimizer step of the stage; a non-finite or diverging loss stops the run before it is applied.</summary>
    private StepResult TrainStep(GrowthStage stage, AdamW optimizer)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double lr = stage.LearningRate(_stageStep);
        string? diverged = null;
        var step = Step(_model, optimizer, lr, _plan.Training.GradClip, NextBatches(), _buckets, _group,
            s => (diverged = _divergence.Check(s.Loss)) is null, _o.ReportedLoss is { } fault ? l => fault(_globalStep + 1, lr, l) : null);
        if (!step.IsFinite || diverged is not null) throw Diverged(step, stage, diverged);
        KillPoint.Here("step.after-optimizer");
        _stageStep++;
        _globalStep++;
        _tokensSeen += _tokensPerStep;
        if (_globalStep % HeapCheckEvery == 0) NativeAllocator.TrimIfGrown();
        _log.Step(_globalStep, stage.Index, step.Loss, lr, clock.Elapsed.TotalSeconds, Elapsed);
        if (_group.IsMain) _o.Progress?.Invoke(new TrainingProgress(_globalStep, _plan.TotalSteps, stage.Index, step.Loss, null, Elapsed));
        return step;
    }

    /// <summary>Leaves the stage (adapters merged as the plan says) and records its budget, peak memory and time.</summary>
    private void LeaveStage(GrowthStage stage)
    {
        if (stage.Config.Lora is { Merge: true })
        {
            stage.Leave(_model);
            _log.Message($"stage {stage.Number}: LoRA adapters merged into the weights");
        }
        _log.StageEnd(_globalStep, stage, _model.Depth, _budget, _stageClock.Elapsed.TotalSeconds);
    }

    private void SaveLossCurve() =>
        LossCurvePlot.Save(_run.Metrics, _run.LossCurve, $"{_plan.Name}: {Json.EnumName(_plan.Substrate.Kind)} substrate, depth {_model.Depth}");

    /// <summary>The error for a step whose loss or gradient norm is not finite, or whose loss shows the run diverging
    /// (<see cref="DivergenceGuard"/>): nothing of it was applied or saved.</summary>
    private StrataException Diverged(StepResult step, GrowthStage stage, string? diverged)
    {
        static string Word(double v) => double.IsNaN(v) ? "NaN" : "infinite";
        string what = !double.IsFinite(step.Loss) ? $"the loss is {Word(step.Loss)}" : !double.IsFinite(step.GradNorm)
            ? $"the gradient norm is {Word(step.GradNorm)}" : diverged!;
        string from = _lastSavedStep <= 0 ? "no checkpoint was written yet: lower the plan's learning rates and start again"
            : _lastSavedStep == _globalStep && _start.Resumed?.GlobalStep == _globalStep
                ? $"the checkpoint at step {_lastSavedStep} already gives it: start from the one before with a lower learning rate, 'strata train " +
                    $"--resume --rewind --out {_run.Path} --lr-scale 0.5'"
                : $"the last checkpoint ({_run.Checkpoint}) is at step {_lastSavedStep}: continue from it with a lower learning rate, 'strata " +
                    $"train --resume --out {_run.Path} --lr-scale 0.5' (add --rewind to start from the one before it)";
        return new StrataException(
            $"step {_globalStep + 1} (stage {stage.Number} '{stage.Name}'): {what}; the step was not applied and nothing was saved from it; {from}");
    }

    private Trainer(RunStart start, TrainOptions o)
    {
        _start = start;
        _o = o;
        _group = o.Group;
        _run = start.Run;
        _plan = start.Plan;
        try
        {
            var t = _plan.Training;
            _model = start.TakeModel();
            _data = new TrainingData(_plan);
            if (_plan.Substrate.Kind == SubstrateKind.Visual)
                TokenizerIdentity.Require(TokenizerIdentity.Of(_plan.Substrate.Tokenizer),
                    "substrate.tokenizer (the visual substrate draws its entries)", _data.Tokenizer, "the data");
            if (t.BatchSize % _group.Size != 0)
                throw new StrataException(
                    $"training.batch_size {t.BatchSize} does not split into {_group.Size} ranks: use a multiple of {_group.Size} (each rank takes " +
                        "batch_size / ranks rows of every batch)");
            _group.RequireSame(("plan", _plan.Name, Json.Serialize(_plan)), ("program", Path.GetFileName(typeof(Trainer).Assembly.Location), typeof(
                Trainer).Assembly.ManifestModule.ModuleVersionId.ToString()),
                ("data", string.Join(", ", _plan.Data.Named().Select(d => d.Path)), _data.Identity));
            (_stageIndex, _stageStep, _globalStep, _tokensSeen, _lastVal) = (start.StageIndex, start.StageStep, start.GlobalStep, start.TokensSeen,
                start.ValidationLoss);
            _lastSavedStep = start.Resumed?.GlobalStep ?? -1;
            if (start.Resumed is not null && File.Exists(_run.Metrics))                       // what the run began at, for the summary
                _initialVal = MetricsLog.Read(_run.Metrics).Where(m => m.Kind == "eval" && m.Step == 0).Select(m => (double?)m.Value).FirstOrDefault();
            _tokensPerStep = (long)t.BatchSize * _plan.Model.ContextLength * t.GradAccumulation;
            _cadence = new Cadence(t.EvalEvery, t.CheckpointEvery, o.StopAfterStep);
            _divergence = new DivergenceGuard(t.DivergenceFactor);
            _log = new TrainingLog(_run, _plan.TotalSteps, start.Resumed?.GlobalStep, _group.IsMain, o.Log, t.LogEvery, o.Interactive, _tokensPerStep);
            _budget = GrowthStage.Budgets(_plan, "plan")[Math.Min(_stageIndex, _plan.Stages.Count - 1)];
            foreach (var (name, v) in _data.Verified)
                _log.Message($"data '{name}': {v.Shards} shard(s) verified (sha256 and token ids), " +
                             (v.BytesHashed > 0 ? $"{v.BytesHashed / 1e6:F1} MB hashed in {v.Seconds:F1} s" : "unchanged since verified"));
            if (_group.Size > 1) _log.Message(
                $"data parallel: {_group.Size} ranks of {t.BatchSize / _group.Size} rows each, {torch.get_num_threads()} threads per rank");
        }
        catch
        {
            Dispose();
            start.Abandon();
            throw;
        }
    }

    /// <summary>The micro-batches of the next optimizer step: [B, T+1] each (this rank's B / ranks rows), drawn by (seed, step).</summary>
    private IEnumerable<Tensor> NextBatches()
    {
        int accumulation = _plan.Training.GradAccumulation;
        int rows = _plan.Training.BatchSize / _group.Size;                                 // this rank's share of each batch
        return Enumerable.Range(0, accumulation).Select(micro => _sampler!.Batch(_globalStep * accumulation + micro, _o.Device, _group.Rank * rows, rows));
    }

    private double Elapsed => _start.ElapsedSeconds + _clock.Elapsed.TotalSeconds;

    /// <summary>Validation loss on each dataset's fixed batches; the run's validation loss is their mean.</summary>
    private void Evaluate()
    {
        var each = _data.Validation.ToDictionary(v => v.Name, v => ValidationLoss.Measure(_model, v.Sampler, _plan.Training.EvalBatches, _group));
        _lastVal = each.Values.Average();
        _log.Eval(_globalStep, _stageIndex, _lastVal.Value, each);
        if (_group.IsMain) _o.Progress?.Invoke(new TrainingProgress(_globalStep, _plan.TotalSteps, _stageIndex, null, _lastVal, Elapsed));
    }

    /// <summary>The checkpoint and, at a stage's end, the stage file. Inside a stage the checkpoint carries the optimizer
    /// state; at a stage's end it does not: the next stage builds its optimizer afresh (and merged adapters are gone).</summary>
    private void SaveCheckpoint(GrowthStage stage, AdamW optimizer, bool stageEnd)
    {
        var info = new CheckpointInfo
        {
            Plan = _plan, Tokenizer = _data.Tokenizer.Name, TokenizerHash = _data.Tokenizer.Hash, Depth = _model.Depth, StageIndex = stage.Index,
                StageStep = _stageStep,
            GlobalStep = _globalStep, OptimizerStep = optimizer.StepCount, Completed = stageEnd && stage.IsLast,
            ElapsedSeconds = Elapsed, TokensSeen = _tokensSeen, ValidationLoss = _lastVal,
        };
        _lastSavedStep = _globalStep;
        if (!_group.IsMain) return;                                                  // rank 0 writes; the weights are the same everywhere
        _log.Flush();
        if (stageEnd)
        {
            // the stage file first: a crash before the checkpoint is replaced resumes earlier and writes both again
            Checkpoint.Save(_run.Stage(stage.Number), _model, null, info);
            KillPoint.Here("stage-file.before-checkpoint");
            _run.Promote(next => AtomicFile.Copy(_run.Stage(stage.Number), next));
            SaveLossCurve();
        }
        else
        {
            _run.Promote(next => Checkpoint.Save(next, _model, optimizer, info));
            SaveLossCurve();                                                         // the picture follows every checkpoint
        }
        KillPoint.Here("checkpoint.after");
    }

    private TrainResult Result(bool completed) =>
        new(_run, _globalStep, _initialVal, _lastVal, _log.TokensPerSecond, completed, _budget) { TokensPerByte = _data.TokensPerByte };

    /// <summary>The mean loss of a step and the global norm of its gradients (before clipping).</summary>
    public readonly record struct StepResult(double Loss, double GradNorm)
    {
        public bool IsFinite => double.IsFinite(Loss) && double.IsFinite(GradNorm);
    }

    /// <summary>One optimizer step over micro-batches [B, T+1] (inputs [:, :-1], targets [:, 1:]), gradients averaged
    /// (over the micro-batches, then over the ranks of <paramref name="group"/> through <paramref name="buckets"/>),
    /// clipped to <paramref name="clip"/> (0 = off); all of it inside one dispose scope, and on the CPU what TorchSharp
    /// frees only in finalizers freed before it returns (NativeAllocator.FreeFinalizedObjects). A step whose loss or gradient
    /// norm is not finite, or that <paramref name="accept"/> refuses, is not applied (the gradients are dropped), so a
    /// diverging run never saves broken weights. Every rank ends with the same gradients and loss, so the same update
    /// keeps the weights equal everywhere.</summary>
    /// <param name="reported">replaces the measured mean loss (a test hook)</param>
    internal static StepResult Step(LanguageModel model, AdamW optimizer, double lr, double clip, IEnumerable<Tensor> microBatches,
        GradientBuckets? buckets = null, ProcessGroup? group = null, Func<StepResult, bool>? accept = null, Func<double, double>? reported = null)
    {
        StepResult result;
        using (torch.NewDisposeScope())
        {
            var batches = microBatches.ToList();
            double lossSum = 0;
            using Scalar count = batches.Count;
            foreach (var batch in batches)
            {
                var loss = model.Loss(batch[.., ..^1], batch[.., 1..]);
                loss.div(count).backward();
                lossSum += loss.item<float>();
            }
            buckets?.Reduce();
            if (group is { Size: > 1 })
            {
                Span<double> sum = [lossSum];
                group.AllReduceSum(sum);
                lossSum = sum[0] / group.Size;
            }
            // the norm is measured either way (clipping at +inf leaves every gradient as it is); the optimizer applies the
            // clipping factor as it reads each gradient
            var (norm, scale) = optimizer.ClipScale(clip > 0 ? clip : double.PositiveInfinity);
            double mean = lossSum / batches.Count;
            result = new StepResult(reported?.Invoke(mean) ?? mean, norm);
            if (result.IsFinite && (accept?.Invoke(result) ?? true)) optimizer.Step(lr, scale);
            optimizer.ZeroGrad();
        }
        NativeAllocator.FreeFinalizedObjects(model.Device);                             // after the scope: its tensors are freed
        return result;
    }

    /// <summary>The parameters that train now, by name: the model's own first, then LoRA adapters (in block order).</summary>
    public static IEnumerable<(string Name, TorchSharp.Modules.Parameter Param)> TrainableParameters(LanguageModel model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter))
            .OrderBy(p => LoraLinear.IsAdapterName(p.name) ? 1 : 0);

    public void Dispose()
    {
        _buckets?.Dispose();
        _log?.Dispose();
        _model?.Dispose();
        _data?.Dispose();
        _start.Dispose();
    }
}
