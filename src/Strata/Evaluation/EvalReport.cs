using System.Globalization;
using System.Text;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>The scores of one model (checkpoint, stage or ensemble) on a suite, saved as eval.json and eval.md, with
/// what each task measured.</summary>
public sealed record EvalReport(string Model, string Tokenizer, int? Depth, string Suite, IReadOnlyDictionary<string, string> Tasks,
    IReadOnlyList<EvalScore> Scores, double Seconds)
{
    public const string JsonFile = "eval.json", MarkdownFile = "eval.md";

    /// <summary>Runs every task of <paramref name="tasks"/> on the model, logging each score as it comes.</summary>
    public static EvalReport Run(Scorer scorer, string model, int? depth, string suite, IReadOnlyList<EvalTask> tasks, EvalSettings settings)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var scores = new List<EvalScore>();
        foreach (var t in tasks)
        {
            var taskClock = System.Diagnostics.Stopwatch.StartNew();
            var got = t.Run(scorer, settings);
            foreach (var s in got) settings.Log.WriteLine(
                $"   {s.Task} [{s.Protocol}] {s.Metric} = {Format(s)} (n={s.Items}{(s.Chance is { } c ? $", chance {c:F1}" : "")}) in " +
                    $"{taskClock.Elapsed.TotalSeconds:F1} s");
            scores.AddRange(got);
        }
        return new EvalReport(model, scorer.Tokenizer.Name, depth, suite, tasks.ToDictionary(t => t.Name, t => t.Description), scores,
            clock.Elapsed.TotalSeconds);
    }

    public static string Format(EvalScore s) =>
        s.Ci95 is { } ci ? $"{s.Value.ToString("F2", CultureInfo.InvariantCulture)} ± {ci.ToString("F2", CultureInfo.InvariantCulture)}"
            : s.Value.ToString("F4", CultureInfo.InvariantCulture);

    public EvalScore? Find(string task, string protocol, string metric) =>
        Scores.FirstOrDefault(s => s.Task == task && s.Protocol == protocol && s.Metric == metric);

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.Append($"# Evaluation of {Model}\n\ntokenizer {Tokenizer}{(Depth is { } d ? $", depth {d}" : "")}, suite '{Suite}', {Seconds:F0} s\n\n");
        sb.Append("| task | protocol | metric | value | 95% interval | items | chance | settings |\n|---|---|---|---|---|---|---|---|\n");
        foreach (var s in Scores)
            sb.Append($"| {s.Task} | {s.Protocol} | {s.Metric} | {Format(s)} | {s.Interval} | {s.Items} | " +
                $"{(s.Chance is { } c ? c.ToString("F1", CultureInfo.InvariantCulture) : "-")} | {s.Settings.Replace("|", "\\|")} |\n");
        sb.Append("\n");
        foreach (var (task, what) in Tasks) sb.Append($"- {task}: {what}\n");
        sb.Append("\nAccuracies and BLEU are in percent. ± is the 95% interval named in its column: 'runs' = 1.96·σ/√runs over repeated runs " +
                  "(the paper's), 'binomial' = 1.96·√(p(1-p)/n) over the items of one run.\n");
        return sb.ToString();
    }

    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, JsonFile), Json.Serialize(this));
        AtomicFile.WriteAllText(Path.Combine(dir, MarkdownFile), Markdown());
    }
}
