using Strata.Util;

namespace Strata.Training;

/// <summary>The loss-curve PNG of a run: training loss per step, validation loss at each evaluation, stage boundaries.</summary>
internal static class LossCurvePlot
{
    public static void Save(string metricsPath, string pngPath, string title)
    {
        var records = MetricsLog.Read(metricsPath).ToList();
        var plot = new ScottPlot.Plot();
        var train = records.Where(r => r.Kind == "train").ToList();
        var eval = records.Where(r => r.Kind == "eval").ToList();
        if (train.Count > 0)
        {
            var s = plot.Add.ScatterLine(train.Select(r => (double)r.Step).ToArray(), train.Select(r => r.Value).ToArray());
            s.LegendText = "train loss";
        }
        if (eval.Count > 0)
        {
            var s = plot.Add.Scatter(eval.Select(r => (double)r.Step).ToArray(), eval.Select(r => r.Value).ToArray());
            s.LegendText = "validation loss";
            s.MarkerSize = 7;
        }
        for (int i = 1; i < train.Count; i++)
            if (train[i].Stage != train[i - 1].Stage)
            {
                var line = plot.Add.VerticalLine(train[i].Step - 0.5);
                line.LinePattern = ScottPlot.LinePattern.Dashed;
                line.Text = $"stage {train[i].Stage + 1}";
                line.LabelOppositeAxis = true;                // inside the top edge: clear of the step axis' ticks and the title
                line.LabelOffsetY = 24;
            }
        plot.Title(title);
        plot.XLabel("optimizer step");
        plot.YLabel("cross-entropy (nats / token)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        var bytes = plot.GetImageBytes(900, 500, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(pngPath, bytes);
    }
}
