using Strata.Modeling;
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class SubstrateTests
{
    [Fact]
    public void Code_rows_are_the_token_id_bits_most_significant_first()
    {
        using var table = SubstrateTables.BinaryCode(65536, 16);
        Assert.Equal([65536L, 16], table.shape);
        float[] Row(int t) => table[t].data<float>().ToArray();
        Assert.Equal(new float[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1 }, Row('A'));          // 0x0041
        Assert.Equal(new float[] { 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1 }, Row(0x4E2D));        // 中
        Assert.All(Row(65535), v => Assert.Equal(1f, v));
        using var unique = table.unique(dim: 0).output;
        Assert.Equal(65536, unique.shape[0]);
    }

    /// <summary>The 12-bit code of a 4,096-id vocabulary (the CPU growth study's interface) at d = 64, which 12 does not
    /// divide: every id's 12 bits, most significant first, each on 5 or 6 consecutive dimensions (floor(j 12 / 64)).</summary>
    [Fact]
    public void A_12_bit_code_is_every_ids_bits_lifted_unevenly_to_d_64()
    {
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 8, VocabSize = 4096 };
        var spec = new SubstrateSpec { Bits = 12 }.Validate(cfg.VocabSize, cfg.DModel);
        using var s = (FrozenTableSubstrate)SubstrateBuilder.Create(spec, cfg.VocabSize, cfg.DModel);
        Assert.Equal([4096L, 12], s.Table.shape);
        using var lifted = s.Lifted();                                                     // [4096, 64]
        Assert.Equal([4096L, 64], lifted.shape);
        var all = lifted.data<float>().ToArray();
        for (int t = 0; t < 4096; t++)
            for (int j = 0; j < 64; j++)
                Assert.Equal((t >> (11 - j * 12 / 64)) & 1, (int)all[t * 64 + j]);
        var widths = Enumerable.Range(0, 64).GroupBy(j => j * 12 / 64).Select(g => g.Count()).ToList();
        Assert.Equal(12, widths.Count);
        Assert.All(widths, w => Assert.InRange(w, 5, 6));
        using var unique = lifted.unique(dim: 0).output;
        Assert.Equal(4096, unique.shape[0]);                                               // distinct codes for every id
        // 12 bits cannot name 4,097 ids, and a table wider than the model is refused unless truncated
        Assert.Contains("2^bits >= vocab_size", Assert.Throws<StrataException>(() => new SubstrateSpec { Bits = 12 }.Validate(4097, 64)).Message);
        Assert.Contains("truncate", Assert.Throws<StrataException>(() => new SubstrateSpec { Bits = 16 }.Validate(4096, 12)).Message);
    }

    [Theory]
    [InlineData(SubstrateLift.Interleave)]
    [InlineData(SubstrateLift.Tile)]
    public void Lift_spreads_bits_as_documented_and_keeps_rank_16(SubstrateLift lift)
    {
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 8, VocabSize = 65536 };
        using var s = (FrozenTableSubstrate)SubstrateBuilder.Create(new SubstrateSpec { Bits = 16, Lift = lift }, cfg.VocabSize, cfg.DModel);
        Assert.True(s.IsFrozen);
        Assert.All(s.parameters(), p => Assert.False(p.requires_grad));
        using var ids = Scalars.Arange(0, 65536, ScalarType.Int64).view(1, -1);
        using var lifted = s.call(ids)[0];                                     // [65536, 64]
        int t = 0x4E2D;
        var row = lifted[t].data<float>().ToArray();
        for (int j = 0; j < 64; j++)
        {
            int bit = lift == SubstrateLift.Interleave ? j / 4 : j % 16;
            Assert.Equal((t >> (15 - bit)) & 1, (int)row[j]);
        }
        using var rank = torch.linalg.matrix_rank(lifted);
        Assert.Equal(16, rank.item<long>());
    }

    [Fact]
    public void Too_few_bits_for_the_vocabulary_is_refused()
    {
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 8, VocabSize = 65537 };
        var e = Assert.Throws<StrataException>(() => new SubstrateSpec { Bits = 16 }.Validate(cfg.VocabSize, cfg.DModel));
        Assert.Contains("bits", e.Message);
    }
}
