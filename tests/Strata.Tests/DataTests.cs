using Strata.Formats;
using Strata.Data;
using Strata.Tokenization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class DataTests
{
    [Fact]
    public void Codepoint_ids_are_the_bvv241_single_character_ids()
    {
        var tok = new CodePointTokenizer();
        // the bvv241 builder notebook's example: 'Привет, мир! 😀 中文' keeps code points and turns the emoji into <unk> (57347)
        var ids = tok.Encode("Пр, 😀 中\uE000\uFFFF");
        Assert.Equal(new[] { 0x41F, 0x440, ',', ' ', 57347, ' ', 0x4E2D, 57347, 57347 }, ids);
        Assert.Equal("Hello, мир 中文", tok.Decode(tok.Encode("Hello, мир 中文")));
        var appended = new List<int> { 7 };                                       // the list form appends, as data prepare calls it
        tok.Encode("Пр, 😀".AsSpan(), appended);
        Assert.Equal(new[] { 7, 0x41F, 0x440, ',', ' ', 57347 }, appended);
    }

    [Fact]
    public void Shard_round_trips_and_records_its_vocabulary()
    {
        var dir = TestPaths.TempDir();
        var tokens = Enumerable.Range(0, 1000).Select(i => i * 65 % 65536).ToList();
        TokenShard.Write(Path.Combine(dir, "a.tokens"), 65536, tokens);
        using var s = TokenShard.Open(Path.Combine(dir, "a.tokens"));
        Assert.Equal(65536, s.VocabSize);
        Assert.Equal(2, s.TokenWidth);
        Assert.Equal(tokens, s.ReadAll());
        Assert.Equal(32 + 2000, new FileInfo(Path.Combine(dir, "a.tokens")).Length);
        TokenShard.Write(Path.Combine(dir, "b.tokens"), 131072, [131071, 5]);
        using var wide = TokenShard.Open(Path.Combine(dir, "b.tokens"));
        Assert.Equal(4, wide.TokenWidth);
        Assert.Equal(new[] { 131071, 5 }, wide.ReadAll());
    }

    [Theory]
    [InlineData(65536)]                                                      // 16-bit tokens, narrowed 16 at a time
    [InlineData(131072)]                                                     // 32-bit tokens
    public void Appends_of_any_length_write_every_token_in_order_and_an_id_outside_the_vocabulary_writes_none(int vocab)
    {
        var dir = TestPaths.TempDir();
        var rng = new Random(5);
        var parts = new List<int[]>();
        foreach (var n in new[] { 0, 1, 15, 16, 17, 33, 700_001, 3 })              // 700,001 crosses the writer's 1 MiB buffer
            parts.Add(Enumerable.Range(0, n).Select(i => i % 7 == 0 ? vocab - 1 : rng.Next(vocab)).ToArray());
        using var w = new TokenShardWriter(Path.Combine(dir, "a.tokens"), vocab);
        foreach (var p in parts) w.Append(p);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => w.Append([1, 2, vocab, 3]));
        Assert.Contains($"token {vocab} outside vocab {vocab}", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Append([4, -1]));
        Assert.Equal(parts.Sum(p => p.Length), w.Count);
        w.Commit();
        using var s = TokenShard.Open(Path.Combine(dir, "a.tokens"));
        Assert.Equal(parts.SelectMany(p => p), s.ReadAll());
    }

    [Fact]
    public void Batches_depend_only_on_seed_and_index()
    {
        var dir = TestPaths.TempDir();
        TokenShard.Write(Path.Combine(dir, "a.tokens"), 65536, Enumerable.Range(0, 5000).ToList());
        using var s = TokenShard.Open(Path.Combine(dir, "a.tokens"));
        var a = new BatchSampler(s, 4, 16, 9);
        var b = new BatchSampler(s, 4, 16, 9);
        using var a3 = a.Batch(3, CPU);
        using var b3 = b.Batch(3, CPU);
        using var a4 = a.Batch(4, CPU);
        Assert.Equal([4L, 17], a3.shape);
        Assert.Equal(a3.data<long>().ToArray(), b3.data<long>().ToArray());
        Assert.NotEqual(a3.data<long>().ToArray(), a4.data<long>().ToArray());
        // windows are contiguous runs of the shard (the shard holds 0, 1, 2, ...)
        var row = a3[0].data<long>().ToArray();
        Assert.All(Enumerable.Range(1, 16), i => Assert.Equal(row[0] + i, row[i]));
        using var e0 = a.EvalBatch(0, 2, CPU);
        using var e1 = a.EvalBatch(1, 2, CPU);
        Assert.Equal(0, e0[0, 0].item<long>());
        Assert.Equal(5000 - 17, e1[3, 0].item<long>());                    // evaluation windows span the whole shard
    }

    [Fact]
    public void Prepare_splits_by_file_name_or_seeded_fraction()
    {
        var dir = TestPaths.TempDir();
        var corpus = Path.Combine(dir, "corpus");
        Directory.CreateDirectory(Path.Combine(corpus, "sub"));
        for (int i = 0; i < 10; i++) File.WriteAllText(Path.Combine(corpus, i < 5 ? "" : "sub", $"{1990 + i}_doc.txt"), $"document {i} text");
        File.WriteAllText(Path.Combine(corpus, "ignored.json"), "{}");
        var byName = DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = Path.Combine(dir, "a"), ValidationMatch = "199[89]_",
            Tokenizer = "codepoint" });
        Assert.Equal(new[] { "sub/1998_doc.txt", "sub/1999_doc.txt" }, byName.Inputs.Where(i => i.ValidationDocuments > 0).Select(i =>
            Path.GetRelativePath(corpus, i.Path).Replace('\\', '/')));
        Assert.Equal(8, byName.Train.Documents);
        Assert.Equal(8 * 15 + 7, byName.Train.Tokens);                     // 8 documents of 15 characters, 7 separators
        var f1 = DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = Path.Combine(dir, "b"), ValidationFraction = 0.3, Seed = 1 });
        var f2 = DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = Path.Combine(dir, "c"), ValidationFraction = 0.3, Seed = 1,
            Threads = 1 });
        var held = f1.Inputs.Where(i => i.ValidationDocuments > 0).Select(i => i.Path).ToList();
        Assert.InRange(held.Count, 1, 9);                                   // a seeded hash per document: about 3 of 10
        Assert.Equal(held, f2.Inputs.Where(i => i.ValidationDocuments > 0).Select(i => i.Path));
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "b", DatasetManifest.FileName)), File.ReadAllBytes(Path.Combine(dir, "c", DatasetManifest.FileName)));
        foreach (var shard in Directory.GetFiles(Path.Combine(dir, "b"), "*.tokens"))
            Assert.Equal(File.ReadAllBytes(shard), File.ReadAllBytes(Path.Combine(dir, "c", Path.GetFileName(shard))));
    }
}
