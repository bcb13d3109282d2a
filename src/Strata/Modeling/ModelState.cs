using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>Copies named tensors into a module's state, checking that every name is present and every shape agrees.</summary>
internal static class ModelState
{
    /// <param name="lookup">tensor by the module's own state-dict name, or null when absent</param>
    /// <param name="source">the file the tensors come from, for error messages</param>
    public static void Load(nn.Module module, Func<string, Tensor?> lookup, string source, IEnumerable<string>? available = null) =>
        Load(module.state_dict(), lookup, source, available);

    /// <summary>The same for named tensors outside a module's state dict (LoRA adapters).</summary>
    public static void Load(IReadOnlyDictionary<string, Tensor> state, Func<string, Tensor?> lookup, string source, IEnumerable<string>? available = null)
    {
        // check everything before changing anything, so a bad file leaves the model as it was
        var pending = new List<(Tensor Target, Tensor Value)>();
        try
        {
            foreach (var (name, target) in state)
            {
                var value = lookup(name) ?? throw new StrataException($"{source}: missing tensor '{name}' (shape [{string.Join(", ", target.shape)}])");
                pending.Add((target, value));
                if (!value.shape.SequenceEqual(target.shape))
                    throw new StrataException(
                        $"{source}: tensor '{name}' has shape [{string.Join(", ", value.shape)}], the model expects [{string.Join(", ", target.shape)}]");
                if (value.is_floating_point())
                    using (var finite = value.isfinite().all())
                        if (!finite.item<bool>()) throw new StrataException($"{source}: tensor '{name}' holds values that are not finite (NaN or infinity)");
            }
            if (available is not null)
            {
                var extra = available.Where(n => !state.ContainsKey(n)).ToList();
                if (extra.Count > 0) throw new StrataException(
                    $"{source}: unexpected tensor '{extra[0]}'{(extra.Count > 1 ? $" (and {extra.Count - 1} more)" : "")}: it does not belong to this model");
            }
            using var _ = torch.no_grad();
            foreach (var (target, value) in pending) target.copy_(value);
        }
        finally
        {
            foreach (var (_, value) in pending) value.Dispose();
        }
    }
}
