// An opened dataset (the folder layout and the manifest: Data/DatasetManifest.cs): its shards memory-mapped on first
// use, and checks of what the manifest promises.
using Strata.Formats;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Data;

/// <summary>An opened dataset: its manifest and its shards (memory-mapped on first use).</summary>
public sealed class Dataset : IDisposable
{
    private readonly Dictionary<DatasetSplit, IReadOnlyList<TokenShard>> _open = new();
    private readonly Func<DatasetSplit, IReadOnlyList<string>> _files;

    private Dataset(string path, DatasetManifest manifest, Func<DatasetSplit, IReadOnlyList<string>> files)
    {
        (Path, Manifest, _files) = (path, manifest, files);
    }

    public string Path { get; }
    public DatasetManifest Manifest { get; }
    public TokenizerIdentity Tokenizer => new(Manifest.Tokenizer, Manifest.TokenizerHash);
    /// <summary>Validation tokens per UTF-8 byte of validation text (bits per byte = nats per token x this / ln 2).</summary>
    public double? ValidationTokensPerByte => Manifest.Validation.Bytes > 0 ? (double)Manifest.Validation.Tokens / Manifest.Validation.Bytes : null;

    public static bool Exists(string dir) =>
        File.Exists(System.IO.Path.Combine(dir, DatasetManifest.FileName)) || File.Exists(System.IO.Path.Combine(dir, PreparedData.MetaFile));

    /// <summary>Opens the dataset in <paramref name="dir"/>: its manifest (checked against the shard files present:
    /// names, sizes and headers; hashes are checked by <see cref="Verify"/>), or an older folder's meta.json.</summary>
    public static Dataset Open(string dir)
    {
        var manifestPath = System.IO.Path.Combine(dir, DatasetManifest.FileName);
        if (File.Exists(manifestPath))
        {
            var m = Json.ReadFile<DatasetManifest>(manifestPath);
            if (m.Format != DatasetManifest.FormatName) throw new StrataException(
                $"{manifestPath}: format: expected '{DatasetManifest.FormatName}', got '{m.Format}'");
            if (m.FormatVersion != DatasetManifest.CurrentFormat) throw new StrataException(
                $"{manifestPath}: dataset format {m.FormatVersion}, this Strata reads {DatasetManifest.CurrentFormat}");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var split in new[] { m.Train, m.Validation })
                foreach (var shard in split.Shards)
                {
                    if (System.IO.Path.GetFileName(shard.File) != shard.File || shard.File is "." or "..")
                        throw new StrataException($"{manifestPath}: shard '{shard.File}' is not a file name inside the dataset");
                    if (!seen.Add(shard.File)) throw new StrataException($"{manifestPath}: shard '{shard.File}' is listed more than once");
                }
            return new Dataset(dir, m, s => m.Split(s).Shards.Select(x => System.IO.Path.Combine(dir, x.File)).ToList());
        }
        if (PreparedData.TryRead(System.IO.Path.Combine(dir, PreparedData.TrainFile)) is { } meta)
            return FromShards(System.IO.Path.Combine(dir, PreparedData.TrainFile), System.IO.Path.Combine(dir, PreparedData.ValidationFile), meta);
        throw new StrataException($"{dir}: not a dataset (no {DatasetManifest.FileName}; make one with 'strata data prepare')");
    }

    /// <summary>A dataset of one training and one validation shard given by path (plans of format 1, older folders).</summary>
    internal static Dataset FromShards(string train, string validation, PreparedData? meta = null)
    {
        meta ??= PreparedData.TryRead(train);
        TokenizerIdentity id = meta is null
            ? throw new StrataException($"{train}: no {PreparedData.MetaFile} beside it says which tokenizer encoded it: name it in data.tokenizer")
            : meta.TokenizerHash is { } h ? new(meta.Tokenizer, h) : TokenizerIdentity.Of(meta.Tokenizer);
        SplitInfo Info(string path, long docs, long bytes, long tokens) => new(docs, bytes, tokens, [new ShardInfo(path, tokens, null)]);
        var manifest = new DatasetManifest
        {
            Tokenizer = id.Name, TokenizerHash = id.Hash, VocabSize = meta.VocabSize,
            Train = Info(train, meta.TrainDocuments, meta.TrainBytes, meta.TrainTokens),
            Validation = Info(validation, meta.ValidationDocuments, meta.ValidationBytes, meta.ValidationTokens),
        };
        return new Dataset(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(train))!, manifest, s => [s == DatasetSplit.Train ? train : validation]);
    }

    /// <summary>The split's shards, opened; each is checked against the manifest's token count.</summary>
    internal IReadOnlyList<TokenShard> Shards(DatasetSplit split)
    {
        if (_open.TryGetValue(split, out var shards)) return shards;
        var files = _files(split);
        var infos = Manifest.Split(split).Shards;
        var opened = new List<TokenShard>();
        try
        {
            for (int i = 0; i < files.Count; i++)
            {
                var shard = TokenShard.Open(files[i]);
                opened.Add(shard);
                if (shard.Count != infos[i].Tokens)
                    throw new StrataException(
                        $"{files[i]}: holds {shard.Count:N0} tokens, the dataset's manifest says {infos[i].Tokens:N0} (re-run 'strata data prepare')");
                if (shard.VocabSize != Manifest.VocabSize)
                    throw new StrataException($"{files[i]}: tokens of a vocabulary of {shard.VocabSize:N0}, the manifest says {Manifest.VocabSize:N0}");
            }
        }
        catch
        {
            foreach (var s in opened) s.Dispose();
            throw;
        }
        _open[split] = opened;
        return opened;
    }

    /// <summary>What <see cref="Verify"/> did: shards checked, and the bytes it hashed (the rest came from the cache).</summary>
    public readonly record struct Verification(int Shards, int Cached, long BytesHashed, double Seconds);

    /// <summary>The cache of verified shards, beside the manifest: a shard whose file is the one verified before (same
    /// size, modification time, device and inode) is not hashed again.</summary>
    public const string VerifiedFile = ".verified.json";

    private sealed record VerifiedShard(string File, long Length, long ModifiedTicks, ulong Device, ulong Inode, string Sha256, int MaxId)
    {
        /// <summary>A checksum of the record itself: a damaged cache entry does not vouch for a shard.</summary>
        public string Check { get; init; } = "";
        public string Expected => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes($"{File}|{Length}|{ModifiedTicks}|{Device}|{Inode}|{Sha256}|{MaxId}")))[..16];
    }

    /// <summary>Re-hashes every shard and compares with the manifest, and checks that no token id reaches the manifest's
    /// vocabulary or <paramref name="vocabLimit"/> (a model's). With <paramref name="cached"/>, shards verified before
    /// in the same file are taken from <see cref="VerifiedFile"/> (and newly verified ones recorded there).</summary>
    public Verification Verify(int? vocabLimit = null, bool cached = false)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var cachePath = System.IO.Path.Combine(Path, VerifiedFile);
        var known = new Dictionary<string, VerifiedShard>();
        if (cached && File.Exists(cachePath))
            try { known = Json.ReadFile<List<VerifiedShard>>(cachePath).Where(v => v.Check == v.Expected).DistinctBy(v => v.File).ToDictionary(v => v.File); }
            catch (Exception e) when (e is StrataException or ArgumentException) { }             // a damaged cache is rebuilt
        var verified = new List<VerifiedShard>();
        int n = 0, fromCache = 0;
        long hashed = 0;
        int limit = Math.Min(Manifest.VocabSize, vocabLimit ?? int.MaxValue);
        foreach (var split in new[] { DatasetSplit.Train, DatasetSplit.Validation })
        {
            var shards = Shards(split);
            var infos = Manifest.Split(split).Shards;
            for (int i = 0; i < shards.Count; i++)
            {
                var file = new FileInfo(shards[i].Path);
                var (_, (device, inode)) = FileKind.Of(file.FullName);
                string name = System.IO.Path.GetFileName(file.FullName);
                var identity = new VerifiedShard(name, file.Length, file.LastWriteTimeUtc.Ticks, device, inode, "", 0);
                VerifiedShard v;
                if (known.TryGetValue(name, out var k) && k with { Sha256 = "", MaxId = 0, Check = "" } == identity && (infos[i].Sha256
                    ?? k.Sha256) == k.Sha256)
                {
                    v = k;
                    fromCache++;
                }
                else
                {
                    var (hash, max) = shards[i].Scan();
                    hashed += file.Length;
                    if (infos[i].Sha256 is { } recorded && hash != recorded) throw new StrataException(
                        $"{shards[i].Path}: its tokens hash to sha256:{hash}, the manifest records sha256:{recorded} (the shard is damaged: re-run " +
                            "'strata data prepare')");
                    v = identity with { Sha256 = hash, MaxId = max };
                    v = v with { Check = v.Expected };
                }
                if (v.MaxId >= limit) throw new StrataException(
                    $"{shards[i].Path}: holds token id {v.MaxId}, past a vocabulary of {limit:N0} " +
                        $"({(limit == Manifest.VocabSize ? "the manifest's" : "the model's")})");
                verified.Add(v);
                if (infos[i].Sha256 is not null) n++;
            }
        }
        if (cached && hashed > 0)
            try { AtomicFile.WriteAllText(cachePath, Json.Serialize(verified)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // a read-only dataset is verified every time
        return new Verification(n, fromCache, hashed, clock.Elapsed.TotalSeconds);
    }

    public void Dispose()
    {
        foreach (var shards in _open.Values)
            foreach (var s in shards) s.Dispose();
        _open.Clear();
    }
}
