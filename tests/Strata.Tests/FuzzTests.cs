using System.IO.Compression;
using CsCheck;
using Strata.Cli.Serve;
using Strata.Composition;
using Strata.Data;
using Strata.Evaluation;
using Strata.Formats;
using Strata.Interop;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>
/// Mutation fuzzing of every loader (CsCheck generates the mutations: bit flips, byte changes, cuts, deletions,
/// duplicated chunks, hostile numbers and deep nesting inserted into a valid file). Each mutated file must load or be
/// refused with one StrataException of one line, within 10 s and 512 MiB above the resident set before it. The
/// iterations per loader are set by STRATA_FUZZ_ITERATIONS (CI: the default below; docs/RELIABILITY.md has a longer
/// campaign's counts). The suite draws the same mutations every run (a fixed CsCheck seed), so a red run reproduces;
/// STRATA_FUZZ_SEED=random draws new ones (a campaign), or names a seed CsCheck printed.
/// </summary>
[Collection("torch")]
public class FuzzTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly int Iterations = int.TryParse(Environment.GetEnvironmentVariable("STRATA_FUZZ_ITERATIONS"), out var n) ? n : 150;
    private static readonly string? Seed = Environment.GetEnvironmentVariable("STRATA_FUZZ_SEED") switch { "random" => null, { Length: > 0 } s => s,
        _ => "4qxu89lcc2Z1" };
    private const double MaxGrowthMib = 512;

    /// <summary>One change to a file's bytes.</summary>
    public abstract record Mutation
    {
        public abstract void Apply(List<byte> b);
    }

    private sealed record FlipBit(int At, int Bit) : Mutation { public override void Apply(List<byte> b) { if (b.Count > 0) b[At % b.Count] ^= (byte)(
        1 << Bit); } }
    private sealed record SetByte(int At, byte Value) : Mutation { public override void Apply(List<byte> b) { if (b.Count > 0) b[At % b.Count] = Value; } }
    private sealed record Cut(int Length) : Mutation { public override void Apply(List<byte> b) { if (Length < b.Count) b.RemoveRange(Length,
        b.Count - Length); } }
    private sealed record Delete(int At, int Length) : Mutation
    {
        public override void Apply(List<byte> b) { int at = b.Count == 0 ? 0 : At % b.Count; b.RemoveRange(at, Math.Min(Length, b.Count - at)); }
    }
    private sealed record Insert(int At, string Text) : Mutation
    {
        public override void Apply(List<byte> b) => b.InsertRange(b.Count == 0 ? 0 : At % (b.Count + 1), System.Text.Encoding.UTF8.GetBytes(Text));
    }
    private sealed record Repeat(int At, int Length, int Times) : Mutation
    {
        public override void Apply(List<byte> b)
        {
            if (b.Count == 0) return;
            int at = At % b.Count, len = Math.Min(Length, b.Count - at);
            var chunk = b.GetRange(at, len);
            for (int i = 0; i < Times; i++) b.InsertRange(at, chunk);
        }
    }

    /// <summary>Numbers and shapes that break naive readers: huge, negative, not finite, nested 100,000 deep.</summary>
    private static readonly string[] Hostile =
    [
        "99999999999999999999", "-1", "9223372036854775807", "4294967296", "1e400", "NaN", "-0", "2147483648", "65536",
        new string('[', 100_000), new string('(', 100_000), new string('{', 50_000), "\"\\ud800\"", "\u0000", "\xff\xfe",
    ];

    private static Gen<Mutation> Mutations(int length) => Gen.Frequency(
        (5, Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[0, 7], (at, bit) => (Mutation)new FlipBit(at, bit))),
        (3, Gen.Select(Gen.Int[0, int.MaxValue], Gen.Byte, (at, v) => (Mutation)new SetByte(at, v))),
        (1, Gen.Int[0, Math.Max(0, length - 1)].Select(l => (Mutation)new Cut(l))),
        (1, Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[1, 64], (at, l) => (Mutation)new Delete(at, l))),
        (2, Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[0, Hostile.Length - 1], (at, i) => (Mutation)new Insert(at, Hostile[i]))),
        (1, Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[1, 256], Gen.Int[1, 64], (at, l, k) => (Mutation)new Repeat(at, l, k))));

    /// <summary>Mutates <paramref name="valid"/> (or only its bytes [start, start + length) when a region is given, the rest
    /// kept as it is) and hands each result to <paramref name="load"/> through a file named <paramref name="name"/>.</summary>
    private void Fuzz(string name, byte[] valid, Action<string> load, int? iterations = null, (int Start, int Length)? region = null)
    {
        var (start, length) = region ?? (0, valid.Length);
        byte[] prefix = valid[..start], part = valid[start..(start + length)], suffix = valid[(start + length)..];
        load(WriteCase(name, valid));                                                  // the seed itself must load
        var failures = new List<string>();
        int count = 0, refused = 0;
        double worst = 0;
        Mutations(part.Length).Array[1, 4].Sample(mutations =>
        {
            var bytes = new List<byte>(part);
            foreach (var m in mutations) m.Apply(bytes);
            var path = WriteCase(name, [.. prefix, .. bytes, .. suffix]);
            var (problem, wasRefused, grown) = Run(() => load(path));
            if (problem is null) Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
            count++;
            if (wasRefused) refused++;
            worst = Math.Max(worst, grown);
            if (problem is not null) failures.Add(
                $"{problem} after {string.Join(", ", mutations.Select(m => m.ToString()[..Math.Min(80, m.ToString().Length)]))}");
        }, seed: Seed, iter: iterations ?? Iterations, threads: 1);
        output.WriteLine($"fuzz {name}: {count} mutated inputs, {refused} refused with one line, {count - refused - failures.Count} loaded, " +
            $"{failures.Count} misbehaved; worst resident growth {worst:F0} MiB");
        Assert.True(failures.Count == 0, $"{name}: {failures.Count} of {count} mutated inputs misbehaved:\n" + string.Join("\n", failures.Take(5)));
    }

    private static string WriteCase(string name, byte[] bytes)
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>(null if the load behaved: loaded, or one StrataException of one line, in bounded time and memory;
    /// whether it was refused; how far the resident set grew, MiB).</summary>
    private static (string? Problem, bool Refused, double GrownMib) Run(Action load)
    {
        GC.Collect();
        double before = PeakMemory.CurrentMib();
        PeakMemory.Reset();
        Exception? caught = null;
        var thread = new Thread(() => { try { load(); } catch (Exception e) { caught = e; } }, 64 << 20);
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(10))) return ("no answer within 10 s", false, 0);
        double grown = Math.Max(0, PeakMemory.Mib() - before);
        if (grown > MaxGrowthMib) return ($"resident memory grew by {grown:F0} MiB", false, grown);
        return caught switch
        {
            null => (null, false, grown),
            StrataException s when !s.Message.Contains('\n') => (null, true, grown),
            StrataException s => ($"a multi-line message: {s.Message[..Math.Min(200, s.Message.Length)]}", true, grown),
            _ => ($"{caught.GetType().Name}: {caught.Message.Split('\n')[0]}", false, grown),
        };
    }

    private static byte[] Text(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    [Fact]
    public void Safetensors_files()
    {
        var seed = Path.Combine(TestPaths.TempDir(), "seed.safetensors");
        SafetensorsWriter.Write(seed, [("a", Scalars.Arange(0, 12, TorchSharp.torch.ScalarType.Float32).view(3, 4)), ("b", TorchSharp.torch.ones(5,
            dtype: TorchSharp.torch.ScalarType.Int64))],
            new Dictionary<string, string> { ["format"] = "pt" });
        Fuzz("x.safetensors", File.ReadAllBytes(seed), path =>
        {
            using var f = new SafetensorsFile(path);
            foreach (var k in f.Entries.Keys) f.Read(k).Dispose();
        });
    }

    [Fact]
    public void Torch_save_archives()
    {
        var pt = File.ReadAllBytes(TestPaths.Data("pytorch", "normalized_embeddings_weights.pt"));
        Fuzz("x.pt", pt, path => PyTorchTensorFile.Read(path));
    }

    [Fact]
    public void Pickles_inside_a_valid_archive()
    {
        // the archive stays valid, so the mutations reach the pickle machine itself
        using var zip = ZipFile.OpenRead(TestPaths.Data("pytorch", "normalized_embeddings_weights.pt"));
        var entries = zip.Entries.Select(e => { using var s = e.Open(); using var ms = new MemoryStream(); s.CopyTo(ms); return (e.FullName,
            Bytes: ms.ToArray()); }).ToList();
        var pkl = entries.First(e => e.FullName.EndsWith("data.pkl"));
        Fuzz("data.pkl", pkl.Bytes, path =>
        {
            var archive = Path.Combine(Path.GetDirectoryName(path)!, "x.pt");
            using (var fs = File.Create(archive))
            using (var z = new ZipArchive(fs, ZipArchiveMode.Create))
                foreach (var (entryName, bytes) in entries)
                {
                    using var s = z.CreateEntry(entryName, CompressionLevel.NoCompression).Open();
                    s.Write(entryName == pkl.FullName ? File.ReadAllBytes(path) : bytes);
                }
            PyTorchTensorFile.Read(archive);
        });
    }

    [Fact]
    public void Tokenizer_json()
    {
        var json = """
            { "version": "1.0", "truncation": null, "padding": null,
              "added_tokens": [ { "id": 0, "content": "<unk>", "special": true } ],
              "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": { "type": "Sequence", "decoders": [] },
              "model": { "type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": false, "byte_fallback": false,
                "vocab": { "<unk>": 0, "a": 1, "b": 2, "ab": 3, "abb": 4 }, "merges": [ "a b", ["ab", "b"] ] } }
            """;
        Fuzz("tokenizer.json", Text(json), path => TokenizerJson.Read(path).Encode("abba"));
    }

    [Fact]
    public void Plans() =>
        Fuzz("plan.json", File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "plans", "demo.json")), path => GrowthPlan.Load(path));

    [Fact]
    public void Token_shards()
    {
        var seed = Path.Combine(TestPaths.TempDir(), "s.tokens");
        TokenShard.Write(seed, 65536, Enumerable.Range(0, 300).Select(i => i * 211 % 65536).ToList());
        Fuzz("x.tokens", File.ReadAllBytes(seed), path => { using var s = TokenShard.Open(path); s.ReadAll(); });
    }

    [Fact]
    public void Ngram_lists() =>
        Fuzz("n-gramms.txt", Text("[{'lang': 'en', 'language_name': 'English', 'top_ngrams': {2: [('th', 10), ('he', 5)], 3: [('the', 3), ('ing', 2)]}}, " +
                                  "{'lang': 'ru', 'language_name': 'Russian', 'top_ngrams': {2: [('ст', 7)], 3: [('ого', 4)]}}]"), path =>
                                      NgramList.Load(path));

    [Fact]
    public void Embeddings_txt() =>
        Fuzz("embeddings.txt", Text("0\n[0, 0, 1, 1]\n1\n[0, 1, 0, 1]\n2\n[1, 0, 0, 1]\n"), path => SubstrateFile.Read(path).Dispose());

    [Fact]
    public void Mmlu_csv() =>
        Fuzz("astronomy_test.csv", File.ReadAllBytes(TestPaths.Data("datasets", "mmlu-csv", "test", "astronomy_test.csv")), path =>
            BenchmarkFiles.MmluCsv(path));

    [Fact]
    public void Jsonl_item_sets()
    {
        var seed = Path.Combine(TestPaths.TempDir(), "set.jsonl");
        BenchmarkFiles.WriteJsonl(seed, [new MultipleChoiceItem("2 + 2?", ["A", "B"], ["3", "4"], 1, "x"), new MultipleChoiceItem("Sky?", ["A", "B"],
            ["blue", "green"], 0, "y")]);
        Fuzz("set.jsonl", File.ReadAllBytes(seed), path => BenchmarkFiles.ReadJsonl(path));
    }

    [Fact]
    public void Parquet_benchmark_files() =>
        Fuzz("test.parquet", File.ReadAllBytes(TestPaths.Data("datasets", "cais-mmlu", "astronomy", "test-00000-of-00001.parquet")), path =>
            BenchmarkFiles.MmluParquet(path));

    private sealed class ParquetRow { public string text { get; set; } = ""; }

    private static readonly Lazy<byte[]> ValidParquet = new(() =>
    {
        var path = Path.Combine(TestPaths.TempDir(), "docs.parquet");
        Parquet.Serialization.ParquetSerializer.SerializeAsync(Enumerable.Range(0, 30).Select(i => new ParquetRow { text = $"document {i} "
            + new string('x', i) }),
            path, new Parquet.ParquetOptions { RowGroupSize = 10 }).GetAwaiter().GetResult();
        return File.ReadAllBytes(path);
    });

    private static void ReadDocuments(string path) => new DocumentReader(new ReadOptions()).Read(0, path, Path.GetFileName(path), true).ToList();

    /// <summary>Mutations of the column chunks only (page headers and pages), the footer kept intact, so they reach the
    /// page-header walk and Parquet.Net's page decoding rather than stopping at the footer.</summary>
    [Fact]
    public void Parquet_page_headers()
    {
        var b = ValidParquet.Value;
        int footer = BitConverter.ToInt32(b, b.Length - 8);
        Fuzz("docs.parquet", b, ReadDocuments, region: (4, b.Length - 8 - footer - 4));
    }

    [Fact]
    public void Parquet_corpus_files() => Fuzz("docs.parquet", ValidParquet.Value, ReadDocuments);

    [Fact]
    public void Jsonl_corpus_files() =>
        Fuzz("docs.jsonl", Text("\uFEFF{\"text\": \"one\", \"id\": 1}\n\n{\"text\": \"two \\u00e9 \\ud83d\\ude00\"}\n{\"text\": \"three\"}\n"), ReadDocuments);

    [Fact]
    public void Gzip_corpus_files()
    {
        byte[] Member(string text)
        {
            using var ms = new MemoryStream();
            using (var gz = new GZipStream(ms, CompressionLevel.Fastest)) gz.Write(Text(text));
            return ms.ToArray();
        }
        Fuzz("docs.jsonl.gz", [.. Member("{\"text\": \"first member\"}\n"), .. Member("{\"text\": \"second member\"}\n")], ReadDocuments);
    }

    [Fact]
    public void Verification_caches()
    {
        var dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(SotuData.Dir).Where(f => !Path.GetFileName(f).StartsWith('.'))) File.Copy(f, Path.Combine(dir,
            Path.GetFileName(f)));
        using (var d = Dataset.Open(dir)) d.Verify(65536, cached: true);
        var cache = File.ReadAllBytes(Path.Combine(dir, Dataset.VerifiedFile));
        Fuzz(Dataset.VerifiedFile, cache, path =>
        {
            var copy = Path.Combine(Path.GetDirectoryName(path)!, "ds");
            Directory.CreateDirectory(copy);
            foreach (var f in Directory.GetFiles(dir).Where(f => !Path.GetFileName(f).StartsWith('.')))
                File.CreateSymbolicLink(Path.Combine(copy, Path.GetFileName(f)), f);
            File.Copy(path, Path.Combine(copy, Dataset.VerifiedFile));
            using var d = Dataset.Open(copy);
            d.Verify(65536, cached: true);                                                       // a damaged cache never vouches for a shard
        }, iterations: Iterations / 2);
    }

    [Fact]
    public void Dataset_manifests()
    {
        var manifest = File.ReadAllBytes(Path.Combine(SotuData.Dir, DatasetManifest.FileName));
        var shards = Directory.GetFiles(SotuData.Dir, "*.tokens");
        Fuzz(DatasetManifest.FileName, manifest, path =>
        {
            var dir = Path.GetDirectoryName(path)!;
            foreach (var s in shards) File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(s)), s);
            using var d = Dataset.Open(dir);
            d.Shards(DatasetSplit.Train);
            d.Shards(DatasetSplit.Validation);
        }, iterations: Iterations / 2);
    }

    private static readonly Lazy<string> TinyCheckpoint = new(() =>
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(1, d: 16, context: 8), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return new RunDirectory(dir).Checkpoint;
    });

    private static readonly Lazy<string> ServeCheckpoint = new(() =>
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(1, d: 16, context: 48), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return new RunDirectory(dir).Checkpoint;
    });

    [Fact]
    public void Checkpoints() =>
        Fuzz("checkpoint.safetensors", File.ReadAllBytes(TinyCheckpoint.Value), path => Checkpoint.LoadModel(path).Model.Dispose(), iterations: Iterations / 2);

    [Fact]
    public void Ensemble_files()
    {
        var json = Json.Serialize(new LogitAveragingEnsemble.EnsembleFile(LogitAveragingEnsemble.Format, [TinyCheckpoint.Value, TinyCheckpoint.Value]));
        Fuzz("ensemble.json", Text(json), path => LogitAveragingEnsemble.LoadFile(path).Dispose(), iterations: Iterations / 2);
    }

    [Fact]
    public void Hugging_face_config_json()
    {
        var config = File.ReadAllBytes(TestPaths.Data("hf-gpt-neox-tiny", "config.json"));
        var weights = TestPaths.Data("hf-gpt-neox-tiny", "model.safetensors");
        Fuzz("config.json", config, path =>
        {
            var dir = Path.GetDirectoryName(path)!;
            File.Copy(weights, Path.Combine(dir, "model.safetensors"));
            HfExport.Import(dir, "codepoint").Model.Dispose();
        }, iterations: Iterations / 2);
    }
    /// <summary>Request bodies of `strata serve`: each mutated body gets a 2xx answer or a 4xx with OpenAI's error object
    /// of one line; a 5xx, a dropped connection or an error without a message misbehaves.</summary>
    [Fact]
    public async Task Serve_request_bodies()
    {
        await using var server = await OpenAiServer.StartAsync(new ServeOptions
        {
            Checkpoint = ServeCheckpoint.Value, ModelName = "tiny", Port = 0, MaxBatch = 4, MaxQueue = 64, MaxBodyBytes = 64 << 10,
            Chat = new ChatTemplate { User = "[USER]", Assistant = "[ASSISTANT]" },
        }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };   // Run's own limit is 10 s
        void Post(string route, string path)
        {
            using var content = new ByteArrayContent(File.ReadAllBytes(path));
            content.Headers.ContentType = new("application/json");
            using var response = http.PostAsync(route, content).GetAwaiter().GetResult();
            var body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            int status = (int)response.StatusCode;
            if (status < 300) return;
            if (status >= 500) throw new InvalidOperationException($"status {status}: {body[..Math.Min(200, body.Length)]}");
            using var error = System.Text.Json.JsonDocument.Parse(body);
            var message = error.RootElement.GetProperty("error").GetProperty("message").GetString();
            if (string.IsNullOrEmpty(message)) throw new InvalidOperationException($"status {status} without a message");
            throw new StrataException(message);
        }
        Fuzz("completion.json", Text("""{"model": "tiny", "prompt": ["The Congress", "We"], "max_tokens": 6, "temperature": 0.8, "top_p": 0.9, """ +
            """ "n": 2, "stop": ["\n", "."], "seed": 7, "logprobs": 2, "echo": true, "stream": false}"""),
            path => Post("v1/completions", path), iterations: Iterations / 2);
        Fuzz("chat.json", Text("""{"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], """ +
            """ "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 2}"""),
            path => Post("v1/chat/completions", path), iterations: Iterations / 2);
    }
}
