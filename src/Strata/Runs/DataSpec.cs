using Strata.Data;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Runs;

/// <summary>The training data: datasets from <c>strata data prepare</c> by name, mixed by weight (format 2), or one pair
/// of token shards (format 1); and the tokenizer that encoded them.</summary>
public sealed record DataSpec
{
    /// <summary>Dataset folders by name (relative to the plan file).</summary>
    public IReadOnlyDictionary<string, string>? Datasets { get; init; }
    /// <summary>Sampling weights by dataset name (normalised); null gives every dataset the same weight. A stage may
    /// give its own.</summary>
    public IReadOnlyDictionary<string, double>? Mixture { get; init; }
    /// <summary>Format 1: a training shard and a validation shard (each with an older meta.json beside it).</summary>
    public string? Train { get; init; }
    public string? Validation { get; init; }
    /// <summary>The tokenizer (a name or the path of a tokenizer.json); null takes the one the datasets record. Either
    /// way every dataset must have been encoded with it (compared by content hash).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>sha256 of the tokenizer's content (<see cref="TokenizerIdentity"/>); null accepts whatever
    /// <see cref="Tokenizer"/> names today. A run records both.</summary>
    public string? TokenizerHash { get; init; }

    /// <summary>The datasets by name (format 1 data is one dataset named "data").</summary>
    public IReadOnlyList<(string Name, string Path)> Named() =>
        Datasets is { } d ? d.Select(kv => (kv.Key, kv.Value)).ToList() : Train is null ? [] : [("data", Train)];

    /// <summary>Field rules that need no files.</summary>
    public void Validate(string source, string at)
    {
        if (Datasets is { } d)
        {
            if (Train is not null || Validation is not null) throw new StrataException($"{source}: {at}: give either datasets or train/validation, not both");
            if (d.Count == 0) throw new StrataException($"{source}: {at}.datasets: name at least one dataset");
            foreach (var name in d.Keys)
                if (name.Length == 0 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                    throw new StrataException($"{source}: {at}.datasets: '{name}' is not a name (letters, digits, '-', '_', '.')");
        }
        else if (Mixture is not null) throw new StrataException($"{source}: {at}.mixture: a mixture needs data.datasets");
        if (Mixture is { } m) ValidateMixture(m, this, source, at + ".mixture");
    }

    /// <summary>Refuses a mixture that names unknown datasets, has a negative or non-finite weight, or weighs nothing.</summary>
    public static void ValidateMixture(IReadOnlyDictionary<string, double> mixture, DataSpec data, string source, string at)
    {
        var names = data.Named().Select(n => n.Name).ToHashSet();
        foreach (var (name, w) in mixture)
        {
            if (!names.Contains(name)) throw new StrataException($"{source}: {at}: '{name}' is not one of data.datasets ({string.Join(", ", names)})");
            if (!(w >= 0 && double.IsFinite(w))) throw new StrataException($"{source}: {at}.{name}: a weight must be >= 0 and finite, got {w}");
        }
        double sum = mixture.Values.Sum();
        if (!(sum > 0)) throw new StrataException($"{source}: {at}: the weights add up to 0; give one dataset a positive weight");
        if (!double.IsFinite(sum)) throw new StrataException($"{source}: {at}: the weights add up to more than a double holds; scale them down");
    }

    /// <summary>Refuses data that names nothing to train on (a plan file must; an imported model's plan need not).</summary>
    public void Require(string source)
    {
        if (Datasets is null && (string.IsNullOrWhiteSpace(Train) || string.IsNullOrWhiteSpace(Validation)))
            throw new StrataException($"{source}: data: name datasets (data.datasets) or a train and a validation shard (data.train, data.validation)");
    }

    /// <summary>This spec with relative paths made absolute from <paramref name="baseDir"/>.</summary>
    public DataSpec Rooted(string baseDir) => this with
    {
        Datasets = Datasets?.ToDictionary(kv => kv.Key, kv => System.IO.Path.GetFullPath(kv.Value, baseDir)),
        Train = Train is null ? null : System.IO.Path.GetFullPath(Train, baseDir),
        Validation = Validation is null ? null : System.IO.Path.GetFullPath(Validation, baseDir),
    };

    /// <summary>The stage's mixture (or the plan's), as (name, weight) for every dataset, normalised.</summary>
    public IReadOnlyList<(string Name, double Weight)> MixtureFor(StageConfig stage)
    {
        var named = Named();
        var weights = stage.Mixture ?? Mixture;
        var list = named.Select(n => (n.Name, weights is null ? 1.0 : weights.GetValueOrDefault(n.Name))).ToList();
        double total = list.Sum(x => x.Item2);
        return list.Select(x => (x.Name, x.Item2 / total)).ToList();
    }

    /// <summary>Opens every dataset (format 1 shards as one dataset named "data").</summary>
    public IReadOnlyList<(string Name, Dataset Dataset)> Open()
    {
        var opened = new List<(string, Dataset)>();
        try
        {
            foreach (var (name, path) in Named())
                opened.Add((name, Datasets is null ? Dataset.FromShards(Train!, Validation!) : Dataset.Open(path)));
            return opened;
        }
        catch
        {
            foreach (var (_, d) in opened) d.Dispose();
            throw;
        }
    }

    /// <summary>This spec with the tokenizer every dataset was encoded with, by name and hash, checked against what the
    /// spec names: a dataset of another tokenizer is refused naming both.</summary>
    public DataSpec WithTokenizerResolved()
    {
        TokenizerIdentity? named = Tokenizer is null ? null : TokenizerHash is { } pinned ? new TokenizerIdentity(Tokenizer, pinned)
            : TokenizerIdentity.Of(Tokenizer);
        var datasets = Open();
        try
        {
            var id = named ?? datasets.FirstOrDefault().Dataset?.Tokenizer ?? throw new StrataException("data: no dataset to take the tokenizer from");
            foreach (var (name, d) in datasets)
            {
                TokenizerIdentity.Require(id, "the plan", d.Tokenizer, $"dataset '{name}' ({d.Path})");
                // the manifest's word checked against the tokenizer it names (a built-in name, or a tokenizer.json)
                TokenizerIdentity.Require(TokenizerIdentity.Of(d.Tokenizer.Name), $"the tokenizer it names, '{d.Tokenizer.Name}',", d.Tokenizer,
                    $"dataset '{name}''s manifest ({d.Path})");
            }
            return this with { Tokenizer = id.Name, TokenizerHash = id.Hash };
        }
        finally
        {
            foreach (var (_, d) in datasets) d.Dispose();
        }
    }
}
