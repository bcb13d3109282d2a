// Byte-free BPE over Unicode scalar values with Hugging Face `tokenizers` semantics (no pre-tokenizer, merges by rank):
//  1. added special tokens are split off first (leftmost match, longest at that position);
//  2. no normaliser, no pre-tokeniser: the text between them is one word;
//  3. each scalar becomes its single-character id, or <unk> (one per scalar, fuse_unk false);
//  4. merges are applied as transformers' Word::merge_all does: a priority queue on (rank, position), expired
//     entries skipped, new pairs queued after each merge.
// Speed-ups that keep the ids identical: a merge can never span a character that occurs in no merge, so the word is
// cut at such characters and the pieces are merged separately; pieces are cached per thread (up to 8 characters in a
// direct-mapped table keyed by the characters themselves, longer ones in two generations, so frequent pieces survive a
// flood of rare ones); merges are looked up in an open-addressing table; a piece of up to 64 characters is merged in
// stack arrays by repeatedly taking the leftmost lowest-rank pair (the same order as the priority queue).
using System.Text;
using Strata.Util;

namespace Strata.Tokenization;

public sealed class BpeTokenizer : ITokenizer
{
    private readonly string[] _tokens;                                  // id -> string
    private readonly Dictionary<string, int> _ids;                      // string -> id
    private readonly MergeTable _merges;                                // (left id, right id) -> (rank, merged id)
    private readonly int[] _bmpIds;                                     // BMP scalar -> single-character id, or -1
    private readonly byte[] _kind;                                      // BMP code unit -> Merging, Barrier or Surrogate
    private readonly (string Text, int Id)[] _specials;                 // longest first
    private readonly System.Buffers.SearchValues<char> _specialStarts;  // first characters of the special tokens
    private readonly ThreadLocal<PieceCache> _cache = new(() => new PieceCache());

    public BpeTokenizer(string name, IReadOnlyList<string> tokens, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<string> specialTokens, string unkToken, int? endOfText = null)
    {
        Name = name;
        _tokens = tokens.ToArray();
        _ids = new Dictionary<string, int>(_tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < _tokens.Length; i++)
            if (!_ids.TryAdd(_tokens[i], i)) throw new StrataException($"token '{_tokens[i]}' appears twice (ids {_ids[_tokens[i]]} and {i})");
        Unk = _ids.TryGetValue(unkToken, out var u) ? u : throw new StrataException($"unk token '{unkToken}' is not in the vocabulary");
        UnkToken = unkToken;
        Merges = merges.ToList();
        _merges = new MergeTable(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r) = merges[rank];
            int li = Id(l, rank), ri = Id(r, rank), ni = Id(l + r, rank);
            _merges.TryAdd(li, ri, rank, ni);
        }
        SpecialTokens = specialTokens.ToList();
        _specials = specialTokens.Select(s => (s, _ids.TryGetValue(s, out var id) ? id : throw new StrataException(
            $"special token '{s}' is not in the vocabulary")))
            .OrderByDescending(s => s.s.Length).ToArray();
        _specialStarts = System.Buffers.SearchValues.Create(_specials.Select(s => s.Text[0]).Distinct().ToArray());
        EndOfText = endOfText;

        _bmpIds = new int[65536];
        Array.Fill(_bmpIds, -1);
        foreach (var (t, id) in _ids)
            if (t.Length == 1 && !char.IsSurrogate(t[0])) _bmpIds[t[0]] = id;
        _kind = new byte[65536];
        Array.Fill(_kind, Barrier);
        foreach (var (l, r) in Merges)
            foreach (var c in l + r) _kind[c] = Merging;
        _kind.AsSpan(0xD800, 0x800).Fill(Surrogate);

        int Id(string s, int rank) => _ids.TryGetValue(s, out var id) ? id
            : throw new StrataException($"merges[{rank}]: '{s}' is not in the vocabulary");
    }

    public string Name { get; }
    public int VocabSize => _tokens.Length;
    public int? EndOfText { get; }
    public int Unk { get; }
    public string UnkToken { get; }
    public IReadOnlyList<string> Tokens => _tokens;
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    public IReadOnlyList<string> SpecialTokens { get; }

    /// <summary>True for a character in no merge and in no special token: BPE never joins it to a neighbour.</summary>
    public bool NeverMergesAcross(char c) => _kind[c] != Merging && !_specials.Any(s => s.Text.Contains(c));

    /// <summary>Empties this thread's piece cache: the next encodings run as on a tokenizer just loaded (the cold
    /// case the benchmark measures).</summary>
    public void ClearCache() => _cache.Value!.Clear();

    public int? IdOf(string token) => _ids.TryGetValue(token, out var id) ? id : null;
    public string TokenOf(int id) => _tokens[id];


    public int[] Encode(string text)
    {
        var ids = new List<int>(text.Length);
        Encode(text, ids);
        return ids.ToArray();
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids)
    {
        var cache = _cache.Value!;
        int start = 0;
        for (int i = 0, next; (next = text[i..].IndexOfAny(_specialStarts)) >= 0;)
        {
            i += next;
            int length = 0;
            foreach (var (s, id) in _specials)
            {
                if (!text[i..].StartsWith(s, StringComparison.Ordinal)) continue;
                EncodeWord(text[start..i], ids, cache);
                ids.Add(id);
                length = s.Length;
                break;
            }
            if (length > 0) start = i += length;
            else i++;
        }
        EncodeWord(text[start..], ids, cache);
    }

    private const byte Merging = 0, Barrier = 1, Surrogate = 2;

    /// <summary>BPE over one word (no special tokens inside), cut at barrier characters (never part of a merge: their
    /// own id, or &lt;unk&gt;) and at surrogates (a pair outside the BMP is its own id if the vocabulary has one, else
    /// &lt;unk&gt;; never merged).</summary>
    private void EncodeWord(ReadOnlySpan<char> word, List<int> ids, PieceCache cache)
    {
        int pieceStart = -1;
        for (int i = 0; i < word.Length; i++)
        {
            byte kind = _kind[word[i]];
            if (kind == Merging)
            {
                if (pieceStart < 0) pieceStart = i;
                continue;
            }
            FlushPiece(word, ref pieceStart, i, ids, cache);
            char c = word[i];
            if (kind == Surrogate && char.IsHighSurrogate(c) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]))
            {
                ids.Add(_ids.TryGetValue(word.Slice(i, 2).ToString(), out var sid) ? sid : Unk);
                i++;
                continue;
            }
            int id = kind == Surrogate ? -1 : _bmpIds[c];
            ids.Add(id >= 0 ? id : Unk);
        }
        FlushPiece(word, ref pieceStart, word.Length, ids, cache);
    }

    private void FlushPiece(ReadOnlySpan<char> word, ref int pieceStart, int end, List<int> ids, PieceCache cache)
    {
        if (pieceStart < 0) return;
        var piece = word[pieceStart..end];
        pieceStart = -1;
        if (piece.Length == 1) { ids.Add(_bmpIds[piece[0]] is var one and >= 0 ? one : Unk); return; }
        if (piece.Length <= ShortPieces.MaxLength) { cache.Short.Encode(piece, ids, this); return; }
        if (cache.TryGet(piece, out var cached)) { ids.AddRange(cached); return; }
        int before = ids.Count;
        if (piece.Length <= ShortPiece) MergeShort(piece, ids);
        else ids.AddRange(MergeAll(piece));
        cache.Add(piece, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids)[before..].ToArray());
    }

    private const int ShortPiece = 64;

    /// <summary>Word::merge_all on a short piece: the symbols in an array, each adjacent pair's merge rank beside it; the
    /// leftmost lowest rank is merged and only its neighbours' ranks change.</summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private void MergeShort(ReadOnlySpan<char> piece, List<int> ids)
    {
        int n = piece.Length;
        Span<int> c = stackalloc int[n], rank = stackalloc int[n], merged = stackalloc int[n];
        for (int i = 0; i < n; i++) c[i] = _bmpIds[piece[i]] is var id and >= 0 ? id : Unk;
        for (int i = 0; i + 1 < n; i++) (rank[i], merged[i]) = _merges.Find(c[i], c[i + 1]);
        int count = n;
        while (count > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < count; i++)
                if (rank[i] < bestRank) (best, bestRank) = (i, rank[i]);
            if (best < 0) break;
            c[best] = merged[best];
            count--;
            for (int i = best + 1; i < count; i++) (c[i], rank[i], merged[i]) = (c[i + 1], rank[i + 1], merged[i + 1]);
            if (best > 0) (rank[best - 1], merged[best - 1]) = _merges.Find(c[best - 1], c[best]);
            if (best + 1 < count) (rank[best], merged[best]) = _merges.Find(c[best], c[best + 1]);
        }
        foreach (var id in c[..count]) ids.Add(id);
    }

    /// <summary>transformers' Word::merge_all on one piece of BMP characters.</summary>
    private int[] MergeAll(ReadOnlySpan<char> piece)
    {
        int n = piece.Length;
        var c = new int[n];
        var prev = new int[n];
        var next = new int[n];
        var len = new int[n];
        for (int i = 0; i < n; i++)
        {
            int id = _bmpIds[piece[i]];
            c[i] = id >= 0 ? id : Unk;
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            len[i] = 1;
        }
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.Find(c[i], c[i + 1]) is (var r, var m) && r != int.MaxValue) queue.Enqueue((i, m), (long)r << 32 | (uint)i);
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (len[pos] == 0 || next[pos] == -1) continue;
            int right = next[pos];
            if (_merges.Find(c[pos], c[right]).NewId != top.NewId) continue;
            c[pos] = top.NewId;
            len[pos] += len[right];
            next[pos] = next[right];
            len[right] = 0;
            if (next[pos] != -1) prev[next[pos]] = pos;
            if (prev[pos] >= 0 && _merges.Find(c[prev[pos]], c[pos]) is (var lr, var left) && lr != int.MaxValue)
                queue.Enqueue((prev[pos], left), (long)lr << 32 | (uint)prev[pos]);
            if (next[pos] != -1 && _merges.Find(c[pos], c[next[pos]]) is (var ar, var after) && ar != int.MaxValue)
                queue.Enqueue((pos, after), (long)ar << 32 | (uint)pos);
        }
        var result = new List<int>();
        for (int i = 0; i != -1 && i < n; i = next[i]) result.Add(c[i]);
        return result.ToArray();
    }

    /// <summary>Merges by (left id, right id): open addressing over a power-of-two table, keys packed in one long.</summary>
    private sealed class MergeTable
    {
        private readonly long[] _keys;
        private readonly long[] _values;                                   // rank << 32 | new id
        private readonly int _mask;

        public MergeTable(int count)
        {
            int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, count * 2));
            (_keys, _values, _mask) = (new long[size], new long[size], size - 1);
            Array.Fill(_keys, -1L);
        }

        private int Slot(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> 40) & _mask;

        /// <summary>Adds a merge unless the pair has one already (the first, lowest rank, wins, as a dictionary's TryAdd).</summary>
        public void TryAdd(int left, int right, int rank, int newId)
        {
            long key = (long)left << 32 | (uint)right;
            int i = Slot(key);
            while (_keys[i] != -1) { if (_keys[i] == key) return; i = (i + 1) & _mask; }
            _keys[i] = key;
            _values[i] = (long)rank << 32 | (uint)newId;
        }

        /// <summary>(rank, merged id) of the pair, or (int.MaxValue, -1) when it does not merge.</summary>
        public (int Rank, int NewId) Find(int left, int right)
        {
            long key = (long)left << 32 | (uint)right;
            for (int i = Slot(key); ; i = (i + 1) & _mask)
            {
                long k = _keys[i];
                if (k == key) return ((int)(_values[i] >> 32), (int)_values[i]);
                if (k == -1) return (int.MaxValue, -1);
            }
        }
    }

    /// <summary>Ids of the pieces of 2 to <see cref="MaxLength"/> characters seen last, per thread: a direct-mapped
    /// table keyed by the piece's characters packed into two longs, so a hit costs one hash and one compare instead of a
    /// merge's several merge-table probes; a piece that collides replaces the one before it.</summary>
    private sealed class ShortPieces
    {
        public const int MaxLength = 8;
        private const int Bits = 14;

        [System.Runtime.CompilerServices.InlineArray(MaxLength)]
        private struct Ids { private int _first; }

        private struct Entry
        {
            public ulong Low, High;                                        // characters 0-3 and 4-7, 16 bits each
            public int Length, Count;                                      // Length 0: empty
            public Ids Ids;
        }

        private readonly Entry[] _entries = new Entry[1 << Bits];

        public void Clear() => Array.Clear(_entries);

        public void Encode(ReadOnlySpan<char> piece, List<int> ids, BpeTokenizer tokenizer)
        {
            ulong low = 0, high = 0;
            for (int i = 0; i < piece.Length; i++)
                if (i < 4) low |= (ulong)piece[i] << (16 * i);
                else high |= (ulong)piece[i] << (16 * (i - 4));
            ref var e = ref _entries[(int)((low * 0x9E3779B97F4A7C15UL ^ high * 0xC2B2AE3D27D4EB4FUL) >> (64 - Bits))];
            if (e.Length != piece.Length || e.Low != low || e.High != high)
            {
                int before = ids.Count;
                tokenizer.MergeShort(piece, ids);
                (e.Low, e.High, e.Length, e.Count) = (low, high, piece.Length, ids.Count - before);
                System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids)[before..].CopyTo(e.Ids);
                return;
            }
            for (int i = 0; i < e.Count; i++) ids.Add(e.Ids[i]);
        }
    }

    /// <summary>Ids of pieces seen before, per thread: two generations of at most <see cref="Generation"/> pieces each.
    /// When the young one fills it becomes the old one, and a piece found in the old one is copied back to the young:
    /// frequent pieces stay, a stream of rare ones cannot flush them.</summary>
    private sealed class PieceCache
    {
        private const int Generation = 100_000;
        private Dictionary<string, int[]> _young = new(), _old = new();
        public readonly ShortPieces Short = new();

        /// <summary>Forgets every piece; the memory is kept.</summary>
        public void Clear()
        {
            (_young, _old) = (new(), new());
            Short.Clear();
        }

        public bool TryGet(ReadOnlySpan<char> piece, out int[] ids)
        {
            if (_young.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(piece, out ids!)) return true;
            if (!_old.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(piece, out ids!)) return false;
            Add(piece, ids);
            return true;
        }

        public void Add(ReadOnlySpan<char> piece, int[] ids)
        {
            if (_young.Count >= Generation) (_old, _young) = (_young, new Dictionary<string, int[]>(Generation));
            _young[piece.ToString()] = ids;
        }
    }

    /// <summary>Concatenation of the tokens' strings (the empty Sequence decoder); special tokens included.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        foreach (var id in ids) sb.Append((uint)id < (uint)_tokens.Length ? _tokens[id] : throw new ArgumentOutOfRangeException(nameof(ids),
            $"id {id} is outside the vocabulary of {_tokens.Length}"));
        return sb.ToString();
    }
}
