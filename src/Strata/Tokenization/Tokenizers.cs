using Strata.Util;

namespace Strata.Tokenization;

/// <summary>Tokenizers by the name shards and checkpoints record.</summary>
public static class Tokenizers
{
    public static IReadOnlyList<string> Names { get; } = ["codepoint"];

    public static ITokenizer ByName(string name) => name switch
    {
        "codepoint" => new CodePointTokenizer(),
        _ => throw new StrataException($"unknown tokenizer '{name}' (known: {string.Join(", ", Names)})"),
    };
}
