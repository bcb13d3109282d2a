// The bvv241 Unicode-centric vocabularies, rebuilt exactly as the author's builder notebooks do
// (the author's bvv241 builder notebooks):
//   ids 0x0000-0xD7FF and 0xF900-0xFFFE: the single code point with that value;
//   0xE000-0xE016: 23 special tokens; 0xE017-0xE0FF: "<special_token_N>" placeholders (plain vocabulary entries);
//   n-grams sorted by (-length, code point order) fill 0xD800-0xDFFF, then 0xE100-0xF8FF, then (131,072-id
//   vocabularies) 0x10000-0x1FFFE; what does not fit is dropped; every id left over is "<unused_N>";
//   merges: for each placed n-gram in that order, every split (left, right) whose halves are both in the vocabulary.
using System.Reflection;
using Strata.Util;

namespace Strata.Tokenization;

public static class Bvv241Builder
{
    public const string TwoThree = "bvv241-2-3", Max = "bvv241-max";

    /// <summary>The 23 special tokens at 0xE000.. (&lt;unk&gt; = 57347).</summary>
    public static IReadOnlyList<string> SpecialTokens { get; } =
    [
        "<pad>", "<s>", "</s>", "<unk>", "<think>", "</think>", "<emotions>", "</emotions>", "<tool_call>", "</tool_call>",
        "<tool_response>", "</tool_response>", "[INST]", "[/INST]", "[EOT]", "[USER]", "[ASSISTANT]", "[FIM_PREFIX]",
        "[FIM_MIDDLE]", "[FIM_SUFFIX]", "[FIM_PAD]", "[REPO_NAME]", "[FILE_SEP]",
    ];

    public const int Eos = 0xE002, Unk = 0xE003;

    /// <summary>The 32 languages of the published lists, in the notebooks' order.</summary>
    public static IReadOnlyList<string> Languages { get; } =
        "en ru fr de zh he it es ar pt ko hu sa la ja el sv nl pl vi fa no tr fi cs hy da bn az ka hi id".Split(' ');

    private static readonly Lazy<BpeTokenizer> Cached23 = new(() => Build(TwoThree));
    private static readonly Lazy<BpeTokenizer> CachedMax = new(() => Build(Max));

    /// <summary>The published vocabularies (built once per process).</summary>
    public static BpeTokenizer Get(string name) => name switch
    {
        TwoThree => Cached23.Value,
        Max => CachedMax.Value,
        _ => throw new StrataException($"unknown bvv241 vocabulary '{name}' (known: {TwoThree}, {Max})"),
    };

    /// <summary>Builds bvv241-2-3 (top 338 2/3-grams per language, 65,536 ids) or bvv241-max (top 906 2..5-grams per
    /// language plus the shared-tokenizer intersection, 131,072 ids) from the embedded published lists.</summary>
    public static BpeTokenizer Build(string name) => name switch
    {
        TwoThree => Build(name, Candidates(NgramList.Parse(Resource("n-gramms-2-3.txt"), "n-gramms-2-3.txt"), [3, 2], 338), 65536).Tokenizer,
        Max => Build(name, Candidates(NgramList.Parse(Resource("n-gramms-2-3-4-5.txt"), "n-gramms-2-3-4-5.txt"), [5, 4, 3, 2], 906)
            .Union(IntersectionStrings(Resource("n-gramms-intersection.txt"))), 131072).Tokenizer,
        _ => throw new StrataException($"unknown bvv241 vocabulary '{name}' (known: {TwoThree}, {Max})"),
    };

    /// <summary>The first <paramref name="top"/> n-grams of each language for each n, as a set.</summary>
    public static HashSet<string> Candidates(NgramList lists, IReadOnlyList<int> ns, int top)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var lang in lists.Languages)
            foreach (var n in ns)
                if (lang.TopNgrams.TryGetValue(n, out var grams))
                    foreach (var (g, _) in grams.Take(top)) set.Add(g);
        return set;
    }

    /// <summary>Lines of the intersection file, stripped of whitespace as Python's str.strip() does, longer than one character.</summary>
    public static IEnumerable<string> IntersectionStrings(string text) =>
        text.Split('\n').Select(PythonStrip).Where(s => s.Length > 1);

    public static string PythonStrip(string s)
    {
        int a = 0, b = s.Length;
        while (a < b && IsPythonSpace(s[a])) a++;
        while (b > a && IsPythonSpace(s[b - 1])) b--;
        return s[a..b];
    }

    /// <summary>str.isspace() of CPython 3 for one BMP character.</summary>
    public static bool IsPythonSpace(char c) => c is (>= '\t' and <= '\r') or (>= '\x1c' and <= ' ') or '\x85' or '\xa0' or '\u1680'
        or (>= '\u2000' and <= '\u200a') or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000';

    /// <summary>Result of a build: the tokenizer and what happened to the candidates.</summary>
    public sealed record BuildReport(BpeTokenizer Tokenizer, int Placed, int Dropped, int Merges, int Unreachable);

    /// <summary>A bvv-style vocabulary of <paramref name="vocabSize"/> (65,536 or 131,072) ids from n-gram candidates.</summary>
    public static BuildReport Build(string name, IEnumerable<string> candidates, int vocabSize)
    {
        if (vocabSize is not (65536 or 131072)) throw new StrataException($"vocab size must be 65536 or 131072, got {vocabSize}");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int cp = 0; cp < 0xD800; cp++) vocab[((char)cp).ToString()] = cp;
        for (int i = 0; i < SpecialTokens.Count; i++) vocab[SpecialTokens[i]] = 0xE000 + i;
        for (int id = 0xE000 + SpecialTokens.Count; id <= 0xE0FF; id++) vocab[$"<special_token_{id}>"] = id;
        for (int cp = 0xF900; cp < 0xFFFF; cp++) vocab[((char)cp).ToString()] = cp;

        var sorted = candidates.Distinct(StringComparer.Ordinal).ToList();
        foreach (var g in sorted)
            if (g.Any(char.IsSurrogate)) throw new StrataException($"n-gram '{g}' has a character outside the BMP; bvv vocabularies are BMP-only");
        sorted.Sort((x, y) => x.Length != y.Length ? y.Length.CompareTo(x.Length) : string.CompareOrdinal(x, y));
        var slots = Enumerable.Range(0xD800, 0x800).Concat(Enumerable.Range(0xE100, 0xF900 - 0xE100));
        if (vocabSize == 131072) slots = slots.Concat(Enumerable.Range(0x10000, 0x1FFFF - 0x10000));
        var placed = sorted.Zip(slots).ToList();
        foreach (var (g, id) in placed) vocab[g] = id;                  // a Python dict assignment: a repeated key moves

        var tokens = new string[vocabSize];
        foreach (var (t, id) in vocab) tokens[id] = t;
        for (int id = 0; id < vocabSize; id++) tokens[id] ??= $"<unused_{id}>";

        var merges = new List<(string, string)>();
        int unreachable = 0;
        foreach (var (g, _) in placed)
        {
            int before = merges.Count;
            for (int i = 1; i < g.Length; i++)
                if (vocab.ContainsKey(g[..i]) && vocab.ContainsKey(g[i..])) merges.Add((g[..i], g[i..]));
            if (merges.Count == before) unreachable++;
        }
        var tokenizer = new BpeTokenizer(name, tokens, merges, SpecialTokens, "<unk>", Eos);
        return new BuildReport(tokenizer, placed.Count, sorted.Count - placed.Count, merges.Count, unreachable);
    }

    private static string Resource(string file)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("bvv241/" + file)
            ?? throw new InvalidOperationException($"embedded resource bvv241/{file} is missing from the build");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
