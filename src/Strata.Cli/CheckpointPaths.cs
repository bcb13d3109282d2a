using Strata.Runs;
using Strata.Util;

namespace Strata.Cli;

/// <summary>What commands that read a model accept: a checkpoint or ensemble file, or a run folder (its checkpoint).</summary>
internal static class CheckpointPaths
{
    public static string Resolve(string path)
    {
        if (!Directory.Exists(path)) return path;
        var run = new RunDirectory(path);
        if (File.Exists(run.Checkpoint)) return run.Checkpoint;
        throw new StrataException($"{path}: a folder without {RunDirectory.CheckpointName}: give a run folder, a checkpoint (.safetensors) or a plan");
    }
}
