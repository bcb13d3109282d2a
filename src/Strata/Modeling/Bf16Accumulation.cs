// dW += P for an fp32 gradient dW and a bf16 product P on the CPU, in one pass: each bf16 widened to fp32 (its upper
// half) and added, 32 at a time on both cores. libtorch's add_ of a bf16 tensor into an fp32 one takes 4.5-5x as long
// ([65,536, 256]: 28-33 ms against 6.1-6.3 ms, 2026-12-03), and the head's weight gradient in bf16 takes it once per
// chunk of rows. The sums are the same to the bit: fp32 addition of the same two fp32 values.
using System.Runtime.Intrinsics;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

internal static class Bf16Accumulation
{
    /// <summary>Whether the kernel takes <paramref name="sum"/> += <paramref name="addend"/>: both contiguous on the CPU
    /// and of one shape, fp32 and bf16, with 512-bit vectors in hardware.</summary>
    public static bool Applies(Tensor sum, Tensor addend) => Vector512.IsHardwareAccelerated && sum.device_type == DeviceType.CPU
        && addend.device_type == DeviceType.CPU && sum.dtype == ScalarType.Float32 && addend.dtype == ScalarType.BFloat16
        && sum.is_contiguous() && addend.is_contiguous() && sum.shape.SequenceEqual(addend.shape);

    /// <summary><paramref name="sum"/> += <paramref name="addend"/> in place.</summary>
    public static unsafe void AddInto(Tensor sum, Tensor addend)
    {
        if (!Applies(sum, addend)) throw new ArgumentException("expects a contiguous fp32 sum and bf16 addend of one shape on the CPU");
        long n = sum.numel();
        float* s = (float*)TensorMemory.Float32(sum);
        ushort* a = (ushort*)TensorMemory.BFloat16(addend);
        const int Width = 32;
        long blocks = n / Width;
        int workers = (int)Math.Max(1, Math.Min(blocks, torch.get_num_threads()));
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            for (long i = blocks * w / workers * Width, end = blocks * (w + 1) / workers * Width; i < end; i += Width)
            {
                var (lo, hi) = Bf16Vectors.Widen(Vector512.Load(a + i));
                (Vector512.Load(s + i) + lo).Store(s + i);
                (Vector512.Load(s + i + 16) + hi).Store(s + i + 16);
            }
        });
        for (long i = blocks * Width; i < n; i++) s[i] += Bf16Vectors.ToFloat(a[i]);
    }
}
