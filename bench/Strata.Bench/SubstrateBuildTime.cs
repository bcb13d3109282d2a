using System.Diagnostics;
using Strata.Substrates;
using Strata.Tokenization;
using TorchSharp;

namespace Strata.Bench;

/// <summary>
/// Build time of the 65,536 x 1,024 visual substrate (bvv241-2-3) from nothing, twice in one run: glyph shaping and
/// rasterisation with the bits of every token (augmentation, resize, polar order), then the full PCA and L2; the two
/// builds' hashes must agree.
/// </summary>
public static class SubstrateBuildTime
{
    public static void Run(string[] args)
    {
        var tokens = Bvv241Builder.Get(Bvv241Builder.TwoThree).Tokens;
        Console.WriteLine($"visual substrate bvv241-2-3: {tokens.Count:N0} tokens, {Environment.ProcessorCount} cores, {torch.get_num_threads()} " +
            "torch threads");
        string? first = null;
        for (int round = 1; round <= 2; round++)
        {
            var clock = Stopwatch.StartNew();
            using var glyphs = new UnicodeGlyphs(UnicodeGlyphs.DebianFont, 32);
            var bits = VisualUnicodeTable.Bits(tokens, VisualVariant.TwoThree, glyphs);
            double render = clock.Elapsed.TotalSeconds;
            using var x = torch.tensor(bits, [tokens.Count, 1024]);
            using var table = SubstrateTables.PcaNormalized(x);
            double total = clock.Elapsed.TotalSeconds;
            var hash = SubstrateTables.ContentHash(table);
            Console.WriteLine($"build {round}: glyphs + bits {render:F1} s, PCA + L2 {total - render:F1} s, total {total:F1} s, sha256:{hash[..16]}...");
            if (first is not null && first != hash) throw new InvalidOperationException("the two builds differ");
            first = hash;
        }
        Console.WriteLine("the two builds are byte-identical");
    }
}
