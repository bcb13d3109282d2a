// Causal self-attention in bf16 on the CPU as batched products around one kernel each way, in one autograd function.
// Legend: B batch, nh heads, T positions, hs head size; S = q k^T, [B, nh, T, T].
//   forward:  S = q k^T (a product); P = softmax(S / sqrt(hs)) over the keys each query may see, zeros after (the
//             kernel, in place over S); y = P v (a product).
//   backward: dP = dy v^T and dv = P^T dy (products); dS = P (dP - rowsum(P dP)) / sqrt(hs) (the kernel, in place over
//             dP); dq = dS k and dk = dS^T q (products).
// Each row's statistics (max, sum of exponentials, rowsum(P dP)) are fp32, the scores and probabilities bf16, as
// PyTorch's autocast rounds an attention written out this way. libtorch 2.10's fused scaled_dot_product_attention runs
// at 10-16% of bf16 torch.mm's rate here (its backward three times its forward). Written out with libtorch's own
// operations (scale, product, masked_fill, softmax, product) the passes over the [T, T] scores cost more than the
// products; the kernel makes each pass once, over only the keys each query sees.
using System.Runtime.Intrinsics;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

internal sealed class CausalAttentionByProducts : torch.autograd.SingleTensorFunction<CausalAttentionByProducts>
{
    public override string Name => nameof(CausalAttentionByProducts);

    /// <summary>Whether the kernel runs here: bf16 on the CPU with 512-bit vectors in hardware.</summary>
    public static bool Applies(ScalarType dtype, Device device) =>
        Vector512.IsHardwareAccelerated && dtype == ScalarType.BFloat16 && device.type == DeviceType.CPU;

    /// <summary>softmax(q k^T / sqrt(hs) + causal mask) v.</summary>
    /// <param name="q">[B, nh, T, hs] bf16 on the CPU, as <paramref name="k"/> and <paramref name="v"/> (any strides)</param>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v)
    {
        if (!Applies(q.dtype, q.device) || q.dim() != 4 || !q.shape.SequenceEqual(k.shape) || !q.shape.SequenceEqual(v.shape)
            || k.dtype != q.dtype || v.dtype != q.dtype)
            throw new ArgumentException("expects q, k and v of one shape [B, nh, T, hs], bfloat16, on a CPU with 512-bit vectors");
        return apply(q, k, v);
    }

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (q, k, v) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        using var keys = k.transpose(-2, -1);
        var probabilities = torch.matmul(q, keys);                                    // the scores, [B, nh, T, T]
        Probabilities(probabilities, Scale(q));
        ctx.save_for_backward([q, k, v, probabilities]);
        return torch.matmul(probabilities, v);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor dy)
    {
        var saved = ctx.get_saved_variables();
        var (q, k, v, probabilities) = (saved[0], saved[1], saved[2], saved[3]);
        using var values = v.transpose(-2, -1);
        using var ds = torch.matmul(dy, values);                                      // dP, then dS in place
        using var pT = probabilities.transpose(-2, -1);
        var dv = torch.matmul(pT, dy);
        ScoreGradients(probabilities, ds, Scale(q));
        using var dsT = ds.transpose(-2, -1);
        return [torch.matmul(ds, k), torch.matmul(dsT, q), dv];
    }

    private static float Scale(Tensor q) => 1f / MathF.Sqrt(q.shape[3]);

    /// <summary>Each row of the scores [.., T, T] (query i of T) in place by its causal softmax: softmax of
    /// <paramref name="scale"/> times keys 0..i, zero after.</summary>
    private static unsafe void Probabilities(Tensor scores, float scale)
    {
        var (rows, T) = Rows(scores);
        var data = (ushort*)TensorMemory.BFloat16(scores);
        float* buffer = stackalloc float[RoundUp(T)];
        for (long r = 0; r < rows; r++) ProbabilityRow(data + r * T, (int)(r % T) + 1, T, scale, buffer);
    }

    /// <summary>dP [.., T, T] in place by dS = scale P (dP - rowsum(P dP)), from the probabilities P.</summary>
    private static unsafe void ScoreGradients(Tensor probabilities, Tensor dp, float scale)
    {
        var (rows, T) = Rows(dp);
        ushort* p = (ushort*)TensorMemory.BFloat16(probabilities), g = (ushort*)TensorMemory.BFloat16(dp);
        for (long r = 0; r < rows; r++) GradientRow(p + r * T, g + r * T, (int)(r % T) + 1, T, scale);
    }

    /// <summary>The rows and their length T of a contiguous bf16 [.., T, T] tensor. The kernel runs on the calling
    /// thread alone: after each of libtorch's products its OpenMP threads spin for a while, and a second .NET thread
    /// competing with them made it slower, not faster (an alternation in a step's order, docs/BENCHMARKS.md).</summary>
    private static (long Rows, int T) Rows(Tensor t)
    {
        if (!t.is_contiguous() || t.dtype != ScalarType.BFloat16 || t.shape[^2] != t.shape[^1])
            throw new ArgumentException("expects a contiguous [.., T, T] bfloat16 tensor");
        return (t.numel() / t.shape[^1], (int)t.shape[^1]);
    }

    private static int RoundUp(int n) => (n + 31) & ~31;

    /// <summary>Row s of T scores, of which the first n are seen: softmax(scale s[..n]) rounded to bf16, zeros after.
    /// e holds the scaled scores, then their exponentials, in fp32.</summary>
    private static unsafe void ProbabilityRow(ushort* s, int n, int T, float scale, float* e)
    {
        int whole = T & ~31;                                                     // positions read 32 at a time
        int seen = Math.Min(RoundUp(n), whole);                                  // ... of which those that hold seen keys
        var vscale = Vector512.Create(scale);
        var vmax = Vector512.Create(float.NegativeInfinity);
        int j = 0;
        for (; j < seen; j += 32)
        {
            var (lo, hi) = Bf16Vectors.Widen(Vector512.Load(s + j));
            (lo * vscale).Store(e + j);
            (hi * vscale).Store(e + j + 16);
        }
        for (; j < n; j++) e[j] = Bf16Vectors.ToFloat(s[j]) * scale;           // past the last 32 when T is not a multiple
        int width = Math.Max(seen, n), padded = RoundUp(width);
        for (j = n; j < padded; j++) e[j] = float.NegativeInfinity;             // unseen keys read with the seen ones
        for (j = 0; j < width; j += 16) vmax = Vector512.MaxNative(vmax, Vector512.Load(e + j));
        var vm = Vector512.Create(Bf16Vectors.Max(vmax));
        var sum = Vector512<float>.Zero;
        for (j = 0; j < width; j += 16)
        {
            var x = Bf16Vectors.Exp(Vector512.Load(e + j) - vm);                  // about 1e-38 at -inf: nothing beside the max's 1
            x.Store(e + j);
            sum += x;
        }
        var inverse = Vector512.Create(1f / Vector512.Sum(sum));
        for (j = n; j < padded; j++) e[j] = 0;
        for (j = 0; j < whole; j += 32)
        {
            var written = j < width
                ? Bf16Vectors.Narrow(Vector512.Load(e + j) * inverse, Vector512.Load(e + j + 16) * inverse)
                : Vector512<ushort>.Zero;
            written.Store(s + j);
        }
        for (; j < T; j++) s[j] = j < n ? Bf16Vectors.ToBf16(e[j] * inverse.ToScalar()) : (ushort)0;
    }

    /// <summary>Row g of dP in place by scale p (g - sum(p g)) for the first n positions, zeros after (where p is 0).</summary>
    private static unsafe void GradientRow(ushort* p, ushort* g, int n, int T, float scale)
    {
        int whole = T & ~31, seen = Math.Min(RoundUp(n), whole);
        var dot = Vector512<float>.Zero;
        int j = 0;
        for (; j < seen; j += 32)                                                // p is 0 past n, so whole blocks count right
        {
            var (p0, p1) = Bf16Vectors.Widen(Vector512.Load(p + j));
            var (g0, g1) = Bf16Vectors.Widen(Vector512.Load(g + j));
            dot = Vector512.FusedMultiplyAdd(p0, g0, Vector512.FusedMultiplyAdd(p1, g1, dot));
        }
        float tail = 0;
        for (; j < n; j++) tail += Bf16Vectors.ToFloat(p[j]) * Bf16Vectors.ToFloat(g[j]);
        float sum = Vector512.Sum(dot) + tail;
        var (vsum, vscale) = (Vector512.Create(sum), Vector512.Create(scale));
        for (j = 0; j < whole; j += 32)
        {
            if (j >= seen) { Vector512<ushort>.Zero.Store(g + j); continue; }
            var (p0, p1) = Bf16Vectors.Widen(Vector512.Load(p + j));
            var (g0, g1) = Bf16Vectors.Widen(Vector512.Load(g + j));
            Bf16Vectors.Narrow(vscale * p0 * (g0 - vsum), vscale * p1 * (g1 - vsum)).Store(g + j);
        }
        for (; j < T; j++)
            g[j] = j < n ? Bf16Vectors.ToBf16(scale * Bf16Vectors.ToFloat(p[j]) * (Bf16Vectors.ToFloat(g[j]) - sum)) : (ushort)0;
    }
}
