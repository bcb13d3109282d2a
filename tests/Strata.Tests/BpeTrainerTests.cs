using Strata.Tokenization;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>`strata tokenizer train`: BPE vocabularies of a chosen size, read by the Hugging Face library to the same ids.</summary>
public class BpeTrainerTests
{
    [Fact]
    public void The_most_frequent_pair_merges_first_and_ties_go_to_the_lowest_ids()
    {
        var words = new Dictionary<string, long> { ["low"] = 5, ["lower"] = 2, [" newest"] = 6, [" widest"] = 3 };
        var t = BpeTrainer.Train("t", words, vocabSize: 4 + 11 + 3);                    // 11 characters, 3 merges
        // counts: (e,s) 9 and (s,t) 9, (e,s) with the lower ids; then (es,t) 9; then (l,o) 7 and (o,w) 7, (l,o) the lower
        Assert.Equal([("e", "s"), ("es", "t"), ("l", "o")], t.Merges);
        Assert.Equal(["<unk>", "<s>", "</s>", "<pad>"], t.Tokens.Take(4));
        Assert.Equal(18, t.VocabSize);
        Assert.Equal(t.IdOf("</s>"), t.EndOfText);
        Assert.Equal([t.IdOf(" "), t.IdOf("n"), t.IdOf("e"), t.IdOf("w"), t.IdOf("est")], t.Encode(" newest").Select(i => (int?)i));
        Assert.Equal([t.IdOf("lo"), t.IdOf("w"), 0], t.Encode("low!").Select(i => (int?)i));        // '!' was never seen: <unk>
    }

    [Fact]
    public void Learnt_tokens_never_cross_a_word_boundary_and_the_size_is_exact()
    {
        var words = new Dictionary<string, long>();
        BpeTrainer.CountWords(string.Concat(Enumerable.Repeat("the cat sat on the mat. The cat's hat!\n\n", 50)), words);
        var t = BpeTrainer.Train("t", words, vocabSize: 30, minFrequency: 1);
        Assert.Equal(30, t.VocabSize);
        foreach (var token in t.Tokens.Skip(4))
            Assert.DoesNotMatch(@"\S\s|[a-z][.!']", token);                            // no "x y", no "t.", no space after a word
        var many = BpeTrainer.Train("t", words, vocabSize: 100_000, minFrequency: 1);      // runs out of pairs before the size
        Assert.True(many.VocabSize < 100_000);
        Assert.Equal(many.Tokens.Count, many.Tokens.Distinct().Count());
    }

    [Fact]
    public void Bad_sizes_are_refused()
    {
        var words = new Dictionary<string, long> { ["ab"] = 3 };
        Assert.Contains("--vocab-size", Assert.Throws<StrataException>(() => BpeTrainer.Train("t", words, 4)).Message);
        Assert.Contains("--min-frequency", Assert.Throws<StrataException>(() => BpeTrainer.Train("t", words, 100, 0)).Message);
    }

    /// <summary>A 4,096-id vocabulary learnt from English and Russian, written by `strata tokenizer train`, encodes
    /// English, Russian and Chinese text (mostly unknown characters there) to the ids the Hugging Face library gives.</summary>
    [Fact]
    public void Hugging_Face_tokenizers_reads_the_trained_file_to_the_same_ids()
    {
        var dir = TestPaths.TempDir();
        var sotu = Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data");
        var (code, output, err) = CliRunner.Run("tokenizer", "train", sotu, "/usr/share/games/fortunes/ru", "--pattern", "*", "--exclude",
            @"(^20|\.dat$|\.u8$)",
            "--vocab-size", "4096", "--out", dir);
        Assert.True(code == 0, err);
        Assert.Contains("tokenizer.json (4,096 ids: 4 special", output);
        var ours = TokenizerJson.Read(Path.Combine(dir, TokenizerJson.FileName));
        Assert.Equal(4096, ours.VocabSize);
        Assert.Contains(ours.Tokens, t => t.Any(c => c is >= 'а' and <= 'я') && t.Length > 3);                // Russian merges learnt too
        using var hf = new Tokenizers.DotNet.Tokenizer(Path.Combine(dir, TokenizerJson.FileName));
        long chars = 0;
        foreach (var file in Corpora.EnglishFiles.Where(f => Path.GetFileName(f).StartsWith("20")).Take(8)
                     .Concat(Corpora.RussianFiles.Take(4)).Concat(Corpora.ChineseFiles.Take(1)))
        {
            var text = Corpora.Read(file);
            text = text[..Math.Min(text.Length, 120_000)];
            var theirs = hf.Encode(text).Select(x => (int)x).ToArray();
            var mine = ours.Encode(text);
            if (!theirs.SequenceEqual(mine))
            {
                int at = Enumerable.Range(0, Math.Min(theirs.Length, mine.Length)).FirstOrDefault(i => theirs[i] != mine[i]);
                Assert.Fail($"{file}: first difference at token {at}: hf {theirs.ElementAtOrDefault(at)} vs strata {mine.ElementAtOrDefault(at)}");
            }
            if (!mine.Contains(0)) Assert.Equal(text, ours.Decode(mine));                     // lossless where every character is known
            chars += text.Length;
        }
        Assert.True(chars > 300_000, $"only {chars} characters compared");
    }
}
