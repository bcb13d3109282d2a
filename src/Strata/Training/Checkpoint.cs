// A checkpoint is one safetensors file, written atomically: model tensors under "model.{name}", AdamW state under
// "optim.{name}.exp_avg|exp_avg_sq", and in __metadata__ "format" = "strata-checkpoint" plus "strata" = the JSON of
// CheckpointInfo (format version, the resolved plan, depth, stage, step, ...). Format version 1: the first.
using System.Text.Json;
using Strata.Interop;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Training;

public sealed record CheckpointInfo
{
    public const int CurrentFormat = 1;
    public int FormatVersion { get; init; } = CurrentFormat;
    public required GrowthPlan Plan { get; init; }
    public required string Tokenizer { get; init; }
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
    /// <summary>sha256 of the tokenizer's vocabulary and merges (<see cref="Tokenization.Tokenizers.ContentHash"/>).</summary>
    public string? TokenizerHash { get; init; }
}

public static class Checkpoint
{
    public const string FileName = "checkpoint.safetensors";
    private const string ModelPrefix = "model.", OptimPrefix = "optim.", LoraPrefix = "lora.";

    public static void Save(string path, LanguageModel model, AdamW? optimizer, CheckpointInfo info)
    {
        info = info with { SubstrateHash = model.Substrate.ContentHash };
        var tensors = model.state_dict().Select(kv => (ModelPrefix + kv.Key, kv.Value)).ToList();
        tensors.AddRange(model.AdapterParameters().Select(p => (LoraPrefix + p.Name, (Tensor)p.Parameter)));
        if (optimizer is not null) tensors.AddRange(optimizer.State().Select(s => (OptimPrefix + s.Name, s.Tensor)));
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string>
        {
            ["format"] = "strata-checkpoint",
            ["strata"] = JsonSerializer.Serialize(info, Json.Options),
        });
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
        if (info.FormatVersion != CheckpointInfo.CurrentFormat)
            throw new StrataException($"{file.Path}: checkpoint format {info.FormatVersion}, this Strata reads {CheckpointInfo.CurrentFormat}");
        return info;
    }

    /// <summary>Builds the model a checkpoint describes and loads its weights.</summary>
    public static (LanguageModel Model, CheckpointInfo Info) LoadModel(string path, Device? device = null)
    {
        using var file = new SafetensorsFile(path);
        var info = ReadInfo(file);
        var plan = info.Plan;
        int? width = file.Entries.TryGetValue(ModelPrefix + "embed_in.weight", out var table) && table.Shape.Length == 2 && plan.Substrate.IsFrozen ? (int)table.Shape[1] : null;
        var model = new LanguageModel(plan.Model, Substrate.Create(plan.Substrate, plan.Model, device, emptyWidth: width ?? plan.Substrate.TableWidth()), info.Depth, device);
        LoadWeights(model, file, info);
        if (file.Entries.Keys.Any(k => k.StartsWith(LoraPrefix, StringComparison.Ordinal)))
        {
            // saved inside a LoRA phase: the adapters of that stage, with their trained values
            Trainer.AttachLora(model, plan.Stages[info.StageIndex]);
            var adapters = model.AdapterParameters().ToDictionary(a => LoraPrefix + a.Name, a => (Tensor)a.Parameter);
            ModelState.Load(adapters, n => file.Contains(n) ? file.Read(n).to(model.Device) : null, path,
                file.Entries.Keys.Where(k => k.StartsWith(LoraPrefix, StringComparison.Ordinal)));
        }
        return (model, info);
    }

    /// <summary>Loads a checkpoint's weights into a model of the same shape; a tensor of another shape is refused,
    /// naming the tensor and both shapes, before anything changes.</summary>
    public static void LoadWeights(LanguageModel model, string path)
    {
        using var file = new SafetensorsFile(path);
        LoadWeights(model, file, ReadInfo(file));
    }

    /// <summary>Loads the weights and checks the substrate table against the hash the checkpoint records.</summary>
    private static void LoadWeights(LanguageModel model, SafetensorsFile file, CheckpointInfo info)
    {
        ModelState.Load(model, name => file.Contains(ModelPrefix + name) ? file.Read(ModelPrefix + name).to(model.Device) : null, file.Path,
            file.Entries.Keys.Where(k => k.StartsWith(ModelPrefix, StringComparison.Ordinal)).Select(k => k[ModelPrefix.Length..]));
        if (model.Substrate is not FrozenTableSubstrate frozen) return;
        frozen.Reloaded();
        if (info.SubstrateHash is { } recorded && frozen.ContentHash != recorded)
            throw new StrataException($"{file.Path}: its substrate table hashes to {frozen.ContentHash}, the checkpoint records {recorded} (the file is corrupted)");
    }

    public static void LoadOptimizer(AdamW optimizer, string path, long step)
    {
        using var file = new SafetensorsFile(path);
        optimizer.LoadState(step, name => file.Contains(OptimPrefix + name) ? file.Read(OptimPrefix + name) : null);
    }
}
