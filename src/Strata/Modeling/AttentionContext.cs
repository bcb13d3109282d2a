using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>
/// What every layer's attention needs for one forward pass: the rotary tables of the new positions (in the compute
/// dtype) and which keys each query may see. Without padding the tables are [T, hs] and attention is causal (with a
/// cache of P positions, query i sees keys 0..P+i). With left padding (batched generation) row b's first padding[b]
/// positions are padding: its tokens are numbered from 0 after them ([B, 1, T, hs] tables) and no query sees them.
/// </summary>
internal sealed class AttentionContext : IDisposable
{
    private AttentionContext(Tensor cos, Tensor sin, Tensor? mask, bool causal, bool byProducts = false) =>
        (Cos, Sin, Mask, IsCausal, ByProducts) = (cos, sin, mask, causal, byProducts);

    /// <summary>[T, hs], or [B, 1, T, hs] with padding.</summary>
    public Tensor Cos { get; }
    public Tensor Sin { get; }
    /// <summary>[T, S] or [B, 1, T, S], true where a query may attend a key; null when <see cref="IsCausal"/> or T = 1 without padding.</summary>
    public Tensor? Mask { get; }
    public bool IsCausal { get; }

    /// <summary>Whether causal attention is written out as products (<see cref="CausalAttentionByProducts"/>): in bf16 on
    /// the CPU, where libtorch 2.10's fused <c>scaled_dot_product_attention</c> runs at 10-16% of bf16 torch.mm's rate at
    /// T 256 (its backward three times its forward), up to <see cref="ProductsUpTo"/> positions. Otherwise the fused
    /// kernel attends.</summary>
    public bool ByProducts { get; }

    /// <summary>The longest context attended by products: their [B, nh, T, T] probabilities, kept for backward, grow with
    /// T squared (32 MiB per block at B 8, 8 heads, T 512), and their lead over the fused kernel shrinks with T (forward
    /// and backward, B x T = 2,048, 4 heads of 64: 4.8x at T 256, 3.3x at 512, 1.2x at 1,024 and at 2,048).</summary>
    public const int ProductsUpTo = 512;

    /// <param name="past">positions already in the cache</param>
    /// <param name="T">new positions</param>
    /// <param name="padding">[B] int64, left padding per row, or null</param>
    public static AttentionContext Create(long past, long T, Tensor? padding, ModelConfig c, ScalarType dtype, Device device)
    {
        if (padding is null)
        {
            var (cos, sin) = Rotary.Tables(past, T, c.HeadSize, c.RopeTheta, device);
            using (cos) using (sin)
            {
                Tensor? mask = past > 0 && T > 1 ? torch.ones([T, past + T], dtype: ScalarType.Bool, device: device).tril(past) : null;
                bool causal = past == 0 && T > 1;
                bool byProducts = causal && T <= ProductsUpTo && CausalAttentionByProducts.Applies(dtype, device);
                return new AttentionContext(cos.to(dtype), sin.to(dtype), mask, causal, byProducts);
            }
        }
        long S = past + T;
        using var scope = torch.NewDisposeScope();
        var pad = padding.to(ScalarType.Int64).to(device).view(-1, 1);                                     // [B, 1]
        var absolute = Scalars.Arange(past, S, ScalarType.Int64, device).view(1, -1);                    // [1, T]
        var positions = (absolute - pad).clamp_min(Scalars.Zero);                                         // [B, T]
        var (tableCos, tableSin) = Rotary.Tables(0, S, c.HeadSize, c.RopeTheta, device);                  // [S, hs]
        var rowCos = tableCos.index_select(0, positions.reshape(-1)).view(positions.shape[0], 1, T, -1);   // [B, 1, T, hs]
        var rowSin = tableSin.index_select(0, positions.reshape(-1)).view(positions.shape[0], 1, T, -1);
        var keys = Scalars.Arange(0, S, ScalarType.Int64, device).view(1, 1, -1);                        // [1, 1, S]
        var queries = absolute.view(1, -1, 1);                                                            // [1, T, 1]
        var allowed = keys.le(queries).logical_and(keys.ge(pad.view(-1, 1, 1)));                           // [B, T, S]
        // a padding position attends to itself, so its (unused) row stays finite instead of a softmax over nothing
        allowed = allowed.logical_or(keys.eq(queries));
        return new AttentionContext(rowCos.to(dtype).MoveToOuterDisposeScope(), rowSin.to(dtype).MoveToOuterDisposeScope(),
            allowed.unsqueeze(1).MoveToOuterDisposeScope(), false);
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
        Mask?.Dispose();
    }
}
