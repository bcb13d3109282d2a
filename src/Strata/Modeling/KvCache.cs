using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>
/// Keys and values of every layer for incremental decoding. Buffers are preallocated at the context length,
/// [B, nh, ContextLength, hs] per layer, and live outside dispose scopes until the cache is disposed.
/// </summary>
internal sealed class KvCache : ISlotCache
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

    private KvCache(List<(Tensor K, Tensor V)> views, KvCache parent, long rows)
        : this(rows, parent._heads, parent._capacity, parent._headSize, parent._device, parent._dtype)
    {
        _layers = views;
        Length = parent.Length;
    }

    public ISlotCache Rows(int count)
    {
        if (count < 1 || count > _batch) throw new ArgumentOutOfRangeException(nameof(count), $"{count} rows of {_batch}");
        if (_layers.Count == 0) throw new InvalidOperationException("the cache holds nothing yet: place a sequence first");
        return new KvCache(_layers.Select(l => (l.K.narrow(0, 0, count), l.V.narrow(0, 0, count))).ToList(), this, count);
    }

    public void SetLength(long length) =>
        Length = length >= 0 && length <= _capacity ? length : throw new ArgumentOutOfRangeException(nameof(length));

    public void Shift(long by)
    {
        if (by == 0 || Length == 0) { Length = Math.Clamp(Length + by, 0, _capacity); return; }
        long keep = by > 0 ? Length : Length + by;
        if (keep < 0 || Length + by > _capacity) throw new InvalidOperationException($"cannot shift {Length} positions by {by} in {_capacity}");
        long from = by > 0 ? 0 : -by, to = by > 0 ? by : 0;
        foreach (var (k, v) in _layers)
            foreach (var buffer in new[] { k, v })
            {
                using var moved = buffer.narrow(2, from, keep).clone();                   // the ranges overlap
                using var target = buffer.narrow(2, to, keep);
                target.copy_(moved);
            }
        Length += by;
    }

    public void Place(int row, ISlotCache source, int sourceRow, long from, long count, long at)
    {
        var src = (KvCache)source;
        if (at + count > _capacity) throw new InvalidOperationException($"positions {at}..{at + count} past the cache's {_capacity}");
        while (_layers.Count < src._layers.Count)
            _layers.Add((torch.zeros([_batch, _heads, _capacity, _headSize], dtype: _dtype, device: _device).DetachFromDisposeScope(),
                torch.zeros([_batch, _heads, _capacity, _headSize], dtype: _dtype, device: _device).DetachFromDisposeScope()));
        using var scope = torch.NewDisposeScope();
        for (int l = 0; l < src._layers.Count; l++)
        {
            _layers[l].K[row].narrow(1, at, count).copy_(src._layers[l].K[sourceRow].narrow(1, from, count));
            _layers[l].V[row].narrow(1, at, count).copy_(src._layers[l].V[sourceRow].narrow(1, from, count));
        }
    }

    public void Dispose()
    {
        foreach (var (k, v) in _layers) { k.Dispose(); v.Dispose(); }
        _layers.Clear();
    }
}
