// The query-key-value projection's output split into heads with rotary on the queries and keys, in bf16 on the CPU, in
// one pass each way (one autograd function). Legend: B batch, T positions, nh heads, hs head size.
//   forward:  qkv [B, T, nh * 3hs] (per head q, k, v; GPT-NeoX's layout) -> q, k, v [B, nh, T, hs], each contiguous,
//             q and k rotated: y1 = x1 cos1 - x2 sin1, y2 = x2 cos2 + x1 sin2 (x1, x2 the halves of a head; the tables'
//             halves are equal, Rotary.Tables), computed in fp32 and rounded once to bf16;
//   backward: dq, dk, dv -> dqkv [B, T, nh * 3hs] with the rotation transposed: dx1 = g1 cos1 + g2 sin2,
//             dx2 = g2 cos2 - g1 sin1.
// libtorch's way is a view, a chunk, three transposes and five operations for each of q and k forward (neg, cat, two
// products, a sum, each rounded to bf16), more backward, and the products of attention then copy v, a strided view,
// before they read it: 2.9 ms a block of d = 256 at B 8, T 256, against 1.2-1.5 ms for this pass over the 3 MiB each
// way (Strata.Bench profile --precision bf16).
using System.Runtime.Intrinsics;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

internal sealed class RotaryHeads : torch.autograd.MultiTensorFunction<RotaryHeads>
{
    public override string Name => nameof(RotaryHeads);

    /// <summary>Whether the kernel takes <paramref name="qkv"/> [B, T, nh * 3hs] with tables [T, hs]: bf16 on the CPU,
    /// both contiguous, with 512-bit vectors in hardware (elsewhere, and with the per-row tables of padded batches,
    /// Rotary.Apply on views does the same).</summary>
    public static bool Applies(Tensor qkv, Tensor cos, Tensor sin, int headSize)
    {
        static bool Bf16OnCpu(Tensor t) => t.device_type == DeviceType.CPU && t.dtype == ScalarType.BFloat16 && t.is_contiguous();
        bool IsTable(Tensor t) => Bf16OnCpu(t) && t.dim() == 2 && t.shape[0] == qkv.shape[1] && t.shape[1] == headSize;
        return Vector512.IsHardwareAccelerated && Bf16OnCpu(qkv) && qkv.dim() == 3 && headSize % 2 == 0 && qkv.shape[2] % (3 * headSize) == 0
            && IsTable(cos) && IsTable(sin);
    }

    /// <summary>q, k and v [B, nh, T, hs] of <paramref name="qkv"/> [B, T, nh * 3hs], q and k rotated by the tables [T, hs].</summary>
    public static (Tensor Q, Tensor K, Tensor V) Split(Tensor qkv, int headSize, Tensor cos, Tensor sin)
    {
        if (!Applies(qkv, cos, sin, headSize)) throw new ArgumentException(
            "expects a contiguous bf16 [B, T, nh * 3hs] on a CPU with 512-bit vectors and bf16 tables [T, hs]");
        var heads = apply(qkv, headSize, cos, sin);
        return (heads[0], heads[1], heads[2]);
    }

    public override List<Tensor> forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (qkv, hs, cos, sin) = ((Tensor)vars[0], (int)vars[1], (Tensor)vars[2], (Tensor)vars[3]);
        var (B, T, nh) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / (3 * hs));
        var heads = Enumerable.Range(0, 3).Select(_ => torch.empty([B, nh, T, hs], dtype: ScalarType.BFloat16)).ToList();
        Pass(qkv, heads, cos, sin, hs, transposed: false);
        ctx.save_data("hs", hs);
        ctx.save_for_backward([cos, sin]);
        return heads;
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, List<Tensor> grads)
    {
        var saved = ctx.get_saved_variables();
        int hs = (int)ctx.get_data("hs");
        var (B, nh, T) = (grads[0].shape[0], grads[0].shape[1], grads[0].shape[2]);
        var dqkv = torch.empty([B, T, nh * 3 * hs], dtype: ScalarType.BFloat16);
        var contiguous = grads.Select(g => g.dtype == ScalarType.BFloat16 && g.is_contiguous() ? g : g.to(ScalarType.BFloat16).contiguous()).ToList();
        Pass(dqkv, contiguous, saved[0], saved[1], hs, transposed: true);
        foreach (var (g, c) in grads.Zip(contiguous)) if (!ReferenceEquals(g, c)) c.Dispose();
        return [dqkv, null!, null!, null!];                                            // qkv; the head size and the tables have none
    }

    /// <summary>Forward: heads from qkv, q and k rotated. Transposed: qkv from the heads' gradients, rotated back.</summary>
    private static unsafe void Pass(Tensor qkv, List<Tensor> heads, Tensor cos, Tensor sin, int hs, bool transposed)
    {
        var (B, T, nh) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / (3 * hs));
        var packed = (ushort*)TensorMemory.BFloat16(qkv);
        ushort* q = (ushort*)TensorMemory.BFloat16(heads[0]), k = (ushort*)TensorMemory.BFloat16(heads[1]),
            v = (ushort*)TensorMemory.BFloat16(heads[2]);
        ushort* c = (ushort*)TensorMemory.BFloat16(cos), s = (ushort*)TensorMemory.BFloat16(sin);
        // on the calling thread alone, as the attention kernel runs (libtorch's OpenMP threads spin after each product)
        for (long b = 0; b < B; b++)
            for (long t = 0; t < T; t++)
                for (long h = 0; h < nh; h++)
                {
                    ushort* x = packed + ((b * T + t) * nh + h) * 3 * hs;
                    long at = ((b * nh + h) * T + t) * hs;
                    Move(x, q + at, c + t * hs, s + t * hs, hs, transposed, rotate: true);
                    Move(x + hs, k + at, c + t * hs, s + t * hs, hs, transposed, rotate: true);
                    Move(x + 2 * hs, v + at, null, null, hs, transposed, rotate: false);
                }
    }

    /// <summary>One head's slot of the packed projection output to its place in q, k or v, rotated or copied (or back,
    /// with the rotation transposed).</summary>
    private static unsafe void Move(ushort* packed, ushort* head, ushort* c, ushort* s, int hs, bool transposed, bool rotate)
    {
        ushort* from = transposed ? head : packed, to = transposed ? packed : head;
        if (rotate) Rotate(from, to, c, s, hs, transposed ? -1 : 1);
        else Buffer.MemoryCopy(from, to, hs * 2L, hs * 2L);
    }

    /// <summary>One head's n values: y1 = x1 c1 - x2 s1 and y2 = x2 c2 + x1 s2 (direction 1), or the transpose,
    /// y1 = x1 c1 + x2 s2 and y2 = x2 c2 - x1 s1 (direction -1); fp32 arithmetic, rounded once to bf16.</summary>
    private static unsafe void Rotate(ushort* x, ushort* y, ushort* c, ushort* s, int n, int direction)
    {
        int half = n / 2, j = 0;
        // the sines that multiply x2 (into y1) and x1 (into y2), with their signs: -s1 and s2, or s2 and -s1
        ushort* sa = direction > 0 ? s : s + half, sb = direction > 0 ? s + half : s;
        float signA = direction > 0 ? -1 : 1, signB = -signA;
        var (va, vb) = (Vector512.Create(signA), Vector512.Create(signB));
        for (; j + 16 <= half; j += 16)
        {
            var (x1, x2) = (Load(x + j), Load(x + half + j));
            Store(y + j, x1 * Load(c + j) + x2 * (Load(sa + j) * va));
            Store(y + half + j, x2 * Load(c + half + j) + x1 * (Load(sb + j) * vb));
        }
        for (; j < half; j++)
        {
            float x1 = Bf16Vectors.ToFloat(x[j]), x2 = Bf16Vectors.ToFloat(x[half + j]);
            y[j] = Bf16Vectors.ToBf16(x1 * Bf16Vectors.ToFloat(c[j]) + x2 * (Bf16Vectors.ToFloat(sa[j]) * signA));
            y[half + j] = Bf16Vectors.ToBf16(x2 * Bf16Vectors.ToFloat(c[half + j]) + x1 * (Bf16Vectors.ToFloat(sb[j]) * signB));
        }
    }

    private static unsafe Vector512<float> Load(ushort* p) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()), 16).AsSingle();

    private static unsafe void Store(ushort* p, Vector512<float> f) => Bf16Vectors.Narrow(f, f).GetLower().Store(p);
}
