using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>What generation and evaluation need of a model: one <see cref="LanguageModel"/> or an ensemble of them.</summary>
public interface ICausalLM
{
    ModelConfig Config { get; }
    Device Device { get; }
    /// <summary>Logits [B, T, V] for ids [B, T]; with a state from <see cref="NewCache"/>, ids follow the cached positions.</summary>
    Tensor Logits(Tensor idx, IDisposable? cache = null);
    /// <summary>An empty KV cache (per expert, for an ensemble) for <paramref name="batch"/> sequences.</summary>
    IDisposable NewCache(long batch);
    void ResetCache(IDisposable cache);
    long CacheLength(IDisposable cache);
    bool Training { get; }
    void SetTraining(bool training);
}
