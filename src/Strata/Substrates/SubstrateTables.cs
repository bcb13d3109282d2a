// The frozen tables behind the fixed token interfaces (Growing Transformers, arXiv 2507.07129; Emergent Semantics, arXiv 2507.04886, and the author's
// binary-code model cards): the
// k-bit token-id code, its affine recoding over GF(2), random collision-free codes, their "float" variants (full PCA
// of the code, L2-normalised rows), and the content hash every table is known by.
using System.Security.Cryptography;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

internal static class SubstrateTables
{
    /// <summary>The [V, k] table of 0/1 codes of the token id, most significant bit first (column 0 = bit k-1).</summary>
    public static Tensor BinaryCode(int vocab, int bits)
    {
        var data = new float[(long)vocab * bits];
        for (int t = 0; t < vocab; t++)
            for (int j = 0; j < bits; j++)
                data[(long)t * bits + j] = (t >> (bits - 1 - j)) & 1;
        return torch.tensor(data, [vocab, bits]);
    }

    /// <summary>c(t) = A·bin(t) ⊕ b over GF(2): A a seeded random invertible k x k bit matrix, b a seeded random k-bit
    /// vector, bin(t) most significant bit first. A bijection on k-bit codes, so ids keep distinct codes.</summary>
    public static Tensor AffineCode(int vocab, int bits, long seed)
    {
        var (a, b) = AffineMap(bits, seed);
        var data = new float[(long)vocab * bits];
        for (int t = 0; t < vocab; t++)
        {
            uint x = Apply(a, b, (uint)t, bits);
            for (int j = 0; j < bits; j++) data[(long)t * bits + j] = (x >> (bits - 1 - j)) & 1;
        }
        return torch.tensor(data, [vocab, bits]);
    }

    /// <summary>The rows of A (row i as a bit mask over input bits, most significant first) and b.</summary>
    public static (uint[] A, uint B) AffineMap(int bits, long seed)
    {
        if (bits is < 1 or > 31) throw new StrataException($"substrate.bits: the affine code needs 1..31 bits, got {bits}");
        var rng = new SplitMix64((ulong)seed);
        uint full = (1u << bits) - 1;
        while (true)
        {
            var rows = Enumerable.Range(0, bits).Select(_ => (uint)rng.Next() & full).ToArray();
            if (Rank(rows, bits) == bits) return (rows, (uint)rng.Next() & full);
        }
    }

    public static uint Apply(uint[] a, uint b, uint x, int bits)
    {
        uint y = 0;
        for (int i = 0; i < bits; i++)
            if ((System.Numerics.BitOperations.PopCount(a[i] & x) & 1) != 0) y |= 1u << (bits - 1 - i);
        return y ^ b;
    }

    /// <summary>Rank over GF(2) of bit rows.</summary>
    public static int Rank(IEnumerable<uint> rows, int bits)
    {
        var m = rows.ToArray();
        int rank = 0;
        for (int col = bits - 1; col >= 0 && rank < m.Length; col--)
        {
            int pivot = Array.FindIndex(m, rank, r => ((r >> col) & 1) != 0);
            if (pivot < 0) continue;
            (m[rank], m[pivot]) = (m[pivot], m[rank]);
            for (int i = 0; i < m.Length; i++)
                if (i != rank && ((m[i] >> col) & 1) != 0) m[i] ^= m[rank];
            rank++;
        }
        return rank;
    }

    /// <summary>V random 0/1 codes of k bits, seeded, redrawn until every id has its own ("no collisions by construction").</summary>
    public static Tensor RandomCode(int vocab, int bits, long seed)
    {
        var rng = new SplitMix64((ulong)seed);
        var seen = new HashSet<string>();
        var data = new float[(long)vocab * bits];
        var row = new char[bits];
        for (int t = 0; t < vocab; t++)
        {
            do
            {
                for (int j = 0; j < bits; j += 64)
                {
                    ulong r = rng.Next();
                    for (int k = 0; k < 64 && j + k < bits; k++) row[j + k] = (char)('0' + (int)((r >> k) & 1));
                }
            } while (!seen.Add(new string(row)));
            for (int j = 0; j < bits; j++) data[(long)t * bits + j] = row[j] - '0';
        }
        return torch.tensor(data, [vocab, bits]);
    }

    /// <summary>Full-rank PCA of a 0/1 matrix [N, D] (centred by the column means, rotated onto the eigenvectors of the
    /// D x D covariance in order of decreasing variance, each component signed so that its largest loading is
    /// positive), then every row L2-normalised; float32. The covariance comes from exact integer co-occurrence counts
    /// and the rest is float64, so the result does not depend on thread counts.</summary>
    public static Tensor PcaNormalized(Tensor bits)
    {
        var (mean, components) = PrincipalAxes(bits);
        using var _m = mean;
        using var _c = components;
        long n = bits.shape[0], d = bits.shape[1];
        var result = torch.empty([n, d], ScalarType.Float32);
        const long chunk = 8192;
        using Scalar least = 1e-300;
        for (long start = 0; start < n; start += chunk)
        {
            using var scope = torch.NewDisposeScope();
            long len = Math.Min(chunk, n - start);
            var y = (bits.narrow(0, start, len).to(ScalarType.Float64) - mean).matmul(components);
            var norms = y.norm(1, true, 2).clamp_min(least);
            result.narrow(0, start, len).copy_((y / norms).to(ScalarType.Float32));
        }
        return result;
    }

    /// <summary>The column means [D] and the principal axes [D, D] (columns, float64) of a 0/1 matrix.</summary>
    public static (Tensor Mean, Tensor Components) PrincipalAxes(Tensor bits)
    {
        using var scope = torch.NewDisposeScope();
        long n = bits.shape[0];
        var x = bits.to(ScalarType.Float32);
        var counts = x.t().matmul(x).to(ScalarType.Float64);                             // exact: integer sums below 2^24
        var sums = x.sum(dim: 0L).to(ScalarType.Float64);
        using Scalar rows = n, degrees = Math.Max(1, n - 1);
        var mean = sums.div(rows);
        var cov = (counts - sums.outer(sums).div(rows)).div(degrees);
        var (_, vectors) = torch.linalg.eigh(cov);                                        // ascending eigenvalues
        var components = vectors.flip(1);                                                 // columns by decreasing variance
        var largest = components.abs().argmax(0);
        var signs = components.gather(0, largest.unsqueeze(0)).sign();
        signs = torch.where(signs.eq(Scalars.Zero), torch.ones_like(signs), signs);
        return (mean.MoveToOuterDisposeScope(), (components * signs).MoveToOuterDisposeScope());
    }

    /// <summary>sha256 of a table's shape and float32 bytes (row-major, little-endian), as lowercase hex.</summary>
    public static string ContentHash(Tensor table)
    {
        using var t = table.to(ScalarType.Float32).cpu().contiguous();
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(System.Text.Encoding.ASCII.GetBytes($"float32[{string.Join(",", t.shape)}]"));
        long rows = t.shape[0], rowsPerChunk = Math.Max(1, (1L << 26) / Math.Max(1, t.numel() / Math.Max(1, rows) * 4));
        for (long start = 0; start < rows; start += rowsPerChunk)
        {
            using var part = t.narrow(0, start, Math.Min(rowsPerChunk, rows - start));
            h.AppendData(part.bytes);
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }
}
