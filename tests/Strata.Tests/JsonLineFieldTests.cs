using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Strata.Data;
using Xunit;

namespace Strata.Tests;

/// <summary>
/// The JSON-lines field reader against System.Text.Json as the oracle (JsonDocument.Parse, TryGetProperty, GetString:
/// what the reader used before): on generated lines in three escaping styles (System.Text.Json's default, which escapes
/// every non-ASCII character; raw UTF-8; Python's json.dumps, lowercase \u escapes and surrogate pairs), with other
/// fields, nesting, numbers, literals, duplicate and escaped keys, escaped lone surrogates and random whitespace; and on
/// those lines mutated byte by byte. Both must give the same text, or the same refusal.
/// </summary>
public class JsonLineFieldTests
{
    private static string Oracle(byte[] line, string field)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line); }
        catch (JsonException) { return "not a JSON object"; }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return "not a JSON object";
            if (!doc.RootElement.TryGetProperty(field, out var v)) return "no field";
            if (v.ValueKind != JsonValueKind.String) return "not a string";
            try { return "text: " + v.GetString(); }
            catch (InvalidOperationException) { return "lone surrogate"; }
        }
    }

    private static string Ours(byte[] line, string field)
    {
        try { return "text: " + new JsonLineField(field).Read(line); }
        catch (JsonLineField.InvalidLine e)
        {
            foreach (var outcome in new[] { "not a JSON object", "no field", "not a string", "lone surrogate" })
                if (e.Message.Contains(outcome)) return outcome;
            return e.Message;
        }
    }

    private static readonly string[] Pieces =
        ["The state of the Union", "Состояние", "数据文件", "😀", "\"", "\\", "/", "\n", "\t", "\r\n", "\u0001", "\u001f", "\u007f", "\u00a0", "é", " ", "a"];

    private static string RandomText(Random r) => string.Concat(Enumerable.Range(0, r.Next(0, 12)).Select(_ => Pieces[r.Next(Pieces.Length)]));

    /// <summary>A JSON string in one of three styles: System.Text.Json's default escaping, raw UTF-8, or json.dumps's.</summary>
    private static string Quote(string s, int style, Random r)
    {
        if (style == 0) return JsonSerializer.Serialize(s);
        if (style == 1) return JsonSerializer.Serialize(s, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var sb = new StringBuilder("\"");
        foreach (var c in s)
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                '/' when r.Next(2) == 0 => "\\/",
                _ when c < 0x20 || c > 0x7e => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return sb.Append('"').ToString();
    }

    private static string Space(Random r) => r.Next(4) == 0 ? new[] { " ", "\t", "  ", "\r" }[r.Next(4)] : "";

    private static string Value(Random r, int style, int depth) => r.Next(depth > 3 ? 6 : 8) switch
    {
        0 => Quote(RandomText(r), style, r),
        1 => new[] { "0", "-1", "3.25", "1e9", "-0.5E-3", "12345678901234567890" }[r.Next(6)],
        2 => new[] { "true", "false", "null" }[r.Next(3)],
        3 => "\"\\ud800 alone\"",
        4 => "\"\\ud83d\\ude00 pair\"",
        5 => Quote(RandomText(r), style, r),
        6 => "[" + string.Join(",", Enumerable.Range(0, r.Next(3)).Select(_ => Space(r) + Value(r, style, depth + 1) + Space(r))) + "]",
        _ => Object(r, style, depth + 1),
    };

    private static string Object(Random r, int style, int depth)
    {
        var keys = new[] { "\"text\"", "\"id\"", "\"meta\"", "\"te\\u0078t\"", "\"TEXT\"", "\"\"" };
        return "{" + string.Join(",", Enumerable.Range(0, r.Next(depth == 0 ? 1 : 0, 4)).Select(_ =>
            Space(r) + keys[r.Next(keys.Length)] + Space(r) + ":" + Space(r) + Value(r, style, depth) + Space(r))) + "}";
    }

    private static List<byte[]> Lines(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(i => Encoding.UTF8.GetBytes(Space(r) + Object(r, i % 3, 0) + Space(r))).ToList();
    }

    [Fact]
    public void Generated_lines_give_what_System_Text_Json_gives()
    {
        var outcomes = new Dictionary<string, int>();
        foreach (var line in Lines(4000, 1))
        {
            var expected = Oracle(line, "text");
            Assert.True(expected == Ours(line, "text"), Encoding.UTF8.GetString(line));
            var kind = expected.StartsWith("text: ") ? "text" : expected;
            outcomes[kind] = outcomes.GetValueOrDefault(kind) + 1;
        }
        foreach (var kind in new[] { "text", "no field", "not a string", "lone surrogate" })
            Assert.True(outcomes.GetValueOrDefault(kind) >= 100, $"{kind}: only {outcomes.GetValueOrDefault(kind)} lines");
    }

    [Fact]
    public void Mutated_lines_are_refused_exactly_when_System_Text_Json_refuses_them()
    {
        var r = new Random(2);
        var alphabet = "{}[]\",:\\ 0123456789.eE+-tfnrulsa\t\r/"u8.ToArray();
        int refused = 0, read = 0;
        foreach (var original in Lines(3000, 3))
            for (int m = 0; m < 4; m++)
            {
                var line = original.ToList();
                int at = r.Next(line.Count + 1);
                switch (r.Next(3))
                {
                    case 0 when at < line.Count: line.RemoveAt(at); break;
                    case 1 when at < line.Count: line[at] = alphabet[r.Next(alphabet.Length)]; break;
                    default: line.Insert(at, alphabet[r.Next(alphabet.Length)]); break;
                }
                var bytes = line.ToArray();
                if (!System.Text.Unicode.Utf8.IsValid(bytes)) continue;         // the reader checks UTF-8 before either parses
                var expected = Oracle(bytes, "text");
                Assert.True(expected == Ours(bytes, "text"), Encoding.UTF8.GetString(bytes));
                if (expected == "not a JSON object") refused++; else read++;
            }
        Assert.True(refused > 2000 && read > 2000, $"refused {refused}, read {read}");
    }

    [Theory]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    public void Nesting_is_read_as_deep_as_System_Text_Json_reads_it(int levels)
    {
        var line = Encoding.UTF8.GetBytes("{\"text\":\"x\",\"deep\":" + new string('[', levels - 1) + new string(']', levels - 1) + "}");
        Assert.Equal(Oracle(line, "text"), Ours(line, "text"));
    }

    [Theory]
    [InlineData("", "not a JSON object (byte 0 of the line: '{' expected)")]
    [InlineData("[\"text\"]", "not a JSON object (byte 0 of the line: '{' expected)")]
    [InlineData("{\"text\":\"a\",}", "not a JSON object (byte 12 of the line: a property name expected)")]
    [InlineData("{\"text\":\"a\"} x", "not a JSON object (byte 13 of the line: the end of the line expected)")]
    [InlineData("{\"text\":\"a\tb\"}", "not a JSON object (byte 10 of the line: a control character in a string (it must be escaped))")]
    [InlineData("{\"text\":\"\\x\"}", "not a JSON object (byte 10 of the line: an escape expected after '\\')")]
    [InlineData("{\"text\":\"\\u12g4\"}", "not a JSON object (byte 11 of the line: four hexadecimal digits expected after \\u)")]
    [InlineData("{\"id\":1}", "no field 'text' (choose one with --field)")]
    [InlineData("{\"text\":[\"a\"]}", "field 'text' is not a string")]
    [InlineData("{\"text\":\"\\udc00\"}", "field 'text' holds an escaped lone surrogate (such as \\ud800), which is not text")]
    public void Refusals_say_what_and_where(string line, string message)
    {
        var e = Assert.Throws<JsonLineField.InvalidLine>(() => new JsonLineField("text").Read(Encoding.UTF8.GetBytes(line)));
        Assert.Equal(message, e.Message);
    }
}
