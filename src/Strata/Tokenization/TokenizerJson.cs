// Hugging Face `tokenizers` files: tokenizer.json (the whole pipeline) plus transformers' tokenizer_config.json and
// special_tokens_map.json. Written in the standard schema for a byte-free BPE with no normaliser, no pre-tokeniser,
// no post-processor and the empty Sequence decoder (the bvv241 pipeline); read back from the same schema, from the
// published bvv241 files, and from any tokenizer.json of that shape. Anything else is refused naming the field.
using System.Text.Encodings.Web;
using System.Text.Json;
using Strata.Util;

namespace Strata.Tokenization;

public static class TokenizerJson
{
    public const string FileName = "tokenizer.json";

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into <paramref name="dir"/>.</summary>
    public static void WriteDirectory(BpeTokenizer t, string dir, int modelMaxLength = 1024)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.Write(Path.Combine(dir, FileName), s => Write(t, s));
        var specials = new Dictionary<string, string>();
        foreach (var (key, token) in new[] { ("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", t.UnkToken), ("pad_token", "<pad>") })
            if (t.IdOf(token) is not null) specials[key] = token;
        var config = new Dictionary<string, object>
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["model_max_length"] = modelMaxLength,
            ["clean_up_tokenization_spaces"] = false,   // decoding is plain concatenation (the bvv241 vocabularies have no decoder)
            ["vocab_size"] = t.VocabSize,
        };
        foreach (var (k, v) in specials) config[k] = v;
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), JsonSerializer.Serialize(config,
            new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        AtomicFile.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), JsonSerializer.Serialize(specials,
            new JsonSerializerOptions { WriteIndented = true }));
    }

    public static void Write(BpeTokenizer t, Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, WriterOptions);
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        foreach (var s in t.SpecialTokens)
        {
            w.WriteStartObject();
            w.WriteNumber("id", t.IdOf(s)!.Value);
            w.WriteString("content", s);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("normalizer");
        w.WriteNull("pre_tokenizer");
        w.WriteNull("post_processor");
        w.WriteStartObject("decoder");
        w.WriteString("type", "Sequence");
        w.WriteStartArray("decoders");
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteString("unk_token", t.UnkToken);
        w.WriteNull("continuing_subword_prefix");
        w.WriteNull("end_of_word_suffix");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", false);
        w.WriteStartObject("vocab");
        for (int id = 0; id < t.VocabSize; id++) w.WriteNumber(t.TokenOf(id), id);
        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (l, r) in t.Merges)
        {
            w.WriteStartArray();
            w.WriteStringValue(l);
            w.WriteStringValue(r);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Reads a tokenizer.json (or a folder holding one).</summary>
    public static BpeTokenizer Read(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e) { throw new StrataException($"{path}: not valid JSON ({Json.Describe(e)})"); }
        using var _ = doc;
        try { return Read(doc.RootElement, path); }
        catch (InvalidOperationException) { throw new StrataException($"{path}: a field has the wrong JSON type"); }
    }

    private static BpeTokenizer Read(JsonElement root, string path)
    {
        StrataException Bad(string field, string what) => new($"{path}: {field}: {what}");
        if (root.ValueKind != JsonValueKind.Object) throw Bad("$", "expected an object");

        void MustBeNull(string field)
        {
            if (root.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null)
                throw Bad(field, $"only null is supported (Strata's BPE has no {field.Replace('_', ' ')})");
        }
        MustBeNull("normalizer");
        MustBeNull("pre_tokenizer");
        MustBeNull("post_processor");
        if (!root.TryGetProperty("decoder", out var dec) || dec.ValueKind != JsonValueKind.Object
            || !dec.TryGetProperty("type", out var dt) || dt.GetString() != "Sequence"
            || !dec.TryGetProperty("decoders", out var decs) || decs.ValueKind != JsonValueKind.Array || decs.GetArrayLength() != 0)
            throw Bad("decoder", "only the empty Sequence decoder (plain concatenation) is supported");

        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object) throw Bad("model", "missing");
        if (!model.TryGetProperty("type", out var type) || type.GetString() != "BPE") throw Bad("model.type", "only BPE is supported");
        foreach (var flag in new[] { "fuse_unk", "byte_fallback", "ignore_merges" })
            if (model.TryGetProperty(flag, out var f) && f.ValueKind == JsonValueKind.True) throw Bad($"model.{flag}", "true is not supported");
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix", "dropout" })
            if (model.TryGetProperty(affix, out var a) && a.ValueKind is not JsonValueKind.Null && !(a.ValueKind == JsonValueKind.String
                && a.GetString() == ""))
                throw Bad($"model.{affix}", "not supported");
        if (!model.TryGetProperty("unk_token", out var unk) || unk.ValueKind != JsonValueKind.String) throw Bad("model.unk_token", "missing");
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object) throw Bad("model.vocab", "missing or not an object");

        var entries = new List<(string Token, int Id)>();
        foreach (var p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out var id) || id < 0) throw Bad(
                $"model.vocab (entry {entries.Count})", "id must be a non-negative integer");
            entries.Add((p.Name, id));
        }
        int size = entries.Count == 0 ? throw Bad("model.vocab", "is empty") : entries.Count;
        var tokens = new string?[size];
        foreach (var (t, id) in entries)
        {
            if (id >= size) throw Bad("model.vocab", $"id {id} is outside 0..{size - 1} (ids must number the entries)");
            if (tokens[id] is not null) throw Bad("model.vocab", $"id {id} is given to two tokens");
            tokens[id] = t;
        }
        int hole = Array.IndexOf(tokens, null);
        if (hole >= 0) throw Bad("model.vocab", $"id {hole} has no token (ids must be 0..{size - 1})");

        if (!model.TryGetProperty("merges", out var mergesEl) || mergesEl.ValueKind != JsonValueKind.Array) throw Bad("model.merges",
            "missing or not an array");
        var merges = new List<(string, string)>();
        int i = 0;
        foreach (var m in mergesEl.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String)
            {
                var parts = m.GetString()!.Split(' ');
                if (parts.Length != 2) throw Bad($"model.merges[{i}]", "expected \"left right\"");
                merges.Add((parts[0], parts[1]));
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String
                && m[1].ValueKind == JsonValueKind.String)
                merges.Add((m[0].GetString()!, m[1].GetString()!));
            else throw Bad($"model.merges[{i}]", "expected \"left right\" or [left, right]");
            i++;
        }

        var specials = new List<string>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            int k = 0;
            foreach (var a in added.EnumerateArray())
            {
                if (!a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String || !a.TryGetProperty("id", out var aid)
                    || !aid.TryGetInt32(out var id))
                    throw Bad($"added_tokens[{k}]", "needs id and content");
                if (id < 0 || id >= size || tokens[id] != c.GetString()) throw Bad($"added_tokens[{k}]", $"its content is not id {id} of model.vocab");
                specials.Add(c.GetString()!);
                k++;
            }
        }
        try
        {
            var eos = Array.IndexOf(tokens, "</s>");
            return new BpeTokenizer(Path.GetFullPath(path), tokens!, merges, specials, unk.GetString()!, eos >= 0 ? eos : null);
        }
        catch (StrataException e) { throw new StrataException($"{path}: {e.Message}"); }
    }
}
