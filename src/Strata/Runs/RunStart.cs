// Everything a training run settles before its first step: the run folder locked, a crash's half-done checkpoint
// promotion finished, the plan that wins (the given one, or the checkpoint's on --resume, with --lr-scale and
// --precision applied), its budgets checked, the model built fresh or loaded where the checkpoint left it, and the
// position (stage, step, tokens) the loop continues from.
using Strata.Distributed;
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Util;
using static TorchSharp.torch;

namespace Strata.Runs;

/// <summary>What starting a run asks for (the command line's train options).</summary>
internal sealed record RunRequest
{
    /// <summary>Run folder (<see cref="RunDirectory"/>).</summary>
    public required string OutDir { get; init; }
    /// <summary>Continue the run in <see cref="OutDir"/> from its checkpoint (the plan stored there wins).</summary>
    public bool Resume { get; init; }
    /// <summary>A checkpoint of the same shape whose weights replace the first stage's initialisation.</summary>
    public string? InitFrom { get; init; }
    /// <summary>On resume: multiply every learning rate of the plan by this from now on (recorded in the checkpoint's plan).</summary>
    public double? LearningRateScale { get; init; }
    /// <summary>On resume: continue from the checkpoint before the latest one (the latest is dropped).</summary>
    public bool Rewind { get; init; }
    /// <summary>The arithmetic, replacing the plan's training.precision (a resumed run may change it: checkpoints are fp32).</summary>
    public Precision? Precision { get; init; }
    public ProcessGroup Group { get; init; } = ProcessGroup.Single;
    public Device Device { get; init; } = CPU;
    public TextWriter Log { get; init; } = TextWriter.Null;
}

internal sealed class RunStart : IDisposable
{
    private readonly RunRequest _r;
    private FolderLock? _lock;                                                           // rank 0's
    private readonly bool _created;                                                      // the folder did not exist before
    private LanguageModel? _model;

    /// <summary>The plan the run follows, resolved (tokenizer, LoRA ranks) and within its budgets.</summary>
    public GrowthPlan Plan { get; }
    public RunDirectory Run { get; }
    /// <summary>The checkpoint resumed from, if any.</summary>
    public CheckpointInfo? Resumed { get; }
    /// <summary>The run had already finished every stage.</summary>
    public bool Completed { get; }
    /// <summary>Where the loop continues: the stage (0-based) and the steps done in it (0: the stage is still to be entered).</summary>
    public int StageIndex { get; }
    public int StageStep { get; }
    public long GlobalStep { get; }
    public long TokensSeen { get; }
    public double? ValidationLoss { get; }
    public double ElapsedSeconds { get; }

    /// <summary>The model, built fresh (depth 0) or loaded as the checkpoint left it; the caller owns it once taken.</summary>
    public LanguageModel TakeModel()
    {
        var m = _model ?? throw new InvalidOperationException("the model was taken already");
        _model = null;
        return m;
    }

    /// <summary>What a stage hands its grown model to before its adapters attach: --init-from's weights, for the first
    /// stage of a new run.</summary>
    public Action<LanguageModel>? WhenGrown(int stageIndex) =>
        _r.InitFrom is { } path && stageIndex == 0 && Resumed is null ? model => InitFrom(model, path) : null;

    private static void InitFrom(LanguageModel model, string path)
    {
        var planned = model.Substrate.ContentHash;
        Checkpoint.LoadWeights(model, path);
        SubstrateIdentity.Require(planned, "the plan", model.Substrate.ContentHash, path);
    }

    /// <summary>Restores the optimizer state of a run resumed inside a stage.</summary>
    public void LoadOptimizer(AdamW optimizer) => Checkpoint.LoadOptimizer(optimizer, Run.Checkpoint, Resumed!.OptimizerStep);

    public RunStart(GrowthPlan? given, RunRequest r)
    {
        _r = r;
        var group = r.Group;
        Run = new RunDirectory(r.OutDir);
        if (given is null && !r.Resume) throw new StrataException("a plan is required (or --resume with --out of an existing run)");
        if (!r.Resume && (r.LearningRateScale is not null || r.Rewind))
            throw new StrataException("--lr-scale and --rewind apply when resuming a run (--resume); for a new run set the plan's learning rates");
        bool created = _created = !Directory.Exists(Run.Path);
        if (r.Resume && created) throw new StrataException($"{Run.Path}: no such run folder to resume");
        _lock = group.IsMain ? FolderLock.Acquire(Run.Path, "strata train") : null;         // rank 0 alone writes
        try
        {
            if (_lock?.TakenOver is { } dead) r.Log.WriteLine($"note: {Run.Path} was locked by {dead}, which is no longer running");
            CheckpointInfo? resumed = null;
            var plan = r.Resume ? ResumedPlan(given, out resumed) : NewPlan(given!);
            Resumed = resumed;
            if (r.Precision is { } precision) plan = plan with { Training = plan.Training with { Precision = precision } };
            Plan = GrowthStage.Resolve(plan, Resumed is null ? "plan" : Run.Checkpoint);
            if (Resumed is { } c)
            {
                (StageIndex, StageStep, GlobalStep, TokensSeen, ValidationLoss, ElapsedSeconds, Completed) =
                    (c.StageIndex, c.StageStep, c.GlobalStep, c.TokensSeen, c.ValidationLoss, c.ElapsedSeconds, c.Completed);
                if (c.StageFinished) (StageIndex, StageStep) = (StageIndex + 1, 0);
                _model = Checkpoint.LoadModel(Run.Checkpoint, r.Device).Model;
                if (!Checkpoint.HasChecksums(Run.Checkpoint))
                    r.Log.WriteLine($"note: {Run.Checkpoint} records no per-tensor checksums (an older Strata wrote it): its tensors load unverified");
                if (group.IsMain) RepairStageFile(c);
            }
            else
            {
                if (r.InitFrom is { } initFrom)                                          // refused now rather than after the folder is written
                {
                    using var shape = new LanguageModel(Plan.Model, SubstrateBuilder.Create(Plan.Substrate, Plan.Model.VocabSize, Plan.Model.DModel,
                        META), 0, META);
                    new GrowthStage(Plan, 0).Enter(shape, m => Checkpoint.RequireWeights(m, initFrom));
                }
                if (group.IsMain && Directory.Exists(Run.TensorBoard)) Directory.Delete(Run.TensorBoard, recursive: true);   // events of a run that never saved
                manual_seed(Plan.Training.Seed);
                _model = new LanguageModel(Plan.Model, Plan.Substrate, 0, r.Device);
            }
            _model.SetPrecision(Plan.Training.Precision);
            if (group.IsMain) AtomicFile.WriteAllText(Run.Plan, Json.Serialize(Plan));
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    /// <summary>Gives the start up (the run cannot go on): the folder is released, and removed when this start made it
    /// and nothing but the lock is in it.</summary>
    public void Abandon()
    {
        Dispose();
        if (_created && _r.Group.IsMain && Directory.Exists(Run.Path)
            && Directory.EnumerateFileSystemEntries(Run.Path).All(f => Path.GetFileName(f) == FolderLock.FileName || f == Run.Plan))
            Directory.Delete(Run.Path, recursive: true);
    }

    private GrowthPlan NewPlan(GrowthPlan given)
    {
        if (_r.Group.IsMain && Run.HasCheckpoint)
            throw new StrataException($"{Run.Path} already holds a checkpoint: pass --resume to continue it, or choose another --out");
        return given with { Data = given.Data.WithTokenizerResolved() };
    }

    /// <summary>The checkpoint's plan (a given plan that differs is noted and ignored), with --lr-scale applied.</summary>
    private GrowthPlan ResumedPlan(GrowthPlan? given, out CheckpointInfo resumed)
    {
        if (_r.Group.IsMain)
        {
            Run.Recover();
            if (!Run.HasCheckpoint) throw new StrataException($"{Run.Path}: no {RunDirectory.CheckpointName} to resume from");
            if (_r.Rewind)
            {
                Run.Rewind();
                _r.Log.WriteLine($"note: rewound to {Run.Checkpoint} (the latest checkpoint is dropped)");
            }
        }
        _r.Group.Barrier("rank 0 prepares the run folder");
        resumed = Checkpoint.ReadInfo(Run.Checkpoint);
        if (given is not null && Json.Serialize(resumed.Plan) != Json.Serialize(GrowthStage.FitLoraRanks(given, "plan") with { Data =
            given.Data.WithTokenizerResolved() }))
            _r.Log.WriteLine($"note: resuming with the plan stored in {Run.Checkpoint}; the plan given differs and is ignored");
        var plan = resumed.Plan with { Data = resumed.Plan.Data.WithTokenizerResolved() };
        if (_r.LearningRateScale is { } f)
        {
            plan = plan.WithLearningRatesScaled(f, Run.Checkpoint);
            _r.Log.WriteLine($"note: every learning rate of the plan scaled by {f} from step {resumed.GlobalStep}");
        }
        if (_r.Precision is { } p && p != plan.Training.Precision)
            _r.Log.WriteLine($"note: continuing in {Json.EnumName(p)} (the run was in {Json.EnumName(plan.Training.Precision)})");
        return plan;
    }

    /// <summary>A checkpoint taken at a stage's end promises that stage's file; a crash between writing one and the
    /// other is mended here (the file is written before the checkpoint, so only files of older versions lack it).</summary>
    private void RepairStageFile(CheckpointInfo r)
    {
        var stageFile = Run.Stage(r.StageIndex + 1);
        if (!r.StageFinished || File.Exists(stageFile)) return;
        AtomicFile.Copy(Run.Checkpoint, stageFile);
        _r.Log.WriteLine($"note: {stageFile} was missing and was written from the checkpoint at the end of stage {r.StageIndex + 1}");
    }

    /// <summary>Releases the run folder (and the model, unless it was taken).</summary>
    public void Dispose()
    {
        _model?.Dispose();
        _model = null;
        _lock?.Dispose();
        _lock = null;
    }
}
