// Character n-gram mining as the author's _n-gramms-from-wiki notebook does it:
//   preprocess: ’ ‘ ` -> ', ASCII digits deleted, \t \r \f \v -> space;
//   a document with any CJK ideograph (U+4E00-9FFF), kana (U+3040-30FF) or Hangul syllable (U+AC00-D7AF) is taken
//   character by character with all whitespace removed (n-grams run across punctuation);
//   any other document by the words of \b[a-zA-Z\u00C0-\u017F\u0400-\u04FF']+\b, n-grams inside each word;
//   counts per n, the most common first (ties in first-seen order, as Counter.most_common).
// .NET's \b follows .NET's \w, which differs from Python's on a few marks; counts can differ there.
using System.Text;
using System.Text.RegularExpressions;

namespace Strata.Tokenization;

public static partial class NgramMiner
{
    [GeneratedRegex(@"\b[a-zA-Z\u00C0-\u017F\u0400-\u04FF']+\b")]
    private static partial Regex WordRegex();

    public static string Preprocess(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (c is '\u2019' or '\u2018' or '`') sb.Append('\'');
            else if (char.IsAsciiDigit(c)) continue;
            else if (c is '\t' or '\r' or '\f' or '\v') sb.Append(' ');
            else sb.Append(c);
        }
        return sb.ToString();
    }

    public static bool IsCharacterScript(string text)
    {
        foreach (var c in text)
            if (c is (>= '\u4E00' and <= '\u9FFF') or (>= '\u3040' and <= '\u30FF') or (>= '\uAC00' and <= '\uD7AF')) return true;
        return false;
    }

    /// <summary>Adds the n-grams of one document to <paramref name="counts"/> (gram -> (count, first-seen order)).</summary>
    public static void Count(string document, int n, Dictionary<string, (long Count, long First)> counts)
    {
        var text = Preprocess(document);
        if (IsCharacterScript(text))
        {
            var chars = new StringBuilder();
            foreach (var c in text) if (!char.IsWhiteSpace(c)) chars.Append(c);
            var s = chars.ToString();
            for (int i = 0; i + n <= s.Length; i++) Add(s.Substring(i, n));
        }
        else
        {
            foreach (Match m in WordRegex().Matches(text))
                for (int i = 0; i + n <= m.Length; i++) Add(m.Value.Substring(i, n));
        }

        void Add(string g)
        {
            if (counts.TryGetValue(g, out var e)) counts[g] = (e.Count + 1, e.First);
            else counts[g] = (1, counts.Count);
        }
    }

    /// <summary>Mines each language's documents: for every n, the <paramref name="top"/> most common n-grams.</summary>
    public static NgramList Mine(IEnumerable<(string Lang, IEnumerable<string> Documents)> languages, IReadOnlyList<int> ns, int top = 1000)
    {
        var result = new List<LanguageNgrams>();
        foreach (var (lang, docs) in languages)
        {
            var byN = ns.ToDictionary(n => n, _ => new Dictionary<string, (long, long)>(StringComparer.Ordinal));
            foreach (var doc in docs)
                foreach (var n in ns) Count(doc, n, byN[n]);
            result.Add(new LanguageNgrams(lang, lang, byN.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<(string, long)>)kv.Value
                .OrderByDescending(e => e.Value.Item1).ThenBy(e => e.Value.Item2).Take(top).Select(e => (e.Key, e.Value.Item1)).ToList())));
        }
        return new NgramList(result);
    }
}
