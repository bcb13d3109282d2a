using Strata.Data;
using Strata.Modeling;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Evaluation;

/// <summary>Total cross-entropy of a dataset's validation split under a model: each shard is cut into consecutive
/// windows of the context length (each token predicted from the tokens since its window began), every token after a
/// shard's first counted once.</summary>
public static class Perplexity
{
    public const int WindowsPerBatch = 8;

    /// <summary>(total nats, tokens predicted) over the validation split, or over its first <paramref name="maxTokens"/>.</summary>
    public static (double Nats, long Tokens) Measure(ICausalLM model, Dataset dataset, TokenizerIdentity tokenizer, long? maxTokens = null)
    {
        if (dataset.Tokenizer.Hash != tokenizer.Hash)
            throw new StrataException($"{dataset.Path} was encoded with the tokenizer {dataset.Tokenizer}, the model uses {tokenizer}");
        if (dataset.Manifest.VocabSize > model.Config.VocabSize)
            throw new StrataException($"{dataset.Path}: vocabulary {dataset.Manifest.VocabSize} is larger than the model's {model.Config.VocabSize}");
        int ctx = model.Config.ContextLength;
        long budget = maxTokens ?? long.MaxValue;
        double nats = 0;
        long counted = 0;
        using var evalMode = model.EvalScope();
        foreach (var shard in dataset.Shards(DatasetSplit.Validation))
        {
            long n = Math.Min(shard.Count, budget - counted == long.MaxValue ? long.MaxValue : budget - counted + 1);
            var windows = new List<(long Start, int Length)>();
            for (long start = 0; start + 1 < n; start += ctx) windows.Add((start, (int)Math.Min(ctx, n - 1 - start)));
            foreach (var group in windows.Chunk(WindowsPerBatch))
                foreach (var sameLength in group.GroupBy(w => w.Length))
                {
                    using var scope = torch.NewDisposeScope();
                    using var _ = torch.no_grad();
                    var ws = sameLength.ToArray();
                    int t = ws[0].Length;
                    var ids = new long[ws.Length * (t + 1)];
                    for (int i = 0; i < ws.Length; i++) shard.Read(ws[i].Start, ids.AsSpan(i * (t + 1), t + 1));
                    var batch = torch.tensor(ids, [ws.Length, t + 1], device: model.Device);
                    nats += model.Loss(batch[.., ..^1], batch[.., 1..]).item<float>() * (ws.Length * (double)t);
                    counted += ws.Length * (long)t;
                }
            if (counted >= budget) break;
        }
        if (counted == 0) throw new StrataException($"{dataset.Path}: fewer than 2 validation tokens to measure");
        return (nats, counted);
    }
}
