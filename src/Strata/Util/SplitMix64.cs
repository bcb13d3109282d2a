namespace Strata.Util;

/// <summary>A small, fully specified random stream (Steele et al. 2014), so seeded sampling is the same on every
/// platform and .NET version and any draw can be recomputed from (seed, index).</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public static SplitMix64 For(long seed, long stream, long index) =>
        new((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)stream * 0xBF58476D1CE4E5B9UL ^ (ulong)index * 0x94D049BB133111EBUL);

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n).</summary>
    public long NextBelow(long n) => n <= 0 ? throw new ArgumentOutOfRangeException(nameof(n)) : (long)(Next() % (ulong)n);
}
