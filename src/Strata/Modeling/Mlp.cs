// GPT-NeoX MLP: Linear(C, 4C) -> exact (erf) GELU -> Linear(4C, C), both with biases.
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Strata.Modeling;

public sealed class Mlp : Module<Tensor, Tensor>
{
    [ComponentName(Name = "dense_h_to_4h")] private readonly LoraLinear _up;
    [ComponentName(Name = "dense_4h_to_h")] private readonly LoraLinear _down;

    public Mlp(ModelConfig config, Device? device = null) : base(nameof(Mlp))
    {
        _up = new LoraLinear(config.DModel, config.Ffn, hasBias: true, device: device);
        _down = new LoraLinear(config.Ffn, config.DModel, hasBias: true, device: device);
        RegisterComponents();
    }

    public LoraLinear Up => _up;
    /// <summary>The projection back onto the residual stream (GPT-2's mlp.c_proj).</summary>
    public LoraLinear Down => _down;

    /// <param name="x">[B, T, C]</param>
    public override Tensor forward(Tensor x)
    {
        using var h = _up.call(x);                                  // [B, T, 4C]
        using var a = nn.functional.gelu(h);
        return _down.call(a);                                       // [B, T, C]
    }
}
