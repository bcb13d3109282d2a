// What the bf16 kernels on the CPU share (RowSoftmax, CausalAttentionByProducts, Bf16Accumulation): bf16 is the upper
// half of an fp32, so it widens by a shift and narrows by rounding the lower half away, and an exp fast enough to run
// over every logit of a step.
using System.Runtime.Intrinsics;

namespace Strata.Modeling;

internal static class Bf16Vectors
{
    /// <summary>32 bf16 as two vectors of 16 fp32, exactly.</summary>
    public static (Vector512<float> Lo, Vector512<float> Hi) Widen(Vector512<ushort> v)
    {
        var (lo, hi) = Vector512.Widen(v);
        return (Vector512.ShiftLeft(lo, 16).AsSingle(), Vector512.ShiftLeft(hi, 16).AsSingle());
    }

    /// <summary>Two vectors of 16 fp32 as 32 bf16, each rounded to nearest, ties to even.</summary>
    public static Vector512<ushort> Narrow(Vector512<float> lo, Vector512<float> hi) => Vector512.Narrow(Round(lo), Round(hi));

    public static float ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    /// <summary>The upper 16 bits after rounding to nearest, ties to even (as libtorch's conversion; no NaN reaches here
    /// from finite inputs).</summary>
    public static ushort ToBf16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    private static Vector512<uint> Round(Vector512<float> f)
    {
        var bits = f.AsUInt32();
        return (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
    }

    /// <summary>exp(x) for x &lt;= 0 (x - max): x = k ln 2 + r with |r| &lt;= ln 2 / 2, exp(r) by the degree-6 polynomial
    /// of Cephes' expf (within 2 ulp), times 2^k made in the exponent bits. Below -87.3, where 2^k would leave the normal
    /// range, it gives exp(-87.3), about 1e-38, as good as zero beside a softmax row's largest term, 1. Several times
    /// faster than .NET's Vector512.Exp, which is exact to the last bit. A NaN stays NaN.</summary>
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.MaxNative(Vector512.Create(-87.3f), x);                                         // a NaN stays (second operand)
        // round(x / ln 2) by adding 1.5 * 2^23, which leaves the integer in the low mantissa bits (Vector512.Round and
        // ConvertToInt32 took about 1.6x as long here)
        var kb = Vector512.FusedMultiplyAdd(x, Vector512.Create(1.44269504088896341f), Vector512.Create(12582912f));
        var k = kb - Vector512.Create(12582912f);
        var r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-0.693359375f), x);                    // x - k ln 2, in two parts
        r = Vector512.FusedMultiplyAdd(k, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);                          // 1 + r + r^2 p(r)
        var scale = (kb.AsInt32() - Vector512.Create(0x4B400000 - 127)) << 23;                          // 2^k
        return p * scale.AsSingle();
    }

    /// <summary>exp(x) of one value, as <see cref="Exp(Vector512{float})"/> gives it in every lane.</summary>
    public static float Exp(float x) => Exp(Vector512.Create(x)).ToScalar();

    /// <summary>The largest lane (MaxNative may pass over a NaN, as the vector max it follows).</summary>
    public static float Max(Vector512<float> v)
    {
        float m = float.NegativeInfinity;
        for (int k = 0; k < Vector512<float>.Count; k++) m = MathF.Max(m, v[k]);
        return m;
    }
}
