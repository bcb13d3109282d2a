using Strata.Tokenization;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

public class NgramMinerTests
{
    [Theory]
    [InlineData("n-gramms-2-3.txt")]
    [InlineData("n-gramms-2-3-4-5.txt")]
    public void Published_lists_parse_and_print_back_byte_for_byte(string file)
    {
        var text = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "src/Strata/Tokenization/Data", file));
        var list = NgramList.Parse(text, file);
        Assert.Equal(Bvv241Builder.Languages, list.Languages.Select(l => l.Lang));
        Assert.Equal(text, list.ToPythonLiteral());
    }

    [Fact]
    public void Words_give_ngrams_inside_words_and_cjk_documents_go_by_character()
    {
        var counts = new Dictionary<string, (long, long)>();
        NgramMiner.Count("The 2021 theme’s then", 3, counts);
        Assert.Equal(new[] { "The", "the", "hem", "eme", "me'", "e's", "hen" }, counts.Keys);   // digits dropped, ’ -> '
        Assert.Equal(2, counts["the"].Item1);
        var cjk = new Dictionary<string, (long, long)>();
        NgramMiner.Count("中文 字，中文", 2, cjk);
        Assert.Equal(2, cjk["中文"].Item1);
        Assert.True(cjk.ContainsKey("字，"));                                  // across punctuation, whitespace removed
        Assert.True(cjk.ContainsKey("文字"));
    }

    [Fact]
    public void Mined_lists_build_a_tokenizer_that_hugging_face_reads_identically()
    {
        var dir = TestPaths.TempDir();
        var lists = Path.Combine(dir, "ngrams.txt");
        var en = string.Join(",", Corpora.EnglishFiles.Where(f => Path.GetFileName(f).StartsWith("19")).Take(20));
        var (code, output, err) = CliRunner.Run("tokenizer", "mine", $"en={en}", $"ru=/usr/share/games/fortunes/ru/love", "--out", lists, "--n",
            "2,3", "--top", "300");
        Assert.True(code == 0, err);
        var list = NgramList.Load(lists);
        Assert.Equal(["en", "ru"], list.Languages.Select(l => l.Lang));
        Assert.Contains(list.Languages[0].TopNgrams[2].Take(5), g => g.Gram == "th");
        Assert.Contains("ru: 300 2-grams", output);

        var tokDir = Path.Combine(dir, "tok");
        Assert.Equal(0, CliRunner.Run("tokenizer", "build", "--ngrams", lists, "--top", "300", "--out", tokDir).Code);
        var ours = TokenizerJson.Read(tokDir);
        Assert.Equal(65536, ours.VocabSize);
        using var hf = new Tokenizers.DotNet.Tokenizer(Path.Combine(tokDir, TokenizerJson.FileName));
        var text = Corpora.Read(Corpora.EnglishFiles.Last()) + Corpora.Read("/usr/share/games/fortunes/ru/love");
        Assert.Equal(hf.Encode(text).Select(x => (int)x).ToArray(), ours.Encode(text));
        Assert.True(ours.Encode(text).Length < text.Length * 0.75);          // the mined n-grams compress the text
    }

    [Theory]
    [InlineData("[{'lang': 'en', 'top_ngrams': {2: [('th', 5)]}", "offset")]
    [InlineData("[{'lang': 'en', 'top_ngrams': {2: [('th', 5.5)]}}]", "offset 43")]
    [InlineData("[{'lang': 'en'}]", "'top_ngrams'")]
    [InlineData("{'en': 1}", "list")]
    [InlineData("[{'lang': 'en', 'top_ngrams': {2: [['th']]}}]", "(string, count)")]
    public void Malformed_ngram_file_is_refused(string text, string message)
    {
        var e = Assert.Throws<StrataException>(() => NgramList.Parse(text, "bad.txt"));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("bad.txt: ", e.Message);
    }

    [Fact]
    public void Existing_tokenizers_fit_behind_the_same_seam()
    {
        var gpt2 = Strata.Tokenization.Tokenizers.ByName("gpt2");
        Assert.Equal(50257, gpt2.VocabSize);
        Assert.Equal(50256, gpt2.EndOfText);
        Assert.Equal([31373, 995], gpt2.Encode("hello world"));
        Assert.Equal("hello world", gpt2.Decode(gpt2.Encode("hello world")));
        var appended = new List<int> { 7 };                                       // the list form appends, as data prepare calls it
        gpt2.Encode("hello world".AsSpan(), appended);
        Assert.Equal([7, 31373, 995], appended);
        Assert.Equal(100277, Strata.Tokenization.Tokenizers.ByName("cl100k_base").VocabSize);
    }
}
