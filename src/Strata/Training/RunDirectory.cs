namespace Strata.Training;

/// <summary>
/// The layout of a run folder, in one place:
/// <code>
/// checkpoint.safetensors     the latest state (model, optimizer, position); what --resume continues
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
    public string Metrics => Combine("metrics.jsonl");
    public string TensorBoard => Combine("tb");
    public string LossCurve => Combine("loss_curve.png");
    public string Eval => Combine("eval");

    /// <summary>The end-of-stage checkpoint of stage <paramref name="number"/> (1-based).</summary>
    public string Stage(int number) => Combine($"stage-{number}.safetensors");

    public bool HasCheckpoint => File.Exists(Checkpoint);

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
