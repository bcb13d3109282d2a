// Hugging Face GPTNeoXForCausalLM layout: the paper's architecture exactly when use_parallel_residual = false,
// rotary_pct / partial_rotary_factor = 1.0 and tie_word_embeddings = false.
using System.Text.Json;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Interop;

public static class GptNeoX
{
    /// <summary>Strata's state-dict name -> the name transformers uses. The head is <c>embed_out</c> in
    /// <c>model.safetensors</c>; some <c>pytorch_model.bin</c> files call it <c>lm_head</c> (accepted on import).</summary>
    public static string ToHf(string name) => name.StartsWith("embed_out.", StringComparison.Ordinal) ? name : "gpt_neox." + name;

    public static IEnumerable<string> HfNameCandidates(string name)
    {
        yield return ToHf(name);
        if (name.StartsWith("embed_out.", StringComparison.Ordinal)) yield return "lm_head." + name["embed_out.".Length..];
    }

    /// <summary>Reads config.json: the model shape and depth. Refuses settings that would make it a different architecture.</summary>
    public static (ModelConfig Config, int Depth) ReadConfig(string configPath)
    {
        if (!File.Exists(configPath)) throw new StrataException($"{configPath}: file not found");
        if (new FileInfo(configPath).Length > 1 << 20) throw new StrataException($"{configPath}: larger than 1 MiB, not a model's config.json");
        try { return ReadConfig(configPath, File.ReadAllText(configPath)); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new StrataException($"{configPath}: not a valid config.json ({e.GetType().Name})");
        }
    }

    private static (ModelConfig Config, int Depth) ReadConfig(string configPath, string text)
    {
        using var doc = JsonDocument.Parse(text);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new StrataException($"{configPath}: not a JSON object");
        var r = doc.RootElement;
        string src = configPath;
        int Int(string key) => r.TryGetProperty(key, out var v) && v.TryGetInt32(out var i) ? i : throw new StrataException(
            $"{src}: {key}: missing or not an integer");
        double Num(string key, double dflt) => r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : dflt;
        bool Bool(string key, bool dflt) => r.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? v.GetBoolean() : dflt;

        if (r.TryGetProperty("model_type", out var mt) && mt.GetString() != "gpt_neox")
            throw new StrataException($"{src}: model_type: '{mt.GetString()}' is not gpt_neox");
        if (Bool("use_parallel_residual", true))
            throw new StrataException($"{src}: use_parallel_residual: true is not this architecture (the paper's blocks are sequential)");
        double rotary = r.TryGetProperty("rope_parameters", out var rp) && rp.TryGetProperty("partial_rotary_factor", out var prf) ? prf.GetDouble()
            : Num("partial_rotary_factor", Num("rotary_pct", 1.0));
        if (rotary != 1.0) throw new StrataException($"{src}: partial_rotary_factor: {rotary}; only full rotary (1.0) is supported");
        if (Bool("tie_word_embeddings", false)) throw new StrataException($"{src}: tie_word_embeddings: true; the paper's head is untied");
        if (r.TryGetProperty("hidden_act", out var act) && act.GetString() != "gelu")
            throw new StrataException($"{src}: hidden_act: '{act.GetString()}'; only exact GELU ('gelu') is supported");
        double theta = r.TryGetProperty("rope_parameters", out var rp2) && rp2.TryGetProperty("rope_theta", out var th) ? th.GetDouble()
            : Num("rope_theta", Num("rotary_emb_base", 10000));
        var config = new ModelConfig
        {
            DModel = Int("hidden_size"),
            NHead = Int("num_attention_heads"),
            ContextLength = Int("max_position_embeddings"),
            VocabSize = Int("vocab_size"),
            FfnSize = Int("intermediate_size"),
            RopeTheta = theta,
            LayerNormEps = Num("layer_norm_eps", 1e-5),
            HeadBias = false,
        };
        int depth = Int("num_hidden_layers");
        if (depth is < 1 or > Runs.GrowthPlan.MaxDepth) throw new StrataException(
            $"{src}: num_hidden_layers: must be in 1..{Runs.GrowthPlan.MaxDepth}, got {depth}");
        return (config.Validate(src), depth);
    }

}
