using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>What generation and evaluation need of a model: one <see cref="LanguageModel"/> or an ensemble of them.</summary>
public interface ICausalLM
{
    ModelConfig Config { get; }
    Device Device { get; }
    /// <summary>Logits [B, T, V] (fp32) for ids [B, T]; with a state from <see cref="NewCache"/>, ids follow the cached
    /// positions. With <paramref name="positions"/> [B, P] (int64 indices into T), only those positions go through the
    /// head: [B, P, V] (the head over a 65,536-word vocabulary is most of a small model's cost). With
    /// <paramref name="padding"/> [B], row b starts with that many positions of left padding (batched generation).</summary>
    Tensor Logits(Tensor idx, IKvCache? cache = null, Tensor? positions = null, Tensor? padding = null);
    /// <summary>Mean next-token cross-entropy (nats, an fp32 scalar) of ids [B, T] against targets [B, T]: the measure
    /// of training, validation and perplexity (a single model never holds the [B*T, V] logits whole for it).</summary>
    Tensor Loss(Tensor idx, Tensor targets);
    /// <summary>An empty KV cache (per expert, for an ensemble) for <paramref name="batch"/> sequences of up to
    /// <paramref name="capacity"/> positions (the context length by default).</summary>
    IKvCache NewCache(long batch, long? capacity = null);
    /// <summary>Bytes a KV cache holds per sequence and position (every layer's key and value).</summary>
    long CacheBytesPerPosition { get; }
    bool Training { get; }
    void SetTraining(bool training);
}

/// <summary>The keys and values a model keeps for incremental decoding (<see cref="ICausalLM.NewCache"/>): a
/// <see cref="KvCache"/> for one model, one per expert for an ensemble. Only the model that made it reads it.</summary>
public interface IKvCache : IDisposable
{
    /// <summary>Positions stored.</summary>
    long Length { get; }
    /// <summary>Forgets every position (the buffers are kept).</summary>
    void Reset();
}

/// <summary>A KV cache whose rows are independent sequences sharing one position axis, for continuous batching: a
/// sequence occupies the last positions of its row (what precedes is masked as left padding), rows are filled from
/// another cache and moved, and the whole axis shifts to make room or to drop positions no row uses.</summary>
internal interface ISlotCache : IKvCache
{
    /// <summary>A cache over the first <paramref name="count"/> rows, sharing this one's storage and length (the
    /// caller sets the length back with <see cref="SetLength"/> after a forward through it).</summary>
    ISlotCache Rows(int count);
    void SetLength(long length);
    /// <summary>Moves every row's positions by <paramref name="by"/> (positive: right, making room in front; negative:
    /// left, dropping the first -by positions) and the length with them.</summary>
    void Shift(long by);
    /// <summary>Copies positions [from, from + count) of <paramref name="source"/>'s row <paramref name="sourceRow"/>
    /// (every layer) to positions [at, at + count) of row <paramref name="row"/>.</summary>
    void Place(int row, ISlotCache source, int sourceRow, long from, long count, long at);
}

/// <summary>Eval mode while it lives, then the mode the model had: <c>using var _ = model.EvalScope();</c>.</summary>
public sealed class EvalModeScope : IDisposable
{
    private readonly ICausalLM _model;
    private readonly bool _wasTraining;

    public EvalModeScope(ICausalLM model)
    {
        (_model, _wasTraining) = (model, model.Training);
        model.SetTraining(false);
    }

    public void Dispose() => _model.SetTraining(_wasTraining);
}

public static class CausalLMExtensions
{
    public static EvalModeScope EvalScope(this ICausalLM model) => new(model);
}
