using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace Strata.Data;

/// <summary>
/// One string field of the JSON object on a line of a JSON-lines file, found in one pass over the line's bytes. The
/// whole line is checked as JSON (RFC 8259, as System.Text.Json reads it by default: no comments, no trailing commas,
/// at most 64 levels deep), and only the field's value is decoded: its UTF-8 runs transcoded and its escapes (\uXXXX
/// included, the form Python's json.dumps writes every non-ASCII character in) written straight to UTF-16. When the
/// field appears more than once, the last one counts, as in System.Text.Json's TryGetProperty. Invalid UTF-8 inside a
/// string or outside one is an <see cref="InvalidLine"/> like any other. One instance per file read (not shared between
/// threads): it keeps its character buffer from line to line.
/// </summary>
internal sealed class JsonLineField(string field)
{
    /// <summary>Why a line gives no text; the message reads after "file:line: ".</summary>
    public sealed class InvalidLine(string message) : Exception(message);

    private const int MaxDepth = 64;
    private static readonly SearchValues<byte> StringStops = SearchValues.Create(
        [(byte)'"', (byte)'\\', .. Enumerable.Range(0, 0x20).Select(b => (byte)b)]);

    private readonly byte[] _name = Encoding.UTF8.GetBytes(field);
    private char[] _chars = new char[4096];

    /// <summary>The field's text; throws <see cref="InvalidLine"/> when the line is not a JSON object, has no such
    /// field, holds something other than a string in it, or a string with an escaped lone surrogate.</summary>
    public string Read(ReadOnlySpan<byte> line)
    {
        int pos = SkipSpace(line, 0);
        if (At(line, pos) != '{') throw Syntax(pos, "'{' expected");
        string? text = null, problem = $"no field '{field}' (choose one with --field)";
        pos = SkipSpace(line, Value(line, pos, 0, ref text, ref problem));
        if (pos != line.Length) throw Syntax(pos, "the end of the line expected");
        return text ?? throw new InvalidLine(problem!);
    }

    private static InvalidLine Syntax(int pos, string what) => new($"not a JSON object (byte {pos} of the line: {what})");

    /// <summary>The byte at <paramref name="pos"/>, or -1 past the end.</summary>
    private static int At(ReadOnlySpan<byte> line, int pos) => pos < line.Length ? line[pos] : -1;

    private static int SkipSpace(ReadOnlySpan<byte> line, int pos)
    {
        while (pos < line.Length && line[pos] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') pos++;
        return pos;
    }

    /// <summary>Whether the key whose opening quote is at <paramref name="quote"/> names the field.</summary>
    private bool IsField(ReadOnlySpan<byte> line, int quote, int end, bool escaped)
    {
        if (!escaped) return line[(quote + 1)..(end - 1)].SequenceEqual(_name);
        return Decode(line, ref quote) == field;
    }

    private static void Transcode(ReadOnlySpan<byte> utf8, char[] chars, ref int n, int pos)
    {
        if (Utf8.ToUtf16(utf8, chars.AsSpan(n), out _, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
            throw Syntax(pos, "invalid UTF-8 in a string");
        n += written;
    }

    /// <summary>Past the closing quote of a string whose first character is at <paramref name="pos"/>.</summary>
    private static int SkipString(ReadOnlySpan<byte> line, int pos, ref bool escaped)
    {
        while (true)
        {
            int stop = line[pos..].IndexOfAny(StringStops);
            if (stop < 0) throw Syntax(line.Length, "a string not closed");
            if (!Utf8.IsValid(line.Slice(pos, stop))) throw Syntax(pos, "invalid UTF-8 in a string");
            pos += stop;
            if (line[pos] == '"') return pos + 1;
            if (line[pos] < 0x20) throw Syntax(pos, "a control character in a string (it must be escaped)");
            escaped = true;
            pos = CheckEscape(line, pos + 1);
        }
    }

    /// <summary>Past an escape whose letter is at <paramref name="pos"/>.</summary>
    private static int CheckEscape(ReadOnlySpan<byte> line, int pos)
    {
        if (At(line, pos) == 'u')
        {
            CodeUnit(line, pos + 1);
            return pos + 5;
        }
        Unescaped(At(line, pos), pos);
        return pos + 1;
    }

    /// <summary>The character an escape other than \\u stands for, by its letter at <paramref name="pos"/>.</summary>
    private static char Unescaped(int letter, int pos) => letter switch
    {
        '"' or '\\' or '/' => (char)letter,
        'b' => '\b',
        'f' => '\f',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        _ => throw Syntax(pos, "an escape expected after '\\'"),
    };

    private static int Hex(int b) => b is >= '0' and <= '9' ? b - '0' : (b | 0x20) is >= 'a' and <= 'f' ? (b | 0x20) - 'a' + 10 : -1;

    /// <summary>The string that opens at <paramref name="pos"/>, decoded; null when it holds an escaped lone surrogate.
    /// Moves <paramref name="pos"/> past its closing quote. Runs without escapes are transcoded in one call each, and
    /// escapes decoded one after another where they follow each other, as \u escapes do in ASCII-only JSON.</summary>
    private string? Decode(ReadOnlySpan<byte> line, ref int pos)
    {
        if (_chars.Length < line.Length) _chars = new char[Math.Max(line.Length, 2 * _chars.Length)];   // never more characters than bytes
        var chars = _chars;
        int n = 0;
        bool lone = false;
        for (pos++; ;)
        {
            switch (At(line, pos))
            {
                case '"':
                    pos++;
                    return lone ? null : new string(chars, 0, n);
                case '\\':
                    int letter = At(line, pos + 1);
                    if (letter != 'u')
                    {
                        chars[n++] = Unescaped(letter, pos + 1);
                        pos += 2;
                        continue;
                    }
                    char c = CodeUnit(line, pos + 2);
                    pos += 6;
                    if (char.IsHighSurrogate(c) && At(line, pos) == '\\' && At(line, pos + 1) == 'u')
                    {
                        chars[n++] = c;
                        c = CodeUnit(line, pos + 2);
                        pos += 6;
                        lone |= !char.IsLowSurrogate(c);
                    }
                    else lone |= char.IsSurrogate(c);
                    chars[n++] = c;
                    continue;
                case -1:
                    throw Syntax(pos, "a string not closed");
                case < 0x20:
                    throw Syntax(pos, "a control character in a string (it must be escaped)");
                default:
                    int stop = line[pos..].IndexOfAny(StringStops);
                    if (stop < 0) throw Syntax(line.Length, "a string not closed");
                    Transcode(line.Slice(pos, stop), chars, ref n, pos);
                    pos += stop;
                    continue;
            }
        }
    }

    /// <summary>The UTF-16 code unit of the four hexadecimal digits at <paramref name="pos"/>.</summary>
    private static char CodeUnit(ReadOnlySpan<byte> line, int pos)
    {
        int a = Hex(At(line, pos)), b = Hex(At(line, pos + 1)), c = Hex(At(line, pos + 2)), d = Hex(At(line, pos + 3));
        if ((a | b | c | d) < 0) throw Syntax(pos, "four hexadecimal digits expected after \\u");
        return (char)(a << 12 | b << 8 | c << 4 | d);
    }

    /// <summary>Past the value that starts at <paramref name="pos"/>, checked; <paramref name="depth"/> levels open
    /// around it. In the line's object (depth 0) a member named as the field sets <paramref name="text"/> (its last
    /// occurrence counts) or says in <paramref name="problem"/> why it gives none.</summary>
    private int Value(ReadOnlySpan<byte> line, int pos, int depth, ref string? text, ref string? problem)
    {
        switch (At(line, pos))
        {
            case '"':
                bool escaped = false;
                return SkipString(line, pos + 1, ref escaped);
            case '{' or '[':
                if (depth >= MaxDepth) throw Syntax(pos, $"more than {MaxDepth} levels of nesting");
                bool isObject = line[pos] == '{';
                byte close = isObject ? (byte)'}' : (byte)']';
                pos = SkipSpace(line, pos + 1);
                if (At(line, pos) == close) return pos + 1;
                while (true)
                {
                    bool isField = false;
                    if (isObject)
                    {
                        if (At(line, pos) != '"') throw Syntax(pos, "a property name expected");
                        int quote = pos;
                        bool keyEscaped = false;
                        pos = SkipString(line, quote + 1, ref keyEscaped);
                        isField = depth == 0 && IsField(line, quote, pos, keyEscaped);
                        pos = SkipSpace(line, pos);
                        if (At(line, pos) != ':') throw Syntax(pos, "':' expected");
                        pos = SkipSpace(line, pos + 1);
                    }
                    if (isField && At(line, pos) == '"')
                    {
                        text = Decode(line, ref pos);
                        problem = text is null ? $"field '{field}' holds an escaped lone surrogate (such as \\ud800), which is not text" : null;
                    }
                    else
                    {
                        if (isField) (text, problem) = (null, $"field '{field}' is not a string");
                        pos = Value(line, pos, depth + 1, ref text, ref problem);
                    }
                    pos = SkipSpace(line, pos);
                    if (At(line, pos) == ',') { pos = SkipSpace(line, pos + 1); continue; }
                    if (At(line, pos) == close) return pos + 1;
                    throw Syntax(pos, $"',' or '{(char)close}' expected");
                }
            case 't': return Literal(line, pos, "true"u8);
            case 'f': return Literal(line, pos, "false"u8);
            case 'n': return Literal(line, pos, "null"u8);
            case '-' or (>= '0' and <= '9'): return Number(line, pos);
            default: throw Syntax(pos, "a value expected");
        }
    }

    private static int Literal(ReadOnlySpan<byte> line, int pos, ReadOnlySpan<byte> word) =>
        line[pos..].StartsWith(word) ? pos + word.Length : throw Syntax(pos, $"'{Encoding.ASCII.GetString(word)}' expected");

    /// <summary>-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?</summary>
    private static int Number(ReadOnlySpan<byte> line, int pos)
    {
        if (At(line, pos) == '-') pos++;
        if (At(line, pos) == '0') pos++;
        else pos = Digits(line, pos);
        if (At(line, pos) == '.') pos = Digits(line, pos + 1);
        if (At(line, pos) is 'e' or 'E')
        {
            pos++;
            if (At(line, pos) is '+' or '-') pos++;
            pos = Digits(line, pos);
        }
        return pos;
    }

    private static int Digits(ReadOnlySpan<byte> line, int pos)
    {
        int start = pos;
        while (At(line, pos) is >= '0' and <= '9') pos++;
        return pos > start ? pos : throw Syntax(pos, "a digit expected");
    }
}
