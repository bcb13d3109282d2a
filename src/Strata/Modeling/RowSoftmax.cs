// The head's pass over a chunk of bf16 logits on the CPU, in one kernel: for each row, its max m and
// s = sum(exp(x - m)) in fp32, with exp(x - m) written over the row in bf16. Each row (65,536 logits, 128 KiB) is read
// twice while it is in the cache and written once. It replaces five of libtorch's passes over the chunk (to fp32, max,
// subtract and exp, sum, back to bf16) and the chunk's fp32 copy: the logits product, this pass and the dH product
// together take 1.7-1.9x less time at d = 256 and 1.2-1.3x at d = 512 (Strata.Bench profile --precision bf16). In
// fp32 libtorch's own passes are as fast or faster (the kernel's threads then compete with OpenMP's, which spin after
// each product), so fp32 keeps them.
using System.Runtime.Intrinsics;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

internal static class RowSoftmax
{
    /// <summary>Whether the kernel is the fast way for <paramref name="logits"/>: a contiguous [rows, V] bf16 tensor on
    /// the CPU, with 512-bit vectors in hardware (elsewhere libtorch's operations do the same work faster).</summary>
    public static bool Applies(Tensor logits) => Vector512.IsHardwareAccelerated && Takes(logits);

    private static bool Takes(Tensor logits) => logits.device_type == DeviceType.CPU && logits.dim() == 2 && logits.is_contiguous()
        && logits.dtype == ScalarType.BFloat16;

    /// <summary>Replaces each row x of <paramref name="logits"/> [rows, V] (bf16) by exp(x - max(x)), rounded to nearest
    /// even, and returns the rows' max and sum(exp(x - max)) of the unrounded exponentials, [rows, 1] fp32 each.</summary>
    public static unsafe (Tensor Max, Tensor Sum) ExpInPlace(Tensor logits)
    {
        if (!Takes(logits)) throw new ArgumentException("expects a contiguous [rows, V] bfloat16 tensor on the CPU", nameof(logits));
        long rows = logits.shape[0], cols = logits.shape[1];
        var max = torch.empty([rows, 1]);
        var sum = torch.empty([rows, 1]);
        float* mp = (float*)TensorMemory.Float32(max), sp = (float*)TensorMemory.Float32(sum);
        var data = (ushort*)TensorMemory.BFloat16(logits);
        int workers = (int)Math.Max(1, Math.Min(rows, torch.get_num_threads()));
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            for (long r = rows * w / workers; r < rows * (w + 1) / workers; r++)
                (mp[r], sp[r]) = Row(data + r * cols, cols);
        });
        return (max, sum);
    }

    private static unsafe (float Max, float Sum) Row(ushort* x, long n)
    {
        long i = 0;
        var vmax = Vector512.Create(float.NegativeInfinity);
        for (; i <= n - 32; i += 32)
        {
            var (lo, hi) = Widen(Vector512.Load(x + i));
            vmax = Vector512.MaxNative(vmax, Vector512.MaxNative(lo, hi));
        }
        float m = HorizontalMax(vmax);
        for (; i < n; i++) m = MathF.Max(m, ToFloat(x[i]));
        var vm = Vector512.Create(m);
        var (s0, s1) = (Vector512<float>.Zero, Vector512<float>.Zero);
        for (i = 0; i <= n - 32; i += 32)
        {
            var (lo, hi) = Widen(Vector512.Load(x + i));
            var (e0, e1) = (Exp(lo - vm), Exp(hi - vm));
            Vector512.Narrow(RoundToBf16(e0), RoundToBf16(e1)).Store(x + i);
            (s0, s1) = (s0 + e0, s1 + e1);
        }
        float s = Vector512.Sum(s0 + s1);
        for (; i < n; i++)
        {
            float e = Exp(Vector512.Create(ToFloat(x[i]) - m)).ToScalar();
            x[i] = (ushort)RoundToBf16(e);
            s += e;
        }
        return (m, s);
    }

    /// <summary>exp(x) for x &lt;= 0 (x - max): x = k ln 2 + r with |r| &lt;= ln 2 / 2, exp(r) by the degree-6 polynomial
    /// of Cephes' expf (within 2 ulp), times 2^k made in the exponent bits. Below -87.3, where 2^k would leave the normal
    /// range, it gives exp(-87.3), about 1e-38, as good as zero beside the row's largest term, 1. Several times faster
    /// than .NET's Vector512.Exp, which is exact to the last bit. The rows' max is taken with MaxNative (one instruction),
    /// which may pass over a NaN; a NaN logit still makes its exponential, the row's sum and so the loss NaN.</summary>
    private static Vector512<float> Exp(Vector512<float> x)
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

    private static float HorizontalMax(Vector512<float> v)
    {
        float m = float.NegativeInfinity;
        for (int k = 0; k < Vector512<float>.Count; k++) m = MathF.Max(m, v[k]);
        return m;
    }

    /// <summary>bf16 is the upper half of an fp32.</summary>
    private static (Vector512<float> Lo, Vector512<float> Hi) Widen(Vector512<ushort> v)
    {
        var (lo, hi) = Vector512.Widen(v);
        return (Vector512.ShiftLeft(lo, 16).AsSingle(), Vector512.ShiftLeft(hi, 16).AsSingle());
    }

    private static float ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    /// <summary>The upper 16 bits after rounding to nearest, ties to even (as libtorch's conversion; no NaN reaches here
    /// from finite logits).</summary>
    private static Vector512<uint> RoundToBf16(Vector512<float> f)
    {
        var bits = f.AsUInt32();
        return (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
    }

    private static uint RoundToBf16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16;
    }
}
