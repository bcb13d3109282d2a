// The one procedure for held-out loss: mean next-token cross-entropy (nats per token) of a model or an ensemble over
// batches of windows [B, T+1] (inputs [:, :-1], targets [:, 1:]), each batch weighted by the tokens it predicts. Two
// choices of windows: the fixed evaluation batches a sampler draws (training, studies, ensembles), and consecutive
// windows covering a dataset's whole validation split (the perplexity task). Bits per byte are defined here too.
using Strata.Data;
using Strata.Distributed;
using Strata.Modeling;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Evaluation;

public static class ValidationLoss
{
    /// <summary>Windows of the whole validation split per batch (<see cref="OverSplit"/>).</summary>
    public const int WindowsPerBatch = 8;

    /// <summary>(total nats, tokens predicted) over <paramref name="batches"/> ([B, T+1] each, made when needed); the
    /// ranks of a <paramref name="group"/> share them (batch i on rank i mod ranks) and the sums. Each batch's (nats,
    /// tokens) also goes to <paramref name="each"/>.</summary>
    private static (double Nats, long Tokens) Sum(ICausalLM model, IEnumerable<Func<Tensor>> batches, ProcessGroup? group,
        List<(double Nats, long Tokens)>? each = null)
    {
        using var evalMode = model.EvalScope();
        using var noGrad = torch.no_grad();
        double nats = 0;
        long tokens = 0;
        int rank = group?.Rank ?? 0, ranks = group?.Size ?? 1, i = 0;
        foreach (var make in batches)
        {
            if (i++ % ranks != rank) continue;
            using (torch.NewDisposeScope())
            {
                var batch = make();
                long n = batch.shape[0] * (batch.shape[1] - 1);
                double batchNats = model.Loss(batch[.., ..^1], batch[.., 1..]).item<float>() * (double)n;
                nats += batchNats;
                tokens += n;
                each?.Add((batchNats, n));
            }
            NativeAllocator.FreeFinalizedObjects(model.Device);                         // the heap's holes stay free for the next batch
        }
        if (ranks > 1)
        {
            Span<double> total = [nats, tokens];
            group!.AllReduceSum(total);
            (nats, tokens) = (total[0], (long)total[1]);
        }
        return (nats, tokens);
    }

    /// <summary>Mean cross-entropy over the sampler's <paramref name="batches"/> fixed evaluation batches (the
    /// validation loss of training and studies).</summary>
    internal static double Measure(ICausalLM model, BatchSampler sampler, int batches, ProcessGroup? group = null)
    {
        var (nats, tokens) = Sum(model, Enumerable.Range(0, batches).Select(i => (Func<Tensor>)(() => sampler.EvalBatch(i, batches, model.Device))), group);
        return nats / tokens;
    }

    /// <summary>(total nats, tokens predicted, standard error of nats per token) over a dataset's validation split, or its
    /// first <paramref name="maxTokens"/> tokens: each shard cut into consecutive windows of the context length (each
    /// token predicted from the tokens since its window began), every token after a shard's first counted once. The
    /// standard error treats the batches of windows as samples of the mean (weighted by their tokens).</summary>
    public static (double Nats, long Tokens, double StandardError) OverSplit(ICausalLM model, Dataset dataset, TokenizerIdentity tokenizer,
        long? maxTokens = null)
    {
        TokenizerIdentity.Require(tokenizer, "the model", dataset.Tokenizer, dataset.Path);
        if (dataset.Manifest.VocabSize > model.Config.VocabSize)
            throw new StrataException($"{dataset.Path}: vocabulary {dataset.Manifest.VocabSize} is larger than the model's {model.Config.VocabSize}");
        dataset.Verify(model.Config.VocabSize, cached: true);                              // hashes and ids, before any id reaches the model
        var each = new List<(double Nats, long Tokens)>();
        var (nats, tokens) = Sum(model, SplitWindows(dataset, model.Config.ContextLength, maxTokens ?? long.MaxValue, model.Device), null, each);
        if (tokens == 0) throw new StrataException($"{dataset.Path}: fewer than 2 validation tokens to measure");
        double mean = nats / tokens;
        double se = each.Count < 2 ? 0 : Math.Sqrt(each.Sum(b => Math.Pow(b.Tokens * (b.Nats / b.Tokens - mean), 2)) * each.Count / (each.Count - 1)) / tokens;
        return (nats, tokens, se);
    }

    /// <summary>Batches of up to <see cref="WindowsPerBatch"/> consecutive windows of equal length, predicting at most
    /// <paramref name="budget"/> tokens in all.</summary>
    private static IEnumerable<Func<Tensor>> SplitWindows(Dataset dataset, int ctx, long budget, Device device)
    {
        long counted = 0;
        foreach (var shard in dataset.Shards(DatasetSplit.Validation))
        {
            long n = Math.Min(shard.Count, budget - counted == long.MaxValue ? long.MaxValue : budget - counted + 1);
            var windows = new List<(long Start, int Length)>();
            for (long start = 0; start + 1 < n; start += ctx) windows.Add((start, (int)Math.Min(ctx, n - 1 - start)));
            foreach (var group in windows.Chunk(WindowsPerBatch))
                foreach (var sameLength in group.GroupBy(w => w.Length))
                {
                    var ws = sameLength.ToArray();
                    int t = ws[0].Length;
                    counted += ws.Length * (long)t;
                    yield return () =>
                    {
                        var ids = new long[ws.Length * (t + 1)];
                        for (int i = 0; i < ws.Length; i++) shard.Read(ws[i].Start, ids.AsSpan(i * (t + 1), t + 1));
                        return torch.tensor(ids, [ws.Length, t + 1], device: device);
                    };
                }
            if (counted >= budget) break;
        }
    }

    /// <summary>Bits per UTF-8 byte of text: nats per token x tokens per byte / ln 2, comparable across tokenizers.</summary>
    public static double BitsPerByte(double natsPerToken, double tokensPerByte) => natsPerToken * tokensPerByte / Math.Log(2);
}
