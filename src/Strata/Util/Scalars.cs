using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Util;

/// <summary>
/// Scalars that live as long as the process, for the values that recur. A TorchSharp <see cref="Scalar"/> owns a
/// native c10::Scalar that its finalizer frees, and TorchSharp passes its handle to libtorch without keeping the object
/// alive, so a Scalar made in an argument list (<c>x.mul_(0.5)</c>) or inside TorchSharp (<c>a + b</c> is
/// <c>add(b, 1)</c>) can be freed by a collection on another thread while libtorch still reads it. Every Scalar in
/// Strata is therefore a field (these) or a <c>using</c> local; the build enforces it (STRATA002, src/Strata.Analyzers).
/// </summary>
internal static class Scalars
{
    /// <summary>1 as an integer: add's alpha, valid on integer tensors as on floating ones.</summary>
    public static readonly Scalar One = 1L.ToScalar();
    public static readonly Scalar Zero = 0L.ToScalar();
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    /// <summary>torch.arange(start, stop, step) with its three Scalars held through the call.</summary>
    public static Tensor Arange(long start, long stop, ScalarType dtype, Device? device = null, long step = 1)
    {
        using Scalar first = start, end = stop, by = step;
        return torch.arange(first, end, by, dtype, device);
    }
}
