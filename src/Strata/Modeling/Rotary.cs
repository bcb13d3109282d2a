using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>
/// Rotary position embedding over the whole head, "rotate half" pairing (dimension i pairs with i + hs/2), as
/// GPT-NeoX with partial_rotary_factor 1.0. Tables are made per forward: they cost T x hs, nothing beside the matmuls.
/// </summary>
internal static class Rotary
{
    /// <summary>cos and sin tables for positions [start, start+T), each [T, hs].</summary>
    public static (Tensor Cos, Tensor Sin) Tables(long start, long T, int headSize, double theta, Device device)
    {
        // inv_freq = 1 / theta^(2i/hs), computed in float32 as transformers does
        using var steps = Scalars.Arange(0, headSize, ScalarType.Int64, device, step: 2);
        using Scalar size = headSize;
        using var exponent = steps.to(ScalarType.Float32).div_(size);
        using var invFreq = torch.pow(theta, exponent).reciprocal_();                    // [hs/2]
        using var positions = Scalars.Arange(start, start + T, ScalarType.Int64, device);
        using var t = positions.to(ScalarType.Float32);
        using var freqs = torch.outer(t, invFreq);                                        // [T, hs/2]
        using var emb = torch.cat([freqs, freqs], dim: -1);                               // [T, hs]
        return (emb.cos(), emb.sin());
    }

    /// <summary>x * cos + rotate_half(x) * sin for x [B, nh, T, hs].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        // rotate_half(x) = cat(-x2, x1)   (transformers' modeling_gpt_neox.rotate_half)
        var half = x.shape[^1] / 2;
        using var x1 = x.narrow(-1, 0, half);
        using var x2 = x.narrow(-1, half, half);
        using var neg = x2.neg();
        using var rotated = torch.cat([neg, x1], dim: -1);
        using var b = rotated.mul(sin);
        return x.mul(cos).add_(b, Scalars.One);
    }
}
