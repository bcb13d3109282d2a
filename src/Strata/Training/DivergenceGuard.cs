// The divergence rule: a run whose training loss climbs far above the best it reached in the current stage is
// stopped the way a non-finite loss stops it, before the step that shows it is applied or anything is saved.
// The loss is smoothed first (an exponential moving average, weight 0.1 on the new step, as the progress bar shows it),
// so one hard batch does not trip it: a run stops at the first step where
//     ema(loss) > training.divergence_factor x min(ema(loss) over the earlier steps of the stage).
// The best is taken per stage because a stage may legitimately start higher (new random blocks, another data mixture).
namespace Strata.Training;

internal sealed class DivergenceGuard
{
    /// <summary>Weight of the newest step in the moving average.</summary>
    public const double Smoothing = 0.1;

    private readonly double _factor;
    private double? _ema;
    private double _best = double.PositiveInfinity;

    /// <param name="factor">training.divergence_factor; 0 turns the rule off (non-finite losses still stop a run)</param>
    public DivergenceGuard(double factor) => _factor = factor;

    /// <summary>The moving average the last accepted step left, and the stage's best so far.</summary>
    public double? Average => _ema;
    public double Best => _best;

    /// <summary>Forgets the stage's best: a new stage starts (or a resumed run continues inside one).</summary>
    public void StartStage()
    {
        _ema = null;
        _best = double.PositiveInfinity;
    }

    /// <summary>Null when <paramref name="loss"/> may be applied (the average then takes it), else why not.</summary>
    public string? Check(double loss)
    {
        if (!double.IsFinite(loss)) return null;                                    // the non-finite check reports it
        double ema = _ema is { } e ? (1 - Smoothing) * e + Smoothing * loss : loss;
        if (_factor > 0 && ema > _factor * _best)
            return $"the training loss has diverged: its moving average {ema:G5} is over {_factor:G3} x the best it reached in this stage " +
                $"({_best:G5}) (training.divergence_factor)";
        _best = Math.Min(_best, _ema ?? double.PositiveInfinity);
        _ema = ema;
        return null;
    }
}
