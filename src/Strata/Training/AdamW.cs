// AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only (nanoGPT's configure_optimizers).
// Written out rather than taken from torch.optim so its whole state (step, exp_avg, exp_avg_sq by parameter name) goes
// into Strata's checkpoints and a resumed run continues bit for bit.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Training;

public sealed class AdamW : IDisposable
{
    private readonly List<(string Name, Parameter Param, bool Decay)> _params;
    private readonly Dictionary<string, (Tensor M, Tensor V)> _state = new();
    private readonly double _beta1, _beta2, _eps, _weightDecay;

    /// <summary>An optimizer over exactly the parameters that require grad; 2-D and larger ones get weight decay.</summary>
    public AdamW(IEnumerable<(string Name, Parameter Param)> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        _params = parameters.Where(p => p.Param.requires_grad).Select(p => (p.Name, p.Param, p.Param.dim() >= 2)).ToList();
        (_beta1, _beta2, _eps, _weightDecay) = (beta1, beta2, eps, weightDecay);
    }

    public long StepCount { get; private set; }
    public IReadOnlyList<Parameter> Parameters => _params.Select(p => p.Param).ToList();
    public long DecayedCount => _params.Where(p => p.Decay).Sum(p => p.Param.numel());
    public long UndecayedCount => _params.Where(p => !p.Decay).Sum(p => p.Param.numel());

    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(_beta1, StepCount), bc2 = 1 - Math.Pow(_beta2, StepCount);
        using var _ = torch.no_grad();
        foreach (var (name, p, decay) in _params)
        {
            var g = p.grad;
            if (g is null) continue;
            if (!_state.TryGetValue(name, out var s))
            {
                s = (torch.zeros_like(p).DetachFromDisposeScope(), torch.zeros_like(p).DetachFromDisposeScope());
                _state[name] = s;
            }
            if (decay && _weightDecay > 0) p.mul_(1 - lr * _weightDecay);
            s.M.mul_(_beta1).add_(g, alpha: 1 - _beta1);
            s.V.mul_(_beta2).addcmul_(g, g, value: 1 - _beta2);
            using var denom = s.V.sqrt();
            denom.div_(Math.Sqrt(bc2)).add_(_eps);
            p.addcdiv_(s.M, denom, value: -lr / bc1);
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, p, _) in _params)
        {
            using var g = p.grad;
            if (g is not null) p.grad = null;
        }
    }

    /// <summary>State tensors by name: "{param}.exp_avg" and "{param}.exp_avg_sq".</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State()
    {
        foreach (var (name, (m, v)) in _state)
        {
            yield return ($"{name}.exp_avg", m);
            yield return ($"{name}.exp_avg_sq", v);
        }
    }

    public void LoadState(long step, Func<string, Tensor?> lookup)
    {
        StepCount = step;
        foreach (var (name, p, _) in _params)
        {
            var m = lookup($"{name}.exp_avg");
            var v = lookup($"{name}.exp_avg_sq");
            if (m is null || v is null) continue;   // never stepped (no gradient yet)
            _state[name] = (m.to(p.device).DetachFromDisposeScope(), v.to(p.device).DetachFromDisposeScope());
        }
    }

    public void Dispose()
    {
        foreach (var (m, v) in _state.Values) { m.Dispose(); v.Dispose(); }
        _state.Clear();
    }
}
