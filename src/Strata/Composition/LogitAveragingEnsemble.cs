// Modular composition (Growing Transformers, arXiv 2507.07129, modular composition): K models trained separately on the same frozen interface and
// vocabulary run side by side on the same ids, and their logits are averaged: logits = (1/K) sum_k logits_k.
// No router, no parameters; each expert keeps its own KV cache.
using Strata.Evaluation;
using Strata.Formats;
using Strata.Modeling;
using Strata.Optim;
using Strata.Runs;
using Strata.Tokenization;
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
            if (info.Plan.Substrate != i0.Plan.Substrate)
                throw new StrataException(
                    $"{source} was trained on substrate {Json.Compact(info.Plan.Substrate)}, {s0} on {Json.Compact(i0.Plan.Substrate)}: experts " +
                        "must share the frozen interface");
            Substrates.SubstrateIdentity.Require(i0.SubstrateHash, s0, info.SubstrateHash, source);
            TokenizerIdentity.Require(new(i0.Tokenizer, i0.TokenizerHash ?? ""), s0, new(info.Tokenizer, info.TokenizerHash ?? ""), source);
            if (m.Config.VocabSize != m0.Config.VocabSize || m.Config.DModel != m0.Config.DModel)
                throw new StrataException(
                    $"{source} has vocab {m.Config.VocabSize} / d_model {m.Config.DModel}, {s0} has {m0.Config.VocabSize} / {m0.Config.DModel}");
        }
        _experts = experts.Select(e => e.Model).ToList();
        // the ensemble can attend as far as its shortest-context expert
        Config = m0.Config with { ContextLength = _experts.Min(e => e.Config.ContextLength) };
        Tokenizer = i0.Tokenizer;
    }

    public const string Format = "strata-ensemble";

    /// <summary>An ensemble file: {"format": "strata-ensemble", "checkpoints": [paths], "adapter": path or null}
    /// (paths relative to the file allowed); the adapter is a safetensors file with "gain" [K, V] and "bias" [V].</summary>
    public sealed record EnsembleFile(string Format, IReadOnlyList<string> Checkpoints, string? Adapter = null);

    public void Save(string path, IReadOnlyList<string> checkpoints)
    {
        string? adapterPath = null;
        if (Adapter is not null)
        {
            adapterPath = Path.ChangeExtension(Path.GetFullPath(path), ".adapter.safetensors");
            SafetensorsWriter.Write(adapterPath, Adapter.state_dict().Select(kv => (kv.Key, kv.Value)));
        }
        AtomicFile.WriteAllText(path, Json.Serialize(new EnsembleFile(Format, checkpoints.Select(Path.GetFullPath).ToList(), adapterPath)));
    }

    public static LogitAveragingEnsemble LoadFile(string path, Device? device = null)
    {
        var f = Json.ReadFile<EnsembleFile>(path);
        if (f.Format != Format) throw new StrataException($"{path}: format: expected '{Format}', got '{f.Format}'");
        if (f.Checkpoints is null || f.Checkpoints.Any(c => string.IsNullOrEmpty(c)))
            throw new StrataException($"{path}: checkpoints: every entry must be the path of a checkpoint");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var ensemble = Load(f.Checkpoints.Select(c => Path.GetFullPath(c, dir)).ToList(), device);
        if (f.Adapter is { } a)
        {
            var adapterPath = Path.GetFullPath(a, dir);
            ensemble.Adapter = new LogitAdapter(ensemble.Experts.Count, ensemble.Config.VocabSize, device);
            using var file = new SafetensorsFile(adapterPath);
            ModelState.Load(ensemble.Adapter, n => file.Contains(n) ? file.Read(n).to(ensemble.Device, disposeAfter: true) : null, adapterPath,
                file.Entries.Keys);
        }
        return ensemble;
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

    /// <summary>If set, the experts' logits are combined by this trained adapter instead of the plain mean.</summary>
    public LogitAdapter? Adapter { get; set; }
    public ModelConfig Config { get; }
    public string Tokenizer { get; }
    public Device Device => _experts[0].Device;

    /// <summary>The mean of the experts' logits [B, T, V] (or the adapter's combination of them).</summary>
    public Tensor Logits(Tensor idx, IKvCache? cache = null, Tensor? positions = null, Tensor? padding = null)
    {
        var caches = cache is null ? null : cache as ExpertCaches ?? throw new ArgumentException("a KV cache made by another model");
        if (Adapter is not null)
        {
            var each = new List<Tensor>();
            using (torch.no_grad())                                                        // the experts stay frozen
                for (int k = 0; k < _experts.Count; k++) each.Add(_experts[k].Logits(idx, caches?.Caches[k], positions, padding));
            using var stacked = torch.stack(each);                                          // [K, B, T, V]
            foreach (var t in each) t.Dispose();
            return Adapter.call(stacked);
        }
        Tensor? sum = null;
        for (int k = 0; k < _experts.Count; k++)
        {
            using var logits = _experts[k].Logits(idx, caches?.Caches[k], positions, padding);
            if (sum is null) sum = logits.clone();
            else sum.add_(logits, Scalars.One);
        }
        using Scalar count = _experts.Count;
        return sum!.div_(count);
    }

    /// <summary>Cross-entropy of the combined logits (they are the ensemble's prediction, so they exist whole).</summary>
    public Tensor Loss(Tensor idx, Tensor targets)
    {
        using var logits = Logits(idx);                                                   // [B, T, V]
        return nn.functional.cross_entropy(logits.view(-1, Config.VocabSize), targets.reshape(-1));
    }

    public IKvCache NewCache(long batch, long? capacity = null) => new ExpertCaches(_experts.Select(e => e.NewCache(batch, capacity)).ToList());
    public long CacheBytesPerPosition => _experts.Sum(e => e.CacheBytesPerPosition);
    public bool Training => _experts[0].training;
    public void SetTraining(bool training) { foreach (var e in _experts) e.train(training); }

    /// <summary>Validation loss of each expert and of the ensemble on the same fixed windows of a dataset's validation split.</summary>
    public (double[] Experts, double Ensemble) Compare(string datasetPath, int batches, int batchSize)
    {
        using var dataset = Data.Dataset.Open(datasetPath);
        var windows = new Data.Windows(dataset.Shards(Data.DatasetSplit.Validation), Config.ContextLength, $"{datasetPath} (validation)");
        var sampler = new Data.BatchSampler([(windows, 1.0)], batchSize, 1);
        return (_experts.Select(e => ValidationLoss.Measure(e, sampler, batches)).ToArray(), ValidationLoss.Measure(this, sampler, batches));
    }

    /// <summary>Post-merge training: fits the adapter (created at the plain average if there is none) on batches from
    /// <paramref name="sampler"/>, experts frozen. Returns the training loss of each step.</summary>
    internal IReadOnlyList<double> TrainAdapter(Data.BatchSampler sampler, int steps, double lr)
    {
        Adapter ??= new LogitAdapter(_experts.Count, Config.VocabSize, Device);
        using var opt = new AdamW(Adapter.named_parameters().Select(p => (p.name, p.parameter)), 0.9, 0.95, 1e-8, 0.0);
        var losses = new List<double>();
        SetTraining(false);
        for (int step = 0; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var batch = sampler.Batch(step, Device);                                        // [B, T+1]
            var loss = Loss(batch[.., ..^1], batch[.., 1..]);
            loss.backward();
            opt.Step(lr);
            opt.ZeroGrad();
            losses.Add(loss.item<float>());
        }
        return losses;
    }

    public void Dispose()
    {
        foreach (var e in _experts) e.Dispose();
        Adapter?.Dispose();
    }

    /// <summary>One cache per expert, advanced together.</summary>
    private sealed record ExpertCaches(IReadOnlyList<IKvCache> Caches) : ISlotCache
    {
        public long Length => Caches[0].Length;
        public void Reset() { foreach (var c in Caches) c.Reset(); }
        public void Dispose() { foreach (var c in Caches) c.Dispose(); }
        private IEnumerable<ISlotCache> Slots => Caches.Cast<ISlotCache>();
        public ISlotCache Rows(int count) => new ExpertCaches(Slots.Select(c => (IKvCache)c.Rows(count)).ToList());
        public void SetLength(long length) { foreach (var c in Slots) c.SetLength(length); }
        public void Shift(long by) { foreach (var c in Slots) c.Shift(by); }
        public void Place(int row, ISlotCache source, int sourceRow, long from, long count, long at)
        {
            var experts = ((ExpertCaches)source).Caches;
            for (int k = 0; k < Caches.Count; k++) ((ISlotCache)Caches[k]).Place(row, (ISlotCache)experts[k], sourceRow, from, count, at);
        }
    }
}
