using Strata.Interop;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The GPT-NeoX forward written out op by op from an export's weights (LoRA merged, the substrate as its
/// [V, C] matrix), with the GELU as a parameter: llama.cpp's CPU build computes GELU as the tanh approximation looked
/// up in a table of fp16 inputs and outputs (ggml's ggml_vec_gelu_f32 under GGML_GELU_FP16), so its logits are
/// checked against this forward with that GELU, and their distance from Strata's exact GELU is measured apart.</summary>
internal static class NeoXReference
{
    /// <summary>llama.cpp's CPU GELU: the input rounded to fp16, the tanh approximation, the output rounded to fp16;
    /// x at or below -10 gives 0, at or above 10 gives x.</summary>
    public static Tensor LlamaCppGelu(Tensor x)
    {
        using var x16 = x.to(ScalarType.Float16).to(ScalarType.Float32);
        using var g = nn.functional.gelu(x16, approximate: TorchSharp.Modules.GELU.Approximate.tanh);
        using var y = g.to(ScalarType.Float16).to(ScalarType.Float32);
        using Scalar lowest = -10, highest = 10;
        using var low = x.le(lowest);
        using var high = x.ge(highest);
        using var zero = torch.zeros_like(x);
        using var clipped = torch.where(high, x, y);
        return torch.where(low, zero, clipped);
    }

    /// <summary>Logits [T, V] of <paramref name="ids"/>.</summary>
    public static Tensor Logits(ExportSource src, IReadOnlyList<int> ids, Func<Tensor, Tensor> gelu)
    {
        using var scope = torch.NewDisposeScope();
        using var ng = torch.no_grad();
        var c = src.Model.Config;
        int T = ids.Count, H = c.NHead, D = c.HeadSize;
        Tensor W(string name) => src.Weight(name).detach().to(ScalarType.Float32);
        Tensor Norm(Tensor x, string name) => nn.functional.layer_norm(x, [c.DModel], W(name + ".weight"), W(name + ".bias"), c.LayerNormEps);
        Tensor Linear(Tensor x, string name) => nn.functional.linear(x, W(name + ".weight"), W(name + ".bias"));

        var h = src.Embedding.index_select(0, torch.tensor(ids.Select(i => (long)i).ToArray()));       // [T, C]
        using Scalar headSize = D, rootOfHeadSize = Math.Sqrt(D);
        var invFreq = torch.pow(c.RopeTheta, Scalars.Arange(0, D, ScalarType.Float32, step: 2).div(headSize)).reciprocal();
        var angles = torch.outer(Scalars.Arange(0, T, ScalarType.Float32), invFreq);
        var (cos, sin) = (torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin());       // [T, D]
        Tensor Rotate(Tensor x) => (x * cos).add(torch.cat([-x.narrow(-1, D / 2, D / 2), x.narrow(-1, 0, D / 2)], -1) * sin, Scalars.One);
        var causal = torch.ones(T, T).triu(1).to(ScalarType.Bool);
        for (int i = 0; i < src.Model.Depth; i++)
        {
            string l = $"layers.{i}.";
            var qkv = Linear(Norm(h, l + "input_layernorm"), l + "attention.query_key_value").view(T, H, 3, D);  // per head [q, k, v]
            var q = Rotate(qkv.select(2, 0).transpose(0, 1));                                    // [H, T, D]
            var k = Rotate(qkv.select(2, 1).transpose(0, 1));
            var v = qkv.select(2, 2).transpose(0, 1);
            var scores = q.matmul(k.transpose(1, 2)).div(rootOfHeadSize);
            var att = scores.masked_fill(causal, Scalars.NegativeInfinity).softmax(-1).matmul(v);   // [H, T, D]
            h = h.add(Linear(att.transpose(0, 1).reshape(T, c.DModel), l + "attention.dense"), Scalars.One);
            h = h.add(Linear(gelu(Linear(Norm(h, l + "post_attention_layernorm"), l + "mlp.dense_h_to_4h")), l + "mlp.dense_4h_to_h"), Scalars.One);
        }
        var logits = nn.functional.linear(Norm(h, "final_layer_norm"), W("embed_out.weight"));
        return logits.MoveToOuterDisposeScope();
    }
}
