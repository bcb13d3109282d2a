// BLEU as sacreBLEU 2.x computes it with its defaults (corpus_bleu: 4-gram, "exp" smoothing, no effective order,
// closest reference length), with its "13a" (mteval-v13a) and "zh" tokenisers. Checked against scores that
// sacreBLEU 2.6.0 itself computed (tests/Strata.Tests/TestData/sacrebleu-cases.json).
using System.Text;
using System.Text.RegularExpressions;

namespace Strata.Evaluation;

public sealed record BleuScore(double Score, IReadOnlyList<int> Counts, IReadOnlyList<int> Totals, int SysLen, int RefLen, double BrevityPenalty);

public static partial class SacreBleu
{
    public const int MaxOrder = 4;

    public static string Tokenize(string line, string tokenize) => tokenize switch
    {
        "13a" => Tokenize13a(line),
        "zh" => TokenizeZh(line),
        "none" => line,
        _ => throw new ArgumentException($"unknown BLEU tokeniser '{tokenize}' (13a, zh or none)"),
    };

    /// <summary>mteval-v13a: unescape a few entities, then split punctuation off words (periods and commas only next
    /// to a non-digit), and normalise whitespace.</summary>
    public static string Tokenize13a(string line)
    {
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&'))
            line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        return Regexp($" {line} ");
    }

    /// <summary>Spaces around every character of the ranges sacreBLEU treats as Chinese, then the 13a regular
    /// expressions (without its entity step).</summary>
    public static string TokenizeZh(string line)
    {
        line = StripPython(line);
        var sb = new StringBuilder(line.Length * 2);
        foreach (var rune in line.EnumerateRunes())
        {
            if (IsChinese(rune.Value)) sb.Append(' ').Append(rune.ToString()).Append(' ');
            else sb.Append(rune.ToString());
        }
        return Regexp(sb.ToString());
    }

    // sacreBLEU's ranges compare one character with Python strings; two of its bounds are written '\u20000'/'\u2a6d6'
    // and '\u2f800'/'\u2fa1d', which Python reads as two characters each, so those ranges really cover
    // U+2001..U+2A6D and U+2F81..U+2FA1 (and no astral ideographs). Reproduced as sacreBLEU behaves.
    private static readonly (int Lo, int Hi)[] ChineseRanges =
    [
        (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A), (0xFA70, 0xFAD9),
        (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF), (0x3000, 0x303F), (0x31C0, 0x31EF),
        (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F), (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F),
        (0x2600, 0x26FF), (0x2700, 0x27BF), (0x3200, 0x32FF), (0x3300, 0x33FF),
    ];

    public static bool IsChinese(int codePoint)
    {
        foreach (var (lo, hi) in ChineseRanges)
            if (codePoint >= lo && codePoint <= hi) return true;
        return false;
    }

    [GeneratedRegex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])")] private static partial Regex Punctuation();
    [GeneratedRegex(@"([^0-9])([\.,])")] private static partial Regex PeriodCommaAfterNonDigit();
    [GeneratedRegex(@"([\.,])([^0-9])")] private static partial Regex PeriodCommaBeforeNonDigit();
    [GeneratedRegex(@"([0-9])(-)")] private static partial Regex DashAfterDigit();

    private static string Regexp(string line)
    {
        line = Punctuation().Replace(line, " $1 ");
        line = PeriodCommaAfterNonDigit().Replace(line, "$1 $2 ");
        line = PeriodCommaBeforeNonDigit().Replace(line, " $1 $2");
        line = DashAfterDigit().Replace(line, "$1 $2 ");
        return string.Join(' ', SplitPython(line));
    }

    /// <summary>Python's <c>str.split()</c>: runs of Unicode whitespace (which includes U+001C..U+001F) separate words.</summary>
    public static string[] SplitPython(string s)
    {
        var words = new List<string>();
        int start = -1;
        for (int i = 0; i <= s.Length; i++)
        {
            bool space = i == s.Length || IsPythonSpace(s[i]);
            if (space && start >= 0) { words.Add(s[start..i]); start = -1; }
            else if (!space && start < 0) start = i;
        }
        return words.ToArray();
    }

    private static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    private static string StripPython(string s)
    {
        int a = 0, b = s.Length;
        while (a < b && IsPythonSpace(s[a])) a++;
        while (b > a && IsPythonSpace(s[b - 1])) b--;
        return s[a..b];
    }

    /// <summary>sacreBLEU's <c>corpus_bleu(hypotheses, [references])</c> with one reference per segment.</summary>
    public static BleuScore CorpusBleu(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, string tokenize = "13a")
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses but {references.Count} references");
        var correct = new int[MaxOrder];
        var total = new int[MaxOrder];
        int sysLen = 0, refLen = 0;
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = SplitPython(Tokenize(hypotheses[s], tokenize));
            var reference = SplitPython(Tokenize(references[s], tokenize));
            sysLen += hyp.Length;
            refLen += reference.Length;
            for (int n = 1; n <= MaxOrder; n++)
            {
                var refCounts = NGrams(reference, n);
                foreach (var (gram, count) in NGrams(hyp, n))
                {
                    total[n - 1] += count;
                    correct[n - 1] += Math.Min(count, refCounts.GetValueOrDefault(gram));
                }
            }
        }
        return Compute(correct, total, sysLen, refLen);
    }

    private static Dictionary<string, int> NGrams(string[] words, int n)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= words.Length; i++)
        {
            var g = string.Join(' ', words, i, n);
            d[g] = d.GetValueOrDefault(g) + 1;
        }
        return d;
    }

    private static BleuScore Compute(int[] correct, int[] total, int sysLen, int refLen)
    {
        double bp = sysLen < refLen ? (sysLen > 0 ? Math.Exp(1 - (double)refLen / sysLen) : 0.0) : 1.0;
        var precisions = new double[MaxOrder];
        if (correct.All(c => c == 0)) return new BleuScore(0.0, correct, total, sysLen, refLen, bp);
        double smooth = 1;
        for (int n = 0; n < MaxOrder; n++)
        {
            if (total[n] == 0) break;
            if (correct[n] == 0) { smooth *= 2; precisions[n] = 100.0 / (smooth * total[n]); }
            else precisions[n] = 100.0 * correct[n] / total[n];
        }
        // sacreBLEU's my_log: log(0) is -9999999999, which makes the score 0
        double logSum = precisions.Sum(p => p == 0 ? -9999999999.0 : Math.Log(p));
        return new BleuScore(bp * Math.Exp(logSum / MaxOrder), correct, total, sysLen, refLen, bp);
    }
}
