namespace Strata.Optim;

/// <summary>Linear warmup then cosine decay, per stage.</summary>
public static class LrSchedule
{
    /// <param name="step">0-based step within the stage</param>
    public static double At(int step, int steps, int warmup, double peak, double min)
    {
        // 1) warmup: linear from peak/warmup up to peak
        if (step < warmup) return peak * (step + 1) / warmup;
        // 2) after the stage's last step: min
        if (step >= steps) return min;
        // 3) in between: cosine from peak down to min
        double progress = steps - warmup <= 1 ? 1.0 : (double)(step - warmup) / (steps - warmup - 1);
        return min + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (peak - min);
    }
}
