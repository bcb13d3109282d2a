using Strata.Formats;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Data;

/// <summary>
/// Random windows of T+1 tokens from a memory-mapped shard. Batch i depends only on (seed, i), so a resumed run
/// draws exactly the batches it would have drawn, with no sampler state to save.
/// </summary>
public sealed class BatchSampler
{
    private readonly TokenShard _shard;
    private readonly long _seed;

    public BatchSampler(TokenShard shard, int batchSize, int contextLength, long seed)
    {
        if (shard.Count < contextLength + 1)
            throw new StrataException($"{shard.Path}: {shard.Count} tokens, fewer than one window of context_length + 1 = {contextLength + 1}");
        (_shard, BatchSize, ContextLength, _seed) = (shard, batchSize, contextLength, seed);
    }

    public int BatchSize { get; }
    public int ContextLength { get; }

    /// <summary>Training batch <paramref name="index"/>: [B, T+1] int64 (inputs are [:, :-1], targets [:, 1:]).</summary>
    public Tensor Batch(long index, Device device)
    {
        var rng = SplitMix64.For(_seed, 1, index);
        long span = _shard.Count - ContextLength - 1 + 1;
        return Gather(Enumerable.Range(0, BatchSize).Select(_ => rng.NextBelow(span)).ToArray(), device);
    }

    /// <summary>Fixed evaluation batch <paramref name="index"/> of <paramref name="count"/>: windows evenly spaced over the
    /// whole shard, the same every time.</summary>
    public Tensor EvalBatch(int index, int count, Device device)
    {
        long windows = (long)count * BatchSize;
        long last = _shard.Count - ContextLength - 1;
        var offsets = Enumerable.Range(0, BatchSize)
            .Select(b => windows <= 1 ? 0 : ((long)index * BatchSize + b) * last / (windows - 1)).ToArray();
        return Gather(offsets, device);
    }

    private Tensor Gather(long[] offsets, Device device)
    {
        int w = ContextLength + 1;
        var data = new long[offsets.Length * w];
        for (int b = 0; b < offsets.Length; b++) _shard.Read(offsets[b], data.AsSpan(b * w, w));
        return torch.tensor(data, [offsets.Length, w], device: device);          // [B, T+1]
    }
}
