using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Util;

/// <summary>Where a tensor's elements are, for code that reads or writes them itself (MPI and NCCL buffers, the
/// optimizer's CPU kernel, the head's softmax kernel).</summary>
internal static partial class TensorMemory
{
    /// <summary>The address of the first element of a contiguous float32 tensor (in host or device memory, as the tensor
    /// is).</summary>
    public static nint Float32(Tensor t) => Address(t, ScalarType.Float32);

    /// <summary>The address of the first element of a contiguous bfloat16 tensor (TorchSharp's storage&lt;T&gt; has no
    /// bfloat16).</summary>
    public static nint BFloat16(Tensor t) => Address(t, ScalarType.BFloat16);

    private static nint Address(Tensor t, ScalarType dtype)
    {
        if (t.dtype != dtype || !t.is_contiguous()) throw new ArgumentException($"expects a contiguous {dtype} tensor", nameof(t));
        return DataPointer(t.Handle);
    }

    /// <summary>at::Tensor::data_ptr(): the storage's start plus the tensor's offset into it (TorchSharp's own native
    /// library, the one every TorchSharp call goes through).</summary>
    [LibraryImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    private static partial nint DataPointer(nint tensor);
}
