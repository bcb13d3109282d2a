using Strata.Tokenization;
using Xunit;

namespace Strata.Tests;

/// <summary>The bvv241 vocabularies against the counts and ids the author's notebooks print.</summary>
public class Bvv241Tests
{
    private static readonly BpeTokenizer T23 = Bvv241Builder.Get(Bvv241Builder.TwoThree);
    private static readonly BpeTokenizer TMax = Bvv241Builder.Get(Bvv241Builder.Max);

    private static string Split(BpeTokenizer t, string text) => string.Join("|", t.Encode(text).Select(t.TokenOf));

    [Fact]
    public void Two_three_has_8177_ngrams_and_12224_merges()
    {
        var lists = NgramList.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "src/Strata/Tokenization/Data/n-gramms-2-3.txt")), "2-3");
        var report = Bvv241Builder.Build("x", Bvv241Builder.Candidates(lists, [3, 2], 338), 65536);
        Assert.Equal(8177, report.Placed);
        Assert.Equal(0, report.Dropped);
        Assert.Equal(12224, report.Merges);
        Assert.Equal(158, report.Unreachable);
        Assert.Equal(65536, T23.VocabSize);
        Assert.Equal(12224, T23.Merges.Count);
        Assert.Equal("<unused_63729>", T23.TokenOf(0xF8F1));               // ids after the last n-gram at 0xF8F0
        Assert.Equal("<unused_65535>", T23.TokenOf(0xFFFF));
        Assert.Equal("<special_token_57367>", T23.TokenOf(57367));
    }

    [Fact]
    public void Max_has_73727_ngrams_41_dropped_and_182678_merges()
    {
        Assert.Equal(131072, TMax.VocabSize);
        Assert.Equal(182678, TMax.Merges.Count);
        Assert.Equal("<unused_131071>", TMax.TokenOf(131071));
        Assert.Equal(2, TMax.Tokens.Count(t => t.StartsWith("<unused_", StringComparison.Ordinal)));
    }

    [Fact]
    public void Published_ids_reproduce()
    {
        Assert.Equal([104, 56035, 111, 32, 57811, 32, 116, 56117], T23.Encode("hello the test"));
        Assert.Equal([70960, 32, 113757, 32, 99060], TMax.Encode("hello the test"));
        foreach (var (tok, id) in new[] { ("ell", 56035), ("est", 56117), ("the", 57811), ("he", 60836), ("th", 61228) })
            Assert.Equal(id, T23.IdOf(tok));
        foreach (var (tok, id) in new[] { ("hello", 70960), ("test", 99060), ("ell", 110616), ("the", 113757) })
            Assert.Equal(id, TMax.IdOf(tok));
        Assert.Equal(57347, T23.IdOf("<unk>"));
    }

    [Fact]
    public void Published_splits_reproduce()
    {
        const string q = "Question: What is the capital of Japan?\nAnswer:";
        Assert.Equal("Qu|est|ion|:| |W|hat| |is| |the| |c|ap|i|tal| |of| |Ja|pan|?|\n|An|s|wer|:", Split(T23, q));
        Assert.Equal("Question|:| |What| |is| |the| |capital| |of| |Japan|?|\n|Answer|:", Split(TMax, q));
        Assert.Equal("Пр|и|вет|,| |м|ир|!| |<unk>| |中|文", Split(T23, "Привет, мир! 😀 中文"));
    }

    [Fact]
    public void Special_tokens_are_split_off_first()
    {
        var ids = T23.Encode("a</s>the<s>[INST]x<unk>");
        Assert.Equal([97, 57346, 57811, 57345, 57356, 120, 57347], ids);
        Assert.Equal("a</s>the<s>[INST]x<unk>", T23.Decode(ids));
    }

    [Fact]
    public void Round_trip_on_random_bmp_text_outside_private_use()
    {
        var rng = new Random(42);
        for (int trial = 0; trial < 200; trial++)
        {
            var chars = new char[rng.Next(1, 80)];
            for (int i = 0; i < chars.Length; i++)
            {
                int c;
                do c = rng.Next(2) == 0 ? rng.Next(0x20, 0x500) : rng.Next(0, 0x10000);
                while (c is >= 0xD800 and <= 0xF8FF or 0xFFFF);
                chars[i] = (char)c;
            }
            var s = new string(chars);
            Assert.Equal(s, T23.Decode(T23.Encode(s)));
            Assert.Equal(s, TMax.Decode(TMax.Encode(s)));
        }
    }
}
