// Modular composition (growing-transformers.md §5): K models trained separately on the same frozen interface and
// vocabulary run side by side on the same ids, and their logits are averaged: logits = (1/K) sum_k logits_k.
// No router, no parameters; each expert keeps its own KV cache.
using Strata.Modeling;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Composition;

public sealed class LogitAveragingEnsemble : ICausalLM, IDisposable
{
    private readonly IReadOnlyList<LanguageModel> _experts;

    /// <summary>Experts must share the substrate recipe, the tokenizer and the vocabulary; otherwise one error names both sides.</summary>
    public LogitAveragingEnsemble(IReadOnlyList<(LanguageModel Model, CheckpointInfo Info, string Source)> experts)
    {
        if (experts.Count == 0) throw new StrataException("an ensemble needs at least one model");
        var (m0, i0, s0) = experts[0];
        if (experts.Count > 1 && experts.FirstOrDefault(e => e.Info.Plan.Substrate.Kind == Substrates.SubstrateKind.Trainable) is { Source: { } trainable })
            throw new StrataException($"{trainable} has a trainable embedding: logit averaging needs experts on one shared frozen interface");
        foreach (var (m, info, source) in experts.Skip(1))
        {
            if (Json.Serialize(info.Plan.Substrate) != Json.Serialize(i0.Plan.Substrate))
                throw new StrataException($"{source} was trained on substrate {Json.Compact(info.Plan.Substrate)}, {s0} on {Json.Compact(i0.Plan.Substrate)}: experts must share the frozen interface");
            if (info.Tokenizer != i0.Tokenizer)
                throw new StrataException($"{source} uses tokenizer '{info.Tokenizer}', {s0} uses '{i0.Tokenizer}': experts must share the vocabulary");
            if (m.Config.VocabSize != m0.Config.VocabSize || m.Config.DModel != m0.Config.DModel)
                throw new StrataException($"{source} has vocab {m.Config.VocabSize} / d_model {m.Config.DModel}, {s0} has {m0.Config.VocabSize} / {m0.Config.DModel}");
        }
        _experts = experts.Select(e => e.Model).ToList();
        // the ensemble can attend as far as its shortest-context expert
        Config = m0.Config with { ContextLength = _experts.Min(e => e.Config.ContextLength) };
        Tokenizer = i0.Tokenizer;
    }

    public const string Format = "strata-ensemble";

    /// <summary>An ensemble file: {"format": "strata-ensemble", "checkpoints": [paths]} (relative to the file).</summary>
    public sealed record EnsembleFile(string Format, IReadOnlyList<string> Checkpoints);

    public static void Save(string path, IReadOnlyList<string> checkpoints) =>
        AtomicFile.WriteAllText(path, Json.Serialize(new EnsembleFile(Format, checkpoints.Select(Path.GetFullPath).ToList())));

    public static LogitAveragingEnsemble LoadFile(string path, Device? device = null)
    {
        var f = Json.ReadFile<EnsembleFile>(path);
        if (f.Format != Format) throw new StrataException($"{path}: format: expected '{Format}', got '{f.Format}'");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Load(f.Checkpoints.Select(c => Path.GetFullPath(c, dir)).ToList(), device);
    }

    public static LogitAveragingEnsemble Load(IReadOnlyList<string> checkpoints, Device? device = null)
    {
        var loaded = new List<(LanguageModel, CheckpointInfo, string)>();
        try
        {
            foreach (var c in checkpoints)
            {
                var (m, info) = Checkpoint.LoadModel(c, device);
                loaded.Add((m, info, c));
            }
            return new LogitAveragingEnsemble(loaded);
        }
        catch
        {
            foreach (var (m, _, _) in loaded) m.Dispose();
            throw;
        }
    }

    public IReadOnlyList<LanguageModel> Experts => _experts;
    public ModelConfig Config { get; }
    public string Tokenizer { get; }
    public Device Device => _experts[0].Device;

    /// <summary>The mean of the experts' logits [B, T, V].</summary>
    public Tensor Logits(Tensor idx, IDisposable? cache = null)
    {
        var caches = (ExpertCaches?)cache;
        Tensor? sum = null;
        for (int k = 0; k < _experts.Count; k++)
        {
            using var logits = _experts[k].Logits(idx, caches?.Caches[k]);
            if (sum is null) sum = logits.clone();
            else sum.add_(logits);
        }
        return sum!.div_(_experts.Count);
    }

    public IDisposable NewCache(long batch) => new ExpertCaches(_experts.Select(e => (KvCache)e.NewCache(batch)).ToList());
    public void ResetCache(IDisposable cache) { foreach (var c in ((ExpertCaches)cache).Caches) c.Reset(); }
    public long CacheLength(IDisposable cache) => ((ExpertCaches)cache).Caches[0].Length;
    public bool Training => _experts[0].training;
    public void SetTraining(bool training) { foreach (var e in _experts) e.train(training); }

    public void Dispose()
    {
        foreach (var e in _experts) e.Dispose();
    }

    private sealed record ExpertCaches(IReadOnlyList<KvCache> Caches) : IDisposable
    {
        public void Dispose() { foreach (var c in Caches) c.Dispose(); }
    }
}
