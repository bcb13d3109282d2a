using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.Util;

namespace Strata.Training;

/// <summary>One JSON object per line: {"kind":"train","step",..,"loss","lr","tokens_per_s","elapsed_s"} after each
/// optimizer step, {"kind":"eval","step","val_loss",..} after each evaluation and {"kind":"stage",..} (parameter counts,
/// peak memory, seconds) at the end of each stage. A resumed run first drops the lines
/// past its checkpoint, so the log reads as one uninterrupted run.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;

    public MetricsLog(string path, long resumeStep)
    {
        Path = path;
        if (File.Exists(path))
        {
            var kept = File.ReadAllLines(path).Where(l => l.Length > 0 && StepOf(l) <= resumeStep).ToList();
            AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    public string Path { get; }

    public void Write(object record) => _writer.WriteLine(Json.Compact(record));

    public static long StepOf(string line) => JsonNode.Parse(line)?["step"]?.GetValue<long>() ?? long.MaxValue;

    /// <summary>Reads a metrics file back: (kind, step, value) for train loss and validation loss.</summary>
    public static IEnumerable<(string Kind, long Step, double Value, int Stage)> Read(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            var n = JsonNode.Parse(line)!;
            var kind = n["kind"]!.GetValue<string>();
            if (kind is not ("train" or "eval")) continue;
            var value = kind == "eval" ? n["val_loss"]!.GetValue<double>() : n["loss"]!.GetValue<double>();
            yield return (kind, n["step"]!.GetValue<long>(), value, n["stage"]?.GetValue<int>() ?? 0);
        }
    }

    /// <summary>The end-of-stage records: {"kind":"stage","step","stage","name","depth","active","frozen","total","peak_rss_mib","seconds"}.</summary>
    public static IEnumerable<JsonNode> ReadStages(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).Where(n => n["kind"]!.GetValue<string>() == "stage");

    public void Dispose() => _writer.Dispose();
}
