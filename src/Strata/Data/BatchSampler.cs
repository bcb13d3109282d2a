using Strata.Formats;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Data;

/// <summary>The windows of T+1 tokens one split offers: every start position in every shard (a window never spans two
/// shards), numbered in shard order. Positions are 64-bit: a split may hold any number of tokens.</summary>
internal sealed class Windows
{
    private readonly IReadOnlyList<TokenShard> _shards;
    private readonly long[] _firstStart;                                    // cumulative window counts, per shard

    public Windows(IReadOnlyList<TokenShard> shards, int contextLength, string name)
    {
        (_shards, Length, Name) = (shards, contextLength + 1, name);
        _firstStart = new long[shards.Count + 1];
        for (int i = 0; i < shards.Count; i++) _firstStart[i + 1] = _firstStart[i] + Math.Max(0, shards[i].Count - contextLength);
        if (Count == 0)
            throw new StrataException(
                $"{name}: {shards.Sum(s => s.Count):N0} tokens in {shards.Count} shard(s), fewer than one window of context_length + 1 = {Length} " +
                    "in any shard");
    }

    public string Name { get; }
    /// <summary>Tokens per window (T+1).</summary>
    public int Length { get; }
    /// <summary>Start positions available.</summary>
    public long Count => _firstStart[^1];

    /// <summary>Copies window <paramref name="index"/> into <paramref name="dest"/> (Length tokens).</summary>
    public void Read(long index, Span<long> dest)
    {
        if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index));
        int shard = Array.BinarySearch(_firstStart, index);
        shard = shard >= 0 ? shard : ~shard - 1;
        while (_firstStart[shard + 1] <= index) shard++;                             // skip shards too short for a window
        _shards[shard].Read(index - _firstStart[shard], dest);
    }
}

/// <summary>
/// Training batches drawn from a mixture of splits (one per dataset) by weight, and fixed evaluation batches. Batch i
/// depends only on (seed, i): row by row, a draw picks the split (only when there is more than one) and then a window,
/// so a resumed run draws exactly the batches it would have drawn and any rank can draw its own rows of a batch.
/// </summary>
internal sealed class BatchSampler
{
    private readonly IReadOnlyList<Windows> _sources;
    private readonly double[] _cumulative;
    private readonly long _seed;

    public BatchSampler(IReadOnlyList<(Windows Source, double Weight)> mixture, int batchSize, long seed)
    {
        if (mixture.Count == 0) throw new ArgumentException("a sampler needs a source", nameof(mixture));
        _sources = mixture.Select(m => m.Source).ToList();
        double total = mixture.Sum(m => m.Weight);
        _cumulative = new double[mixture.Count];
        double acc = 0;
        for (int i = 0; i < mixture.Count; i++) _cumulative[i] = (acc += mixture[i].Weight) / total;
        (BatchSize, _seed) = (batchSize, seed);
        ContextLength = _sources[0].Length - 1;
    }

    /// <summary>A sampler over one shard (tests, adapters, evaluation of one file).</summary>
    public BatchSampler(TokenShard shard, int batchSize, int contextLength, long seed)
        : this([(new Windows([shard], contextLength, shard.Path), 1.0)], batchSize, seed) { }

    public int BatchSize { get; }
    public int ContextLength { get; }

    /// <summary>Which source each row of training batch <paramref name="index"/> comes from, and its window.</summary>
    public (int Source, long Window)[] Draw(long index)
    {
        var rng = SplitMix64.For(_seed, 1, index);
        var rows = new (int, long)[BatchSize];
        for (int b = 0; b < BatchSize; b++)
        {
            int source = 0;
            if (_sources.Count > 1)
            {
                double u = (rng.Next() >> 11) * (1.0 / (1UL << 53));                  // uniform in [0, 1)
                while (source < _sources.Count - 1 && u >= _cumulative[source]) source++;
            }
            rows[b] = (source, rng.NextBelow(_sources[source].Count));
        }
        return rows;
    }

    /// <summary>Training batch <paramref name="index"/>: [rows, T+1] int64 (inputs are [:, :-1], targets [:, 1:]); rows
    /// [<paramref name="firstRow"/>, firstRow + <paramref name="rows"/>) of the batch (all by default).</summary>
    public Tensor Batch(long index, Device device, int firstRow = 0, int rows = -1)
    {
        var drawn = Draw(index);
        if (rows < 0) rows = BatchSize - firstRow;
        return Gather(drawn.Skip(firstRow).Take(rows).ToArray(), device);
    }

    /// <summary>Fixed evaluation batch <paramref name="index"/> of <paramref name="count"/> from the first source: windows
    /// evenly spaced over all of it, the same every time.</summary>
    public Tensor EvalBatch(int index, int count, Device device)
    {
        var source = _sources[0];
        long windows = (long)count * BatchSize, last = source.Count - 1;
        var picks = Enumerable.Range(0, BatchSize)
            .Select(b => (0, windows <= 1 ? 0 : (long)((Int128)((long)index * BatchSize + b) * last / (windows - 1)))).ToArray();
        return Gather(picks, device);
    }

    private Tensor Gather((int Source, long Window)[] picks, Device device)
    {
        int w = ContextLength + 1;
        var data = new long[picks.Length * w];
        for (int b = 0; b < picks.Length; b++) _sources[picks[b].Source].Read(picks[b].Window, data.AsSpan(b * w, w));
        return torch.tensor(data, [picks.Length, w], device: device);          // [rows, T+1]
    }
}
