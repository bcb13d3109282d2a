using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>Parameter counts read off constructed modules (never a formula): active = requires_grad, frozen = the rest.</summary>
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

    /// <summary>A model's counts with its LoRA adapters (active while attached).</summary>
    public static ParameterBudget Of(LanguageModel model)
    {
        var b = Of((nn.Module)model);
        long adapters = model.AdapterParameters().Where(p => p.Parameter.requires_grad).Sum(p => p.Parameter.numel());
        return b with { Active = b.Active + adapters };
    }

    public override string ToString() => $"active {Active:N0}, frozen {Frozen:N0}, total {Total:N0}";
}
