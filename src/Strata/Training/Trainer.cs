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
    /// <summary>Test hook: the loss a step reports, from (global step it would become, learning rate, measured loss);
    /// drives the non-finite and divergence checks deterministically.</summary>
    internal Func<long, double, double, double>? ReportedLoss { get; init; }
}

public sealed record TrainResult(RunDirectory Run, long GlobalStep, double? InitialValidationLoss, double? FinalValidationLoss,
    double TokensPerSecond, bool Completed, ParameterBudget Budget)
{
    /// <summary>Stopped by a signal (with a checkpoint to resume from).</summary>
    public bool Interrupted { get; init; }
    /// <summary>Validation tokens per UTF-8 byte of the validation text (from the shards' meta.json), if known.</summary>
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
        return $"{(Completed ? "finished" : Interrupted ? "interrupted" : "stopped")} at step {GlobalStep}: validation loss {F(InitialValidationLoss)} -> {F(FinalValidationLoss)} nats/token{bpb}, {TokensPerSecond:F0} tokens/s\n" +
               $"  checkpoint {Run.Checkpoint}\n  metrics    {Run.Metrics}" + (Completed ? $"\n  loss curve {Run.LossCurve}" : "");
    }
}

public sealed class Trainer : IDisposable
{
    /// <summary>Optimizer steps between returns of freed native memory to the kernel (Util/NativeAllocator.cs).</summary>
    public const int TrimEvery = 10;

    private readonly GrowthPlan _plan;
    private readonly TrainOptions _o;
    private readonly RunDirectory _run;
    private readonly FolderLock? _lock;                               // rank 0's
    private readonly ProcessGroup _group;
    private readonly List<IDisposable> _owned = new();
    private readonly TrainingData _data;
    private BatchSampler? _sampler;
    private readonly LanguageModel _model;
    private readonly MetricsLog? _metrics;                            // rank 0's
    private readonly TensorBoardWriter? _tb;
    private GradientBuckets? _buckets;
    private readonly ProgressBar _bar;
    private readonly Stopwatch _clock = Stopwatch.StartNew(), _stageClock = new();
    private readonly double _elapsedBase;
    private readonly long _tokensPerStep;
    private readonly bool _completed;
    private readonly CheckpointInfo? _resumed;

    // the position: the stage in progress and the steps done in it
    private int _stageIndex, _stageStep;
    private long _globalStep, _tokensSeen;
    private double? _initialVal, _lastVal;
    private long _lastSavedStep = -1;
    private double _tokensPerSecond;
    private ParameterBudget _budget;
    private readonly DivergenceGuard _divergence;

    /// <summary>Runs (or resumes) a plan to its end, or to <see cref="TrainOptions.StopAfterStep"/>. A resumed run
    /// continues with the plan its checkpoint stores (<paramref name="plan"/> may then be null).</summary>
    public static TrainResult Run(GrowthPlan? plan, TrainOptions options)
    {
        using var trainer = new Trainer(plan, options);
        return trainer.RunStages();
    }

    private TrainResult RunStages()
    {
        if (_completed)
        {
            _o.Log.WriteLine($"{_run.Path}: the run is already complete ({_globalStep} steps)");
            return Result(completed: true);
        }
        for (bool first = true; _stageIndex < _plan.Stages.Count; _stageIndex++, _stageStep = 0, first = false)
        {
            var stage = new GrowthStage(_plan, _stageIndex);
            if (!first) stage.Enter(_model);                                              // the first was entered at start
            using var optimizer = StartStage(stage);
            _divergence.StartStage();
            while (_stageStep < stage.Steps)
            {
                var clock = Stopwatch.StartNew();
                double lr = stage.LearningRate(_stageStep);
                string? diverged = null;
                var step = Step(_model, optimizer, lr, _plan.Training.GradClip, NextBatches(), _buckets, _group,
                    s => (diverged = _divergence.Check(s.Loss)) is null, _o.ReportedLoss is { } fault ? l => fault(_globalStep + 1, lr, l) : null);
                if (!step.IsFinite || diverged is not null) throw Diverged(step, stage, diverged);
                KillPoint.Here("step.after-optimizer");
                _stageStep++;
                _globalStep++;
                _tokensSeen += _tokensPerStep;
                LogStep(step.Loss, lr, clock.Elapsed.TotalSeconds, stage);
                bool stageEnd = _stageStep == stage.Steps, stopping = _globalStep == _o.StopAfterStep, interrupted = _group.Any(_o.Stop.IsCancellationRequested);
                if (stageEnd) EndStage(stage);
                if (_globalStep % _plan.Training.EvalEvery == 0 || stageEnd) Evaluate();
                if (_globalStep % _plan.Training.CheckpointEvery == 0 || stageEnd || stopping || interrupted) SaveCheckpoint(stage, optimizer, stageEnd);
                if (stopping || interrupted)
                {
                    _bar.Message(interrupted ? $"interrupted after step {_globalStep}, checkpoint written" : $"stopped after step {_globalStep}; continue with --resume");
                    return Result(completed: false) with { Interrupted = interrupted };
                }
            }
        }
        return Result(completed: true);                                                  // (the last stage's end drew the loss curve)
    }

    private void SaveLossCurve() =>
        LossCurvePlot.Save(_run.Metrics, _run.LossCurve, $"{_plan.Name}: {_plan.Substrate.Kind.ToString().ToLowerInvariant()} substrate, depth {_model.Depth}");

    /// <summary>The error for a step whose loss or gradient norm is not finite, or whose loss shows the run diverging
    /// (<see cref="DivergenceGuard"/>): nothing of it was applied or saved.</summary>
    private StrataException Diverged(StepResult step, GrowthStage stage, string? diverged)
    {
        static string Word(double v) => double.IsNaN(v) ? "NaN" : "infinite";
        string what = !double.IsFinite(step.Loss) ? $"the loss is {Word(step.Loss)}" : !double.IsFinite(step.GradNorm) ? $"the gradient norm is {Word(step.GradNorm)}" : diverged!;
        string from = _lastSavedStep <= 0 ? "no checkpoint was written yet: lower the plan's learning rates and start again"
            : _lastSavedStep == _globalStep && _resumed?.GlobalStep == _globalStep
                ? $"the checkpoint at step {_lastSavedStep} already gives it: start from the one before with a lower learning rate, 'strata train --resume --rewind --out {_run.Path} --lr-scale 0.5'"
                : $"the last checkpoint ({_run.Checkpoint}) is at step {_lastSavedStep}: continue from it with a lower learning rate, 'strata train --resume --out {_run.Path} --lr-scale 0.5' (add --rewind to start from the one before it)";
        return new StrataException($"step {_globalStep + 1} (stage {stage.Number} '{stage.Name}'): {what}; the step was not applied and nothing was saved from it; {from}");
    }

    private Trainer(GrowthPlan? given, TrainOptions o)
    {
        _o = o;
        _group = o.Group;
        _run = new RunDirectory(o.OutDir);
        if (given is null && !o.Resume) throw new StrataException("a plan is required (or --resume with --out of an existing run)");
        var plan = given is null ? null : GrowthStage.FitLoraRanks(given, "plan") with { Data = given.Data.WithTokenizerResolved() };
        if (!o.Resume && (o.LearningRateScale is not null || o.Rewind))
            throw new StrataException("--lr-scale and --rewind apply when resuming a run (--resume); for a new run set the plan's learning rates");
        bool created = !Directory.Exists(_run.Path);
        if (o.Resume && created) throw new StrataException($"{_run.Path}: no such run folder to resume");
        _lock = _group.IsMain ? FolderLock.Acquire(_run.Path, "strata train") : null;            // rank 0 alone writes
        try
        {
            if (o.Resume)
            {
                if (_group.IsMain)
                {
                    _run.Recover();
                    if (!_run.HasCheckpoint) throw new StrataException($"{_run.Path}: no {RunDirectory.CheckpointName} to resume from");
                    if (o.Rewind)
                    {
                        _run.Rewind();
                        o.Log.WriteLine($"note: rewound to {_run.Checkpoint} (the latest checkpoint is dropped)");
                    }
                }
                _group.Barrier("rank 0 prepares the run folder");
                _resumed = Checkpoint.ReadInfo(_run.Checkpoint);
                if (plan is not null && Json.Serialize(_resumed.Plan) != Json.Serialize(plan))
                    o.Log.WriteLine($"note: resuming with the plan stored in {_run.Checkpoint}; the plan given differs and is ignored");
                plan = _resumed.Plan with { Data = _resumed.Plan.Data.WithTokenizerResolved() };
                if (o.LearningRateScale is { } f)
                {
                    plan = plan.WithLearningRatesScaled(f, _run.Checkpoint);
                    o.Log.WriteLine($"note: every learning rate of the plan scaled by {f} from step {_resumed.GlobalStep}");
                }
                if (o.Precision is { } p && p != plan.Training.Precision)
                    o.Log.WriteLine($"note: continuing in {p.ToString().ToLowerInvariant()} (the run was in {plan.Training.Precision.ToString().ToLowerInvariant()})");
            }
            else if (_group.IsMain && _run.HasCheckpoint)
                throw new StrataException($"{_run.Path} already holds a checkpoint: pass --resume to continue it, or choose another --out");
            if (plan is not null && o.Precision is { } precision) plan = plan with { Training = plan.Training with { Precision = precision } };
            _plan = plan ?? throw new InvalidOperationException("a resumed run takes the checkpoint's plan");
            var t = plan.Training;
            _divergence = new DivergenceGuard(t.DivergenceFactor);
            _budget = GrowthStage.Budgets(plan, o.Resume ? _run.Checkpoint : "plan")[0];
            if (_lock?.TakenOver is { } dead) o.Log.WriteLine($"note: {_run.Path} was locked by {dead}, which is no longer running");
            _data = Own(new TrainingData(plan));
            if (plan.Substrate.Kind == SubstrateKind.Visual && TokenizerIdentity.Of(plan.Substrate.Tokenizer).Hash != _data.Tokenizer.Hash)
                throw new StrataException($"substrate.tokenizer: the visual substrate draws the entries of '{plan.Substrate.Tokenizer}' but the data was encoded with {_data.Tokenizer}");
            _tokensPerStep = (long)t.BatchSize * plan.Model.ContextLength * t.GradAccumulation;
            if (t.BatchSize % _group.Size != 0)
                throw new StrataException($"training.batch_size {t.BatchSize} does not split into {_group.Size} ranks: use a multiple of {_group.Size} (each rank takes batch_size / ranks rows of every batch)");
            _group.RequireSame(("plan", plan.Name, Json.Serialize(plan)), ("program", Path.GetFileName(typeof(Trainer).Assembly.Location), typeof(Trainer).Assembly.ManifestModule.ModuleVersionId.ToString()),
                ("data", string.Join(", ", plan.Data.Named().Select(d => d.Path)), _data.Identity));

            if (_resumed is { } r)
            {
                (_stageIndex, _stageStep, _globalStep, _tokensSeen, _lastVal, _elapsedBase, _lastSavedStep) =
                    (r.StageIndex, r.StageStep, r.GlobalStep, r.TokensSeen, r.ValidationLoss, r.ElapsedSeconds, r.GlobalStep);
                _completed = r.Completed;
                if (r.StageFinished) { _stageIndex++; _stageStep = 0; }
                _model = Own(Checkpoint.LoadModel(_run.Checkpoint, o.Device).Model);
                if (_group.IsMain) RepairStageFile(r);
            }
            else
            {
                if (_group.IsMain && Directory.Exists(_run.TensorBoard)) Directory.Delete(_run.TensorBoard, recursive: true);   // events of a run that never saved
                torch.manual_seed(t.Seed);
                _model = Own(new LanguageModel(plan.Model, plan.Substrate, 0, o.Device));
            }
            _model.SetPrecision(t.Precision);
            // the first stage to run gets its blocks (and --init-from weights) before anything is written
            if (!_completed && _stageIndex < plan.Stages.Count && _stageStep == 0)
                new GrowthStage(plan, _stageIndex).Enter(_model, _stageIndex == 0 ? o.InitFrom : null);
            if (_group.IsMain)
            {
                _metrics = Own(new MetricsLog(_run.Metrics, _resumed?.GlobalStep ?? -1, o.Log));
                _tb = Own(new TensorBoardWriter(_run.TensorBoard));
                if (_completed && !File.Exists(_run.LossCurve)) SaveLossCurve();
            }
            _bar = new ProgressBar(_group.IsMain ? o.Log : TextWriter.Null, plan.TotalSteps, t.LogEvery, o.Interactive);
            if (_group.Size > 1) _bar.Message($"data parallel: {_group.Size} ranks of {t.BatchSize / _group.Size} rows each, {torch.get_num_threads()} threads per rank");
        }
        catch
        {
            Dispose();
            if (created && _group.IsMain && Directory.EnumerateFileSystemEntries(_run.Path).All(f => Path.GetFileName(f) == FolderLock.FileName))
                Directory.Delete(_run.Path, recursive: true);
            throw;
        }
    }

    private T Own<T>(T disposable) where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    /// <summary>A checkpoint taken at a stage's end promises that stage's file; a crash between writing one and the
    /// other is mended here (the file is written before the checkpoint, so only files of older versions lack it).</summary>
    private void RepairStageFile(CheckpointInfo r)
    {
        var stageFile = _run.Stage(r.StageIndex + 1);
        if (!r.StageFinished || File.Exists(stageFile)) return;
        AtomicFile.Copy(_run.Checkpoint, stageFile);
        _o.Log.WriteLine($"note: {stageFile} was missing and was written from the checkpoint at the end of stage {r.StageIndex + 1}");
    }

    /// <summary>Marks what trains in the stage, builds AdamW over exactly that set (restoring its state when the run
    /// resumes inside the stage) and reports the stage's budget.</summary>
    private AdamW StartStage(GrowthStage stage)
    {
        var t = _plan.Training;
        stage.SetTrainable(_model);
        _sampler = _data.SamplerFor(stage.Config);
        var optimizer = new AdamW(TrainableParameters(_model), t.Beta1, t.Beta2, t.Epsilon, t.WeightDecay);
        if (_stageStep > 0) Checkpoint.LoadOptimizer(optimizer, _run.Checkpoint, _resumed!.OptimizerStep);
        _buckets?.Dispose();
        _buckets = new GradientBuckets(_group, optimizer.Parameters);
        _budget = ParameterBudget.Of(_model);
        _bar.Message($"stage {stage.Number}/{_plan.Stages.Count} '{stage.Name}': depth {_model.Depth}, parameters {_budget}");
        PeakMemory.Reset();
        _stageClock.Restart();
        if (_globalStep == 0)
        {
            Evaluate();
            _initialVal = _lastVal;
            _bar.Message($"validation loss before training: {_lastVal:F4}");
        }
        return optimizer;
    }

    /// <summary>The micro-batches of the next optimizer step: [B, T+1] each (this rank's B / ranks rows), drawn by (seed, step).</summary>
    private IEnumerable<Tensor> NextBatches()
    {
        int accumulation = _plan.Training.GradAccumulation;
        int rows = _plan.Training.BatchSize / _group.Size;                                 // this rank's share of each batch
        return Enumerable.Range(0, accumulation).Select(micro => _sampler!.Batch(_globalStep * accumulation + micro, _o.Device, _group.Rank * rows, rows));
    }

    private void LogStep(double loss, double lr, double stepSeconds, GrowthStage stage)
    {
        if (_globalStep % TrimEvery == 0) NativeAllocator.Trim();
        _tokensPerSecond = _tokensPerSecond == 0 ? _tokensPerStep / stepSeconds : 0.9 * _tokensPerSecond + 0.1 * _tokensPerStep / stepSeconds;
        if (!_group.IsMain) return;
        _metrics!.Write(new { kind = "train", step = _globalStep, stage = stage.Index, loss, lr, tokens_per_s = _tokensPerStep / stepSeconds, elapsed_s = Elapsed });
        _tb!.Scalar("train/loss", _globalStep, (float)loss);
        _tb.Scalar("train/lr", _globalStep, (float)lr);
        _bar.Report(_globalStep, $"loss {loss:F4} lr {lr:E2} {_tokensPerSecond:F0} tok/s");
    }

    private double Elapsed => _elapsedBase + _clock.Elapsed.TotalSeconds;

    /// <summary>Leaves the stage (adapters merged as the plan says) and records its budget, peak memory and time.</summary>
    private void EndStage(GrowthStage stage)
    {
        if (stage.Config.Lora is { Merge: true })
        {
            stage.Leave(_model);
            _bar.Message($"stage {stage.Number}: LoRA adapters merged into the weights");
        }
        _metrics?.Write(new { kind = "stage", step = _globalStep, stage = stage.Index, name = stage.Name, depth = _model.Depth, active = _budget.Active,
            frozen = _budget.Frozen, total = _budget.Total, peak_rss_mib = PeakMemory.Mib(), seconds = _stageClock.Elapsed.TotalSeconds });
    }

    /// <summary>Validation loss on each dataset's fixed batches; the run's validation loss is their mean.</summary>
    private void Evaluate()
    {
        var each = _data.Validation.ToDictionary(v => v.Name, v => ValidationLoss.Measure(_model, v.Sampler, _plan.Training.EvalBatches, _group));
        _lastVal = each.Values.Average();
        if (_metrics is null || _tb is null) return;
        if (each.Count == 1) _metrics.Write(new { kind = "eval", step = _globalStep, stage = _stageIndex, val_loss = _lastVal });
        else _metrics.Write(new { kind = "eval", step = _globalStep, stage = _stageIndex, val_loss = _lastVal, val = each });
        _tb.Scalar("val/loss", _globalStep, (float)_lastVal.Value);
        if (each.Count > 1)
            foreach (var (name, loss) in each) _tb.Scalar($"val/{name}", _globalStep, (float)loss);
        if (_globalStep > 0) _bar.Message($"step {_globalStep}: validation loss {_lastVal:F4}");
    }

    /// <summary>The checkpoint (with the optimizer state unless the run is complete) and, at a stage's end, the stage file.</summary>
    private void SaveCheckpoint(GrowthStage stage, AdamW optimizer, bool stageEnd)
    {
        bool completed = stageEnd && stage.IsLast;
        var info = new CheckpointInfo
        {
            Plan = _plan, Tokenizer = _data.Tokenizer.Name, TokenizerHash = _data.Tokenizer.Hash, Depth = _model.Depth, StageIndex = stage.Index, StageStep = _stageStep,
            GlobalStep = _globalStep, OptimizerStep = optimizer.StepCount, Completed = completed,
            ElapsedSeconds = Elapsed, TokensSeen = _tokensSeen, ValidationLoss = _lastVal,
        };
        _lastSavedStep = _globalStep;
        if (!_group.IsMain) return;                                                  // rank 0 writes; the weights are the same everywhere
        _tb!.Flush();
        if (stageEnd)
        {
            // the stage file first: a crash before the checkpoint is replaced resumes earlier and writes both again
            Checkpoint.Save(_run.Stage(stage.Number), _model, completed ? null : optimizer, info);
            KillPoint.Here("stage-file.before-checkpoint");
            _run.Promote(next => AtomicFile.Copy(_run.Stage(stage.Number), next));
            SaveLossCurve();
        }
        else _run.Promote(next => Checkpoint.Save(next, _model, optimizer, info));
        KillPoint.Here("checkpoint.after");
    }

    private TrainResult Result(bool completed) =>
        new(_run, _globalStep, _initialVal, _lastVal, _tokensPerSecond, completed, _budget) { TokensPerByte = TokensPerByte() };

    private double? TokensPerByte() => _data.TokensPerByte;

    /// <summary>The mean loss of a step and the global norm of its gradients (before clipping).</summary>
    public readonly record struct StepResult(double Loss, double GradNorm)
    {
        public bool IsFinite => double.IsFinite(Loss) && double.IsFinite(GradNorm);
    }

    /// <summary>One optimizer step over micro-batches [B, T+1] (inputs [:, :-1], targets [:, 1:]), gradients averaged
    /// (over the micro-batches, then over the ranks of <paramref name="group"/> through <paramref name="buckets"/>),
    /// clipped to <paramref name="clip"/> (0 = off); all of it inside one dispose scope. A step whose loss or gradient
    /// norm is not finite, or that <paramref name="accept"/> refuses, is not applied (the gradients are dropped), so a
    /// diverging run never saves broken weights. Every rank ends with the same gradients and loss, so the same update
    /// keeps the weights equal everywhere.</summary>
    /// <param name="reported">replaces the measured mean loss (a test hook)</param>
    public static StepResult Step(LanguageModel model, AdamW optimizer, double lr, double clip, IEnumerable<Tensor> microBatches,
        GradientBuckets? buckets = null, ProcessGroup? group = null, Func<StepResult, bool>? accept = null, Func<double, double>? reported = null)
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
        var result = new StepResult(reported?.Invoke(mean) ?? mean, norm);
        if (result.IsFinite && (accept?.Invoke(result) ?? true)) optimizer.Step(lr, scale);
        optimizer.ZeroGrad();
        return result;
    }

    /// <summary>The parameters that train now, by name: the model's own first, then LoRA adapters (in block order).</summary>
    public static IEnumerable<(string Name, TorchSharp.Modules.Parameter Param)> TrainableParameters(LanguageModel model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter))
            .OrderBy(p => LoraLinear.IsAdapterName(p.name) ? 1 : 0);

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
        _buckets?.Dispose();
        _lock?.Dispose();
    }
}
