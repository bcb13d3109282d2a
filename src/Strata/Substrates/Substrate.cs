using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

/// <summary>
/// The token interface ("substrate"): maps token ids [B, T] to the residual stream [B, T, C]. Frozen substrates have no
/// parameter that requires grad and run under no_grad. Its state-dict name in a model is <c>embed_in</c>.
/// </summary>
public abstract class Substrate(string name) : nn.Module<Tensor, Tensor>(name)
{
    public abstract SubstrateSpec Spec { get; }
    public abstract bool IsFrozen { get; }
    /// <summary>sha256 of a frozen table (null for a trainable embedding): what checkpoints record and compare.</summary>
    public virtual string? ContentHash => null;
}
