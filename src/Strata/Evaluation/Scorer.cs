using Strata.Generation;
using Strata.Modeling;
using Strata.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Evaluation;

/// <summary>What every evaluation protocol asks of a model: the log-probability of a continuation after a context
/// (batched: many sequences, right-padded, one forward pass), and a generated continuation as text.</summary>
public sealed class Scorer(ICausalLM model, ITokenizer tokenizer)
{
    public ICausalLM Model { get; } = model;
    public ITokenizer Tokenizer { get; } = tokenizer;
    /// <summary>Upper bound on rows x scored positions x vocabulary of one forward pass (float32 logits).</summary>
    public long MaxLogitsPerBatch { get; init; } = 64L << 20;
    /// <summary>1 scores one sequence per forward pass (the benchmark's baseline).</summary>
    public int MaxBatchRows { get; init; } = 64;
    /// <summary>False decodes every prompt on its own with the KV cache (the benchmark's baseline).</summary>
    public bool BatchGeneration { get; init; } = true;

    /// <summary>The token ids of a context and a continuation, as lm-evaluation-harness splits them: trailing spaces of
    /// the context move to the continuation, the pair is encoded whole, and the continuation is what follows the
    /// context's own encoding (encoded apart where the two disagree at the boundary).</summary>
    public (int[] Context, int[] Continuation) EncodePair(string context, string continuation)
    {
        int spaces = context.Length - context.TrimEnd().Length;
        if (spaces > 0) { continuation = context[^spaces..] + continuation; context = context[..^spaces]; }
        var ctx = Tokenizer.Encode(context);
        var whole = Tokenizer.Encode(context + continuation);
        if (whole.Length > ctx.Length && whole.AsSpan(0, ctx.Length).SequenceEqual(ctx)) return (ctx, whole[ctx.Length..]);
        return (ctx, Tokenizer.Encode(continuation));
    }

    /// <summary>Sum of log P(continuation tokens | context) per request. Too-long sequences keep their last
    /// context-length tokens. An empty context starts from the end-of-text id.</summary>
    public double[] LogLikelihoods(IReadOnlyList<(string Context, string Continuation)> requests)
    {
        var seqs = new (long[] Input, int ContinuationLength)[requests.Count];
        int ctxLen = Model.Config.ContextLength;
        for (int i = 0; i < requests.Count; i++)
        {
            var (c, k) = EncodePair(requests[i].Context, requests[i].Continuation);
            if (k.Length == 0) throw new ArgumentException($"request {i}: the continuation '{requests[i].Continuation}' encodes to no tokens");
            if (c.Length == 0) c = [Tokenizer.EndOfText ?? 0];
            var all = c.Concat(k).Select(t => (long)t).ToArray();
            var input = all.Length - 1 > ctxLen ? all[^(ctxLen + 1)..] : all;     // inputs and targets: one more than fits
            seqs[i] = (input, Math.Min(k.Length, input.Length - 1));
        }
        var results = new double[requests.Count];
        var order = Enumerable.Range(0, seqs.Length).OrderByDescending(i => seqs[i].Input.Length).ToArray();
        int longestContinuation = seqs.Length == 0 ? 1 : seqs.Max(q => q.ContinuationLength);
        int rows = (int)Math.Clamp(MaxLogitsPerBatch / ((long)longestContinuation * Model.Config.VocabSize), 1, MaxBatchRows);
        using var evalMode = Model.EvalScope();
        for (int start = 0; start < order.Length;)
        {
            int t = seqs[order[start]].Input.Length - 1;                            // longest in this batch
            var batch = order.Skip(start).Take(rows).ToArray();
            start += batch.Length;
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var ids = new long[batch.Length * t];
            for (int r = 0; r < batch.Length; r++)
            {
                var s = seqs[batch[r]].Input;
                Array.Copy(s, 0, ids, r * t, s.Length - 1);                          // right-padded with id 0
            }
            // only the positions that predict continuation tokens go through the head
            int p = batch.Max(i => seqs[i].ContinuationLength);
            var positions = new long[batch.Length * p];
            for (int r = 0; r < batch.Length; r++)
            {
                var (s, n) = seqs[batch[r]];
                for (int k = 0; k < p; k++) positions[r * p + k] = s.Length - 1 - n + Math.Min(k, n - 1);
            }
            var logits = Model.Logits(torch.tensor(ids, [batch.Length, t], device: Model.Device), positions: torch.tensor(positions, [batch.Length,
                p], device: Model.Device));
            for (int r = 0; r < batch.Length; r++)
            {
                var (s, n) = seqs[batch[r]];
                int first = s.Length - 1 - n;                                        // position predicting the first continuation token
                var targets = torch.tensor(s[(first + 1)..], device: Model.Device);
                var rowLp = logits[r, ..n].to(ScalarType.Float32).log_softmax(-1);  // [n, V]
                results[batch[r]] = rowLp.gather(1, targets.unsqueeze(1)).sum().item<float>();
            }
        }
        return results;
    }

    /// <summary>The paper's continuation: the prompt is encoded (no BOS), up to <paramref name="maxNewTokens"/> are
    /// generated (stopping at end-of-text), the whole sequence is decoded, "&lt;s&gt;" removed, and the text after the
    /// prompt's length (in code points) is the continuation.</summary>
    public string Continue(string prompt, int maxNewTokens, SamplingOptions decoding)
    {
        var ids = Tokenizer.Encode(prompt);
        return ContinuationText(prompt, ids, TextGenerator.Generate(Model, ids, maxNewTokens, decoding, Tokenizer.EndOfText).ToList());
    }

    /// <summary>Upper bound on the bytes of the KV cache of one batch of generations.</summary>
    public long MaxCacheBytesPerBatch { get; init; } = 512L << 20;

    /// <summary><see cref="Continue"/> for many prompts: generations that fit the context without the cache restarting
    /// are batched (<see cref="GenerateBatch"/>), the rest decoded one by one.</summary>
    public IReadOnlyList<string> ContinueAll(IReadOnlyList<string> prompts, int maxNewTokens, IReadOnlyList<SamplingOptions> decodings)
    {
        var results = new string[prompts.Count];
        var encoded = prompts.Select(p => Tokenizer.Encode(p)).ToArray();
        var batched = new List<int>();
        for (int i = 0; i < prompts.Count; i++)
        {
            if (BatchGeneration && maxNewTokens > 0 && encoded[i].Length > 0 && encoded[i].Length + maxNewTokens <= Model.Config.ContextLength) batched.Add(i);
            else results[i] = Continue(prompts[i], maxNewTokens, decodings[i]);
        }
        // similar lengths together (little padding); rows bounded by the logits of one step and by the cache
        foreach (var chunk in Chunks(batched.OrderByDescending(i => encoded[i].Length).ToList(), i => encoded[i].Length + maxNewTokens))
        {
            var generated = GenerateBatch(chunk.Select(i => encoded[i]).ToArray(), maxNewTokens, chunk.Select(i => decodings[i]).ToArray());
            for (int k = 0; k < chunk.Length; k++) results[chunk[k]] = ContinuationText(prompts[chunk[k]], encoded[chunk[k]], generated[k]);
        }
        return results;
    }

    /// <summary>Batches of the items (longest first), each within <see cref="MaxBatchRows"/>, the logits bound (one scored
    /// position per row) and the cache bound (rows x the first item's positions).</summary>
    private IEnumerable<int[]> Chunks(List<int> items, Func<int, int> positions)
    {
        long logitRows = Math.Max(1, MaxLogitsPerBatch / Model.Config.VocabSize);
        for (int start = 0; start < items.Count;)
        {
            long cacheRows = Math.Max(1, MaxCacheBytesPerBatch / Math.Max(1, Model.CacheBytesPerPosition * positions(items[start])));
            int rows = (int)Math.Min(Math.Min(logitRows, cacheRows), MaxBatchRows);
            var chunk = items.Skip(start).Take(rows).ToArray();
            start += chunk.Length;
            yield return chunk;
        }
    }

    /// <summary>Generations batched with the KV cache: the prompts left-padded to the longest and read in one pass, then
    /// one position per row and step (a row that has stopped feeds a placeholder that is never read). Row b's tokens are
    /// numbered from 0 after its padding and no position attends to the padding, so each row computes what it computes
    /// alone; each row draws from its own generator seeded as <see cref="Continue"/> seeds it, so the tokens are those
    /// <see cref="Continue"/> chooses.</summary>
    private List<int>[] GenerateBatch(int[][] prompts, int maxNewTokens, SamplingOptions[] decodings)
    {
        int rows = prompts.Length, longest = prompts.Max(p => p.Length);
        var generators = decodings.Select(d => new torch.Generator((ulong)d.Seed, Model.Device)).ToArray();
        var output = prompts.Select(_ => new List<int>()).ToArray();
        var done = new bool[rows];
        var ids = new long[rows * longest];
        var pad = new long[rows];
        for (int r = 0; r < rows; r++)
        {
            pad[r] = longest - prompts[r].Length;
            for (int k = 0; k < prompts[r].Length; k++) ids[r * longest + pad[r] + k] = prompts[r][k];
        }
        using var evalMode = Model.EvalScope();
        using var cache = Model.NewCache(rows, longest + maxNewTokens);
        using var padding = torch.tensor(pad, device: Model.Device);
        var input = torch.tensor(ids, [rows, longest], device: Model.Device);                     // [B, T]: the prompts, then one new id per row
        try
        {
            for (int step = 0; step < maxNewTokens && done.Contains(false); step++)
            {
                using var scope = torch.NewDisposeScope();
                using var _ = torch.no_grad();
                using Scalar lastPosition = input.shape[1] - 1;
                using var last = torch.full([rows, 1], lastPosition, dtype: ScalarType.Int64, device: Model.Device);
                var logits = Model.Logits(input, cache, last, padding);                            // [B, 1, V]
                var next = new long[rows];
                var chosen = TextGenerator.ChooseEach(logits.select(1, 0), decodings, generators, done);
                for (int r = 0; r < rows; r++)
                {
                    if (done[r]) continue;
                    if (chosen[r] == Tokenizer.EndOfText) done[r] = true;
                    else { output[r].Add(chosen[r]); next[r] = chosen[r]; }
                }
                input.Dispose();
                input = torch.tensor(next, [rows, 1], device: Model.Device).DetachFromDisposeScope();
            }
        }
        finally
        {
            input.Dispose();
            foreach (var g in generators) g.Dispose();
        }
        return output;
    }

    private string ContinuationText(string prompt, int[] promptIds, IReadOnlyList<int> generated)
    {
        var text = Tokenizer.Decode(promptIds.Concat(generated)).Replace("<s>", "");
        int skip = 0, points = 0, promptPoints = prompt.EnumerateRunes().Count();
        while (skip < text.Length && points < promptPoints) { skip += char.IsSurrogatePair(text, skip) ? 2 : 1; points++; }
        return text[skip..];
    }
}
