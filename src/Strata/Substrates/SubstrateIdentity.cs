using Strata.Util;

namespace Strata.Substrates;

/// <summary>The one check that two things share a frozen token interface, by the sha256 of the table.</summary>
public static class SubstrateIdentity
{
    /// <summary>Refuses, in one message naming both sides, when <paramref name="actual"/> (what
    /// <paramref name="actualSource"/> holds) is not <paramref name="expected"/> (what <paramref name="expectedSource"/>
    /// holds). A null hash stands for a trainable embedding, which has no table to share.</summary>
    public static void Require(string? expected, string expectedSource, string? actual, string actualSource)
    {
        if (expected == actual) return;
        throw new StrataException(
            $"{actualSource} has the substrate table {Describe(actual)}, {expectedSource} has {Describe(expected)}: they must share the frozen interface");
    }

    private static string Describe(string? hash) => hash is null ? "none (a trainable embedding)" : $"sha256:{hash}";
}
