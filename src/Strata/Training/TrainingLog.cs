using Strata.Runs;
using Strata.Util;

namespace Strata.Training;

/// <summary>A run's record of itself: metrics.jsonl and TensorBoard events (rank 0), the progress bar, the smoothed
/// tokens per second. Records: {"kind":"train"|"eval"|"stage", "step", "stage", ...} (<see cref="MetricsLog"/>).</summary>
internal sealed class TrainingLog : IDisposable
{
    private readonly MetricsLog? _metrics;
    private readonly TensorBoardWriter? _tb;
    private readonly ProgressBar _bar;
    private readonly long _tokensPerStep, _totalSteps;

    public TrainingLog(RunDirectory run, long totalSteps, long? resumedStep, bool main, TextWriter log, int logEvery, bool interactive, long tokensPerStep)
    {
        (_tokensPerStep, _totalSteps) = (tokensPerStep, totalSteps);
        if (main)
        {
            _metrics = new MetricsLog(run.Metrics, resumedStep ?? -1, log);
            _tb = new TensorBoardWriter(run.TensorBoard);
        }
        _bar = new ProgressBar(main ? log : TextWriter.Null, totalSteps, logEvery, interactive);
    }

    /// <summary>Tokens per second, smoothed over steps (0.9 of the last value).</summary>
    public double TokensPerSecond { get; private set; }

    public void Message(string text) => _bar.Message(text);

    public void Step(long step, int stage, double loss, double lr, double seconds, double elapsed)
    {
        TokensPerSecond = TokensPerSecond == 0 ? _tokensPerStep / seconds : 0.9 * TokensPerSecond + 0.1 * _tokensPerStep / seconds;
        if (_metrics is null) return;
        _metrics.Write(new { kind = "train", step, stage, loss, lr, tokens_per_s = _tokensPerStep / seconds, elapsed_s = elapsed });
        _tb!.Scalar("train/loss", step, (float)loss);
        _tb.Scalar("train/lr", step, (float)lr);
        double eta = (_totalSteps - step) * _tokensPerStep / Math.Max(TokensPerSecond, 1e-9);
        _bar.Report(step, $"loss {loss:F4} lr {lr:E2} {TokensPerSecond:F0} tok/s, {Clock(elapsed)} elapsed, {Clock(eta)} left");
    }

    /// <summary>Seconds as h:mm:ss (or m:ss).</summary>
    public static string Clock(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Max(0, Math.Min(seconds, 1e8)));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes}:{t.Seconds:D2}";
    }

    /// <summary>The validation loss (the mean over datasets, and each one's when there are several).</summary>
    public void Eval(long step, int stage, double loss, IReadOnlyDictionary<string, double> each)
    {
        if (_metrics is null) return;
        if (each.Count == 1) _metrics.Write(new { kind = "eval", step, stage, val_loss = loss });
        else _metrics.Write(new { kind = "eval", step, stage, val_loss = loss, val = each });
        _tb!.Scalar("val/loss", step, (float)loss);
        if (each.Count > 1)
            foreach (var (name, l) in each) _tb.Scalar($"val/{name}", step, (float)l);
        if (step > 0) _bar.Message($"step {step}: validation loss {loss:F4}" +
                                   (each.Count > 1 ? $" ({string.Join(", ", each.Select(kv => $"{kv.Key} {kv.Value:F4}"))})" : ""));
    }

    public void StageEnd(long step, GrowthStage stage, int depth, Modeling.ParameterBudget budget, double seconds) =>
        _metrics?.Write(new { kind = "stage", step, stage = stage.Index, name = stage.Name, depth, active = budget.Active,
            frozen = budget.Frozen, total = budget.Total, peak_rss_mib = PeakMemory.Mib(), seconds });

    /// <summary>Events written so far reach the disk (before a checkpoint claims them).</summary>
    public void Flush() => _tb?.Flush();

    public void Dispose()
    {
        _tb?.Dispose();
        _metrics?.Dispose();
    }
}
