using Strata.Formats;
using Strata.Data;
using Strata.Modeling;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Evaluation;

/// <summary>Total cross-entropy of a token shard under a model: the shard is cut into consecutive windows of the
/// context length (each token predicted from the tokens since its window began), every token after the first counted once.</summary>
public static class Perplexity
{
    public const int WindowsPerBatch = 8;

    /// <summary>(total nats, tokens predicted) over the shard, or over its first <paramref name="maxTokens"/>.</summary>
    public static (double Nats, long Tokens) Measure(ICausalLM model, string shardPath, string tokenizer, long? maxTokens = null)
    {
        if (PreparedData.TryRead(shardPath) is { } meta && meta.Tokenizer != tokenizer)
            throw new StrataException($"{shardPath} was encoded with tokenizer '{meta.Tokenizer}', the model uses '{tokenizer}'");
        using var shard = TokenShard.Open(shardPath);
        if (shard.VocabSize > model.Config.VocabSize)
            throw new StrataException($"{shardPath}: vocabulary {shard.VocabSize} is larger than the model's {model.Config.VocabSize}");
        long n = maxTokens is { } max ? Math.Min(shard.Count, max + 1) : shard.Count;
        if (n < 2) throw new StrataException($"{shardPath}: fewer than 2 tokens to measure");
        int ctx = model.Config.ContextLength;
        double nats = 0;
        long counted = 0;
        using (model.EvalScope())
        {
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
                    var logits = model.Logits(batch[.., ..^1]).to(ScalarType.Float32);
                    nats += nn.functional.cross_entropy(logits.reshape(-1, model.Config.VocabSize), batch[.., 1..].reshape(-1), reduction: nn.Reduction.Sum).item<float>();
                    counted += ws.Length * (long)t;
                }
        }
        return (nats, counted);
    }
}
