using Strata.Tokenization;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

public class TokenizerJsonTests
{
    private static readonly Lazy<string> Dir23 = new(() => Write(Bvv241Builder.TwoThree));
    private static readonly Lazy<string> DirMax = new(() => Write(Bvv241Builder.Max));

    private static string Write(string name)
    {
        var dir = TestPaths.TempDir();
        TokenizerJson.WriteDirectory(Bvv241Builder.Get(name), dir);
        return dir;
    }

    private static IEnumerable<(string Language, string File)> AllCorpora =>
        Corpora.EnglishFiles.Select(f => ("en", f)).Concat(Corpora.RussianFiles.Select(f => ("ru", f))).Concat(Corpora.ChineseFiles.Select(f => ("zh", f)));

    [Fact]
    public void Round_trip_is_lossless_on_every_english_russian_and_chinese_corpus_file()
    {
        var t = Bvv241Builder.Get(Bvv241Builder.TwoThree);
        var m = Bvv241Builder.Get(Bvv241Builder.Max);
        int files = 0, lossy = 0;
        foreach (var (_, file) in AllCorpora)
        {
            var text = Corpora.Read(file);
            if (text.EnumerateRunes().Any(r => r.Value > 0xFFFF || r.Value is >= 0xE000 and <= 0xF8FF or 0xFFFF)) { lossy++; continue; }   // <unk> by design
            Assert.Equal(text, t.Decode(t.Encode(text)));
            Assert.Equal(text, m.Decode(m.Encode(text)));
            files++;
        }
        Assert.True(files >= 330 && lossy <= 3, $"{files} files checked, {lossy} skipped as lossy");
    }

    [Fact]
    public void Written_then_read_tokenizer_json_gives_identical_ids()
    {
        foreach (var (name, dir) in new[] { (Bvv241Builder.TwoThree, Dir23.Value), (Bvv241Builder.Max, DirMax.Value) })
        {
            var original = Bvv241Builder.Get(name);
            var read = TokenizerJson.Read(dir);
            Assert.Equal(original.Tokens, read.Tokens);
            Assert.Equal(original.Merges, read.Merges);
            Assert.Equal(original.SpecialTokens, read.SpecialTokens);
            foreach (var (_, file) in AllCorpora.Where((_, i) => i % 10 == 0))
            {
                var text = Corpora.Read(file);
                Assert.Equal(original.Encode(text), read.Encode(text));
            }
        }
        Assert.True(File.Exists(Path.Combine(Dir23.Value, "tokenizer_config.json")));
        Assert.Contains("\"clean_up_tokenization_spaces\": false", File.ReadAllText(Path.Combine(Dir23.Value, "tokenizer_config.json")));
    }

    [Theory]
    [InlineData(Bvv241Builder.TwoThree)]
    [InlineData(Bvv241Builder.Max)]
    public void Hugging_Face_tokenizers_gives_the_same_ids_for_the_written_file(string name)
    {
        var dir = name == Bvv241Builder.TwoThree ? Dir23.Value : DirMax.Value;
        using var hf = new Tokenizers.DotNet.Tokenizer(Path.Combine(dir, TokenizerJson.FileName));
        var ours = Bvv241Builder.Get(name);
        long chars = 0;
        foreach (var (lang, file) in AllCorpora)
        {
            var text = Corpora.Read(file);
            var theirs = hf.Encode(text).Select(x => (int)x).ToArray();
            var mine = ours.Encode(text);
            if (!theirs.SequenceEqual(mine))
            {
                int at = Enumerable.Range(0, Math.Min(theirs.Length, mine.Length)).FirstOrDefault(i => theirs[i] != mine[i]);
                Assert.Fail($"{lang} {file}: first difference at token {at}: hf {theirs.ElementAtOrDefault(at)} vs strata {mine.ElementAtOrDefault(at)}");
            }
            chars += text.Length;
        }
        Assert.True(chars > 5_000_000, $"only {chars} characters compared");
    }

    [Theory]
    [InlineData("model.vocab", """{"decoder":{"type":"Sequence","decoders":[]},"model":{"type":"BPE","unk_token":"<unk>","merges":[]}}""")]
    [InlineData("pre_tokenizer", """{"pre_tokenizer":{"type":"Whitespace"},"decoder":{"type":"Sequence","decoders":[]},"model":{"type":"BPE"}}""")]
    [InlineData("model.type", """{"decoder":{"type":"Sequence","decoders":[]},"model":{"type":"WordPiece"}}""")]
    [InlineData("merges[0]", """
        {"decoder":{"type":"Sequence","decoders":[]},
         "model":{"type":"BPE","unk_token":"<unk>","vocab":{"<unk>":0,"a":1},"merges":["a b"]}}
        """)]
    [InlineData("model.vocab", """
        {"decoder":{"type":"Sequence","decoders":[]},
         "model":{"type":"BPE","unk_token":"<unk>","vocab":{"<unk>":0,"a":2},"merges":[]}}
        """)]
    [InlineData("added_tokens[0]", """
        {"added_tokens":[{"id":5,"content":"<s>"}],"decoder":{"type":"Sequence","decoders":[]},
         "model":{"type":"BPE","unk_token":"<unk>","vocab":{"<unk>":0},"merges":[]}}
        """)]
    [InlineData("not valid JSON", """{"model": """)]
    public void Malformed_tokenizer_json_is_refused_naming_the_field(string field, string json)
    {
        var path = Path.Combine(TestPaths.TempDir(), "tokenizer.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<StrataException>(() => TokenizerJson.Read(path));
        Assert.Contains(field, e.Message);
        Assert.StartsWith(path, e.Message);
    }
}
