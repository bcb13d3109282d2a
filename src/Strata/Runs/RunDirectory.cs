
namespace Strata.Runs;

/// <summary>
/// The layout of a run folder, in one place:
/// <code>
/// plan.json                  the plan as the run follows it (for reading: the checkpoint holds the one it uses)
/// checkpoint.safetensors     the latest state (model, optimizer, position); what --resume continues
/// checkpoint.previous.safetensors   the one before it (--rewind resumes from it)
/// stage-N.safetensors        the model at the end of stage N (N from 1), for evaluation, export and growth
/// metrics.jsonl              one JSON record per step, evaluation and stage end (MetricsLog)
/// tb/                        TensorBoard event files
/// loss_curve.png             training and validation loss, stage boundaries marked
/// eval/                      evaluation reports of the run's checkpoints (strata eval, the demo)
/// </code>
/// </summary>
public sealed record RunDirectory
{
    public const string CheckpointName = "checkpoint.safetensors";

    public RunDirectory(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }
    public string Checkpoint => Combine(CheckpointName);
    public string PreviousCheckpoint => Combine("checkpoint.previous.safetensors");
    /// <summary>A new checkpoint, whole, not yet in place (see <see cref="Promote"/>).</summary>
    private string NextCheckpoint => Combine("checkpoint.next.safetensors");
    public string Metrics => Combine("metrics.jsonl");
    /// <summary>The plan as the run follows it (overrides applied, tokenizer and LoRA ranks resolved), for reading.</summary>
    public string Plan => Combine("plan.json");
    public string TensorBoard => Combine("tb");
    public string LossCurve => Combine("loss_curve.png");
    public string Eval => Combine("eval");

    /// <summary>The end-of-stage checkpoint of stage <paramref name="number"/> (1-based).</summary>
    public string Stage(int number) => Combine($"stage-{number}.safetensors");

    public bool HasCheckpoint => File.Exists(Checkpoint) || File.Exists(NextCheckpoint);

    /// <summary>Puts a new checkpoint in place, keeping the one it replaces as the previous one. <paramref name="write"/>
    /// writes the new one (atomically) to the path it is given; then two renames, each atomic: the current checkpoint
    /// becomes the previous one, the new one becomes current. A crash between them leaves the new one complete under its
    /// own name, and <see cref="Recover"/> finishes the job.</summary>
    public void Promote(Action<string> write)
    {
        write(NextCheckpoint);
        if (File.Exists(Checkpoint)) File.Move(Checkpoint, PreviousCheckpoint, overwrite: true);
        Util.KillPoint.Here("checkpoint.between-renames");
        File.Move(NextCheckpoint, Checkpoint, overwrite: true);
    }

    /// <summary>Finishes a <see cref="Promote"/> that a crash cut short (call with the folder locked).</summary>
    public void Recover()
    {
        if (File.Exists(NextCheckpoint)) File.Move(NextCheckpoint, Checkpoint, overwrite: true);
    }

    /// <summary>Makes the previous checkpoint current again (the latest one is dropped).</summary>
    public void Rewind()
    {
        if (!File.Exists(PreviousCheckpoint)) throw new Util.StrataException($"{Path}: no previous checkpoint to rewind to");
        File.Move(PreviousCheckpoint, Checkpoint, overwrite: true);
    }

    /// <summary>The stage checkpoints present, in stage order.</summary>
    public IReadOnlyList<string> StageCheckpoints()
    {
        if (!Directory.Exists(Path)) return [];
        return Directory.GetFiles(Path, "stage-*.safetensors")
            .Select(f => (File: f, N: int.TryParse(System.IO.Path.GetFileNameWithoutExtension(f)["stage-".Length..], out var n) ? n : -1))
            .Where(x => x.N > 0).OrderBy(x => x.N).Select(x => x.File).ToList();
    }

    /// <summary>The run folder that holds <paramref name="checkpoint"/> (a checkpoint.safetensors or a stage-N.safetensors).</summary>
    public static RunDirectory Of(string checkpoint) => new(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(checkpoint))!);

    private string Combine(string name) => System.IO.Path.Combine(Path, name);
}
