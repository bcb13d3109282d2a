using Microsoft.ML.Tokenizers;

namespace Strata.Tokenization;

/// <summary>
/// An existing byte-level tokenizer behind Strata's seam, through Microsoft.ML.Tokenizers with its bundled data
/// (offline): "gpt2" (r50k, 50,257 ids) and "cl100k_base" (100,277 ids). The papers' method works with any
/// tokenizer; a frozen binary code then needs ceil(log2 V) bits (16 is too few for these).
/// </summary>
internal sealed class TiktokenAdapter : ITokenizer
{
    private readonly TiktokenTokenizer _inner;

    public TiktokenAdapter(string name)
    {
        Name = name;
        _inner = name switch
        {
            "gpt2" => TiktokenTokenizer.CreateForModel("gpt2"),
            "cl100k_base" => TiktokenTokenizer.CreateForEncoding("cl100k_base"),
            _ => throw new Strata.Util.StrataException($"unknown tiktoken encoding '{name}' (known: gpt2, cl100k_base)"),
        };
        // both encodings put their special tokens after every ordinary token
        VocabSize = (_inner.SpecialTokens?.Values.DefaultIfEmpty(0).Max() ?? 0) + 1;
        EndOfText = _inner.SpecialTokens is { } s && s.TryGetValue("<|endoftext|>", out var eot) ? eot : null;
    }

    public string Name { get; }
    public int VocabSize { get; }
    public int? EndOfText { get; }

    public int[] Encode(string text) => _inner.EncodeToIds(text).ToArray();

    public void Encode(ReadOnlySpan<char> text, List<int> ids) => ids.AddRange(_inner.EncodeToIds(text));

    public string Decode(IEnumerable<int> ids) => _inner.Decode(ids) ?? "";
}
