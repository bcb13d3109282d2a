// Training a BPE vocabulary of a chosen size on a corpus, for the same pipeline as bvv241 (BpeTokenizer: Unicode
// scalars as the base symbols, no normaliser, no pre-tokeniser, merges by rank), so the tokenizer.json it writes is
// read by the Hugging Face library to the same ids as by Strata.
//
// The base: the special tokens (<unk>, <s>, </s>, <pad>) and every BMP character that occurs at least
// min_frequency times (the most frequent first if they do not all fit); other characters encode as <unk>.
// The merges are learnt the classic way (Sennrich et al. 2016; the Hugging Face BpeTrainer): count the corpus's
// words, then repeatedly merge the most frequent adjacent pair (ties: the pair of lowest ids), updating the pair
// counts of only the words that changed, until the vocabulary is full or no pair occurs min_frequency times.
// Words are GPT-2's pre-tokenisation pieces (a letter run, digit run or punctuation run with at most one leading
// space, or a whitespace run), so no learnt token crosses a word boundary. Encoding then needs no pre-tokeniser:
// a merge can only join what once stood inside one word, and whole-text BPE is what both libraries run.
using System.Text.RegularExpressions;
using Strata.Util;

namespace Strata.Tokenization;

public static partial class BpeTrainer
{
    /// <summary>The special tokens, at ids 0..3: unknown, beginning and end of text (placed between documents), padding.</summary>
    public static readonly IReadOnlyList<string> SpecialTokens = ["<unk>", "<s>", "</s>", "<pad>"];

    [GeneratedRegex(@"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Pieces();

    /// <summary>Counts the words of <paramref name="text"/> into <paramref name="words"/>.</summary>
    public static void CountWords(string text, Dictionary<string, long> words)
    {
        foreach (var m in Pieces().EnumerateMatches(text))
        {
            var w = text.Substring(m.Index, m.Length);
            words[w] = words.GetValueOrDefault(w) + 1;
        }
    }

    /// <summary>A vocabulary of at most <paramref name="vocabSize"/> ids learnt from word counts.</summary>
    public static BpeTokenizer Train(string name, IReadOnlyDictionary<string, long> words, int vocabSize, int minFrequency = 2)
    {
        if (vocabSize < SpecialTokens.Count + 1 || vocabSize > 1 << 24)
            throw new StrataException($"--vocab-size: must be in {SpecialTokens.Count + 1}..{1 << 24}, got {vocabSize}");
        if (minFrequency < 1) throw new StrataException($"--min-frequency: must be >= 1, got {minFrequency}");

        // the alphabet: BMP characters by frequency (then code point), as many as fit
        var charCounts = new long[65536];
        foreach (var (w, n) in words)
            foreach (var c in w) charCounts[c] += n;
        var alphabet = Enumerable.Range(0, 65536).Where(c => charCounts[c] >= minFrequency && !char.IsSurrogate((char)c))
            .OrderByDescending(c => charCounts[c]).ThenBy(c => c).Take(vocabSize - SpecialTokens.Count).Order().ToList();
        var tokens = new List<string>(SpecialTokens);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) ids[tokens[i]] = i;
        var charId = new int[65536];
        Array.Fill(charId, -1);
        foreach (var c in alphabet)
        {
            charId[c] = tokens.Count;
            ids[((char)c).ToString()] = tokens.Count;
            tokens.Add(((char)c).ToString());
        }

        // words as symbol sequences, cut where a character is outside the alphabet (it never merges)
        var seqs = new List<int[]>();
        var counts = new List<long>();
        foreach (var (w, n) in words.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            int start = 0;
            for (int i = 0; i <= w.Length; i++)
            {
                if (i < w.Length && charId[w[i]] >= 0) continue;
                if (i - start >= 2)
                {
                    seqs.Add(w[start..i].Select(c => charId[c]).ToArray());
                    counts.Add(n);
                }
                start = i + 1;
            }
        }

        var pairs = new Dictionary<(int, int), long>();
        var where = new Dictionary<(int, int), HashSet<int>>();
        for (int s = 0; s < seqs.Count; s++) AddPairs(s, +1);
        var queue = new PriorityQueue<(int, int), (long, int, int)>();
        foreach (var (p, n) in pairs) queue.Enqueue(p, (-n, p.Item1, p.Item2));

        var merges = new List<(string, string)>();
        while (tokens.Count < vocabSize && queue.TryDequeue(out var pair, out var priority))
        {
            long n = pairs.GetValueOrDefault(pair);
            if (n != -priority.Item1)
            {
                if (n > 0) queue.Enqueue(pair, (-n, pair.Item1, pair.Item2));            // its count changed since queued
                continue;
            }
            if (n < minFrequency) break;
            var (l, r) = pair;
            string merged = tokens[l] + tokens[r];
            if (!ids.TryGetValue(merged, out int id))
            {
                id = tokens.Count;
                ids[merged] = id;
                tokens.Add(merged);
            }
            merges.Add((tokens[l], tokens[r]));
            var touched = new HashSet<(int, int)>();
            foreach (var s in where[pair].ToList())
            {
                AddPairs(s, -1, touched);
                seqs[s] = Merge(seqs[s], l, r, id);
                AddPairs(s, +1, touched);
            }
            foreach (var p in touched)
                if (pairs.GetValueOrDefault(p) is > 0 and var c) queue.Enqueue(p, (-c, p.Item1, p.Item2));
        }
        return new BpeTokenizer(name, tokens, merges, SpecialTokens, SpecialTokens[0], endOfText: ids["</s>"]);

        void AddPairs(int s, int sign, HashSet<(int, int)>? touched = null)
        {
            var q = seqs[s];
            for (int i = 0; i + 1 < q.Length; i++)
            {
                var p = (q[i], q[i + 1]);
                long v = pairs.GetValueOrDefault(p) + sign * counts[s];
                if (v == 0) pairs.Remove(p); else pairs[p] = v;
                if (sign > 0)
                {
                    if (!where.TryGetValue(p, out var set)) where[p] = set = new HashSet<int>();
                    set.Add(s);                  // (a word that lost the pair stays listed: merging it there changes nothing)
                }
                touched?.Add(p);
            }
        }
    }

    /// <summary>The sequence with every non-overlapping (l, r), left to right, replaced by <paramref name="id"/>.</summary>
    private static int[] Merge(int[] q, int l, int r, int id)
    {
        var o = new List<int>(q.Length);
        for (int i = 0; i < q.Length; i++)
        {
            if (i + 1 < q.Length && q[i] == l && q[i + 1] == r) { o.Add(id); i++; }
            else o.Add(q[i]);
        }
        return o.ToArray();
    }
}
