using System.Text;

namespace Strata.Tokenization;

/// <summary>
/// One id per character, id = BMP code point: exactly the ids bvv241 gives single characters
/// (the bvv241 id layout), so shards made with it stay valid for bvv241-2-3 models. Characters without a
/// single-character id there (private use U+E000-U+F8FF, U+FFFF, everything outside the BMP) become &lt;unk&gt; (57347).
/// </summary>
public sealed class CodePointTokenizer : ITokenizer
{
    public string Name => "codepoint";
    public bool NeverMergesAcross(char c) => true;
    public int VocabSize => 65536;
    public int? EndOfText => Bvv241Builder.Eos;

    public static bool HasId(int scalar) => scalar is < 0xD800 or (>= 0xF900 and <= 0xFFFE);

    public int[] Encode(string text)
    {
        var ids = new List<int>(text.Length);
        Encode(text, ids);
        return ids.ToArray();
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { ids.Add(Bvv241Builder.Unk); i++; continue; }
            ids.Add(HasId(c) ? c : Bvv241Builder.Unk);
        }
    }

    public string Decode(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        foreach (var id in ids)
        {
            if (HasId(id)) sb.Append((char)id);
            else if (id >= 0xE000 && id - 0xE000 < Bvv241Builder.SpecialTokens.Count) sb.Append(Bvv241Builder.SpecialTokens[id - 0xE000]);
            else sb.Append('\uFFFD');
        }
        return sb.ToString();
    }
}
