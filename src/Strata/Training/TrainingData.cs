using Strata.Data;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Training;

/// <summary>A plan's datasets opened for a run: training batches by each stage's mixture, fixed validation batches per
/// dataset. Batches are drawn by (seed, step) alone, so they are the same whether the run was resumed or not.</summary>
internal sealed class TrainingData : IDisposable
{
    private readonly GrowthPlan _plan;
    private readonly IReadOnlyList<(string Name, Dataset Dataset)> _datasets;
    private readonly Dictionary<string, Windows> _train = new();

    public TrainingData(GrowthPlan plan)
    {
        _plan = plan;
        _datasets = plan.Data.Open();
        try
        {
            Tokenizer = new TokenizerIdentity(plan.Data.Tokenizer!, plan.Data.TokenizerHash!);
            // every shard's hash and largest id checked before training reads it (from the cache when unchanged)
            Verified = _datasets.Select(d => (d.Name, d.Dataset.Verify(plan.Model.VocabSize, cached: true))).ToList();
            int T = plan.Model.ContextLength;
            var validation = new List<(string, BatchSampler)>();
            foreach (var (name, d) in _datasets)
            {
                if (d.Manifest.VocabSize > plan.Model.VocabSize)
                    throw new StrataException(
                        $"{d.Path}: tokens from a vocabulary of {d.Manifest.VocabSize:N0}, the model's head has {plan.Model.VocabSize:N0}");
                var val = d.Shards(DatasetSplit.Validation);
                if (val.Count > 0 && val.Any(s => s.Count > T))
                    validation.Add((name, new BatchSampler([(new Windows(val, T, $"{d.Path} (validation)"), 1.0)], plan.Training.BatchSize,
                        plan.Training.Seed)));
            }
            if (validation.Count == 0) throw new StrataException($"data: no dataset has a validation split of more than {T + 1} tokens to measure the run on");
            Validation = validation;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public TokenizerIdentity Tokenizer { get; }

    /// <summary>What verifying each dataset took (shards hashed or taken from the cache).</summary>
    public IReadOnlyList<(string Name, Dataset.Verification Verification)> Verified { get; } = [];

    /// <summary>What the datasets hold, as their manifests say (token counts and the sha256 of every shard): equal on
    /// every rank of a job that reads the same data.</summary>
    public string Identity => string.Join("\n", _datasets.Select(d => $"{d.Name}={Json.Serialize(d.Dataset.Manifest)}"));

    /// <summary>Fixed validation batches, per dataset that has a validation split.</summary>
    public IReadOnlyList<(string Name, BatchSampler Sampler)> Validation { get; }

    /// <summary>Validation tokens per UTF-8 byte when the run has one dataset (bits per byte are then comparable).</summary>
    public double? TokensPerByte => _datasets.Count == 1 ? _datasets[0].Dataset.ValidationTokensPerByte : null;

    /// <summary>Training batches of a stage: its mixture (or the plan's) over the datasets' training splits.</summary>
    public BatchSampler SamplerFor(StageConfig stage)
    {
        var mixture = _plan.Data.MixtureFor(stage).Where(m => m.Weight > 0)
            .Select(m => (TrainWindows(m.Name), m.Weight)).ToList();
        return new BatchSampler(mixture, _plan.Training.BatchSize, _plan.Training.Seed);
    }

    private Windows TrainWindows(string name)
    {
        if (_train.TryGetValue(name, out var w)) return w;
        var d = _datasets.First(x => x.Name == name).Dataset;
        return _train[name] = new Windows(d.Shards(DatasetSplit.Train), _plan.Model.ContextLength, $"{d.Path} (training)");
    }

    public void Dispose()
    {
        foreach (var (_, d) in _datasets ?? []) d.Dispose();
    }
}
