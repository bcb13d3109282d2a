using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>Parameter counts read off constructed modules (never a formula): active = requires_grad, frozen = the rest;
/// attached LoRA adapters are parameters of their projections and count like any other.</summary>
public sealed record ParameterBudget(long Active, long Frozen)
{
    public long Total => Active + Frozen;

    public static ParameterBudget Of(nn.Module module)
    {
        long active = 0, frozen = 0;
        foreach (var p in module.parameters())
        {
            if (p.requires_grad) active += p.numel();
            else frozen += p.numel();
        }
        return new ParameterBudget(active, frozen);
    }

    public override string ToString() => $"active {Active:N0}, frozen {Frozen:N0}, total {Total:N0}";
}
