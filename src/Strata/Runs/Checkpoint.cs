// A checkpoint is one safetensors file, written atomically: model tensors under "model.{name}" (LoRA adapters
// included, as the parameters they are), AdamW state under "optim.{name}.exp_avg|exp_avg_sq", and in __metadata__
// "format" = "strata-checkpoint" plus "strata" = the JSON of CheckpointInfo (format version, the resolved plan, the
// tokenizer and substrate identities, stage, step, ...).
// Format 2: adapters are model tensors. Format 1 kept them under "lora.{name}" (and their moments under
// "optim.lora.{name}"); it is still read.
using System.Text.Json;
using Strata.Formats;
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Runs;

public sealed record CheckpointInfo
{
    public const int CurrentFormat = 2;
    public int FormatVersion { get; init; } = CurrentFormat;
    public required GrowthPlan Plan { get; init; }
    /// <summary>The tokenizer's name (as <c>Tokenizers.ByName</c> takes it) and the sha256 of its content.</summary>
    public required string Tokenizer { get; init; }
    public string? TokenizerHash { get; init; }
    /// <summary>Blocks in the saved model.</summary>
    public int Depth { get; init; }
    /// <summary>The stage in progress, and how many of its steps are done.</summary>
    public int StageIndex { get; init; }
    public int StageStep { get; init; }
    public long GlobalStep { get; init; }
    public long OptimizerStep { get; init; }
    public bool Completed { get; init; }
    public double ElapsedSeconds { get; init; }
    public long TokensSeen { get; init; }
    public double? ValidationLoss { get; init; }
    /// <summary>sha256 of the frozen substrate table the model was trained on (null for a trainable embedding).</summary>
    public string? SubstrateHash { get; init; }

    /// <summary>Whether the stage in progress ran all its steps (and was left: its adapters merged as the plan says).</summary>
    public bool StageFinished => StageStep >= Plan.Stages[StageIndex].Steps;
}

public static class Checkpoint
{
    private const string ModelPrefix = "model.", OptimPrefix = "optim.", LegacyLoraPrefix = "lora.";

    public static void Save(string path, LanguageModel model, AdamW? optimizer, CheckpointInfo info)
    {
        info = info with { SubstrateHash = model.Substrate.ContentHash, FormatVersion = CheckpointInfo.CurrentFormat };
        var tensors = model.state_dict().Select(kv => (ModelPrefix + kv.Key, kv.Value)).ToList();
        if (optimizer is not null) tensors.AddRange(optimizer.State().Select(s => (OptimPrefix + s.Name, s.Tensor)));
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string>
        {
            ["format"] = "strata-checkpoint",
            ["strata"] = JsonSerializer.Serialize(info, Json.Options),
        }, checksums: true);
    }

    /// <summary>Whether the checkpoint records every tensor's sha256 (checked on load); older ones do not.</summary>
    public static bool HasChecksums(string path)
    {
        using var file = new SafetensorsFile(path);
        return file.Checksums is not null;
    }

    public static CheckpointInfo ReadInfo(string path)
    {
        using var file = new SafetensorsFile(path);
        return ReadInfo(file);
    }

    private static CheckpointInfo ReadInfo(SafetensorsFile file)
    {
        if (!file.Metadata.TryGetValue("format", out var f) || f != "strata-checkpoint" || !file.Metadata.TryGetValue("strata", out var json))
            throw new StrataException($"{file.Path}: not a Strata checkpoint (no strata metadata)");
        var info = Json.Parse<CheckpointInfo>(json, file.Path + " (checkpoint metadata)");
        // a tokenizer.json named relative to the checkpoint (an import keeps its copy beside it): the pair can move together
        if (info.Tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !Path.IsPathRooted(info.Tokenizer))
            info = info with { Tokenizer = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file.Path))!, info.Tokenizer)) };
        if (info.FormatVersion is < 1 or > CheckpointInfo.CurrentFormat)
            throw new StrataException($"{file.Path}: checkpoint format {info.FormatVersion}, this Strata reads 1 to {CheckpointInfo.CurrentFormat}");
        info.Plan.Validate(file.Path + " (checkpoint plan)");
        if (info.Depth is < 0 or > GrowthPlan.MaxDepth || info.GlobalStep < 0 || info.OptimizerStep < 0 || info.TokensSeen < 0)
            throw new StrataException($"{file.Path}: its metadata holds an impossible position (depth {info.Depth}, step {info.GlobalStep}, " +
                                      $"optimizer step {info.OptimizerStep}, tokens {info.TokensSeen})");
        if (info.StageIndex < 0 || info.StageIndex >= info.Plan.Stages.Count || info.StageStep < 0)
            throw new StrataException(
                $"{file.Path}: stage {info.StageIndex + 1} step {info.StageStep} is not a position in its plan of {info.Plan.Stages.Count} stages");
        return info;
    }

    /// <summary>Builds the model a checkpoint describes (its plan's stages replayed up to where it was saved, adapters
    /// included) and loads its weights.</summary>
    public static (LanguageModel Model, CheckpointInfo Info) LoadModel(string path, Device? device = null)
    {
        using var file = new SafetensorsFile(path);
        var info = ReadInfo(file);
        var plan = info.Plan;
        int? width = file.Entries.TryGetValue(ModelPrefix + "embed_in.weight", out var table) && table.Shape.Length == 2 && plan.Substrate.IsFrozen
            ? (int)Math.Min(table.Shape[1], int.MaxValue) : null;
        // the plan is the file's word: the model it describes must match the tensors the file holds before any memory is spent on it
        using (var shape = GrowthStage.Build(plan, info.StageIndex, info.StageFinished, META, width ?? plan.Substrate.TableWidth()))
            RequireTensors(file, info, shape);
        var model = GrowthStage.Build(plan, info.StageIndex, info.StageFinished, device, width ?? plan.Substrate.TableWidth());
        try
        {
            if (model.Depth != info.Depth)
                throw new StrataException($"{path}: its plan gives depth {model.Depth} at stage {info.StageIndex + 1}, its metadata says {info.Depth}");
            LoadWeights(model, file, info);
            return (model, info);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Every tensor of <paramref name="model"/> (built on the meta device) is in the file with its shape, and
    /// nothing else is.</summary>
    private static void RequireTensors(SafetensorsFile file, CheckpointInfo info, LanguageModel model)
    {
        var expected = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        foreach (var (name, shape) in expected)
        {
            var entry = file.Entries.GetValueOrDefault(ModelPrefix + name) ?? (info.FormatVersion == 1 ? file.Entries.GetValueOrDefault(
                LegacyLoraPrefix + name) : null)
                ?? throw new StrataException(
                    $"{file.Path}: missing tensor '{name}' (shape [{string.Join(", ", shape)}]) that its plan needs at stage {info.StageIndex + 1}");
            if (!entry.Shape.SequenceEqual(shape))
                throw new StrataException(
                    $"{file.Path}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}], its plan gives [{string.Join(", ", shape)}]");
        }
        var extra = file.Entries.Keys.Where(k => k.StartsWith(ModelPrefix, StringComparison.Ordinal) && !expected.ContainsKey(
            k[ModelPrefix.Length..])).ToList();
        if (extra.Count > 0) throw new StrataException($"{file.Path}: unexpected tensor '{extra[0]}' that its plan does not make");
    }

    /// <summary>Refuses, before anything is loaded or written, a checkpoint whose model tensors do not fit
    /// <paramref name="model"/> (built on the meta device): a missing, an extra or a differently shaped tensor is named.
    /// The substrate's table is left to the load, which knows its width.</summary>
    public static void RequireWeights(LanguageModel model, string path)
    {
        using var file = new SafetensorsFile(path);
        ReadInfo(file);
        var expected = model.state_dict().Where(kv => kv.Key != "embed_in.weight").ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        foreach (var (name, shape) in expected)
        {
            var entry = file.Entries.GetValueOrDefault(ModelPrefix + name) ?? throw new StrataException(
                $"{path}: missing tensor '{name}' (shape [{string.Join(", ", shape)}])");
            if (!entry.Shape.SequenceEqual(shape))
                throw new StrataException(
                    $"{path}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}], the model expects [{string.Join(", ", shape)}]");
        }
        var extra = file.Entries.Keys.Where(k => k.StartsWith(ModelPrefix, StringComparison.Ordinal) && k != ModelPrefix + "embed_in.weight"
            && !expected.ContainsKey(k[ModelPrefix.Length..])).ToList();
        if (extra.Count > 0) throw new StrataException($"{path}: unexpected tensor '{extra[0][ModelPrefix.Length..]}': it does not belong to this model");
    }

    /// <summary>Loads a checkpoint's weights into a model of the same shape; a tensor of another shape, a missing or an
    /// extra one is refused, naming it, before anything changes.</summary>
    public static void LoadWeights(LanguageModel model, string path)
    {
        using var file = new SafetensorsFile(path);
        LoadWeights(model, file, ReadInfo(file));
    }

    /// <summary>Loads the weights and checks the substrate table against the hash the checkpoint records.</summary>
    private static void LoadWeights(LanguageModel model, SafetensorsFile file, CheckpointInfo info)
    {
        string? Stored(string name) =>
            file.Contains(ModelPrefix + name) ? ModelPrefix + name
            : info.FormatVersion == 1 && file.Contains(LegacyLoraPrefix + name) ? LegacyLoraPrefix + name : null;
        var available = file.Entries.Keys.Where(k => k.StartsWith(ModelPrefix, StringComparison.Ordinal)).Select(k => k[ModelPrefix.Length..])
            .Concat(file.Entries.Keys.Where(k => k.StartsWith(LegacyLoraPrefix, StringComparison.Ordinal)).Select(k => k[LegacyLoraPrefix.Length..]));
        ModelState.Load(model, name => Stored(name) is { } n ? file.Read(n).to(model.Device, disposeAfter: true) : null, file.Path, available);
        if (model.Substrate is not FrozenTableSubstrate frozen) return;
        frozen.Reloaded();
        if (info.SubstrateHash is { } recorded)
            SubstrateIdentity.Require(recorded, $"{file.Path}'s metadata", frozen.ContentHash, $"{file.Path}'s stored table (the file is corrupted)");
    }

    public static void LoadOptimizer(AdamW optimizer, string path, long step)
    {
        using var file = new SafetensorsFile(path);
        bool legacy = ReadInfo(file).FormatVersion == 1;
        optimizer.LoadState(step, name =>
            file.Contains(OptimPrefix + name) ? file.Read(OptimPrefix + name)
            : legacy && file.Contains(OptimPrefix + LegacyLoraPrefix + name) ? file.Read(OptimPrefix + LegacyLoraPrefix + name) : null);
    }
}
