// Legend: B batch, T time (new positions), S positions attended (past + T), C = d_model, nh heads, hs head size.
// Matches transformers' GPTNeoXAttention: one query_key_value Linear whose output is laid out per head as
// [head][q, k, v][hs], rotary on the whole head, softmax(q k^T / sqrt(hs)) v, then the dense output projection.
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Strata.Modeling;

public sealed class CausalSelfAttention : Module<Tensor, Tensor>
{
    [ComponentName(Name = "query_key_value")] private readonly LoraLinear _qkv;
    [ComponentName(Name = "dense")] private readonly LoraLinear _dense;
    private readonly int _nHead, _headSize;

    public CausalSelfAttention(ModelConfig config, Device? device = null) : base(nameof(CausalSelfAttention))
    {
        _nHead = config.NHead;
        _headSize = config.HeadSize;
        _qkv = new LoraLinear(config.DModel, 3 * config.DModel, hasBias: true, device: device);
        _dense = new LoraLinear(config.DModel, config.DModel, hasBias: true, device: device);
        RegisterComponents();
    }

    public LoraLinear QueryKeyValue => _qkv;
    /// <summary>The output projection onto the residual stream (GPT-2's c_proj).</summary>
    public LoraLinear Dense => _dense;

    public override Tensor forward(Tensor x) => throw new NotSupportedException("call Forward(x, attention, cache, layer)");

    /// <param name="x">[B, T, C]</param>
    /// <param name="attention">rotary tables of the new positions and which keys each may see</param>
    internal Tensor Forward(Tensor x, AttentionContext attention, KvCache? cache, int layer)
    {
        var (B, T, C) = (x.shape[0], x.shape[1], x.shape[2]);
        var heads = Heads(x, attention);                                              // [B, nh, T, hs] each
        using var q = heads.Q;
        using var kNew = heads.K;
        using var v0 = heads.V;
        Tensor k = kNew, v = v0;
        if (cache is not null) (k, v) = cache.Append(layer, kNew, v0);              // [B, nh, S, hs]
        try
        {
            // causal without a cache; after P cached positions query i sees keys 0..P+i; with padding, not the padding
            var y = attention.ByProducts
                ? CausalAttentionByProducts.Attend(q, k, v)
                : nn.functional.scaled_dot_product_attention(q, k, v, attention.Mask, 0.0, attention.IsCausal);   // [B, nh, T, hs]
            using (y)
            using (var merged = y.transpose(1, 2).contiguous().view(B, T, C))           // [B, T, C]
                return _dense.call(merged);
        }
        finally
        {
            if (cache is not null) { k.Dispose(); v.Dispose(); }
        }
    }

    /// <summary>q, k and v [B, nh, T, hs] of the projection of <paramref name="x"/>, q and k rotated: in bf16 on the CPU
    /// by <see cref="RotaryHeads"/> in one pass, otherwise as views of the projection's output and Rotary.Apply.</summary>
    private (Tensor Q, Tensor K, Tensor V) Heads(Tensor x, AttentionContext attention)
    {
        var (B, T) = (x.shape[0], x.shape[1]);
        using var qkv3 = _qkv.call(x);                                                // [B, T, nh * 3hs]
        if (RotaryHeads.Applies(qkv3, attention.Cos, attention.Sin, _headSize))
            return RotaryHeads.Split(qkv3, _headSize, attention.Cos, attention.Sin);
        using var qkv = qkv3.view(B, T, _nHead, 3 * _headSize);                       // [B, T, nh, 3hs]
        var parts = qkv.chunk(3, dim: -1);                                            // 3 x [B, T, nh, hs]
        try
        {
            using var q0 = parts[0].transpose(1, 2);                                  // [B, nh, T, hs]
            using var k0 = parts[1].transpose(1, 2);
            return (Rotary.Apply(q0, attention.Cos, attention.Sin), Rotary.Apply(k0, attention.Cos, attention.Sin), parts[2].transpose(1, 2));
        }
        finally { foreach (var p in parts) p.Dispose(); }
    }
}
