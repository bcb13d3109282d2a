// The baseline token interface: an ordinary trainable embedding table [V, C], N(0, 0.02) as GPT-2.
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Substrates;

public sealed class TrainableSubstrate : Substrate
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;   // [V, C]
    private readonly SubstrateSpec _spec;

    public TrainableSubstrate(SubstrateSpec spec, int vocab, int dModel, Device? device = null) : base(nameof(TrainableSubstrate))
    {
        _spec = spec;
        var w = torch.empty([vocab, dModel], device: device);
        if (device?.type != DeviceType.META) nn.init.normal_(w, 0, 0.02);
        _weight = new Parameter(w, requires_grad: true);
        RegisterComponents();
    }

    public override SubstrateSpec Spec => _spec;
    public override bool IsFrozen => !_weight.requires_grad;

    /// <param name="idx">[B, T] int64 token ids</param>
    public override Tensor forward(Tensor idx)
    {
        using var rows = _weight.index_select(0, idx.reshape(-1));               // [B*T, C]
        return rows.view(idx.shape[0], idx.shape[1], -1);                          // [B, T, C]
    }
}
