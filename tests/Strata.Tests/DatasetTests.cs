using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json.Serialization;
using Strata.Data;
using Strata.Formats;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Datasets at corpus scale: every input format, exact ids, 64-bit positions, mixtures, interrupted preparations.</summary>
[Collection("torch")]
public class DatasetTests
{
    private static readonly BpeTokenizer Bvv = Bvv241Builder.Get(Bvv241Builder.TwoThree);

    /// <summary>Real documents in three scripts: SOTU paragraphs, Russian and Chinese fortunes.</summary>
    private static List<string> Documents()
    {
        var docs = new List<string>();
        docs.AddRange(Corpora.Read(Corpora.EnglishFiles.First()).Split("\n\n").Where(p => p.Length > 20).Take(12));
        docs.AddRange(Corpora.Read(Corpora.RussianFiles.First()).Split("\n%\n").Where(p => p.Length > 10).Take(12));
        docs.AddRange(Corpora.StripAnsi(Corpora.Read(Corpora.ChineseFiles.First())).Split("\n%\n").Where(p => p.Length > 5).Take(12));
        docs.Add("");                                                                 // an empty document counts, but adds no token
        return docs;
    }

    private sealed class Body { public string? body { get; set; } }

    private sealed class Row
    {
        [JsonPropertyName("text")] public string? Text { get; set; }
        [JsonPropertyName("id")] public long Id { get; set; }
    }

    private static string Jsonl(IEnumerable<string> docs) =>
        string.Concat(docs.Select((d, i) => System.Text.Json.JsonSerializer.Serialize(new { id = i, text = d }) + "\n"));

    private static List<int[]> TrainDocuments(string datasetDir)
    {
        using var d = Dataset.Open(datasetDir);
        var all = d.Shards(DatasetSplit.Train).SelectMany(s => s.ReadAll()).ToList();
        var docs = new List<int[]>();
        var current = new List<int>();
        foreach (var t in all)
        {
            if (t == Bvv.EndOfText) { docs.Add(current.ToArray()); current.Clear(); }
            else current.Add(t);
        }
        docs.Add(current.ToArray());
        return docs;
    }

    private static DatasetManifest Prepare(string input, string outDir, string pattern = "*.txt", long shardTokens = 100_000_000, ReadOptions? read =
        null, int threads = 2, int readThreads = 1) =>
        DataPreparer.Prepare(new PrepareOptions
        {
            Inputs = [input], OutDir = outDir, Pattern = pattern, ValidationFraction = 0, ShardTokens = shardTokens, Read = read
                ?? new ReadOptions(), Threads = threads, ReadThreads = readThreads,
        });

    [Fact]
    public async Task Text_jsonl_gzip_zstd_and_parquet_inputs_give_the_ids_of_each_document_encoded_alone()
    {
        var docs = Documents();
        var expected = docs.Where(d => d.Length > 0).Select(d => Bvv.Encode(d)).ToList();
        var dir = TestPaths.TempDir();

        var texts = Path.Combine(dir, "texts");
        Directory.CreateDirectory(texts);
        for (int i = 0; i < docs.Count; i++) File.WriteAllText(Path.Combine(texts, $"{i:D3}.txt"), docs[i]);
        File.WriteAllText(Path.Combine(dir, "docs.jsonl"), Jsonl(docs));
        using (var gz = new GZipStream(File.Create(Path.Combine(dir, "docs.jsonl.gz")), CompressionLevel.Fastest))
            gz.Write(System.Text.Encoding.UTF8.GetBytes(Jsonl(docs)));
        using (var f = File.Create(Path.Combine(dir, "docs.jsonl.zst")))
        using (var zst = new ZstdSharp.CompressionStream(f, 3))
            zst.Write(System.Text.Encoding.UTF8.GetBytes(Jsonl(docs)));
        await Parquet.Serialization.ParquetSerializer.SerializeAsync(docs.Select((d, i) => new Row { Text = d, Id = i }), Path.Combine(dir, "docs.parquet"),
            new Parquet.ParquetOptions { RowGroupSize = 10 });                        // several row groups

        foreach (var (input, pattern) in new[] { (texts, "*.txt"), (Path.Combine(dir, "docs.jsonl"), ""), (Path.Combine(dir, "docs.jsonl.gz"), ""),
                     (Path.Combine(dir, "docs.jsonl.zst"), ""), (Path.Combine(dir, "docs.parquet"), "") })
        {
            var outDir = Path.Combine(dir, "out-" + Path.GetFileName(input));
            var m = Prepare(input, outDir, pattern);
            Assert.Equal(docs.Count, m.Train.Documents);
            Assert.Equal(docs.Sum(d => (long)System.Text.Encoding.UTF8.GetByteCount(d)), m.Train.Bytes);
            var got = TrainDocuments(outDir);
            Assert.Equal(expected.Count, got.Count);
            for (int i = 0; i < expected.Count; i++) Assert.True(expected[i].SequenceEqual(got[i]), $"{input}: document {i} differs");
        }
    }

    [Fact]
    public void Json_lines_across_the_read_buffer_blank_lines_crlf_and_a_last_line_without_newline_give_each_documents_ids()
    {
        var docs = Documents().Where(d => d.Length > 0).ToList();
        var all = string.Join("\n\n", docs);
        docs.Insert(1, string.Concat(Enumerable.Repeat(all + "\n\n", 1 + 1_500_000 / all.Length)));        // a line of more than 1 MiB
        var lines = docs.Select((d, i) => System.Text.Json.JsonSerializer.Serialize(new { id = i, text = d }) + (i % 3 == 2 ? "\r" : "")).ToList();
        lines.Insert(3, "");
        lines.Insert(5, " \t\r");
        var dir = TestPaths.TempDir();
        var file = Path.Combine(dir, "docs.jsonl");
        File.WriteAllText(file, string.Join("\n", lines));                     // no newline after the last line
        Assert.True(new FileInfo(file).Length > 1 << 20);                         // the reader reads 1 MiB at a time
        var m = Prepare(file, Path.Combine(dir, "out"), "");
        Assert.Equal(docs.Count, m.Train.Documents);
        var got = TrainDocuments(Path.Combine(dir, "out"));
        Assert.Equal(docs.Count, got.Count);
        for (int i = 0; i < docs.Count; i++) Assert.True(Bvv.Encode(docs[i]).SequenceEqual(got[i]), $"document {i} differs");
    }

    [Fact]
    public void Long_files_read_in_segments_keep_the_ids_of_the_whole_text_and_any_thread_count_gives_the_same_bytes()
    {
        var file = Corpora.EnglishFiles.Last();
        var text = Corpora.Read(file);
        var dir = TestPaths.TempDir();
        var m = Prepare(file, Path.Combine(dir, "a"), read: new ReadOptions { SegmentChars = 2000 }, shardTokens: 5000, threads: 2);
        Assert.True(m.Train.Shards.Count > 1);
        Assert.Equal(1, m.Train.Documents);
        Assert.Equal(Bvv.Encode(text), TrainDocuments(Path.Combine(dir, "a")).Single());
        Prepare(file, Path.Combine(dir, "b"), read: new ReadOptions { SegmentChars = 2000 }, shardTokens: 5000, threads: 1);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", DatasetManifest.FileName)).Length, File.ReadAllBytes(Path.Combine(dir, "b",
            DatasetManifest.FileName)).Length);
        foreach (var shard in m.Train.Shards)
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", shard.File)), File.ReadAllBytes(Path.Combine(dir, "b", shard.File)));
    }

    [Fact]
    public async Task Files_read_several_at_once_give_the_same_bytes_and_the_first_bad_file_in_order_is_the_one_named()
    {
        var docs = Documents();
        var dir = TestPaths.TempDir();
        var corpus = Path.Combine(dir, "corpus");
        Directory.CreateDirectory(corpus);
        var rng = new Random(11);
        for (int f = 0; f < 24; f++)
        {
            var some = Enumerable.Range(0, 3 + rng.Next(10)).Select(_ => docs[rng.Next(docs.Count)]).ToList();
            var stem = Path.Combine(corpus, $"{f:D2}");
            switch (f % 3)
            {
                case 0:
                    // two texts of more than the reading threads' chunk of 2^20 characters
                    File.WriteAllText(stem + ".txt", string.Join("\n\n", f % 12 == 0 ? Enumerable.Repeat(string.Join("\n\n", docs), 100) : some));
                    break;
                case 1:
                    using (var file = File.Create(stem + ".jsonl.zst"))
                    using (var zst = new ZstdSharp.CompressionStream(file, 3))
                        zst.Write(System.Text.Encoding.UTF8.GetBytes(Jsonl(some)));
                    break;
                default:
                    await Parquet.Serialization.ParquetSerializer.SerializeAsync(some.Select((d, i) => new Row { Text = d, Id = i }), stem + ".parquet");
                    break;
            }
        }
        Assert.True(File.ReadAllText(Path.Combine(corpus, "00.txt")).Length > 1 << 20);
        var one = Prepare(corpus, Path.Combine(dir, "one"), PrepareOptions.AnyText, shardTokens: 40_000, threads: 1, readThreads: 1);
        Assert.True(one.Train.Shards.Count > 3);
        foreach (var (threads, readThreads) in new[] { (2, 2), (2, 5) })
        {
            var outDir = Path.Combine(dir, $"{threads}-{readThreads}");
            var m = Prepare(corpus, outDir, PrepareOptions.AnyText, shardTokens: 40_000, threads: threads, readThreads: readThreads);
            Assert.Equal(File.ReadAllText(Path.Combine(dir, "one", DatasetManifest.FileName)),
                File.ReadAllText(Path.Combine(outDir, DatasetManifest.FileName)));
            foreach (var shard in one.Train.Shards)
                Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "one", shard.File)), File.ReadAllBytes(Path.Combine(outDir, shard.File)));
        }

        // two damaged files: whichever thread reaches its file first, the error is the first one's, as with one thread
        var first = Path.Combine(corpus, "07.txt");
        File.WriteAllBytes(first, [.. "fine so far, then "u8, 0xC3, 0x28]);
        File.WriteAllBytes(Path.Combine(corpus, "19.txt"), [0xFF]);
        foreach (var readThreads in new[] { 1, 4, 4, 4 })
        {
            var outDir = Path.Combine(dir, "bad-" + Guid.NewGuid().ToString("N")[..6]);
            var e = Assert.Throws<StrataException>(() => Prepare(corpus, outDir, PrepareOptions.AnyText, threads: 2, readThreads: readThreads));
            Assert.StartsWith($"{first}: invalid UTF-8 at byte offset 18", e.Message);
            Assert.False(Directory.Exists(outDir));
        }
    }

    [Fact]
    public void By_default_the_text_is_the_files_own_as_the_hugging_face_library_encodes_it()
    {
        var dir = TestPaths.TempDir();
        var text = "\uFEFFThe state of the Union\r\nis strong.\r\nСостояние\rнормальное.\n";
        var file = Path.Combine(dir, "crlf.txt");
        File.WriteAllText(file, text, new System.Text.UTF8Encoding(false));
        var tokenizerDir = Path.Combine(dir, "tok");
        TokenizerJson.WriteDirectory(Bvv, tokenizerDir);
        using var hf = new Tokenizers.DotNet.Tokenizer(Path.Combine(tokenizerDir, TokenizerJson.FileName));
        Prepare(file, Path.Combine(dir, "exact"));
        Assert.Equal(hf.Encode(text).Select(x => (int)x), TrainDocuments(Path.Combine(dir, "exact")).Single());
        Prepare(file, Path.Combine(dir, "clean"), read: new ReadOptions { StripBom = true, NewlinesToLf = true });
        var clean = text[1..].Replace("\r\n", "\n").Replace('\r', '\n');
        Assert.Equal(hf.Encode(clean).Select(x => (int)x), TrainDocuments(Path.Combine(dir, "clean")).Single());
    }

    [Fact]
    public void A_split_of_more_than_2_to_the_31_tokens_is_addressed_past_it()
    {
        var dir = TestPaths.TempDir();
        long count = (1L << 31) + 100;
        string[] files = ["train-x-00000.tokens", "train-x-00001.tokens"];
        foreach (var f in files)
        {
            using var fs = new FileStream(Path.Combine(dir, f), FileMode.CreateNew);
            fs.Write(TokenShard.Header(65536, count));
            fs.SetLength(TokenShard.HeaderSize + 2 * count);                        // sparse: 4 GiB each, nothing on disk
        }
        // markers 1..20 in the second shard, from 5 tokens before its 2^31st
        using (var fs = new FileStream(Path.Combine(dir, files[1]), FileMode.Open))
        {
            fs.Seek(TokenShard.HeaderSize + 2 * ((1L << 31) - 5), SeekOrigin.Begin);
            for (ushort t = 1; t <= 20; t++) fs.Write(BitConverter.GetBytes(t));
        }
        TokenShard.Write(Path.Combine(dir, "val-x-00000.tokens"), 65536, Enumerable.Range(0, 100).ToList());
        var id = TokenizerIdentity.Of("codepoint");
        File.WriteAllText(Path.Combine(dir, DatasetManifest.FileName), Json.Serialize(new DatasetManifest
        {
            Tokenizer = id.Name, TokenizerHash = id.Hash, VocabSize = 65536,
            Train = new SplitInfo(1, 0, 2 * count, files.Select(f => new ShardInfo(f, count, null)).ToList()),
            Validation = new SplitInfo(1, 100, 100, [new ShardInfo("val-x-00000.tokens", 100, null)]),
        }));
        using var d = Dataset.Open(dir);
        const int T = 8;
        var windows = new Strata.Data.Windows(d.Shards(DatasetSplit.Train), T, "big");
        Assert.Equal(2 * (count - T), windows.Count);
        var read = new long[T + 1];
        windows.Read((count - T) + (1L << 31) - 5, read);                             // in the second shard, past 2^31
        Assert.Equal(Enumerable.Range(1, T + 1).Select(x => (long)x), read);
        var sampler = new BatchSampler([(windows, 1.0)], 64, 3);
        var drawn = Enumerable.Range(0, 20).SelectMany(i => sampler.Draw(i)).Select(r => r.Window).ToList();
        Assert.Contains(drawn, w => w > 3L << 30);                                   // draws reach the far end of the split
        Assert.All(drawn, w => Assert.InRange(w, 0, windows.Count - 1));
        using var batch = sampler.Batch(0, TorchSharp.torch.CPU);
        Assert.Equal([64L, T + 1], batch.shape);
    }

    [Fact]
    public void A_mixture_draws_its_datasets_in_proportion()
    {
        var dir = TestPaths.TempDir();
        var a = TestDatasets.Write(Path.Combine(dir, "a"), Enumerable.Repeat(1, 5000).ToList(), Enumerable.Repeat(1, 100).ToList());
        var b = TestDatasets.Write(Path.Combine(dir, "b"), Enumerable.Repeat(2, 5000).ToList(), Enumerable.Repeat(2, 100).ToList());
        using var da = Dataset.Open(a);
        using var db = Dataset.Open(b);
        var sampler = new BatchSampler([(new Strata.Data.Windows(da.Shards(DatasetSplit.Train), 16, "a"), 0.25), (new Strata.Data.Windows(db.Shards(
            DatasetSplit.Train), 16,
            "b"), 0.75)], 16, 7);
        var rows = Enumerable.Range(0, 400).SelectMany(i => sampler.Draw(i)).ToList();
        int fromA = rows.Count(r => r.Source == 0);
        // 6,400 rows at p = 0.25: mean 1,600, sd 34.6; within 4 sd
        Assert.InRange(fromA, 1600 - 139, 1600 + 139);
        using var batch = sampler.Batch(3, TorchSharp.torch.CPU);
        var drawn = sampler.Draw(3);
        for (int r = 0; r < 16; r++) Assert.Equal(drawn[r].Source == 0 ? 1 : 2, batch[r, 0].item<long>());
    }

    [Fact]
    public void A_stage_changes_the_mixture_and_a_resume_across_the_change_repeats_the_run()
    {
        var dir = TestPaths.TempDir();
        var ru = Path.Combine(dir, "ru");
        DataPreparer.Prepare(new PrepareOptions { Inputs = Corpora.RussianFiles.Take(20).ToList(), OutDir = ru, Tokenizer = "codepoint",
            ValidationFraction = 0.2 });
        var plan = SotuData.Plan(4, checkpointEvery: 100) with
        {
            Data = new DataSpec { Datasets = new Dictionary<string, string> { ["en"] = SotuData.Dir, ["ru"] = ru }, Mixture = new Dictionary<string,
                double> { ["en"] = 1, ["ru"] = 0 } },
            Stages =
            [
                new StageConfig { Name = "english", AddBlocks = 1, Steps = 4 },
                new StageConfig { Name = "russian", AddBlocks = 1, Steps = 4, Mixture = new Dictionary<string, double> { ["ru"] = 1 } },
            ],
        };
        plan = plan with { Data = plan.Data.WithTokenizerResolved() };
        using (var data = new TrainingData(plan))
        {
            Assert.All(Enumerable.Range(0, 10).SelectMany(i => data.SamplerFor(plan.Stages[0]).Draw(i)), r => Assert.Equal(0, r.Source));
            var russian = data.SamplerFor(plan.Stages[1]);
            using var batch = russian.Batch(0, TorchSharp.torch.CPU);
            Assert.True(batch.data<long>().ToArray().Count(t => t is >= 0x400 and < 0x500) > 16 * 17 / 3);   // mostly Cyrillic
            Assert.Equal(["en", "ru"], data.Validation.Select(v => v.Name));
        }
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        Trainer.Run(plan, new TrainOptions { OutDir = straight, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, StopAfterStep = 3, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, StopAfterStep = 5, Log = TextWriter.Null });
        Trainer.Run(plan, new TrainOptions { OutDir = split, Resume = true, Log = TextWriter.Null });
        static List<double> Losses(string d) => MetricsLog.Read(new RunDirectory(d).Metrics).Select(x => x.Value).ToList();
        Assert.Equal(Losses(straight), Losses(split));
        var evals = File.ReadAllLines(new RunDirectory(straight).Metrics).Where(l => l.Contains("\"eval\"")).ToList();
        Assert.All(evals, l => Assert.Contains("\"val\":{\"en\":", l));                 // per dataset and in total
    }

    private static (int Code, string Output) Cli(string killAt, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (killAt.Length > 0) psi.Environment["STRATA_KILL_AT"] = killAt;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result + e.Result);
    }

    [Fact]
    public void An_interrupted_preparation_resumes_to_the_same_dataset()
    {
        var dir = TestPaths.TempDir();
        var corpus = Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data");
        string[] Args(string outDir, int readThreads = 1) => ["data", "prepare", corpus, "--out", outDir, "--shard-tokens", "400000",
            "--val-fraction", "0.1", "--tokenizer", "codepoint", "--read-threads", readThreads.ToString()];
        var reference = Path.Combine(dir, "reference");
        Assert.Equal(0, Cli("", Args(reference)).Code);
        using (var d = Dataset.Open(reference)) Assert.True(d.Manifest.Train.Shards.Count >= 10);
        // the second: killed and resumed with files read three at once
        foreach (var (killAt, readThreads) in new[] { ("shard.before-rename#4", 1), ("atomic.before-rename#7", 3), ("dataset.after-manifest#1", 1) })
        {
            var outDir = Path.Combine(dir, killAt.Replace('#', '-'));
            var (code, output) = Cli(killAt, Args(outDir, readThreads));
            Assert.True(code is 137 or -9, $"{killAt}: exit {code}: {output}");
            (code, output) = Cli("", Args(outDir, readThreads));
            Assert.True(code == 0, output);
            AssertSameDataset(reference, outDir);
        }
    }

    private static void AssertSameDataset(string expected, string actual)
    {
        using var a = Dataset.Open(expected);
        using var b = Dataset.Open(actual);
        Assert.Equal(Json.Serialize(a.Manifest with { Inputs = [], Recipe = null }), Json.Serialize(b.Manifest with { Inputs = [], Recipe = null }));
        Assert.Equal(a.Manifest.Inputs.Select(i => (i.Documents, i.Bytes, i.ValidationDocuments)), b.Manifest.Inputs.Select(i => (i.Documents,
            i.Bytes, i.ValidationDocuments)));
        Assert.True(b.Verify().Shards > 0);
        Assert.Empty(Directory.GetFiles(actual, "*" + AtomicFile.TempMarker + "*"));
        Assert.False(File.Exists(Path.Combine(actual, DataPreparer.ProgressFile)));
        Assert.Equal(a.Manifest.Train.Shards.Count + a.Manifest.Validation.Shards.Count, Directory.GetFiles(actual, "*.tokens").Length);
    }

    [Fact]
    public async Task Bad_inputs_get_one_line_each_and_leave_nothing_behind()
    {
        var dir = TestPaths.TempDir();
        string Run(string input, params string[] extra)
        {
            var outDir = Path.Combine(dir, "out-" + Guid.NewGuid().ToString("N")[..6]);
            var (code, _, err) = CliRunner.Run(["data", "prepare", input, "--out", outDir, .. extra]);
            Assert.Equal(1, code);
            Assert.Single(err.TrimEnd().Split('\n'));
            Assert.False(Directory.Exists(outDir));
            return err;
        }
        var parquet = Path.Combine(dir, "other.parquet");
        await Parquet.Serialization.ParquetSerializer.SerializeAsync(new[] { new Body { body = "x" } }, parquet);
        Assert.Contains("no text column 'text' (columns: body", Run(parquet));
        var jsonl = Path.Combine(dir, "bad.jsonl");
        File.WriteAllText(jsonl, "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\nnot json at all\n");
        Assert.Contains($"{jsonl}:3: not a JSON object", Run(jsonl));
        File.WriteAllText(jsonl, "{\"text\": \"fine\"}\n{\"body\": \"x\"}\n");
        Assert.Contains($"{jsonl}:2: no field 'text'", Run(jsonl));
        var full = System.Text.Encoding.UTF8.GetBytes(Jsonl(Documents()));
        foreach (var (ext, compress) in new (string, Func<Stream, Stream>)[] { (".jsonl.gz", s => new GZipStream(s, CompressionLevel.Fastest)), (
            ".jsonl.zst", s => new ZstdSharp.CompressionStream(s, 3)) })
        {
            var whole = Path.Combine(dir, "whole" + ext);
            using (var f = File.Create(whole))
            using (var c = compress(f)) c.Write(full);
            var cut = Path.Combine(dir, "cut" + ext);
            File.WriteAllBytes(cut, File.ReadAllBytes(whole)[..^40]);
            Assert.Contains("truncated", Run(cut));
        }
        var bad = Path.Combine(dir, "bad-utf8.jsonl");
        File.WriteAllBytes(bad, [.. "{\"text\": \"ok\"}\n{\"text\": \"caf"u8, 0xC3, 0x28, .. "\"}\n"u8]);
        Assert.Contains($"{bad}:2: invalid UTF-8 at byte offset 28", Run(bad));
        var replaced = Path.Combine(dir, "replaced");
        var m = DataPreparer.Prepare(new PrepareOptions { Inputs = [bad], OutDir = replaced, ValidationFraction = 0, Read =
            new ReadOptions { ReplaceInvalid = true } });
        Assert.Equal(1, m.Replacements);
    }

    [Fact]
    public void A_damaged_dataset_and_a_bad_mixture_are_refused_naming_what_is_wrong()
    {
        var dir = TestPaths.TempDir();
        var ds = Path.Combine(dir, "ds");
        DataPreparer.Prepare(new PrepareOptions { Inputs = Corpora.EnglishFiles.Take(30).ToList(), OutDir = ds, Tokenizer = "codepoint",
            ShardTokens = 100_000 });
        var (code, output, _) = CliRunner.Run("data", "info", ds);
        Assert.Equal(0, code);
        Assert.Contains("tokenizer 'codepoint'", output);
        Assert.Matches(@"verified: \d+ shard\(s\) match", output);

        var shard = Directory.GetFiles(ds, "train-*.tokens").First();
        var bytes = File.ReadAllBytes(shard);
        bytes[^3] ^= 1;
        File.WriteAllBytes(shard, bytes);
        (code, _, var err) = CliRunner.Run("data", "info", ds);
        Assert.Equal(1, code);
        Assert.Contains($"{shard}: its tokens hash to sha256:", err);
        File.Delete(shard);
        Assert.Contains($"{shard}: token shard not found", Assert.Throws<StrataException>(() => Dataset.Open(ds).Shards(DatasetSplit.Train)).Message);

        GrowthPlan PlanWith(string data) => GrowthPlan.Parse($$"""
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": {{data}}, "stages": [ { "add_blocks": 1, "steps": 1 } ] }
            """, "p.json", dir);
        Assert.Contains("data.mixture.a: a weight must be >= 0",
            Assert.Throws<StrataException>(() => PlanWith("""{ "datasets": { "a": "x", "b": "y" }, "mixture": { "a": -1, "b": 2 } }""")).Message);
        Assert.Contains("the weights add up to 0",
            Assert.Throws<StrataException>(() => PlanWith("""{ "datasets": { "a": "x", "b": "y" }, "mixture": { "a": 0, "b": 0 } }""")).Message);
        Assert.Contains("'c' is not one of data.datasets",
            Assert.Throws<StrataException>(() => PlanWith("""{ "datasets": { "a": "x" }, "mixture": { "c": 1 } }""")).Message);

        var plan = SotuData.Plan(1) with { Data = SotuData.DataAt(SotuData.Dir) with { Tokenizer = "bvv241-2-3" } };
        var e = Assert.Throws<StrataException>(() => plan.Data.WithTokenizerResolved());
        Assert.Contains($"uses the tokenizer {TokenizerIdentity.Of("codepoint")}, the plan uses {TokenizerIdentity.Of("bvv241-2-3")}: they must " +
            "share the vocabulary", e.Message);
    }
    [Fact]
    public void A_folder_gives_its_text_json_lines_and_parquet_files_plain_or_compressed_unless_a_pattern_says_otherwise()
    {
        var dir = TestPaths.TempDir();
        string[] names = ["a.txt", "b.jsonl", "c.parquet", "d.txt.gz", "e.jsonl.zst", "f.json", "g.md", "notes"];
        foreach (var n in names) File.WriteAllText(Path.Combine(dir, n), "");
        Assert.Equal(["a.txt", "b.jsonl", "c.parquet", "d.txt.gz", "e.jsonl.zst"], Corpus.Find([dir]).Select(f => f.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["a.txt", "d.txt.gz"], Corpus.Find([dir], "*.txt").Select(f => f.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["g.md", "notes"], Corpus.Find([dir], "*.md, notes").Select(f => f.Name).Order(StringComparer.Ordinal));
    }
}
