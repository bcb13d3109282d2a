using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.Util;

namespace Strata.Training;

/// <summary>One JSON object per line: {"kind":"train","step",..,"loss","lr","tokens_per_s","elapsed_s"} after each
/// optimizer step, {"kind":"eval","step","val_loss",..} after each evaluation and {"kind":"stage",..} (parameter counts,
/// peak memory, seconds) at the end of each stage. A resumed run first drops the lines
/// past its checkpoint, so the log reads as one uninterrupted run; a record that does not parse (the torn last line of
/// a write cut short by a crash or a full disk) is dropped then, with a note.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;

    public MetricsLog(string path, long resumeStep, TextWriter? log = null)
    {
        Path = path;
        FolderLock.RefuseLink(path);
        if (File.Exists(path))
        {
            var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToList();
            var steps = lines.Select(StepOf).ToList();
            int torn = steps.Count(s => s is null);
            if (torn > 0) log?.WriteLine($"note: {path}: dropped {torn} record(s) that do not parse (a write cut short)");
            var kept = lines.Where((_, i) => steps[i] is { } step && step <= resumeStep).ToList();
            AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    public string Path { get; }

    public void Write(object record)
    {
        var line = Json.Compact(record);
        int written = 0;
        if (KillPoint.IsArmed("metrics.mid-record"))                              // the crash tests: a torn record
        {
            written = line.Length / 2;
            _writer.Write(line[..written]);
            KillPoint.Here("metrics.mid-record");
        }
        _writer.WriteLine(line[written..]);
    }

    /// <summary>The step of a record, or null when the line is not a JSON object with an integer "step".</summary>
    public static long? StepOf(string line) => Parse(line)?["step"] is JsonValue v && v.TryGetValue<long>(out var step) ? step : null;

    private static JsonNode? Parse(string line)
    {
        try { return JsonNode.Parse(line) as JsonObject; }
        catch (JsonException) { return null; }
    }

    /// <summary>Reads a metrics file back: (kind, step, value) for train loss and validation loss.</summary>
    public static IEnumerable<(string Kind, long Step, double Value, int Stage)> Read(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (Parse(line) is not { } n || n["kind"] is not JsonValue k || !k.TryGetValue<string>(out var kind) || StepOf(line) is null) continue;
            if (kind is not ("train" or "eval")) continue;
            var value = kind == "eval" ? n["val_loss"]!.GetValue<double>() : n["loss"]!.GetValue<double>();
            yield return (kind, n["step"]!.GetValue<long>(), value, n["stage"]?.GetValue<int>() ?? 0);
        }
    }

    /// <summary>The end-of-stage records: {"kind":"stage","step","stage","name","depth","active","frozen","total","peak_rss_mib","seconds"}.</summary>
    public static IEnumerable<JsonNode> ReadStages(string path) =>
        File.ReadLines(path).Select(Parse).OfType<JsonNode>().Where(n => n["kind"] is JsonValue k && k.TryGetValue<string>(out var kind) && kind == "stage");

    public void Dispose() => _writer.Dispose();
}
