// One pre-LN decoder block with a sequential residual (GPT-NeoX, use_parallel_residual = false):
//   x = x + attention(input_layernorm(x));  x = x + mlp(post_attention_layernorm(x))
// At d = 1024 it holds 12,596,224 parameters (growing-transformers.md §1.5).
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

    public override Tensor forward(Tensor x) => throw new NotSupportedException("call Forward(x, cos, sin, cache, layer)");

    /// <param name="x">[B, T, C]</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, KvCache? cache, int layer)
    {
        using var h1 = _ln1.call(x);
        using var a = _attention.Forward(h1, cos, sin, cache, layer);
        using var x1 = x.add(a);
        using var h2 = _ln2.call(x1);
        using var m = _mlp.call(h2);
        return x1.add(m);                                          // [B, T, C]
    }

    private (Linear Linear, Func<LoraAdapter?> Get, Action<LoraAdapter?> Set, string Name) Site(LoraTarget t) => t switch
    {
        LoraTarget.Qkv => (_attention.QueryKeyValue, () => _attention.QkvAdapter, a => _attention.QkvAdapter = a, "attention.query_key_value"),
        LoraTarget.Proj => (_attention.Dense, () => _attention.DenseAdapter, a => _attention.DenseAdapter = a, "attention.dense"),
        LoraTarget.Fc1 => (_mlp.Up, () => _mlp.UpAdapter, a => _mlp.UpAdapter = a, "mlp.dense_h_to_4h"),
        _ => (_mlp.Down, () => _mlp.DownAdapter, a => _mlp.DownAdapter = a, "mlp.dense_4h_to_h"),
    };

    /// <summary>Attaches LoRA adapters to the given projections (their Linears are left as they are).</summary>
    public void AttachLora(IEnumerable<LoraTarget> targets, int rank, double alpha)
    {
        foreach (var t in targets.Distinct())
        {
            var site = Site(t);
            if (site.Get() is not null) throw new InvalidOperationException($"{site.Name} already has a LoRA adapter");
            site.Set(new LoraAdapter(site.Linear, rank, alpha));
        }
    }

    /// <summary>The attached adapters, by the path of the projection they adapt.</summary>
    public IEnumerable<(string Name, LoraAdapter Adapter)> Adapters =>
        Enum.GetValues<LoraTarget>().Select(Site).Where(s => s.Get() is not null).Select(s => (s.Name, s.Get()!));

    /// <summary>Folds every adapter into its Linear and removes it: the block is a plain dense block again.</summary>
    public void MergeLora()
    {
        foreach (var t in Enum.GetValues<LoraTarget>())
        {
            var site = Site(t);
            if (site.Get() is not { } a) continue;
            a.MergeInto(site.Linear);
            site.Set(null);
            a.Dispose();
        }
    }

    /// <summary>GPT-2 initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms, and the two projections onto
    /// the residual stream scaled by 1/sqrt(2 * depth) ("GPT-2 paper", as nanoGPT does).</summary>
    public void InitializeGpt2(int depth, double std = 0.02)
    {
        using var _ = torch.no_grad();
        foreach (var lin in new[] { _attention.QueryKeyValue, _attention.Dense, _mlp.Up, _mlp.Down })
        {
            var s = lin == _attention.Dense || lin == _mlp.Down ? std / Math.Sqrt(2.0 * Math.Max(1, depth)) : std;
            nn.init.normal_(lin.weight!, 0, s);
            nn.init.zeros_(lin.bias!);
        }
        foreach (var ln in new[] { _ln1, _ln2 })
        {
            nn.init.ones_(ln.weight!);
            nn.init.zeros_(ln.bias!);
        }
    }
}
