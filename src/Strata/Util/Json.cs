using System.Text.Json;
using System.Text.Json.Serialization;

namespace Strata.Util;

/// <summary>One place for the JSON conventions: snake_case names, unknown fields rejected, errors that name the field.</summary>
internal static class Json
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        RespectNullableAnnotations = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>An enum value as plans and checkpoints spell it (snake_case: copy_top).</summary>
    public static string EnumName<T>(T value) where T : struct, Enum => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());

    /// <summary>Parses <paramref name="text"/>; a malformed document or field becomes one line naming the source and JSON path.</summary>
    public static T Parse<T>(string text, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(text, Options) ?? throw new StrataException($"{source}: the document is empty (null)");
        }
        catch (JsonException e)
        {
            throw new StrataException($"{source}: {(e.Path is { Length: > 0 } p ? PathText(p) + ": " : "")}{Describe(e)}");
        }
    }

    /// <summary>A JSON path for a message: the property names in it come from the file, so control characters are
    /// escaped (one line) and it is cut at 100 characters.</summary>
    private static string PathText(string path)
    {
        var sb = new System.Text.StringBuilder();
        foreach (char c in path.Length > 100 ? path[..100] : path)
            if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        return path.Length > 100 ? sb + "..." : sb.ToString();
    }

    /// <summary>A JSON error in one line without the file's content: System.Text.Json's syntax errors quote the text
    /// they stopped at (any amount of it), so those become a position; errors of structure (a value of the wrong type,
    /// an unknown field) keep their wording, which names the field, not its value.</summary>
    public static string Describe(JsonException e)
    {
        var msg = e.Message;
        var cut = msg.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0) msg = msg[..cut];
        bool structural = msg.StartsWith("The JSON value could not be converted", StringComparison.Ordinal)
                          || msg.StartsWith("The JSON property", StringComparison.Ordinal)
                          || msg.StartsWith("JSON deserialization for type", StringComparison.Ordinal);
        if (structural && !msg.Contains('\n')) return msg;
        return e.LineNumber is { } line ? $"malformed JSON at line {line + 1}, byte {e.BytePositionInLine + 1}" : "malformed JSON";
    }

    public static T ReadFile<T>(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        return Parse<T>(File.ReadAllText(path), path);
    }

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    private static readonly JsonSerializerOptions CompactOptions = new(Options) { WriteIndented = false };

    /// <summary>One line of JSON, for messages.</summary>
    public static string Compact<T>(T value) => JsonSerializer.Serialize(value, CompactOptions);
}
