// AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only (nanoGPT's configure_optimizers).
// Written out rather than taken from torch.optim so its whole state (step, exp_avg, exp_avg_sq by parameter name) goes
// into Strata's checkpoints and a resumed run continues bit for bit. On the CPU each parameter is updated in one pass
// over its four buffers (weight, gradient, both moments) instead of the nine of the tensor operations, as torch.optim's
// fused=True does on GPUs: the optimizer is memory-bound, and a 65,536-way head is most of the trained parameters.
using System.Runtime.Intrinsics;
using Strata.Util;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Optim;

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

    /// <summary>Whether fp32 parameters on the CPU take the one-pass kernel (the default); false keeps the tensor
    /// operations that every other device and dtype uses (the two agree to rounding).</summary>
    public bool UseCpuKernel { get; set; } = true;

    /// <summary>One AdamW update of every parameter that has a gradient.</summary>
    /// <param name="lr">learning rate</param>
    /// <param name="gradScale">factor applied to every gradient first (gradient clipping's coefficient; the gradients
    /// themselves are left as they are)</param>
    public void Step(double lr, double gradScale = 1.0)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(_beta1, StepCount), bc2 = 1 - Math.Pow(_beta2, StepCount);
        double decayed = _weightDecay > 0 ? 1 - lr * _weightDecay : 1.0;
        using var _ = torch.no_grad();
        // the tensor operations' numbers, held through the calls that read them (STRATA002)
        using Scalar gradScaleS = gradScale, decayS = decayed, beta1 = _beta1, beta2 = _beta2;
        using Scalar oneMinusBeta1 = 1 - _beta1, oneMinusBeta2 = 1 - _beta2, sqrtBc2 = Math.Sqrt(bc2), eps = _eps;
        using Scalar stepSize = -lr / bc1;
        foreach (var (name, p, decay) in _params)
        {
            using var g = p.grad;                                                           // a handle of its own
            if (g is null) continue;
            if (!_state.TryGetValue(name, out var s))
            {
                s = (torch.zeros_like(p).DetachFromDisposeScope(), torch.zeros_like(p).DetachFromDisposeScope());
                _state[name] = s;
            }
            double decayFactor = decay ? decayed : 1.0;
            if (UseCpuKernel && CpuKernel.Applies(p, g, s.M, s.V))
            {
                CpuKernel.Update(p, g, s.M, s.V, new((float)gradScale, (float)decayFactor, (float)_beta1, (float)_beta2,
                    (float)Math.Sqrt(bc2), (float)_eps, (float)(-lr / bc1)));
                continue;
            }
            using var scaled = gradScale == 1.0 ? null : g.mul(gradScaleS);
            var gs = scaled ?? g;
            if (decayFactor != 1.0) p.mul_(decayS);
            s.M.mul_(beta1).add_(gs, alpha: oneMinusBeta1);
            s.V.mul_(beta2).addcmul_(gs, gs, value: oneMinusBeta2);
            using var denom = s.V.sqrt();
            denom.div_(sqrtBc2).add_(eps, Scalars.One);
            p.addcdiv_(s.M, denom, value: stepSize);
        }
    }

    /// <summary>The gradient norm over every parameter's gradient (the 2-norm of them all as one vector), and the factor
    /// that scales them to at most <paramref name="maxNorm"/>: min(1, maxNorm / (norm + 1e-6)), as
    /// torch.nn.utils.clip_grad_norm_. Nothing is modified; pass the factor to <see cref="Step"/>.</summary>
    public (double Norm, double Scale) ClipScale(double maxNorm)
    {
        using var scope = torch.NewDisposeScope();
        var norms = _params.Select(p => p.Param.grad).Where(g => g is not null).Select(g => g!.norm()).ToList();
        if (norms.Count == 0) return (0, 1);
        double norm = torch.stack(norms).norm().item<float>();
        return (norm, double.IsFinite(norm) ? Math.Min(1.0, maxNorm / (norm + 1e-6)) : 1.0);
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
            _state[name] = (m.to(p.device, disposeAfter: true).DetachFromDisposeScope(), v.to(p.device, disposeAfter: true).DetachFromDisposeScope());
        }
    }

    public void Dispose()
    {
        foreach (var (m, v) in _state.Values) { m.Dispose(); v.Dispose(); }
        _state.Clear();
    }

    /// <summary>The scalars of one update: g' = g * GradScale; p *= Decay; m = b1 m + (1 - b1) g';
    /// v = b2 v + (1 - b2) g'^2; p += StepSize * m / (sqrt(v) / SqrtBc2 + Eps).</summary>
    private readonly record struct Update(float GradScale, float Decay, float Beta1, float Beta2, float SqrtBc2, float Eps, float StepSize);

    /// <summary>The update in one pass over each buffer, SIMD across elements, split between threads.</summary>
    private static class CpuKernel
    {
        private const int Slice = 1 << 16;

        public static bool Applies(params Tensor[] ts) => ts.All(t => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous())
            && ts.All(t => t.numel() == ts[0].numel());

        public static unsafe void Update(Tensor p, Tensor g, Tensor m, Tensor v, Update u)
        {
            long n = p.numel();
            float* pp = Pointer(p), gp = Pointer(g), mp = Pointer(m), vp = Pointer(v);
            int slices = (int)((n + Slice - 1) / Slice), workers = Math.Max(1, Math.Min(slices, torch.get_num_threads()));
            if (workers == 1) { Run(pp, gp, mp, vp, 0, n, u); return; }
            Parallel.For(0, slices, new ParallelOptions { MaxDegreeOfParallelism = workers }, k =>
            {
                long from = (long)k * Slice;
                Run(pp, gp, mp, vp, from, Math.Min(n, from + Slice), u);
            });
        }

        private static unsafe float* Pointer(Tensor t) => (float*)TensorMemory.Float32(t);

        private static unsafe void Run(float* p, float* g, float* m, float* v, long from, long to, Update u)
        {
            long i = from;
            var (gs, dec, b1, c1, b2, c2) = (Vector256.Create(u.GradScale), Vector256.Create(u.Decay), Vector256.Create(u.Beta1),
                Vector256.Create(1 - u.Beta1), Vector256.Create(u.Beta2), Vector256.Create(1 - u.Beta2));
            var (sq, eps, step) = (Vector256.Create(u.SqrtBc2), Vector256.Create(u.Eps), Vector256.Create(u.StepSize));
            for (; i <= to - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var gi = Vector256.Load(g + i) * gs;
                var mi = Vector256.Load(m + i) * b1 + gi * c1;
                var vi = Vector256.Load(v + i) * b2 + gi * gi * c2;
                Vector256.Store(mi, m + i);
                Vector256.Store(vi, v + i);
                Vector256.Store(Vector256.Load(p + i) * dec + step * mi / (Vector256.Sqrt(vi) / sq + eps), p + i);
            }
            for (; i < to; i++)
            {
                float gi = g[i] * u.GradScale;
                m[i] = m[i] * u.Beta1 + gi * (1 - u.Beta1);
                v[i] = v[i] * u.Beta2 + gi * gi * (1 - u.Beta2);
                p[i] = p[i] * u.Decay + u.StepSize * m[i] / (MathF.Sqrt(v[i]) / u.SqrtBc2 + u.Eps);
            }
        }
    }
}
