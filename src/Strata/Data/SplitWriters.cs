using Strata.Formats;
using Strata.Util;

namespace Strata.Data;

/// <summary>Where a split's writing stands: its finished shards, and the point of the reading where the last one
/// ended (a unit is a document or a segment of one, numbered in reading order; Offset tokens of its stream, the
/// separator included, are in the shards).</summary>
internal sealed record SplitProgress(IReadOnlyList<ShardInfo> Shards, long Unit, long Offset);

internal sealed record PrepareProgress(PrepareRecipe Recipe, string Generation, SplitProgress Train, SplitProgress Validation);

/// <summary>The two splits' shard streams: tokens are appended in reading order, a shard is committed when full and
/// the progress journal updated.</summary>
internal sealed class SplitWriters : IDisposable
{
    private readonly PrepareOptions _o;
    private readonly string _generation, _progressPath;
    private readonly int _vocab;
    private readonly PrepareProgress _resumed;
    private readonly List<ShardInfo>[] _shards;
    private readonly TokenShardWriter?[] _current = new TokenShardWriter?[2];
    private readonly long[] _documents = new long[2], _bytes = new long[2], _tokens = new long[2];
    // where each split's writing stands, and where its last committed shard ends (what the journal may promise)
    private readonly (long Unit, long Offset)[] _cursor = new (long, long)[2], _committed = new (long, long)[2];

    public SplitWriters(PrepareOptions o, PrepareProgress progress, int vocab, string progressPath)
    {
        (_o, _generation, _vocab, _resumed, _progressPath) = (o, progress.Generation, vocab, progress, progressPath);
        _shards = [progress.Train.Shards.ToList(), progress.Validation.Shards.ToList()];
        _cursor[0] = _committed[0] = (progress.Train.Unit, progress.Train.Offset);
        _cursor[1] = _committed[1] = (progress.Validation.Unit, progress.Validation.Offset);
        for (int s = 0; s < 2; s++) _tokens[s] = _shards[s].Sum(x => x.Tokens);
    }

    public long Tokens(DatasetSplit split) => _tokens[(int)split];

    public SplitInfo Info(DatasetSplit split)
    {
        int s = (int)split;
        return new SplitInfo(_documents[s], _bytes[s], _tokens[s], _shards[s].ToList());
    }

    /// <summary>One unit: its statistics always; its tokens (separator first) unless the shards hold them already.</summary>
    public void Add(DatasetSplit split, long seq, bool newDocument, long bytes, int? separator, ReadOnlySpan<int> ids)
    {
        int s = (int)split;
        if (newDocument) _documents[s]++;
        _bytes[s] += bytes;
        var resumed = split == DatasetSplit.Train ? _resumed.Train : _resumed.Validation;
        if (seq < resumed.Unit) return;                                            // written before the interruption
        int skip = seq == resumed.Unit ? (int)resumed.Offset : 0;
        if (separator is { } sep) Append(s, seq, [sep], 0, skip);
        Append(s, seq, ids, separator is null ? 0 : 1, skip);
    }

    /// <summary>Appends a part of a unit's stream that starts at <paramref name="start"/> in it, less the first
    /// <paramref name="skip"/> tokens of the stream; the unit's cursor counts from the stream's start.</summary>
    private void Append(int s, long seq, ReadOnlySpan<int> part, int start, int skip)
    {
        for (int at = Math.Max(0, skip - start); at < part.Length;)
        {
            var w = _current[s] ??= new TokenShardWriter(Path.Combine(_o.OutDir,
                $"{(s == 0 ? "train" : "val")}-{_generation}-{_shards[s].Count:D5}.tokens"), _vocab);
            int take = (int)Math.Min(part.Length - at, _o.ShardTokens - w.Count);
            w.Append(part.Slice(at, take));
            at += take;
            _tokens[s] += take;
            _cursor[s] = (seq, start + at);
            if (w.Count == _o.ShardTokens) CommitShard(s);
        }
    }

    private void CommitShard(int s)
    {
        var w = _current[s]!;
        var hash = w.Commit();
        _shards[s].Add(new ShardInfo(Path.GetFileName(w.Path), w.Count, hash));
        w.Dispose();
        _current[s] = null;
        _committed[s] = _cursor[s];
        var journal = new PrepareProgress(_resumed.Recipe, _generation,
            new SplitProgress(_shards[0].ToList(), _committed[0].Unit, _committed[0].Offset), new SplitProgress(_shards[1].ToList(),
                _committed[1].Unit, _committed[1].Offset));
        AtomicFile.WriteAllText(_progressPath, Json.Serialize(journal));
        _o.Log.WriteLine($"  shard {Path.GetFileName(w.Path)}: {w.Count:N0} tokens");
    }

    public void Finish()
    {
        for (int s = 0; s < 2; s++)
            if (_current[s] is { Count: > 0 }) CommitShard(s);
    }

    public void Dispose()
    {
        foreach (var w in _current) w?.Dispose();
    }
}
