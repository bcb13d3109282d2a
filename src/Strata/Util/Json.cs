using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Strata.Util;

/// <summary>One place for the JSON conventions: snake_case names, unknown fields rejected, errors that name the field.</summary>
internal static partial class Json
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
        if (UnknownField().Match(msg) is { Success: true } unknown) return Unknown(unknown.Groups[1].Value, unknown.Groups[2].Value);
        if (ValueType().Match(msg) is { Success: true } value) return $"a value of the wrong type (expected {Friendly(value.Groups[1].Value)})";
        bool structural = msg.StartsWith("The JSON value could not be converted", StringComparison.Ordinal)
                          || msg.StartsWith("The JSON property", StringComparison.Ordinal)
                          || msg.StartsWith("JSON deserialization for type", StringComparison.Ordinal);
        if (structural && !msg.Contains('\n')) return msg;
        return e.LineNumber is { } line ? $"malformed JSON at line {line + 1}, byte {e.BytePositionInLine + 1}" : "malformed JSON";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^The JSON property '(.*)' could not be mapped to any \.NET member contained in type '([^']+)'")]
    private static partial System.Text.RegularExpressions.Regex UnknownField();

    [System.Text.RegularExpressions.GeneratedRegex(@"^The JSON value could not be converted to ([^.]+(?:\.[^. ]+)*)\.")]
    private static partial System.Text.RegularExpressions.Regex ValueType();

    /// <summary>"unknown field 'lerning_rate' (did you mean 'learning_rate'?; known: ...)", with the field names the
    /// file may use, not .NET type names.</summary>
    private static string Unknown(string field, string typeName)
    {
        var type = typeof(Json).Assembly.GetType(typeName.Split('[')[0]);
        var known = type is null ? [] : Options.GetTypeInfo(type).Properties.Where(p => p.Set is not null).Select(p => p.Name).ToList();
        var near = known.OrderBy(k => Distance(k, field)).FirstOrDefault();
        string hint = near is not null && Distance(near, field) <= Math.Max(2, field.Length / 3) ? $" (did you mean '{near}'?)" : "";
        return $"unknown field '{field}'{hint}" + (known.Count > 0 ? $"; known here: {string.Join(", ", known)}" : "");
    }

    /// <summary>A .NET type as a plan's reader would say it: Int32 -> integer, Double -> number, ...</summary>
    private static string Friendly(string type)
    {
        var last = type.Split('.')[^1].TrimEnd(']').Split('[')[^1];
        return last switch
        {
            "Int32" or "Int64" or "Int16" => "an integer", "Double" or "Single" => "a number", "Boolean" => "true or false", "String" => "a string",
            _ when last.StartsWith("IReadOnlyList", StringComparison.Ordinal) || last.StartsWith("List", StringComparison.Ordinal) => "a list",
            _ when last.StartsWith("IReadOnlyDictionary", StringComparison.Ordinal) => "an object",
            _ => typeof(Json).Assembly.GetType(type) is { IsEnum: true } e
                ? "one of " + string.Join(", ", Enum.GetNames(e).Select(n => JsonNamingPolicy.SnakeCaseLower.ConvertName(n)))
                : "an object",
        };
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    /// <summary>The document with each override "PATH=VALUE" applied: PATH names fields by their JSON names, list items
    /// by index (training.learning_rate, stages[1].steps, data.datasets.web); VALUE is JSON (a number, true, a list,
    /// an object) or else taken as a string. A missing object on the way is created; a missing list item is an error.</summary>
    public static string WithOverrides(string json, IEnumerable<string> overrides, string source)
    {
        JsonNode root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })
                     ?? throw new StrataException($"{source}: the document is empty (null)"); }
        catch (JsonException e) { throw new StrataException($"{source}: {Describe(e)}"); }
        foreach (var o in overrides)
        {
            int eq = o.IndexOf('=');
            if (eq <= 0) throw new StrataException($"--set '{o}': expected PATH=VALUE, e.g. training.learning_rate=3e-4 or stages[1].steps=200");
            string path = o[..eq].Trim(), text = o[(eq + 1)..];
            JsonNode? value;
            try { value = JsonNode.Parse(text); }
            catch (JsonException) { value = JsonValue.Create(text); }
            var steps = System.Text.RegularExpressions.Regex.Matches(path, @"([^.\[\]]+)|\[(\d+)\]").Select(m => m.Groups[2].Success ? (
                object)int.Parse(m.Groups[2].Value) : m.Groups[1].Value).ToList();
            if (steps.Count == 0) throw new StrataException($"--set '{o}': no field named before '='");
            JsonNode node = root;
            for (int i = 0; i < steps.Count; i++)
            {
                bool last = i == steps.Count - 1;
                switch (steps[i])
                {
                    case string name when node is JsonObject obj:
                        if (last) obj[name] = value?.DeepClone();
                        else node = obj[name] ??= steps[i + 1] is int ? throw new StrataException($"--set '{o}': {name} is not in the plan") : new JsonObject();
                        break;
                    case int index when node is JsonArray arr:
                        if (index >= arr.Count) throw new StrataException($"--set '{o}': the plan has {arr.Count} item(s) there, no [{index}]");
                        if (last) arr[index] = value?.DeepClone();
                        else node = arr[index] ?? throw new StrataException($"--set '{o}': item [{index}] is null");
                        break;
                    default:
                        throw new StrataException(
                            $"--set '{o}': '{string.Join("", steps.Take(i + 1).Select(s => s is int k ? $"[{k}]" : $".{s}")).TrimStart('.')}' " +
                                                  "does not lead into an object or a list of the plan");
                }
            }
        }
        return root.ToJsonString(Options);
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
