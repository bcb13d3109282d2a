// LoRA (Hu et al. 2021) on a frozen Linear: y = W x + b + (alpha / r) * B (A x), with A [r, in] Kaiming-uniform and
// B [out, r] zero, so an attached adapter starts as the identity change. Merge folds (alpha / r) * B A into W once.
// The adapter is not a submodule of the block: the block's state dict keeps its Hugging Face names, and the adapter's
// tensors travel in checkpoints under "lora.{block path}.lora_A|lora_B" while a LoRA phase runs.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>The projections a LoRA phase can adapt, named as in GPT-2 code.</summary>
public enum LoraTarget
{
    /// <summary>attention.query_key_value</summary>
    Qkv,
    /// <summary>attention.dense</summary>
    Proj,
    /// <summary>mlp.dense_h_to_4h</summary>
    Fc1,
    /// <summary>mlp.dense_4h_to_h</summary>
    Fc2,
}

public sealed class LoraAdapter : IDisposable
{
    public LoraAdapter(Linear target, int rank, double alpha)
    {
        var w = target.weight!;
        long outFeatures = w.shape[0], inFeatures = w.shape[1];
        Rank = rank;
        Scaling = alpha / rank;
        var a = torch.empty([rank, inFeatures], device: w.device);
        if (w.device.type != DeviceType.META) nn.init.kaiming_uniform_(a, Math.Sqrt(5));   // as nn.Linear's weight (and litgpt's lora_A)
        A = new Parameter(a.DetachFromDisposeScope(), requires_grad: true);
        B = new Parameter(torch.zeros([outFeatures, rank], device: w.device).DetachFromDisposeScope(), requires_grad: true);
    }

    public int Rank { get; }
    public double Scaling { get; }
    /// <summary>[r, in]</summary>
    public Parameter A { get; }
    /// <summary>[out, r]</summary>
    public Parameter B { get; }
    public long ParameterCount => A.numel() + B.numel();

    /// <summary>The adapter's contribution for x [..., in]: (alpha / r) * x A^T B^T, [..., out].</summary>
    public Tensor Delta(Tensor x)
    {
        using var down = x.matmul(A.t());                                    // [..., r]
        using var up = down.matmul(B.t());                                   // [..., out]
        return up.mul(Scaling);
    }

    /// <summary>W += (alpha / r) B A, under no_grad.</summary>
    public void MergeInto(Linear target)
    {
        using var _ = torch.no_grad();
        using var ba = B.matmul(A);                                          // [out, in]
        target.weight!.add_(ba, alpha: Scaling);
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}

/// <summary>Linear with an optional adapter: the call sites of the block's four projections.</summary>
public static class Projection
{
    public static Tensor Apply(Linear linear, LoraAdapter? adapter, Tensor x)
    {
        var y = linear.call(x);
        if (adapter is null) return y;
        using var delta = adapter.Delta(x);
        using (y) return y.add(delta);
    }
}
