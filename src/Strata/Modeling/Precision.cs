using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>The arithmetic of training and inference (plan field training.precision, or train --precision). Weights,
/// checkpoints and AdamW state are fp32 in every case; only the matrix products change.</summary>
public enum Precision
{
    /// <summary>fp32 throughout.</summary>
    Fp32,
    /// <summary>fp32 storage, with matrix products on TensorFloat-32 tensor cores on CUDA (10-bit mantissa inputs, fp32
    /// accumulation); the same as fp32 on the CPU.</summary>
    Tf32,
    /// <summary>bf16 matrix products (and attention) over fp32 master weights; the residual stream, LayerNorms, softmax
    /// statistics, the loss and the optimizer stay fp32 (TorchSharp has no autocast: the casts are explicit).</summary>
    Bf16,
}

public static class PrecisionExtensions
{
    /// <summary>The dtype of the matrix products.</summary>
    public static ScalarType ComputeType(this Precision precision) => precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>Sets the process-wide TF32 switches of cuBLAS and cuDNN for <paramref name="precision"/> (on for Tf32,
    /// off otherwise, PyTorch's default); nothing on the CPU.</summary>
    public static void ApplyMatmulMode(this Precision precision, Device device)
    {
        if (device.type != DeviceType.CUDA) return;
        torch.backends.cuda.matmul.allow_tf32 = precision == Precision.Tf32;
        torch.backends.cudnn.allow_tf32 = precision == Precision.Tf32;
    }
}
