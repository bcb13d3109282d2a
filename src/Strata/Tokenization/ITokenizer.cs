namespace Strata.Tokenization;

/// <summary>Text to ids and back. Shards, models and evaluations only see this seam.</summary>
public interface ITokenizer
{
    /// <summary>A name that says which vocabulary this is (recorded in shards and checkpoints).</summary>
    string Name { get; }
    int VocabSize { get; }
    /// <summary>The id placed between documents in shards, if the vocabulary has one.</summary>
    int? EndOfText { get; }
    int[] Encode(string text);
    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/> (a caller encoding many texts reuses one list).</summary>
    void Encode(ReadOnlySpan<char> text, List<int> ids);
    string Decode(IEnumerable<int> ids);
    /// <summary>Whether no id ever spans <paramref name="c"/> together with other characters, so text cut right after
    /// it encodes to the same ids piece by piece as whole (long files are read in such pieces).</summary>
    bool NeverMergesAcross(char c) => false;
}
