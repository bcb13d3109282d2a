using System.Globalization;
using System.Text;
using Strata.Util;

namespace Strata.Tokenization;

/// <summary>
/// The bvv241 n-gram files: one Python literal, a list of per-language dicts
/// <c>{'lang': 'en', 'language_name': 'English', 'top_ngrams': {2: [('th', 3464625), ...], 3: [...]}}</c>, each list
/// sorted by count, descending (the author's _n-gramms-from-wiki notebook). Read with a small parser for exactly that subset of Python
/// literals (strings with escapes, integers, tuples, lists, dicts); anything else is an error naming the offset.
/// </summary>
public sealed record NgramList(IReadOnlyList<LanguageNgrams> Languages)
{
    public static NgramList Parse(string text, string source)
    {
        var p = new Parser(text, source);
        var value = p.Value();
        p.End();
        if (value is not List<object> langs) throw p.Error(0, "expected a list of per-language dicts");
        var result = new List<LanguageNgrams>();
        foreach (var l in langs)
        {
            if (l is not Dictionary<object, object> d || !d.TryGetValue("lang", out var lang) || lang is not string code
                || !d.TryGetValue("top_ngrams", out var tops) || tops is not Dictionary<object, object> byN)
                throw new StrataException($"{source}: each entry needs 'lang' and 'top_ngrams' (entry {result.Count})");
            var lists = new Dictionary<int, IReadOnlyList<(string Gram, long Count)>>();
            foreach (var (k, v) in byN)
            {
                if (k is not long n || v is not List<object> items) throw new StrataException(
                    $"{source}: {code}: top_ngrams keys must be integers and values lists");
                lists[(int)n] = items.Select(it => it is List<object> { Count: 2 } t && t[0] is string g && t[1] is long c
                    ? (g, c) : throw new StrataException($"{source}: {code}: n-gram entries must be (string, count) tuples")).ToList();
            }
            result.Add(new LanguageNgrams(code, d.TryGetValue("language_name", out var nm) ? nm as string ?? code : code, lists));
        }
        return new NgramList(result);
    }

    public static NgramList Load(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Writes the same Python-literal format (so mined lists can be read by the author's notebooks too).</summary>
    public string ToPythonLiteral()
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < Languages.Count; i++)
        {
            var l = Languages[i];
            if (i > 0) sb.Append(", ");
            sb.Append("{'lang': ").Append(Quote(l.Lang)).Append(", 'language_name': ").Append(Quote(l.Name)).Append(", 'top_ngrams': {");
            sb.AppendJoin(", ", l.TopNgrams.OrderBy(kv => kv.Key).Select(kv =>
                $"{kv.Key}: [" + string.Join(", ", kv.Value.Select(g => $"({Quote(g.Gram)}, {g.Count})")) + "]"));
            sb.Append("}}");
        }
        return sb.Append(']').ToString();
    }

    /// <summary>Python's repr of a str.</summary>
    public static string Quote(string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(q);
        foreach (var r in s.EnumerateRunes())
        {
            int v = r.Value;
            if (v == '\\') sb.Append(@"\\");
            else if (v == q) sb.Append('\\').Append(q);
            else if (v == '\n') sb.Append(@"\n");
            else if (v == '\r') sb.Append(@"\r");
            else if (v == '\t') sb.Append(@"\t");
            else if (v < 0x20 || v == 0x7F) sb.Append($"\\x{v:x2}");
            else if (!IsPrintable(r)) sb.Append(v <= 0xFF ? $"\\x{v:x2}" : v <= 0xFFFF ? $"\\u{v:x4}" : $"\\U{v:x8}");
            else sb.Append(r.ToString());
        }
        return sb.Append(q).ToString();
    }

    private static bool IsPrintable(Rune r) => Rune.GetUnicodeCategory(r) switch
    {
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
            or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => false,
        UnicodeCategory.SpaceSeparator => r.Value == ' ',
        _ => true,
    };

    private sealed class Parser(string text, string source)
    {
        /// <summary>Nesting deeper than this is refused (the published lists nest 5 deep; a recursive reader must stop
        /// somewhere before the stack does).</summary>
        private const int MaxDepth = 32;
        private int _pos, _depth;

        public StrataException Error(int at, string what) => new($"{source}: offset {at}: {what}");

        private void Skip() { while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++; }

        public void End()
        {
            Skip();
            if (_pos != text.Length) throw Error(_pos, "unexpected text after the literal");
        }

        public object Value()
        {
            Skip();
            if (_pos >= text.Length) throw Error(_pos, "unexpected end of file");
            char c = text[_pos];
            if (c is '[' or '(' or '{' && ++_depth > MaxDepth) throw Error(_pos, $"nested more than {MaxDepth} deep");
            try
            {
                switch (c)
                {
                    case '[': return Sequence('[', ']');
                    case '(': return Sequence('(', ')');
                    case '{': return Dict();
                    case '\'' or '"': return Str();
                    default:
                        if (c == '-' || char.IsAsciiDigit(c)) return Int();
                        throw Error(_pos, $"unexpected character U+{(int)c:X4} (this reader takes strings, integers, tuples, lists and dicts)");
                }
            }
            finally { if (c is '[' or '(' or '{') _depth--; }
        }

        private List<object> Sequence(char open, char close)
        {
            _pos++;
            var items = new List<object>();
            while (true)
            {
                Skip();
                if (_pos < text.Length && text[_pos] == close) { _pos++; return items; }
                items.Add(Value());
                Skip();
                if (_pos < text.Length && text[_pos] == ',') { _pos++; continue; }
                if (_pos < text.Length && text[_pos] == close) { _pos++; return items; }
                throw Error(_pos, $"expected ',' or '{close}'");
            }
        }

        private Dictionary<object, object> Dict()
        {
            _pos++;
            var d = new Dictionary<object, object>();
            while (true)
            {
                Skip();
                if (_pos < text.Length && text[_pos] == '}') { _pos++; return d; }
                var key = Value();
                Skip();
                if (_pos >= text.Length || text[_pos] != ':') throw Error(_pos, "expected ':'");
                _pos++;
                d[key] = Value();
                Skip();
                if (_pos < text.Length && text[_pos] == ',') { _pos++; continue; }
                if (_pos < text.Length && text[_pos] == '}') { _pos++; return d; }
                throw Error(_pos, "expected ',' or '}'");
            }
        }

        private object Int()
        {
            int start = _pos;
            if (text[_pos] == '-') _pos++;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos])) _pos++;
            return long.TryParse(text.AsSpan(start, _pos - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
                ? v : throw Error(start, "bad integer");
        }

        private string Str()
        {
            char q = text[_pos];
            int start = _pos++;
            var sb = new StringBuilder();
            while (true)
            {
                if (_pos >= text.Length) throw Error(start, "unterminated string");
                char c = text[_pos++];
                if (c == q) return sb.ToString();
                if (c == '\n') throw Error(start, "unterminated string");
                if (c != '\\') { sb.Append(c); continue; }
                if (_pos >= text.Length) throw Error(start, "unterminated string");
                char e = text[_pos++];
                switch (e)
                {
                    case '\\': sb.Append('\\'); break;
                    case '\'': sb.Append('\''); break;
                    case '"': sb.Append('"'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'a': sb.Append('\a'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'v': sb.Append('\v'); break;
                    case '0': sb.Append('\0'); break;
                    case 'x': sb.Append(Hex(2)); break;
                    case 'u': sb.Append(Hex(4)); break;
                    case 'U': sb.Append(Hex(8)); break;
                    default: throw Error(_pos - 2, $"unsupported escape '\\{e}'");
                }
            }
        }

        private string Hex(int digits)
        {
            if (_pos + digits > text.Length || !int.TryParse(text.AsSpan(_pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v)
                || !Rune.IsValid(v))
                throw Error(_pos, "bad escape");
            _pos += digits;
            return char.ConvertFromUtf32(v);
        }
    }
}

/// <summary>One language's n-gram lists: n -> (gram, count), most frequent first.</summary>
public sealed record LanguageNgrams(string Lang, string Name, IReadOnlyDictionary<int, IReadOnlyList<(string Gram, long Count)>> TopNgrams);
