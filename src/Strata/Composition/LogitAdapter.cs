using Strata.Util;
// The paper's alternative to plain averaging (Growing Transformers, arXiv 2507.07129, modular composition): a small trainable adapter over the experts'
// logits. Here: logits = sum_k g_k * logits_k + b, with a gain per expert and vocabulary entry (g [K, V], starting at
// 1/K, i.e. at the plain average) and a bias b [V] (starting at 0): K*V + V parameters, trained with the experts frozen.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Strata.Composition;

public sealed class LogitAdapter : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "gain")] private readonly Parameter _gain;   // [K, V]
    [ComponentName(Name = "bias")] private readonly Parameter _bias;   // [V]

    public LogitAdapter(int experts, int vocab, Device? device = null) : base(nameof(LogitAdapter))
    {
        using Scalar share = 1.0 / experts;
        _gain = new Parameter(torch.full([experts, vocab], share, dtype: ScalarType.Float32, device: device));
        _bias = new Parameter(torch.zeros([vocab], device: device));
        RegisterComponents();
    }

    /// <param name="stacked">the experts' logits stacked on a new first axis: [K, B, T, V]</param>
    public override Tensor forward(Tensor stacked)
    {
        using var g = _gain.view(_gain.shape[0], 1, 1, _gain.shape[1]);                   // [K, 1, 1, V]
        using var weighted = stacked.mul(g);                                                // [K, B, T, V]
        using var sum = weighted.sum(dim: 0L);                                              // [B, T, V]
        return sum.add(_bias, Scalars.One);
    }
}
