using Strata.Formats;
using System.Text.Json;
using System.Text.RegularExpressions;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Data;

/// <summary>Options of <c>strata data prepare</c>.</summary>
public sealed record PrepareOptions
{
    public required IReadOnlyList<string> Inputs { get; init; }
    public required string OutDir { get; init; }
    public string Pattern { get; init; } = "*.txt";
    /// <summary>Relative paths matching this regular expression are skipped (e.g. fortune files' .dat indexes).</summary>
    public string? Exclude { get; init; }
    public string Tokenizer { get; init; } = Tokenizers.Default;
    /// <summary>Share of documents held out for validation, chosen with <see cref="Seed"/>. A single document is split
    /// by position instead (its last share).</summary>
    public double ValidationFraction { get; init; } = 0.1;
    /// <summary>If set, documents whose relative path matches go to validation and the fraction is ignored.</summary>
    public string? ValidationMatch { get; init; }
    public long Seed { get; init; } = 1337;
    /// <summary>Remove ANSI colour escapes (ESC [ ... m), which some fortune files carry.</summary>
    public bool StripAnsiColour { get; init; }
}

/// <summary>What <c>data prepare</c> wrote (also saved as meta.json beside the shards).</summary>
public sealed record PreparedData(string Tokenizer, int VocabSize, long TrainTokens, long ValidationTokens,
    int TrainDocuments, int ValidationDocuments, long TrainBytes, long ValidationBytes, IReadOnlyList<string> ValidationFiles, string? TokenizerHash = null)
{
    public const string TrainFile = "train.tokens", ValidationFile = "val.tokens", MetaFile = "meta.json";

    public static PreparedData? TryRead(string shardPath)
    {
        var meta = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(shardPath))!, MetaFile);
        return File.Exists(meta) ? Json.ReadFile<PreparedData>(meta) : null;
    }
}

/// <summary>Text files in, token shards out: a seeded train/validation split by document, documents joined by the
/// tokenizer's end-of-text id, encoded in parallel. Everything is read and checked before anything is written.</summary>
public static class DataPreparer
{
    public static PreparedData Prepare(PrepareOptions o)
    {
        if (o.ValidationFraction is < 0 or >= 1) throw new StrataException($"--val-fraction: must be in [0, 1), got {o.ValidationFraction}");
        var tokenizer = Tokenizers.ByName(o.Tokenizer);
        var files = Corpus.Find(o.Inputs, o.Pattern, o.Exclude);
        var docs = new CorpusDocument[files.Count];
        var errors = new StrataException?[files.Count];
        Parallel.For(0, files.Count, i =>
        {
            try { docs[i] = Corpus.Read(files[i]); if (o.StripAnsiColour) docs[i] = docs[i] with { Text = Corpus.StripAnsiColour(docs[i].Text) }; }
            catch (StrataException e) { errors[i] = e; }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } first) throw first;   // the first bad file in path order

        bool[] isVal = new bool[docs.Length];
        if (o.ValidationMatch is { } pattern)
        {
            var re = new Regex(pattern, RegexOptions.CultureInvariant);
            for (int i = 0; i < docs.Length; i++) isVal[i] = re.IsMatch(docs[i].Name.Replace('\\', '/'));
            if (!isVal.Any(v => v)) throw new StrataException($"--val-match '{pattern}' matches none of the {docs.Length} files");
            if (isVal.All(v => v)) throw new StrataException($"--val-match '{pattern}' matches every file, leaving nothing to train on");
        }
        else if (docs.Length > 1 && o.ValidationFraction > 0)
        {
            int nVal = Math.Max(1, (int)Math.Round(docs.Length * o.ValidationFraction));
            var order = Enumerable.Range(0, docs.Length).ToArray();
            var rng = new SplitMix64((ulong)o.Seed);
            for (int i = order.Length - 1; i > 0; i--) { int j = (int)rng.NextBelow(i + 1); (order[i], order[j]) = (order[j], order[i]); }
            foreach (var i in order.Take(Math.Min(nVal, docs.Length - 1))) isVal[i] = true;
        }

        var encoded = new int[docs.Length][];
        Parallel.For(0, docs.Length, i => encoded[i] = tokenizer.Encode(docs[i].Text));

        List<int> train = Join(encoded.Where((_, i) => !isVal[i]), tokenizer.EndOfText);
        List<int> val = Join(encoded.Where((_, i) => isVal[i]), tokenizer.EndOfText);
        long trainBytes = docs.Where((_, i) => !isVal[i]).Sum(d => (long)System.Text.Encoding.UTF8.GetByteCount(d.Text));
        long valBytes = docs.Where((_, i) => isVal[i]).Sum(d => (long)System.Text.Encoding.UTF8.GetByteCount(d.Text));
        if (docs.Length == 1 && o.ValidationFraction > 0 && o.ValidationMatch is null)
        {
            // one document: hold out its tail
            int cut = (int)(train.Count * (1 - o.ValidationFraction));
            val = train.GetRange(cut, train.Count - cut);
            train.RemoveRange(cut, train.Count - cut);
            valBytes = (long)(trainBytes * o.ValidationFraction);
            trainBytes -= valBytes;
        }
        if (train.Count == 0) throw new StrataException("the training split is empty: give more text");

        var result = new PreparedData(tokenizer.Name, tokenizer.VocabSize, train.Count, val.Count,
            isVal.Count(v => !v), isVal.Count(v => v), trainBytes, valBytes,
            docs.Where((_, i) => isVal[i]).Select(d => d.Name).ToList(), Tokenizers.ContentHash(tokenizer));
        Directory.CreateDirectory(o.OutDir);
        TokenShard.Write(Path.Combine(o.OutDir, PreparedData.TrainFile), tokenizer.VocabSize, train);
        TokenShard.Write(Path.Combine(o.OutDir, PreparedData.ValidationFile), tokenizer.VocabSize, val);
        AtomicFile.WriteAllText(Path.Combine(o.OutDir, PreparedData.MetaFile), Json.Serialize(result));
        return result;
    }

    private static List<int> Join(IEnumerable<int[]> docs, int? separator)
    {
        var all = new List<int>();
        foreach (var d in docs)
        {
            if (all.Count > 0 && separator is { } s) all.Add(s);
            all.AddRange(d);
        }
        return all;
    }
}
