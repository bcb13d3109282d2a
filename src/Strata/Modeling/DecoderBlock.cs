using Strata.Util;
// One pre-LN decoder block with a sequential residual (GPT-NeoX, use_parallel_residual = false):
//   x = x + attention(input_layernorm(x));  x = x + mlp(post_attention_layernorm(x))
// At d = 1024 it holds 12,596,224 parameters (the paper's count, Growing Transformers, arXiv 2507.07129).
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Strata.Modeling;

public sealed class DecoderBlock : Module<Tensor, Tensor>
{
    [ComponentName(Name = "input_layernorm")] private readonly LayerNorm _ln1;
    [ComponentName(Name = "post_attention_layernorm")] private readonly LayerNorm _ln2;
    [ComponentName(Name = "attention")] private readonly CausalSelfAttention _attention;
    [ComponentName(Name = "mlp")] private readonly Mlp _mlp;

    public DecoderBlock(ModelConfig config, Device? device = null) : base(nameof(DecoderBlock))
    {
        _ln1 = LayerNorm(config.DModel, config.LayerNormEps, device: device);
        _ln2 = LayerNorm(config.DModel, config.LayerNormEps, device: device);
        _attention = new CausalSelfAttention(config, device);
        _mlp = new Mlp(config, device);
        RegisterComponents();
    }

    public CausalSelfAttention Attention => _attention;
    public Mlp Mlp => _mlp;

    public override Tensor forward(Tensor x) => throw new NotSupportedException("call Forward(x, attention, cache, layer)");

    /// <param name="x">[B, T, C], the residual stream (fp32; the projections compute in the model's compute dtype)</param>
    internal Tensor Forward(Tensor x, AttentionContext attention, KvCache? cache, int layer)
    {
        using var h1 = _ln1.call(x);
        using var a = _attention.Forward(h1, attention, cache, layer);
        using var x1 = x.add(a, Scalars.One);
        using var h2 = _ln2.call(x1);
        using var m = _mlp.call(h2);
        return x1.add(m, Scalars.One);                              // [B, T, C]
    }

    /// <summary>The projection a LoRA target names.</summary>
    public LoraLinear Projection(LoraTarget t) => t switch
    {
        LoraTarget.Qkv => _attention.QueryKeyValue,
        LoraTarget.Proj => _attention.Dense,
        LoraTarget.Fc1 => _mlp.Up,
        _ => _mlp.Down,
    };

    /// <summary>The four projections, in the order of <see cref="LoraTarget"/>.</summary>
    public IEnumerable<LoraLinear> Projections => Enum.GetValues<LoraTarget>().Select(Projection);

    /// <summary>Attaches LoRA adapters to the given projections (in the order given, each once).</summary>
    public void AttachLora(IEnumerable<LoraTarget> targets, int rank, double alpha)
    {
        foreach (var t in targets.Distinct()) Projection(t).Attach(rank, alpha);
    }

    /// <summary>Whether any projection carries an adapter.</summary>
    public bool HasLora => Projections.Any(p => p.HasAdapter);

    /// <summary>Folds every adapter into its projection's weight: the block is a plain dense block again.</summary>
    public void MergeLora()
    {
        foreach (var p in Projections) p.Merge();
    }

    /// <summary>GPT-2 initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms, and the two projections onto
    /// the residual stream scaled by 1/sqrt(2 * depth) ("GPT-2 paper", as nanoGPT does).</summary>
    public void InitializeGpt2(int depth, double std = 0.02)
    {
        using var _ = torch.no_grad();
        foreach (var lin in new[] { _attention.QueryKeyValue, _attention.Dense, _mlp.Up, _mlp.Down })
        {
            var s = lin == _attention.Dense || lin == _mlp.Down ? std / Math.Sqrt(2.0 * Math.Max(1, depth)) : std;
            nn.init.normal_(lin.Weight, 0, s);
            nn.init.zeros_(lin.Bias!);
        }
        foreach (var ln in new[] { _ln1, _ln2 })
        {
            nn.init.ones_(ln.weight!);
            nn.init.zeros_(ln.bias!);
        }
    }
}
