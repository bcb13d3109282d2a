using Strata.Util;

namespace Strata.Tokenization;

/// <summary>Tokenizers by the name shards and checkpoints record: a bvv241 vocabulary, "codepoint", or the path of a
/// tokenizer.json.</summary>
public static class Tokenizers
{
    public const string Default = Bvv241Builder.TwoThree;

    public static IReadOnlyList<string> Names { get; } = [Bvv241Builder.TwoThree, Bvv241Builder.Max, "codepoint", "gpt2", "cl100k_base"];

    public static ITokenizer ByName(string name) => name switch
    {
        Bvv241Builder.TwoThree or Bvv241Builder.Max => Bvv241Builder.Get(name),
        "codepoint" => new CodePointTokenizer(),
        "gpt2" or "cl100k_base" => new TiktokenAdapter(name),
        _ when name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || Directory.Exists(name) => TokenizerJson.Read(name),
        _ => throw new StrataException($"unknown tokenizer '{name}' (known: {string.Join(", ", Names)}, or the path of a tokenizer.json)"),
    };

    /// <summary>sha256 of what decides a tokenizer's ids: a BPE vocabulary's entries, merges and special tokens; for the
    /// built-in algorithmic ones, their name and size. Checkpoints record it and ensembles compare it.</summary>
    public static string ContentHash(ITokenizer tokenizer)
    {
        var text = tokenizer is BpeTokenizer bpe
            ? string.Join("\u0000", bpe.Tokens) + "\u0001" + string.Join("\u0000", bpe.Merges.Select(m => m.Left + " " + m.Right)) + "\u0001"
                + string.Join("\u0000", bpe.SpecialTokens)
            : $"{tokenizer.Name}:{tokenizer.VocabSize}";
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
    }
}

/// <summary>Which vocabulary: the name <see cref="Tokenizers.ByName"/> takes and the sha256 of its content. Shards,
/// plans, checkpoints and ensembles record it; two are the same vocabulary when their hashes are equal.</summary>
public sealed record TokenizerIdentity(string Name, string Hash)
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TokenizerIdentity> Known = new();

    /// <summary>The identity of the tokenizer <paramref name="name"/> names (built-in ones computed once per process;
    /// a tokenizer.json is read each time, as it may change).</summary>
    public static TokenizerIdentity Of(string name) =>
        Tokenizers.Names.Contains(name) ? Known.GetOrAdd(name, n => Of(Tokenizers.ByName(n))) : Of(Tokenizers.ByName(name));

    public static TokenizerIdentity Of(ITokenizer tokenizer) => new(tokenizer.Name, Tokenizers.ContentHash(tokenizer));

    /// <summary>The same vocabulary: equal content hashes (a hash not recorded, "", as in files of older versions, is
    /// compared by name).</summary>
    public bool Matches(TokenizerIdentity other) => Hash.Length > 0 && other.Hash.Length > 0 ? Hash == other.Hash : Name == other.Name;

    /// <summary>The one check that two things share a vocabulary: refuses, in one message naming both sides, when
    /// <paramref name="actual"/> (what <paramref name="actualSource"/> uses) is not <paramref name="expected"/> (what
    /// <paramref name="expectedSource"/> uses). The counterpart of SubstrateIdentity.Require for the token ids.</summary>
    public static void Require(TokenizerIdentity expected, string expectedSource, TokenizerIdentity actual, string actualSource)
    {
        if (!expected.Matches(actual))
            throw new StrataException($"{actualSource} uses the tokenizer {actual}, {expectedSource} uses {expected}: they must share the vocabulary");
    }

    public override string ToString() => $"'{Name}' (sha256:{(Hash.Length > 0 ? Hash : "not recorded")})";
}
