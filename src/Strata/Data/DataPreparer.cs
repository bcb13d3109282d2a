// Text in, a dataset out (Data/Dataset.cs), streaming: documents are read in a fixed order (several files at once on
// the reading threads, handed on in order), encoded in batches on all cores, and written in order into shards of a
// bounded size, so memory stays bounded whatever the corpus size and the output is byte-identical whatever the thread
// counts. Each document goes to the training or the validation split by its file name (--val-match) or by a seeded
// hash of (file, document number), so the split needs no look-ahead. Shards are written under new names and the
// manifest is written last: until then the folder's previous dataset, if any, is what readers see. A progress journal
// after every shard lets an interrupted preparation resume: finished shards are kept (re-hashed first), the reading
// starts over and the documents already written are skipped without encoding.
using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Strata.Formats;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Data;

public static class DataPreparer
{
    public const string ProgressFile = ".prepare-progress.json";

    private sealed record Unit(long Seq, Document Doc, DatasetSplit Split);

    /// <summary>Units read in a row and their ids, all in one buffer from the shared pool: unit i's ids are
    /// Ids[Ends[i - 1]..Ends[i]] (none for a unit whose tokens the progress says are written already).</summary>
    private sealed class Batch(Unit[] units)
    {
        public Unit[] Units { get; } = units;
        public int[] Ids = [];
        public int[] Ends { get; } = new int[units.Length];

        public ReadOnlySpan<int> IdsOf(int i) => Ids.AsSpan()[(i == 0 ? 0 : Ends[i - 1])..Ends[i]];
    }

    public static DatasetManifest Prepare(PrepareOptions o)
    {
        if (o.ValidationFraction is < 0 or >= 1 || double.IsNaN(o.ValidationFraction)) throw new StrataException(
            $"--val-fraction: must be in [0, 1), got {o.ValidationFraction}");
        if (o.ShardTokens < 1024) throw new StrataException($"--shard-tokens: at least 1024, got {o.ShardTokens}");
        if (o.Threads < 1) throw new StrataException($"--threads: at least 1, got {o.Threads}");
        if (o.ReadThreads < 1) throw new StrataException($"--read-threads: at least 1, got {o.ReadThreads}");
        Regex? valMatch;
        try { valMatch = o.ValidationMatch is null ? null : new Regex(o.ValidationMatch, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException) { throw new StrataException($"--val-match: '{o.ValidationMatch}' is not a regular expression"); }
        var tokenizer = Tokenizers.ByName(o.Tokenizer);
        var tokenizerId = TokenizerIdentity.Of(tokenizer);
        var files = Corpus.Find(o.Inputs, o.Pattern, o.Exclude, skipped => o.Log.WriteLine($"note: skipped {skipped}"));
        if (valMatch is not null)
        {
            var held = files.Count(f => valMatch.IsMatch(f.Name.Replace('\\', '/')));
            if (held == 0) throw new StrataException($"--val-match '{o.ValidationMatch}' matches none of the {files.Count} files");
            if (held == files.Count) throw new StrataException($"--val-match '{o.ValidationMatch}' matches every file, leaving nothing to train on");
        }
        var recipe = new PrepareRecipe(o.Inputs.Select(Path.GetFullPath).ToList(), o.Pattern, o.Exclude, tokenizerId.Name, tokenizerId.Hash,
            o.ValidationFraction, o.ValidationMatch, o.Seed, o.Read.Field, o.Read.StripBom, o.Read.NewlinesToLf, o.Read.StripAnsiColour,
            o.Read.ReplaceInvalid, o.ShardTokens);

        bool created = !Directory.Exists(o.OutDir);
        var folderLock = FolderLock.Acquire(o.OutDir, "strata data prepare");
        try { return Prepare(o, recipe, files, tokenizer, tokenizerId, valMatch); }
        catch when (created)
        {
            // nothing is kept of a preparation that failed before its first shard in a folder it made
            folderLock.Dispose();
            if (!Directory.EnumerateFiles(o.OutDir, "*.tokens").Any()) Directory.Delete(o.OutDir, recursive: true);
            throw;
        }
        finally { folderLock.Dispose(); }
    }

    private static DatasetManifest Prepare(PrepareOptions o, PrepareRecipe recipe, IReadOnlyList<(string Path, string Name)> files, ITokenizer tokenizer,
        TokenizerIdentity tokenizerId, Regex? valMatch)
    {
        var progressPath = Path.Combine(o.OutDir, ProgressFile);
        var progress = Resume(o, recipe, progressPath) ?? Fresh(o, recipe);
        var reader = new DocumentReader(o.Read);
        bool canCut = o.Read.NewlinesToLf ? tokenizer.NeverMergesAcross('\n') && tokenizer.NeverMergesAcross('\r') : tokenizer.NeverMergesAcross('\n');
        bool tailSplit = files.Count == 1 && valMatch is null && o.ValidationFraction > 0 && DocumentReader.KindOf(files[0].Path) == (InputKind.Text, "none");

        // reading order: the inputs' files in order, each file's documents in order
        IEnumerable<Unit> Units()
        {
            long seq = 0;
            IEnumerable<Document> Read(int i) => tailSplit ? reader.ReadWithTail(i, files[i].Path, files[i].Name, canCut, o.ValidationFraction)
                : reader.Read(i, files[i].Path, files[i].Name, canCut);
            foreach (var d in ReadAhead.InOrder(files.Count, Read, o.ReadThreads))
            {
                var split = d.Validation is { } v ? (v ? DatasetSplit.Validation : DatasetSplit.Train)
                    : valMatch is not null ? (valMatch.IsMatch(d.Source.Replace('\\', '/')) ? DatasetSplit.Validation : DatasetSplit.Train)
                    : HeldOut(o.Seed, d.Source, d.Index, o.ValidationFraction) ? DatasetSplit.Validation : DatasetSplit.Train;
                yield return new Unit(seq++, d, split);
            }
        }

        var writer = new SplitWriters(o, progress, tokenizer.VocabSize, progressPath);
        var inputs = new long[files.Count, 3];                                          // documents, bytes, validation documents per file
        int? separator = tokenizer.EndOfText;
        var firstDocument = new[] { true, true };
        try
        {
            foreach (var batch in Pipeline(Units(), progress, tokenizer, o.Threads))
                for (int i = 0; i < batch.Units.Length; i++)
                {
                    var u = batch.Units[i];
                    int s = (int)u.Split;
                    long bytes = Encoding.UTF8.GetByteCount(u.Doc.Text);
                    bool newDocument = !u.Doc.Continues;
                    if (newDocument) inputs[u.Doc.Input, 0]++;
                    if (newDocument && u.Split == DatasetSplit.Validation) inputs[u.Doc.Input, 2]++;
                    inputs[u.Doc.Input, 1] += bytes;
                    bool empty = u.Doc.Text.Length == 0;                                    // counted, but adds no token, not even a separator
                    bool separated = newDocument && !empty && !firstDocument[s] && separator is not null;
                    if (newDocument && !empty) firstDocument[s] = false;
                    writer.Add(u.Split, u.Seq, newDocument, bytes, separated ? separator : null, batch.IdsOf(i));
                }
            writer.Finish();
        }
        finally { writer.Dispose(); }

        if (writer.Tokens(DatasetSplit.Train) == 0) throw new StrataException("the training split is empty (the inputs hold no text for it): give more text");
        var manifest = new DatasetManifest
        {
            Tokenizer = tokenizerId.Name, TokenizerHash = tokenizerId.Hash, VocabSize = tokenizer.VocabSize,
            Train = writer.Info(DatasetSplit.Train), Validation = writer.Info(DatasetSplit.Validation),
            Inputs = Enumerable.Range(0, files.Count).Select(i =>
            {
                var (kind, compression) = DocumentReader.KindOf(files[i].Path);
                return new InputInfo(Path.GetFullPath(files[i].Path), kind.ToString().ToLowerInvariant(), compression, kind == InputKind.Text ? null
                    : o.Read.Field, inputs[i, 0], inputs[i, 1], inputs[i, 2]);
            }).ToList(),
            Recipe = recipe, Replacements = reader.Replacements,
        };
        Commit(o.OutDir, manifest, progressPath);
        return manifest;
    }

    /// <summary>Whether the document (source, index) is held out: a seeded hash, uniform in [0, 1), under the fraction.</summary>
    public static bool HeldOut(long seed, string source, long index, double fraction)
    {
        if (fraction <= 0) return false;
        ulong h = 14695981039346656037UL;                                                // FNV-1a over the UTF-16 of the path
        foreach (var c in source.Replace('\\', '/')) { h ^= c; h *= 1099511628211UL; }
        var rng = SplitMix64.For(seed, (long)h, index);
        return (rng.Next() >> 11) * (1.0 / (1UL << 53)) < fraction;
    }

    private static PrepareProgress Fresh(PrepareOptions o, PrepareRecipe recipe)
    {
        // the generation names this preparation's shards apart from the dataset the folder may already hold; it is a
        // function of the recipe and of that dataset, so the same preparation into the same folder state is identical
        var existing = File.Exists(Path.Combine(o.OutDir, DatasetManifest.FileName)) ? File.ReadAllText(Path.Combine(o.OutDir, DatasetManifest.FileName)) : "";
        var generation = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Json.Compact(recipe) + "\n" + existing)))[..8];
        foreach (var stale in Directory.EnumerateFiles(o.OutDir, $"*-{generation}-*.tokens")) File.Delete(stale);
        return new PrepareProgress(recipe, generation, new SplitProgress([], -1, 0), new SplitProgress([], -1, 0));
    }

    /// <summary>The progress of an interrupted preparation of the same recipe whose shards are all intact, or null.</summary>
    private static PrepareProgress? Resume(PrepareOptions o, PrepareRecipe recipe, string progressPath)
    {
        if (!File.Exists(progressPath)) return null;
        PrepareProgress p;
        try { p = Json.ReadFile<PrepareProgress>(progressPath); }
        catch (StrataException) { o.Log.WriteLine($"note: {progressPath} is not readable; starting again"); return null; }
        if (o.Restart) { o.Log.WriteLine("note: --restart: the interrupted preparation's shards are dropped"); return null; }
        if (Json.Compact(p.Recipe) != Json.Compact(recipe)) { o.Log.WriteLine(
            "note: an interrupted preparation with other options is dropped; starting again"); return null; }
        foreach (var shard in p.Train.Shards.Concat(p.Validation.Shards))
        {
            var path = Path.Combine(o.OutDir, shard.File);
            bool intact = false;
            if (File.Exists(path))
            {
                using var s = TokenShard.Open(path);
                intact = s.Count == shard.Tokens && s.ContentHash() == shard.Sha256;
            }
            if (!intact) { o.Log.WriteLine($"note: {path} does not match the progress journal; starting again"); return null; }
        }
        o.Log.WriteLine($"resuming an interrupted preparation: {p.Train.Shards.Count + p.Validation.Shards.Count} finished shard(s) kept");
        return p;
    }

    /// <summary>Batches made on a thread of its own (of the reading threads' documents), encoded on
    /// <paramref name="threads"/> threads a batch each, in order. Each worker encodes into a list of its own and copies
    /// the batch's ids into one pooled buffer, which goes back to the pool when the consumer asks for the next batch: no
    /// allocation per document, whatever its length.</summary>
    private static IEnumerable<Batch> Pipeline(IEnumerable<Unit> units, PrepareProgress progress, ITokenizer tokenizer, int threads)
    {
        const int BatchChars = 4 << 20;
        using var scratch = new ThreadLocal<List<int>>(() => new List<int>(BatchChars));
        using var workers = new EncodingWorkers<Batch>(threads, batch =>
        {
            var ids = scratch.Value!;
            ids.Clear();
            for (int i = 0; i < batch.Units.Length; i++)
            {
                var u = batch.Units[i];
                var cursor = u.Split == DatasetSplit.Train ? progress.Train : progress.Validation;
                if (u.Seq >= cursor.Unit) tokenizer.Encode(u.Doc.Text, ids);
                batch.Ends[i] = ids.Count;
            }
            batch.Ids = ArrayPool<int>.Shared.Rent(ids.Count);
            System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids).CopyTo(batch.Ids);
        });
        var reading = Task.Factory.StartNew(() =>
        {
            try
            {
                var batch = new List<Unit>();
                long chars = 0;
                foreach (var u in units)
                {
                    batch.Add(u);
                    chars += u.Doc.Text.Length;
                    if (chars < BatchChars) continue;
                    workers.Add(new Batch(batch.ToArray()));
                    (chars, batch) = (0, new List<Unit>());
                }
                if (batch.Count > 0) workers.Add(new Batch(batch.ToArray()));
            }
            catch (OperationCanceledException) { }                                      // the consumer stopped early
            finally { workers.CompleteAdding(); }
        }, TaskCreationOptions.LongRunning);
        try
        {
            foreach (var batch in workers.Results())
            {
                yield return batch;
                ArrayPool<int>.Shared.Return(batch.Ids);
            }
            Rethrow(reading);                                                           // a reader's error ends the preparation
        }
        finally
        {
            workers.Cancel();
            try { reading.Wait(); }
            catch (AggregateException) { }
        }
    }

    private static void Rethrow(params Task[] tasks)
    {
        try { Task.WaitAll(tasks); }
        catch (AggregateException e)
        {
            var first = e.Flatten().InnerExceptions.FirstOrDefault(x => x is not OperationCanceledException) ?? e.Flatten().InnerExceptions[0];
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
    }

    /// <summary>Writes the manifest (the commit), then removes what the new dataset does not use: the previous
    /// dataset's shards, an older Strata's files, the progress journal.</summary>
    private static void Commit(string dir, DatasetManifest manifest, string progressPath)
    {
        AtomicFile.WriteAllText(Path.Combine(dir, DatasetManifest.FileName), Json.Serialize(manifest));
        KillPoint.Here("dataset.after-manifest");
        var used = manifest.Train.Shards.Concat(manifest.Validation.Shards).Select(s => s.File).ToHashSet();
        foreach (var f in Directory.EnumerateFiles(dir, "*.tokens"))
            if (!used.Contains(Path.GetFileName(f))) File.Delete(f);
        foreach (var legacy in new[] { PreparedData.MetaFile, progressPath })
            if (File.Exists(Path.Combine(dir, legacy))) File.Delete(Path.Combine(dir, legacy));
    }
}
