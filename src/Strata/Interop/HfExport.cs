// Export to, and import from, the Hugging Face GPTNeoXForCausalLM layout, which is the paper's architecture exactly
// (sequential residual, full rotary, untied head): config.json, model.safetensors (names: Interop/GptNeoX.ToHf; the
// frozen substrate is written out as the [V, C] table it computes, so transformers needs no custom code), the
// tokenizer files, and strata.json (substrate recipe, plan, growth history), which transformers ignores.
using Strata.Formats;
using System.Text.Json;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Interop;

public static class HfExport
{
    public const string MetadataFile = "strata.json";

    /// <summary>Writes the model of <paramref name="checkpoint"/>; LoRA adapters of a checkpoint taken inside a LoRA
    /// phase are merged into the weights first (transformers' GPTNeoX has no place for them), so the export computes
    /// what the adapted model computes.</summary>
    public static void Export(string checkpoint, string outDir)
    {
        var (model, info) = Checkpoint.LoadModel(checkpoint);
        using var _ = model;
        model.MergeLora();
        var c = model.Config;
        if (c.HeadBias) throw new StrataException(
            $"{checkpoint}: the model's head has a bias; GPTNeoXForCausalLM's embed_out has none, so it cannot be exported in this layout");
        if (File.Exists(Path.Combine(outDir, "model.safetensors"))) throw new StrataException(
            $"{outDir} already holds a model.safetensors: choose another --out");
        var tensors = new List<(string, Tensor)>();
        using var ids = Scalars.Arange(0, c.VocabSize, ScalarType.Int64).view(1, -1);
        using (torch.no_grad())
        {
            using var table = model.Substrate.call(ids);                                   // [1, V, C]
            tensors.Add(("gpt_neox.embed_in.weight", table[0].contiguous()));
        }
        foreach (var (name, t) in model.state_dict())
            if (!name.StartsWith("embed_in.", StringComparison.Ordinal)) tensors.Add((GptNeoX.ToHf(name), t));
        Directory.CreateDirectory(outDir);
        SafetensorsWriter.Write(Path.Combine(outDir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var tokenizer = Tokenizers.ByName(info.Tokenizer);
        int? bos = (tokenizer as BpeTokenizer)?.IdOf("<s>");
        AtomicFile.WriteAllText(Path.Combine(outDir, "config.json"),
            JsonSerializer.Serialize(Config(c, model.Depth, bos, tokenizer.EndOfText), new JsonSerializerOptions { WriteIndented = true }));
        if (tokenizer is BpeTokenizer bpe) TokenizerJson.WriteDirectory(bpe, outDir, c.ContextLength);
        AtomicFile.WriteAllText(Path.Combine(outDir, MetadataFile), Json.Serialize(new ExportMetadata(info.Plan.Substrate, info.Tokenizer,
            model.Depth, info.Plan, info.GlobalStep, model.Substrate.ContentHash, info.TokenizerHash)));
    }

    /// <summary>config.json for transformers' GPTNeoXForCausalLM.</summary>
    public static Dictionary<string, object?> Config(ModelConfig c, int depth, int? bos, int? eos) => new()
    {
        ["architectures"] = new[] { "GPTNeoXForCausalLM" },
        ["model_type"] = "gpt_neox",
        ["hidden_size"] = c.DModel,
        ["num_attention_heads"] = c.NHead,
        ["num_hidden_layers"] = depth,
        ["intermediate_size"] = c.Ffn,
        ["vocab_size"] = c.VocabSize,
        ["max_position_embeddings"] = c.ContextLength,
        ["hidden_act"] = "gelu",
        ["layer_norm_eps"] = c.LayerNormEps,
        ["rotary_pct"] = 1.0,
        ["partial_rotary_factor"] = 1.0,
        ["rotary_emb_base"] = c.RopeTheta,
        ["rope_theta"] = c.RopeTheta,
        ["rope_parameters"] = new Dictionary<string, object> { ["rope_type"] = "default", ["rope_theta"] = c.RopeTheta, ["partial_rotary_factor"] = 1.0 },
        ["use_parallel_residual"] = false,
        ["tie_word_embeddings"] = false,
        ["attention_bias"] = true,
        ["attention_dropout"] = 0.0,
        ["hidden_dropout"] = 0.0,
        ["initializer_range"] = 0.02,
        ["bos_token_id"] = bos,
        ["eos_token_id"] = eos,
        ["use_cache"] = true,
        ["torch_dtype"] = "float32",
    };

    /// <summary>Reads a GPT-NeoX directory (model.safetensors, or pytorch_model.bin through Formats/PyTorchTensorFile) into
    /// a Strata checkpoint. With Strata's strata.json the recorded substrate comes back (the table must be exactly what
    /// the recipe computes); otherwise the input table becomes a trainable embedding.</summary>
    /// <param name="tokenizer">the tokenizer (a name or a tokenizer.json), in place of the directory's tokenizer.json or the one
    /// its strata.json names</param>
    public static (LanguageModel Model, CheckpointInfo Info) Import(string dir, string? tokenizer = null)
    {
        var (config, depth) = GptNeoX.ReadConfig(Path.Combine(dir, "config.json"));
        var metaPath = Path.Combine(dir, MetadataFile);
        var meta = File.Exists(metaPath) ? Json.ReadFile<ExportMetadata>(metaPath) : null;
        var tokenizerName = tokenizer ?? (File.Exists(Path.Combine(dir, TokenizerJson.FileName)) ? Path.GetFullPath(Path.Combine(dir, TokenizerJson.FileName))
            : meta?.Tokenizer)
            ?? throw new StrataException(
                $"{dir}: no {TokenizerJson.FileName} and no {MetadataFile} say which tokenizer the model reads: name one (--tokenizer)");
        var tokenizerId = TokenizerIdentity.Of(tokenizerName);
        var spec = meta?.Substrate ?? new SubstrateSpec { Kind = SubstrateKind.Trainable };
        var (lookup, names, source) = OpenWeights(dir);
        // config.json is the file's word: its shapes must match the weights before any memory is spent on a model
        using (var shape = new LanguageModel(config, new SubstrateSpec { Kind = SubstrateKind.Trainable }, depth, META))
            foreach (var (name, t) in shape.state_dict())
            {
                var stored = Find(lookup, name) ?? throw new StrataException(
                    $"{source}: missing tensor '{GptNeoX.ToHf(name)}' (shape [{string.Join(", ", t.shape)}]) that config.json implies");
                if (!stored.shape.SequenceEqual(t.shape))
                    throw new StrataException(
                        $"{source}: tensor '{name}' has shape [{string.Join(", ", stored.shape)}], the model expects " +
                            $"[{string.Join(", ", t.shape)}] from config.json");
            }
        var model = new LanguageModel(config, spec, depth);
        try
        {
            if (spec.Kind == SubstrateKind.Trainable)
                ModelState.Load(model, name => Find(lookup, name), source, names.Select(FromHf));
            else
            {
                // a computed substrate: check the exported table against the recipe, load everything else
                if (meta?.SubstrateHash is { } recorded)
                    SubstrateIdentity.Require(recorded, Path.Combine(dir, MetadataFile), model.Substrate.ContentHash,
                        $"the recipe {Json.Compact(spec)} built here");
                var table = lookup("gpt_neox.embed_in.weight") ?? throw new StrataException($"{source}: missing tensor 'gpt_neox.embed_in.weight'");
                using (torch.no_grad())
                using (var ids = Scalars.Arange(0, config.VocabSize, ScalarType.Int64).view(1, -1))
                using (var expected = model.Substrate.call(ids))
                    if (!table.shape.SequenceEqual(expected.shape[1..]) || !table.allclose(expected[0], 0, 0))
                        throw new StrataException(
                            $"{source}: gpt_neox.embed_in.weight is not the table of the substrate {Json.Compact(spec)} that {MetadataFile} records");
                ModelState.Load(model, name => name.StartsWith("embed_in.", StringComparison.Ordinal)
                    ? model.Substrate.state_dict()[name["embed_in.".Length..]].clone() : Find(lookup, name),
                    source, names.Select(FromHf).Where(n => !n.StartsWith("embed_in.", StringComparison.Ordinal)));
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        var plan = new GrowthPlan
        {
            Name = Path.GetFileName(Path.GetFullPath(dir)),
            Model = config,
            Substrate = spec,
            Data = new DataSpec { Tokenizer = tokenizerId.Name },
            Stages = [new StageConfig { Name = "imported", AddBlocks = depth, Steps = 1, Trains = StageTrains.All }],
        };
        return (model, new CheckpointInfo { Plan = plan, Tokenizer = tokenizerId.Name, TokenizerHash = tokenizerId.Hash, Depth = depth, StageIndex =
            0, StageStep = 1, GlobalStep = 0, Completed = true });
    }

    private static string FromHf(string hf) => hf.StartsWith("gpt_neox.", StringComparison.Ordinal) ? hf["gpt_neox.".Length..]
        : hf.StartsWith("lm_head.", StringComparison.Ordinal) ? "embed_out." + hf["lm_head.".Length..] : hf;

    private static Tensor? Find(Func<string, Tensor?> lookup, string name)
    {
        foreach (var hf in GptNeoX.HfNameCandidates(name))
            if (lookup(hf) is { } t) return t;
        return null;
    }

    private static (Func<string, Tensor?> Lookup, IReadOnlyList<string> Names, string Source) OpenWeights(string dir)
    {
        var st = Path.Combine(dir, "model.safetensors");
        if (File.Exists(st))
        {
            using var file = new SafetensorsFile(st);
            var all = file.Entries.Keys.ToDictionary(n => n, n => file.Read(n));
            return (n => all.TryGetValue(n, out var t) ? t.to(ScalarType.Float32) : null, all.Keys.ToList(), st);
        }
        var bin = Path.Combine(dir, "pytorch_model.bin");
        if (!File.Exists(bin)) throw new StrataException($"{dir}: neither model.safetensors nor pytorch_model.bin");
        // Strata's own bounded reader (nesting, pickle and storage sizes checked before anything is allocated), not
        // TorchSharp.PyBridge's: that one recursed through 100,000 nested dicts and unpacked zip bombs
        var dict = PyTorchTensorFile.Read(bin) is Dictionary<string, object?> d && d.Values.All(v => v is Tensor)
            ? d.ToDictionary(kv => kv.Key, kv => (Tensor)kv.Value!)
            : throw new StrataException($"{bin}: not a PyTorch state dict (a dict of tensor names to tensors)");
        return (n => dict.TryGetValue(n, out var t) ? t.to(ScalarType.Float32) : null, dict.Keys.ToList(), bin);
    }
}

/// <summary>strata.json beside an exported model, what transformers does not need but Strata does: the substrate recipe and the hash of its table,
/// the tokenizer and its hash, the growth history.</summary>
public sealed record ExportMetadata(SubstrateSpec Substrate, string Tokenizer, int Depth, GrowthPlan Plan, long GlobalStep, string? SubstrateHash =
    null, string? TokenizerHash = null);
