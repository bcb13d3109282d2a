using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>
/// Keys and values of every layer for incremental decoding. Buffers are preallocated at the context length,
/// [B, nh, ContextLength, hs] per layer, and live outside dispose scopes until the cache is disposed.
/// </summary>
internal sealed class KvCache : IKvCache
{
    private readonly List<(Tensor K, Tensor V)> _layers = new();
    private readonly long _batch, _heads, _capacity, _headSize;
    private readonly Device _device;
    private readonly ScalarType _dtype;

    public KvCache(long batch, long heads, long capacity, long headSize, Device device, ScalarType dtype)
    {
        (_batch, _heads, _capacity, _headSize, _device, _dtype) = (batch, heads, capacity, headSize, device, dtype);
    }

    /// <summary>Positions already stored.</summary>
    public long Length { get; private set; }
    public long Capacity => _capacity;

    /// <summary>Stores k, v [B, nh, T, hs] of layer <paramref name="layer"/> at positions [Length, Length+T) and returns
    /// views of everything stored so far, [B, nh, Length+T, hs].</summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        while (_layers.Count <= layer)
        {
            var kb = torch.zeros([_batch, _heads, _capacity, _headSize], dtype: _dtype, device: _device).DetachFromDisposeScope();
            var vb = torch.zeros([_batch, _heads, _capacity, _headSize], dtype: _dtype, device: _device).DetachFromDisposeScope();
            _layers.Add((kb, vb));
        }
        var T = k.shape[2];
        if (Length + T > _capacity) throw new InvalidOperationException($"KV cache full: {Length} + {T} > {_capacity}");
        var (K, V) = _layers[layer];
        using (var ks = K.narrow(2, Length, T)) ks.copy_(k);
        using (var vs = V.narrow(2, Length, T)) vs.copy_(v);
        return (K.narrow(2, 0, Length + T), V.narrow(2, 0, Length + T));
    }

    /// <summary>Called by the model once every layer has appended a step of T positions.</summary>
    public void Advance(long T) => Length += T;

    public void Reset() => Length = 0;

    public void Dispose()
    {
        foreach (var (k, v) in _layers) { k.Dispose(); v.Dispose(); }
        _layers.Clear();
    }
}
