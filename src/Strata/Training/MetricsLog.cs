using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.Util;

namespace Strata.Training;

/// <summary>One JSON object per line: {"kind":"train","step",..,"loss","lr","tokens_per_s","elapsed_s"} after each
/// optimizer step and {"kind":"eval","step","val_loss",..} after each evaluation. A resumed run first drops the lines
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
            var value = kind == "eval" ? n["val_loss"]!.GetValue<double>() : n["loss"]!.GetValue<double>();
            yield return (kind, n["step"]!.GetValue<long>(), value, n["stage"]?.GetValue<int>() ?? 0);
        }
    }

    public void Dispose() => _writer.Dispose();
}
