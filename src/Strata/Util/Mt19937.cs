namespace Strata.Util;

/// <summary>The Mersenne Twister MT19937 as CPython's <c>random</c> and NumPy's legacy <c>RandomState</c> use it, so
/// that draws the paper's builder made can be reproduced exactly: <see cref="Seed(uint)"/> is NumPy's
/// <c>np.random.seed(n)</c> (init_genrand), <see cref="SeedPython(uint)"/> is CPython's <c>random.seed(n)</c>
/// (init_by_array of the seed's 32-bit words).</summary>
internal sealed class Mt19937
{
    private const int N = 624, M = 397;
    private readonly uint[] _mt = new uint[N];
    private int _i = N + 1;

    public static Mt19937 Seed(uint seed)
    {
        var r = new Mt19937();
        r.InitGenrand(seed);
        return r;
    }

    public static Mt19937 SeedPython(uint seed)
    {
        var r = new Mt19937();
        r.InitByArray([seed]);
        return r;
    }

    private void InitGenrand(uint s)
    {
        _mt[0] = s;
        for (int i = 1; i < N; i++) _mt[i] = 1812433253u * (_mt[i - 1] ^ (_mt[i - 1] >> 30)) + (uint)i;
        _i = N;
    }

    private void InitByArray(uint[] key)
    {
        InitGenrand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Length); k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++; j++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
            if (j >= key.Length) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
        }
        _mt[0] = 0x80000000u;
        _i = N;
    }

    public uint NextUInt32()
    {
        if (_i >= N)
        {
            for (int k = 0; k < N; k++)
            {
                uint y = (_mt[k] & 0x80000000u) | (_mt[(k + 1) % N] & 0x7fffffffu);
                _mt[k] = _mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908b0dfu : 0u);
            }
            _i = 0;
        }
        uint x = _mt[_i++];
        x ^= x >> 11;
        x ^= (x << 7) & 0x9d2c5680u;
        x ^= (x << 15) & 0xefc60000u;
        x ^= x >> 18;
        return x;
    }

    /// <summary>A double in [0, 1) from 53 random bits: <c>random.random()</c> and <c>np.random.rand()</c>.</summary>
    public double NextDouble()
    {
        uint a = NextUInt32() >> 5, b = NextUInt32() >> 6;
        return (a * 67108864.0 + b) / 9007199254740992.0;
    }

    /// <summary>CPython's <c>random.uniform(a, b)</c>.</summary>
    public double Uniform(double a, double b) => a + (b - a) * NextDouble();

    /// <summary>CPython's <c>random.randint(a, b)</c> (rejection sampling on <c>getrandbits</c>, for spans below 2^32).</summary>
    public int RandInt(int a, int b)
    {
        uint n = (uint)(b - a + 1);
        int k = 32 - System.Numerics.BitOperations.LeadingZeroCount(n);
        uint r;
        do r = NextUInt32() >> (32 - k); while (r >= n);
        return a + (int)r;
    }
}
