using Strata.Util;
// The LM head and its cross-entropy in one autograd function, over chunks of rows: the [N, V] logits of a 65,536-word
// head never exist whole, only [chunk, V] at a time. The loss is the last operation of a training step, so its gradient
// is a scalar: when gradients are wanted, each chunk's logits turn straight into their gradient (softmax - one-hot) and
// from it the gradients of the hidden states and of the head's weight and bias, during the forward pass; backward
// passes them on, scaled only when the upstream gradient is not 1. Three matrix products per chunk as in the plain
// path (no recomputation), the passes over the chunk's logits in place (in bf16 on the CPU one kernel, RowSoftmax,
// keeps the exponentials in bf16 and the rows' statistics in fp32), and the head's peak memory falls from
// N x V x (logits + their gradient + softmax) to one chunk x V. The loss is the mean over rows, accumulated in fp64 and
// returned in fp32 whatever the dtype of the inputs. (The same idea as the fused linear cross-entropy of Liger-Kernel
// and of Wijmans et al. 2024, "Cut Your Losses in Large-Vocabulary Language Models".)
using System.Diagnostics.CodeAnalysis;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

internal sealed class ChunkedCrossEntropy : torch.autograd.SingleTensorFunction<ChunkedCrossEntropy>
{
    /// <summary>Bytes of logits per chunk (rows x V x the compute dtype's size): 128 MiB, 512 rows of a 65,536-word head
    /// in fp32 and 1,024 in bf16. Every chunk reads the head's weight twice and adds its product into the weight's
    /// gradient, passes over [V, C] whatever the rows: with half these rows the head took 4-8% longer in bf16 (d = 256
    /// and 512) and 3% longer in fp32 (d = 256).</summary>
    public const long ChunkBytes = 128L << 20;

    public override string Name => nameof(ChunkedCrossEntropy);

    /// <summary>Mean cross-entropy of <c>hidden @ weight^T (+ bias)</c> against <paramref name="targets"/>.</summary>
    /// <param name="hidden">[N, C] (after the final LayerNorm), in the compute dtype</param>
    /// <param name="weight">[V, C], the master weight (fp32): the products use a copy in the dtype of
    /// <paramref name="hidden"/>, its gradient comes back in the weight's own dtype</param>
    /// <param name="bias">[V] or null</param>
    /// <param name="targets">[N] int64</param>
    /// <param name="rows">rows per chunk; by default as many as fit <see cref="ChunkBytes"/> of logits</param>
    public static Tensor Loss(Tensor hidden, Tensor weight, Tensor? bias, Tensor targets, long? rows = null)
    {
        long r = rows ?? Rows(weight.shape[0], hidden.dtype);
        if (r <= 0) throw new ArgumentOutOfRangeException(nameof(rows), r, "rows per chunk must be positive");
        var wants = new Wants(torch.is_grad_enabled() && hidden.requires_grad, torch.is_grad_enabled() && weight.requires_grad,
            torch.is_grad_enabled() && bias?.requires_grad == true);
        return bias is null ? apply(hidden, weight, targets, r, wants) : apply(hidden, weight, targets, r, wants, bias);
    }

    /// <summary>Rows per chunk for a vocabulary of <paramref name="vocab"/> with logits in <paramref name="dtype"/>.</summary>
    public static long Rows(long vocab, ScalarType dtype) => Math.Max(1, ChunkBytes / (vocab * (dtype == ScalarType.Float32 ? 4 : 2)));

    /// <summary>Which gradients the forward pass prepares.</summary>
    private readonly record struct Wants(bool Hidden, bool Weight, bool Bias)
    {
        public bool Any => Hidden || Weight || Bias;
    }

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, weight, targets, rows, wants) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (long)vars[3], (Wants)vars[4]);
        var bias = vars.Length > 5 ? (Tensor)vars[5] : null;
        long n = hidden.shape[0];
        using var wc = weight.to(hidden.dtype);                                               // the weight in the compute dtype
        using var bc = bias?.to(hidden.dtype);
        using var total = torch.zeros([], dtype: ScalarType.Float64, device: hidden.device);
        using Scalar rowCount = n, minusShare = -1.0 / n;                       // the mean's 1/N (the one-hot part's -1/N)
        // the gradients of the mean loss (upstream gradient 1), in fp32 until the end
        Tensor? dHidden = wants.Hidden ? torch.empty_like(hidden) : null;
        Tensor? dWeight = null;                                                                  // written by the first chunk
        Tensor? dBias = wants.Bias ? torch.zeros(bias!.shape, dtype: ScalarType.Float32, device: bias.device) : null;
        for (long start = 0; start < n; start += rows)
        {
            long count = Math.Min(rows, n - start);
            using var scope = torch.NewDisposeScope();
            var h = hidden.narrow(0, start, count);                                            // [count, C]
            var t = targets.narrow(0, start, count);                                            // [count]
            var logits = torch.mm(h, wc.t());                                                   // [count, V]
            if (bc is not null) logits.add_(bc, Scalars.One);
            var xt = logits.gather(1, t.unsqueeze(1)).to(ScalarType.Float32);                   // [count, 1], before the pass below
            var (g, max, sum) = Exponentials(logits);                                           // g = exp(x - max), [count, V]
            total.add_(max.add(sum.log(), Scalars.One).sub_(xt).sum().to(ScalarType.Float64), Scalars.One);  // lse = max + log s
            if (!wants.Any) continue;
            // d(mean loss)/d(logits) = (softmax - one-hot) / N = g diag(1/(s N)) - Y / N: the row scale rides on the
            // small operands and the one-hot part is a gather (dH) and an index_add (dW), so no pass over [count, V] more
            var scale = sum.reciprocal().div_(rowCount);                                          // [count, 1]
            dHidden?.narrow(0, start, count).copy_(torch.mm(g, wc).mul_(scale).add_(wc.index_select(0, t), alpha: minusShare));
            if (wants.Weight)
            {
                AddTransposedProduct(ref dWeight, g, h.mul(scale.to(h.dtype)));
                dWeight.index_add_(0, t, h.to(ScalarType.Float32), minusShare);
            }
            if (dBias is not null)
            {
                dBias.add_(torch.mm(scale.t().to(g.dtype), g).squeeze(0), Scalars.One);
                dBias.index_add_(0, t, torch.full([count], minusShare, device: dBias.device), Scalars.One);
            }
        }
        var saved = new List<Tensor>();
        foreach (var (name, grad, dtype) in new[] { ("hidden", dHidden, hidden.dtype), ("weight", dWeight, weight.dtype), ("bias", dBias, bias?.dtype
            ?? ScalarType.Float32) })
        {
            if (grad is null) continue;
            ctx.save_data(name, saved.Count);
            saved.Add(grad.dtype == dtype ? grad : Cast(grad, dtype));
        }
        ctx.save_for_backward(saved);
        return total.div(rowCount).to(ScalarType.Float32);
    }

    /// <summary>exp(x - max) of each row in the logits' dtype (over the logits themselves, except bf16 without
    /// RowSoftmax), with the rows' max and sum of exponentials in fp32, [count, 1] each: RowSoftmax for bf16 on the
    /// CPU, libtorch's operations otherwise (fp32, CUDA, a CPU without 512-bit vectors).</summary>
    private static (Tensor Exponentials, Tensor Max, Tensor Sum) Exponentials(Tensor logits)
    {
        if (!RowSoftmax.Applies(logits)) return LibtorchExponentials(logits);
        var (max, sum) = RowSoftmax.ExpInPlace(logits);
        return (logits, max, sum);
    }

    /// <summary><see cref="Exponentials"/> by libtorch's operations, in fp32.</summary>
    internal static (Tensor Exponentials, Tensor Max, Tensor Sum) LibtorchExponentials(Tensor logits)
    {
        var e = logits.dtype == ScalarType.Float32 ? logits : logits.to(ScalarType.Float32);
        var max = e.amax([1], keepdim: true);
        e.sub_(max).exp_();
        return (e.to(logits.dtype), max, e.sum(1, keepdim: true));
    }

    /// <summary>dW += G^T H, dW [V, C] fp32, or dW = G^T H when it is null (the first chunk: no zeroed [V, C] to add
    /// to): in place in fp32; in bf16 the product's bf16 result added into it (by <see cref="Bf16Accumulation"/> where
    /// it applies). A new dW belongs to the dispose scope around the current one, as the gradient outlives the chunk.</summary>
    internal static void AddTransposedProduct([NotNull] ref Tensor? dWeight, Tensor g, Tensor h)
    {
        if (dWeight is not null && g.dtype == ScalarType.Float32) { dWeight.addmm_(g.t(), h); return; }
        using var product = torch.mm(g.t(), h);
        if (dWeight is null) dWeight = product.to(ScalarType.Float32).MoveToOuterDisposeScope();     // a copy in bf16 only
        else if (Bf16Accumulation.Applies(dWeight, product)) Bf16Accumulation.AddInto(dWeight, product);
        else dWeight.add_(product, Scalars.One);
    }

    private static Tensor Cast(Tensor t, ScalarType dtype)
    {
        using (t) return t.to(dtype);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
    {
        var saved = ctx.get_saved_variables();
        // the upstream gradient of a loss is almost always 1: then the prepared gradients go on as they are, with no
        // [V, C] product and no new [V, C] block (checking it on a GPU would wait for the forward pass, so there they
        // are always scaled)
        bool unit = grad.device_type == DeviceType.CPU && grad.item<float>() == 1;
        Tensor? Scaled(string name) => ctx.get_data(name) is int i ? unit ? saved[i] : saved[i].mul(grad.to(saved[i].dtype)) : null;
        // one gradient per input, in order: hidden, weight, targets (none), rows and wants (not tensors), bias (a null
        // past the inputs is dropped when there is no bias)
        return [Scaled("hidden")!, Scaled("weight")!, null!, null!, null!, Scaled("bias")!];
    }
}
