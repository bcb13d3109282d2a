// The LM head and its cross-entropy in one autograd function, over chunks of rows: the [N, V] logits of a 65,536-word
// head never exist whole, only [chunk, V] at a time (forward: logits -> log-sum-exp -> loss; backward: the logits
// again -> softmax - one-hot -> the gradients of the hidden states, of the head's weight and of its bias). Peak memory
// of the head falls from N x V x (logits + their gradient) to chunk x V, at the price of computing the logits twice.
// The loss is the mean over rows, in fp32 whatever the dtype of the inputs.
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

public sealed class ChunkedCrossEntropy : torch.autograd.SingleTensorFunction<ChunkedCrossEntropy>
{
    /// <summary>Logit entries per chunk (rows x V): 16 Mi floats, 64 MiB.</summary>
    public const long ChunkElements = 16L << 20;

    public override string Name => nameof(ChunkedCrossEntropy);

    /// <summary>Mean cross-entropy of <c>hidden @ weight^T (+ bias)</c> against <paramref name="targets"/>.</summary>
    /// <param name="hidden">[N, C] (after the final LayerNorm)</param>
    /// <param name="weight">[V, C]</param>
    /// <param name="bias">[V] or null</param>
    /// <param name="targets">[N] int64</param>
    public static Tensor Loss(Tensor hidden, Tensor weight, Tensor? bias, Tensor targets) =>
        bias is null ? apply(hidden, weight, targets) : apply(hidden, weight, targets, bias);

    /// <summary>Rows per chunk for a vocabulary of <paramref name="vocab"/>.</summary>
    public static long Rows(long vocab) => Math.Max(1, ChunkElements / vocab);

    private static Tensor Logits(Tensor h, Tensor weight, Tensor? bias)
    {
        var logits = h.matmul(weight.t());                                           // [rows, V]
        if (bias is not null) logits.add_(bias);
        return logits;
    }

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, weight, targets) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        var bias = vars.Length > 3 ? (Tensor)vars[3] : null;
        long n = hidden.shape[0], rows = Rows(weight.shape[0]);
        var lse = torch.empty([n], dtype: ScalarType.Float32, device: hidden.device);       // log-sum-exp per row, for backward
        using var total = torch.zeros([], dtype: ScalarType.Float64, device: hidden.device);
        for (long start = 0; start < n; start += rows)
        {
            long count = Math.Min(rows, n - start);
            using var scope = torch.NewDisposeScope();
            var logits = Logits(hidden.narrow(0, start, count), weight, bias).to(ScalarType.Float32);   // [count, V]
            var rowLse = logits.logsumexp(1);                                                 // [count]
            lse.narrow(0, start, count).copy_(rowLse);
            var picked = logits.gather(1, targets.narrow(0, start, count).unsqueeze(1)).squeeze(1);
            total.add_((rowLse - picked).sum().to(ScalarType.Float64));
        }
        ctx.save_for_backward([hidden, weight, targets, lse, .. bias is null ? Array.Empty<Tensor>() : [bias]]);
        return (total / n).to(ScalarType.Float32);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
    {
        var saved = ctx.get_saved_variables();
        var (hidden, weight, targets, lse) = (saved[0], saved[1], saved[2], saved[3]);
        var bias = saved.Count > 4 ? saved[4] : null;
        long n = hidden.shape[0], rows = Rows(weight.shape[0]);
        var dHidden = torch.empty_like(hidden);
        var dWeight = torch.zeros(weight.shape, dtype: ScalarType.Float32, device: weight.device);
        var dBias = bias is null ? null : torch.zeros(bias.shape, dtype: ScalarType.Float32, device: bias.device);
        using var scale = (grad.to(ScalarType.Float32) / n);                                  // d(mean)/d(row loss)
        for (long start = 0; start < n; start += rows)
        {
            long count = Math.Min(rows, n - start);
            using var scope = torch.NewDisposeScope();
            var h = hidden.narrow(0, start, count);
            // softmax - one-hot, times the upstream gradient: the gradient of the chunk's logits
            var g = Logits(h, weight, bias).to(ScalarType.Float32).sub_(lse.narrow(0, start, count).unsqueeze(1)).exp_();
            g.scatter_add_(1, targets.narrow(0, start, count).unsqueeze(1), torch.full([count, 1], -1f, device: g.device));
            g.mul_(scale);
            var gc = g.to(weight.dtype);
            dHidden.narrow(0, start, count).copy_(gc.matmul(weight));                          // [count, C]
            dWeight.add_(gc.t().matmul(h).to(ScalarType.Float32));                            // [V, C]
            dBias?.add_(g.sum(0));
        }
        return [dHidden, dWeight.to(weight.dtype), null!, null!, .. dBias is null ? Array.Empty<Tensor>() : [dBias.to(bias!.dtype)]];
    }
}
