using Strata.Data;
using Strata.Distributed;
using Strata.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Evaluation;

/// <summary>The one definition of validation loss (mean next-token cross-entropy, nats per token, over fixed windows)
/// and of bits per byte; the trainer, studies, ensembles and the perplexity task all use it.</summary>
public static class ValidationLoss
{
    /// <summary>Mean cross-entropy over the sampler's <paramref name="batches"/> fixed evaluation batches, for a model or
    /// an ensemble; the ranks of a <paramref name="group"/> share the batches (batch i on rank i mod ranks) and the sum.</summary>
    public static double Measure(ICausalLM model, BatchSampler sampler, int batches, ProcessGroup? group = null)
    {
        using var evalMode = model.EvalScope();
        using var noGrad = torch.no_grad();
        double sum = 0;
        int rank = group?.Rank ?? 0, ranks = group?.Size ?? 1;
        for (int i = rank; i < batches; i += ranks)
        {
            using var scope = torch.NewDisposeScope();
            var batch = sampler.EvalBatch(i, batches, model.Device);                  // [B, T+1]
            sum += model.Loss(batch[.., ..^1], batch[.., 1..]).item<float>();
        }
        if (ranks > 1)
        {
            Span<double> total = [sum];
            group!.AllReduceSum(total);
            sum = total[0];
        }
        return sum / batches;
    }

    /// <summary>Bits per UTF-8 byte of text: nats per token x tokens per byte / ln 2, comparable across tokenizers.</summary>
    public static double BitsPerByte(double natsPerToken, double tokensPerByte) => natsPerToken * tokensPerByte / Math.Log(2);
}
