using System.Text.Json;

namespace Strata.Cli.Serve;

/// <summary>An error as the OpenAI API returns it: an HTTP status and {"error": {"message", "type", "param",
/// "code"}}.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public object Body => new { error = new { message = Message, type = Type, param = Param, code = Code } };

    public static ApiError Invalid(string message, string? param = null) => new(400, message, param);
}

/// <summary>Reads a request body field by field, each wrong type or range refused as OpenAI refuses it: one message
/// naming the field.</summary>
internal sealed class RequestReader
{
    private readonly JsonElement _root;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public RequestReader(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw ApiError.Invalid("the request body must be a JSON object");
        _root = root;
    }

    private JsonElement? Field(string name)
    {
        _read.Add(name);
        return _root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
    }

    public bool Has(string name) => Field(name) is not null;

    public string? String(string name) => Field(name) is { } v
        ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(name, "a string", v)
        : null;

    public bool Bool(string name, bool dflt) => Field(name) is { } v
        ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Wrong(name, "a boolean", v)
        : dflt;

    public double Number(string name, double dflt, double min, double max)
    {
        if (Field(name) is not { } v) return dflt;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d)) throw Wrong(name, "a number", v);
        if (!(d >= min && d <= max)) throw ApiError.Invalid($"{d} is not in [{min}, {max}] - '{name}'", name);
        return d;
    }

    public long Integer(string name, long dflt, long min, long max)
    {
        if (Field(name) is not { } v) return dflt;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var i)) throw Wrong(name, "an integer", v);
        if (i < min || i > max) throw ApiError.Invalid($"{i} is not in [{min}, {max}] - '{name}'", name);
        return i;
    }

    public long? OptionalInteger(string name, long min, long max) => Has(name) ? Integer(name, 0, min, max) : null;

    /// <summary>A string or a list of strings (OpenAI's "stop", a completion's "prompt").</summary>
    public IReadOnlyList<string>? Strings(string name, int atMost)
    {
        if (Field(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String) return [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array) throw Wrong(name, "a string or an array of strings", v);
        var list = new List<string>();
        foreach (var e in v.EnumerateArray())
            list.Add(e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(name, "a string or an array of strings", v));
        if (list.Count > atMost) throw ApiError.Invalid($"'{name}' has {list.Count} entries; at most {atMost}", name);
        return list;
    }

    public JsonElement? Raw(string name) => Field(name);

    /// <summary>Refuses a field that is given with a value other than its neutral one (a feature Strata does not have).</summary>
    public void Unsupported(string name, Func<JsonElement, bool> neutral)
    {
        if (Field(name) is { } v && !neutral(v)) throw ApiError.Invalid($"'{name}' is not supported by this server", name);
    }

    /// <summary>Refuses fields that were never read, as OpenAI does ("Unrecognized request argument supplied").</summary>
    public void NothingElse()
    {
        foreach (var p in _root.EnumerateObject())
            if (!_read.Contains(p.Name)) throw ApiError.Invalid($"Unrecognized request argument supplied: {p.Name}", p.Name);
    }

    private static ApiError Wrong(string name, string what, JsonElement v) =>
        ApiError.Invalid($"'{name}' must be {what}, got {v.ValueKind.ToString().ToLowerInvariant()}", name);
}
