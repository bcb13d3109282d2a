using System.Text;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>Real multiple-choice sets built from packages that install here: the bsdgames <c>quiz</c> tables (capitals,
/// elements, Shakespeare and poetry "which line comes next") and WordNet glosses (definition -> word). Four choices each
/// (chance 25%): the right answer and three distractors drawn, seeded, from other rows of the same table. Built
/// deterministically and cached as JSON lines.</summary>
internal static class QuizSets
{
    public const string QuizDir = "/usr/share/games/bsdgames/quiz";
    public const string WordNetDir = "/usr/share/wordnet";
    public const int Choices = 4;
    /// <summary>Bumped when a set's construction changes, so that stale caches are rebuilt.</summary>
    public const int BuildVersion = 1;

    public sealed record QuizSet(string Name, string Description, Func<long, IReadOnlyList<MultipleChoiceItem>> Build);

    public static IReadOnlyList<QuizSet> All { get; } =
    [
        new("quiz-capitals", "capital of a country (bsdgames quiz: europe, asia, africa, america)",
            seed => Facts(["europe", "asia", "africa", "america"], 0, 1, k => $"What is the capital of {k}?", seed)),
        new("quiz-states", "capital of a US state (bsdgames quiz: state)",
            seed => Facts(["state"], 0, 1, k => $"What is the capital of the US state of {k}?", seed)),
        new("quiz-elements", "chemical element from its symbol (bsdgames quiz: elements)",
            seed => Facts(["elements"], 0, 3, k => $"Which chemical element has the symbol {k}?", seed)),
        new("quiz-bard", "the next line of a Shakespeare passage (bsdgames quiz: bard)",
            seed => Facts(["bard"], 0, 1, k => $"Which line comes after \"{k}\"?", seed)),
        new("quiz-poetry", "the next line of a poem (bsdgames quiz: poetry)",
            seed => Facts(["poetry"], 0, 1, k => $"Which line comes after \"{k}\"?", seed)),
        new("wordnet-definitions", "the word for a WordNet definition, distractors of the same part of speech (500 synsets)",
            seed => WordNetDefinitions(500, seed)),
    ];

    public static QuizSet Get(string name) => All.FirstOrDefault(s => s.Name == name)
        ?? throw new StrataException($"unknown quiz set '{name}' (known: {string.Join(", ", All.Select(s => s.Name))})");

    /// <summary>The set's items from the cache (data/eval/NAME-seedN-vV.jsonl under <paramref name="home"/>), built first if missing.</summary>
    public static IReadOnlyList<MultipleChoiceItem> Load(QuizSet set, string home, long seed)
    {
        var path = Path.Combine(home, "data", "eval", $"{set.Name}-seed{seed}-v{BuildVersion}.jsonl");
        if (File.Exists(path)) return BenchmarkFiles.ReadJsonl(path);
        var items = set.Build(seed);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        BenchmarkFiles.WriteJsonl(path, items);
        return BenchmarkFiles.ReadJsonl(path);
    }

    /// <summary>One question per row of the tables: the question from field <paramref name="keyField"/>, the answer from
    /// <paramref name="answerField"/>, distractors from other rows' answers (distinct texts).</summary>
    public static IReadOnlyList<MultipleChoiceItem> Facts(IReadOnlyList<string> tables, int keyField, int answerField, Func<string, string> question, long seed)
    {
        var rows = new List<(string Key, string Answer, string Source)>();
        foreach (var t in tables)
            foreach (var (line, fields) in ReadQuizTable(Path.Combine(QuizDir, t)))
            {
                if (fields.Count <= Math.Max(keyField, answerField))
                    throw new StrataException(
                        $"{Path.Combine(QuizDir, t)}:{line}: expected at least {Math.Max(keyField, answerField) + 1} ':'-separated fields, got {fields.Count}");
                rows.Add((Canonical(fields[keyField]), Canonical(fields[answerField]), $"{t}:{line}"));
            }
        var answers = rows.Select(r => r.Answer).Distinct(StringComparer.Ordinal).ToList();
        var rng = new SplitMix64((ulong)seed);
        var items = new List<MultipleChoiceItem>();
        foreach (var (key, answer, source) in rows)
            items.Add(WithDistractors(question(key), answer, answers, ref rng, source));
        return items;
    }

    private static MultipleChoiceItem WithDistractors(string question, string answer, IReadOnlyList<string> pool, ref SplitMix64 rng, string source)
    {
        var choices = new List<string> { answer };
        while (choices.Count < Choices)
        {
            var d = pool[(int)rng.NextBelow(pool.Count)];
            if (!choices.Contains(d, StringComparer.OrdinalIgnoreCase)) choices.Add(d);
        }
        // shuffle, remembering where the answer went
        for (int i = choices.Count - 1; i > 0; i--) { int j = (int)rng.NextBelow(i + 1); (choices[i], choices[j]) = (choices[j], choices[i]); }
        return new MultipleChoiceItem(question, BenchmarkFiles.Letters[..Choices], choices, choices.IndexOf(answer), source);
    }

    /// <summary>A quiz table's records: lines ending in a backslash continue on the next; fields are separated by
    /// unescaped ':' (<c>\:</c> is a literal colon).</summary>
    public static IEnumerable<(int Line, List<string> Fields)> ReadQuizTable(string path)
    {
        if (!File.Exists(path)) throw new StrataException(
            $"{path}: missing; it comes from the Debian package bsdgames (apt-get install bsdgames; in a Strata checkout scripts/bootstrap.sh installs it)");
        var record = new StringBuilder();
        int lineNo = 0, start = 0;
        foreach (var raw in File.ReadLines(path, Encoding.UTF8))
        {
            lineNo++;
            if (record.Length == 0) start = lineNo;
            bool continues = raw.EndsWith('\\') && !raw.EndsWith("\\\\");
            record.Append(continues ? raw[..^1] : raw);
            if (continues) continue;
            var text = record.ToString();
            record.Clear();
            if (text.Trim().Length == 0) continue;
            yield return (start, SplitFields(text));
        }
    }

    private static List<string> SplitFields(string record)
    {
        var fields = new List<string>();
        var f = new StringBuilder();
        for (int i = 0; i < record.Length; i++)
        {
            if (record[i] == '\\' && i + 1 < record.Length) { f.Append(record[i]).Append(record[++i]); continue; }
            if (record[i] == ':') { fields.Add(f.ToString()); f.Clear(); }
            else f.Append(record[i]);
        }
        fields.Add(f.ToString());
        return fields;
    }

    /// <summary>The full written form of a quiz pattern: optional parts <c>{...}</c> included, the first of the
    /// alternatives <c>a|b</c> and <c>[a|b]</c> taken, escapes resolved ("Cal{if{ornia}}|CA" -> "California").</summary>
    public static string Canonical(string pattern)
    {
        int i = 0;
        var s = Overstrike(Alternatives(pattern, ref i, '\0'));
        return string.Join(' ', s.Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    // reads alternatives up to the closing bracket (or the end) and returns the first
    private static string Alternatives(string p, ref int i, char close)
    {
        var first = new StringBuilder();
        var current = new StringBuilder();
        bool inFirst = true;
        while (i < p.Length && p[i] != close)
        {
            char c = p[i++];
            if (c == '\\' && i < p.Length) current.Append(p[i++]);
            else if (c == '{') { current.Append(Alternatives(p, ref i, '}')); i++; }
            else if (c == '[') { current.Append(Alternatives(p, ref i, ']')); i++; }
            else if (c == '|') { if (inFirst) first.Append(current); inFirst = false; current.Clear(); }
            else current.Append(c);
        }
        if (inFirst) first.Append(current);
        return first.ToString();
    }

    /// <summary>The tables write accented letters as typewriter overstrikes, "'\be" or "e\b'" (\b = backspace): composed
    /// here (é). The runtime has no Unicode normalisation (invariant globalisation), hence the table.</summary>
    private static string Overstrike(string s)
    {
        if (!s.Contains('\b')) return s;
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (i + 2 < s.Length && s[i + 1] == '\b')
            {
                var (a, b) = (s[i], s[i + 2]);
                sb.Append(Composed.GetValueOrDefault((a, b), Composed.GetValueOrDefault((b, a), b)));
                i += 2;
            }
            else if (s[i] != '\b') sb.Append(s[i]);
        }
        return sb.ToString();
    }

    // (accent, letter) -> the precomposed letter
    private static readonly Dictionary<(char, char), char> Composed = new[]
    {
        ('\'', "aáeéiíoóuúyýAÁEÉIÍOÓUÚYÝcćnńsśzź"), ('`', "aàeèiìoòuùAÀEÈIÌOÒUÙ"), ('^', "aâeêiîoôuûAÂEÊIÎOÔUÛ"),
        ('~', "aãnñoõAÃNÑOÕ"), (',', "cçCÇ"), ('"', "aäeëiïoöuüyÿAÄEËIÏOÖUÜ"), (':', "aäeëiïoöuüyÿAÄEËIÏOÖUÜ"),
    }.SelectMany(x => Enumerable.Range(0, x.Item2.Length / 2).Select(k => (Key: (x.Item1, x.Item2[2 * k]), Value: x.Item2[2 * k + 1])))
     .ToDictionary(x => x.Key, x => x.Value);

    /// <summary>Definition -> word: <paramref name="count"/> synsets drawn (seeded) from WordNet's data files, asked as
    /// "Which word means: GLOSS?"; the answer is the synset's first lemma, distractors are first lemmas of other
    /// synsets of the same part of speech. Glosses that contain their answer are skipped.</summary>
    public static IReadOnlyList<MultipleChoiceItem> WordNetDefinitions(int count, long seed)
    {
        var byPos = new Dictionary<string, List<(string Lemma, string Gloss, string Source)>>();
        foreach (var pos in new[] { "noun", "verb", "adj", "adv" })
        {
            var path = Path.Combine(WordNetDir, $"data.{pos}");
            if (!File.Exists(path)) throw new StrataException(
                $"{path}: missing; it comes from the Debian package wordnet-base (apt-get install wordnet-base; in a Strata checkout " +
                "scripts/bootstrap.sh installs it)");
            var list = byPos[pos] = new();
            int lineNo = 0;
            foreach (var line in File.ReadLines(path))
            {
                lineNo++;
                if (line.StartsWith("  ")) continue;                       // the licence header
                int bar = line.IndexOf(" | ", StringComparison.Ordinal);
                var head = (bar < 0 ? line : line[..bar]).Split(' ');
                if (bar < 0 || head.Length < 5) throw new StrataException(
                    $"{path}:{lineNo}: not a WordNet data line (offset lex_filenum ss_type w_cnt word ... | gloss)");
                var lemma = head[4].Replace('_', ' ');
                int paren = lemma.IndexOf('(');                               // adjective markers: "(a)", "(p)", "(ip)"
                if (paren > 0) lemma = lemma[..paren];
                var gloss = line[(bar + 3)..].Split(';')[0].Trim();
                if (gloss.Length < 8 || Question(gloss).Contains(lemma, StringComparison.OrdinalIgnoreCase)) continue;
                list.Add((lemma, gloss, $"data.{pos}:{lineNo}"));
            }
        }
        var all = byPos.SelectMany(kv => kv.Value.Select(e => (Pos: kv.Key, e.Lemma, e.Gloss, e.Source))).ToList();
        var pools = byPos.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value.Select(e => e.Lemma).Distinct(StringComparer.Ordinal).ToList());
        var rng = new SplitMix64((ulong)seed);
        var chosen = new HashSet<int>();
        var items = new List<MultipleChoiceItem>();
        while (items.Count < Math.Min(count, all.Count))
        {
            int k = (int)rng.NextBelow(all.Count);
            if (!chosen.Add(k)) continue;
            var e = all[k];
            items.Add(WithDistractors(Question(e.Gloss), e.Lemma, pools[e.Pos], ref rng, e.Source));
        }
        return items;

        static string Question(string gloss) => $"Which word means \"{gloss}\"?";
    }
}
