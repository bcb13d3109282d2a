using System.Globalization;
using System.Text;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>Several reports side by side (compare.md, compare.json) and the paper's "metric vs depth" figure
/// (depth.png: accuracies and BLEU in percent; depth-bpb.png: bits per byte), one line per task, protocol and metric.</summary>
public static class EvalComparison
{
    public const string MarkdownFile = "compare.md", JsonFile = "compare.json", DepthPlotFile = "depth.png", DepthBitsPlotFile = "depth-bpb.png";

    public static string Markdown(IReadOnlyList<EvalReport> reports)
    {
        var keys = Series(reports);
        var sb = new StringBuilder("# Evaluation comparison\n\n| task | protocol | metric | " + string.Join(" | ", reports.Select(Label))
            + " |\n|---|---|---|" + string.Concat(reports.Select(_ => "---|")) + "\n");
        foreach (var (task, protocol, metric) in keys)
            sb.Append($"| {task} | {protocol} | {metric} | " + string.Join(" | ", reports.Select(r => r.Find(task, protocol, metric) is { } s
                ? EvalReport.Format(s) : "-")) + " |\n");
        return sb.ToString();
    }

    public static string Label(EvalReport r) => r.Depth is { } d ? $"{Path.GetFileName(r.Model)} (depth {d})" : Path.GetFileName(r.Model);

    private static List<(string Task, string Protocol, string Metric)> Series(IReadOnlyList<EvalReport> reports) =>
        reports.SelectMany(r => r.Scores.Select(s => (s.Task, s.Protocol, s.Metric))).Distinct().ToList();

    public static void Save(string dir, IReadOnlyList<EvalReport> reports)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, MarkdownFile), Markdown(reports));
        AtomicFile.WriteAllText(Path.Combine(dir, JsonFile), Json.Serialize(reports));
        var withDepth = reports.Where(r => r.Depth is not null).OrderBy(r => r.Depth).ToList();
        if (withDepth.Count == 0) return;
        Plot(withDepth, s => s.Metric is not ("bits_per_byte" or "nats_per_token" or "perplexity"), "score (%)", Path.Combine(dir, DepthPlotFile));
        Plot(withDepth, s => s.Metric == "bits_per_byte", "bits per byte (held-out text)", Path.Combine(dir, DepthBitsPlotFile));
    }

    private static void Plot(IReadOnlyList<EvalReport> reports, Func<EvalScore, bool> include, string yLabel, string path)
    {
        var series = Series(reports).Where(k => reports.Any(r => r.Find(k.Task, k.Protocol, k.Metric) is { } s && include(s))).ToList();
        if (series.Count == 0) return;
        var plot = new ScottPlot.Plot();
        foreach (var (task, protocol, metric) in series)
        {
            var points = reports.Select(r => (r.Depth!.Value, r.Find(task, protocol, metric))).Where(p => p.Item2 is not null).ToList();
            var line = plot.Add.Scatter(points.Select(p => (double)p.Item1).ToArray(), points.Select(p => p.Item2!.Value).ToArray());
            line.LegendText = $"{task} [{protocol}] {metric}";
            line.MarkerSize = 7;
            var chance = points.Select(p => p.Item2!.Chance).FirstOrDefault(c => c is not null);
            if (chance is { } c && series.Count <= 4)
            {
                var h = plot.Add.HorizontalLine(c);
                h.LinePattern = ScottPlot.LinePattern.Dotted;
                h.Color = line.Color;
            }
        }
        plot.Title("metric vs depth (dotted: chance)");
        plot.XLabel("depth (Transformer blocks)");
        plot.YLabel(yLabel);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(900, 550, ScottPlot.ImageFormat.Png));
    }
}
