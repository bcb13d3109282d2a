using Strata.Modeling;
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

    /// <summary>Builds the substrate a spec describes for a model of the given shape.</summary>
    public static Substrate Create(SubstrateSpec spec, ModelConfig model, Device? device = null) => spec.Kind switch
    {
        SubstrateKind.Binary => new BinaryCodeSubstrate(spec, model, device),
        SubstrateKind.Trainable => new TrainableSubstrate(spec, model, device),
        _ => throw new StrataException($"substrate.kind: unknown kind '{spec.Kind}'"),
    };
}

public enum SubstrateKind { Binary, Trainable }

/// <summary>How the k-bit code is spread over d_model dimensions.</summary>
public enum BinaryLift
{
    /// <summary>torch repeat_interleave: dimension j carries bit j / (d/k), each bit on d/k consecutive dimensions (the paper's 16-bit models).</summary>
    Interleave,
    /// <summary>tile: dimension j carries bit j mod k.</summary>
    Tile,
}

/// <summary>The recipe of a substrate, as plans and checkpoints record it.</summary>
public sealed record SubstrateSpec
{
    public SubstrateKind Kind { get; init; } = SubstrateKind.Binary;
    /// <summary>Code width k for <see cref="SubstrateKind.Binary"/>; 16 covers a 65,536-id vocabulary.</summary>
    public int Bits { get; init; } = 16;
    public BinaryLift Lift { get; init; } = BinaryLift.Interleave;

    /// <summary>Short human description, e.g. "frozen 16-bit code (interleave)".</summary>
    public string Describe() => Kind switch
    {
        SubstrateKind.Binary => $"frozen {Bits}-bit code ({Lift.ToString().ToLowerInvariant()})",
        _ => "trainable embedding",
    };

    public SubstrateSpec Validate(ModelConfig model, string where = "substrate")
    {
        if (Kind == SubstrateKind.Binary)
        {
            if (Bits is < 1 or > 31) throw new StrataException($"{where}.bits: must be in 1..31, got {Bits}");
            if ((1L << Bits) < model.VocabSize)
                throw new StrataException($"{where}.bits: {Bits} bits cannot give {model.VocabSize} ids distinct codes (need 2^bits >= vocab_size)");
            if (model.DModel % Bits != 0)
                throw new StrataException($"{where}.bits: d_model {model.DModel} is not a multiple of {Bits}, so the code cannot be lifted");
        }
        return this;
    }
}
