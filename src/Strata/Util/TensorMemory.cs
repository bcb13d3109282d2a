using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Util;

/// <summary>Where a tensor's elements are, for code that reads or writes them itself (MPI and NCCL buffers, the
/// optimizer's CPU kernel).</summary>
internal static class TensorMemory
{
    /// <summary>The address of the first element of a contiguous float32 tensor (in host or device memory, as the tensor
    /// is): its storage's start plus its offset into it.</summary>
    public static nint Float32(Tensor t)
    {
        if (t.dtype != ScalarType.Float32 || !t.is_contiguous()) throw new ArgumentException("expects a contiguous float32 tensor", nameof(t));
        using var scope = torch.NewDisposeScope();                     // storage<float>() makes a tensor handle of its own
        return t.storage<float>().data_ptr() + (nint)(t.storage_offset() * sizeof(float));
    }
}
