// The frozen k-bit token-id code (growing-transformers.md §2.2; emergent-semantics.md §3.4): row t of the table holds
// the k bits of t, values 0/1, most significant bit first (column 0 = bit k-1). The [V, k] table is lifted to d_model
// by repeat_interleave(d/k) (default) or by tiling. The lifted matrix has rank k.
using Strata.Modeling;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Substrates;

public sealed class BinaryCodeSubstrate : Substrate
{
    [ComponentName(Name = "weight")] private readonly Parameter _code;   // [V, k], frozen
    private readonly SubstrateSpec _spec;
    private readonly int _repeat;

    public BinaryCodeSubstrate(SubstrateSpec spec, ModelConfig model, Device? device = null) : base(nameof(BinaryCodeSubstrate))
    {
        _spec = spec.Validate(model);
        _repeat = model.DModel / spec.Bits;
        var table = device?.type == DeviceType.META
            ? torch.empty([model.VocabSize, spec.Bits], device: device)
            : CodeTable(model.VocabSize, spec.Bits).to(device ?? CPU);
        _code = new Parameter(table, requires_grad: false);
        RegisterComponents();
    }

    public override SubstrateSpec Spec => _spec;
    public override bool IsFrozen => true;

    /// <summary>The [V, k] table of 0/1 codes, most significant bit first.</summary>
    public static Tensor CodeTable(int vocab, int bits)
    {
        var data = new float[(long)vocab * bits];
        for (int t = 0; t < vocab; t++)
            for (int j = 0; j < bits; j++)
                data[(long)t * bits + j] = (t >> (bits - 1 - j)) & 1;
        return torch.tensor(data, [vocab, bits]);
    }

    /// <param name="idx">[B, T] int64 token ids</param>
    public override Tensor forward(Tensor idx)
    {
        using var flat = _code.index_select(0, idx.reshape(-1));                  // [B*T, k]
        using var codes = flat.view(idx.shape[0], idx.shape[1], -1);             // [B, T, k]
        return _spec.Lift == BinaryLift.Interleave
            ? codes.repeat_interleave(_repeat, dim: -1)                            // [B, T, C], bit j on dims j*r..j*r+r-1
            : codes.repeat(1, 1, _repeat);                                         // [B, T, C], bit j on dims j, j+k, ...
    }
}
