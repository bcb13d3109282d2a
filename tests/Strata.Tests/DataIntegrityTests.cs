using System.Text.Json.Nodes;
using Strata.Data;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Training opens nothing it has not checked: shard hashes (cached by file identity), token ids against the
/// model's vocabulary, the manifest's tokenizer against the tokenizer it names, shards listed once.</summary>
[Collection("torch")]
public class DataIntegrityTests
{
    /// <summary>A copy of the prepared SOTU dataset, its manifest passed through <paramref name="edit"/>.</summary>
    private static string Copy(Action<JsonObject>? edit = null)
    {
        var dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(SotuData.Dir).Where(f => !Path.GetFileName(f).StartsWith('.')))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        if (edit is not null)
        {
            var path = Path.Combine(dir, DatasetManifest.FileName);
            var m = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            edit(m);
            File.WriteAllText(path, m.ToJsonString());
        }
        return dir;
    }

    private static string TrainShard(string dir) => Path.Combine(dir, Json.ReadFile<DatasetManifest>(Path.Combine(dir,
        DatasetManifest.FileName)).Train.Shards[0].File);

    private static StrataException TrainOn(string dataset, int vocab = 65536)
    {
        var plan = SotuData.Plan(1) with { Data = SotuData.DataAt(dataset) };
        plan = plan with { Model = plan.Model with { VocabSize = vocab }, Substrate = plan.Substrate with { Bits = 16 } };
        return Assert.Throws<StrataException>(() => Trainer.Run(plan, new TrainOptions { OutDir = TestPaths.TempDir(), Log = TextWriter.Null }));
    }

    [Fact]
    public void One_flipped_bit_in_a_shard_stops_training_naming_the_shard()
    {
        var dir = Copy();
        var shard = TrainShard(dir);
        var bytes = File.ReadAllBytes(shard);
        bytes[^3] ^= 0x01;
        File.WriteAllBytes(shard, bytes);
        var e = TrainOn(dir);
        Assert.Contains($"{shard}: its tokens hash to sha256:", e.Message);
        Assert.Contains("the shard is damaged", e.Message);
    }

    [Fact]
    public void A_wrong_sha256_in_the_manifest_stops_training() =>
        Assert.Contains("the manifest records sha256:" + new string('0', 64),
            TrainOn(Copy(m => m["train"]!["shards"]![0]!["sha256"] = new string('0', 64))).Message);

    [Fact]
    public void A_manifest_whose_tokenizer_hash_is_not_its_tokenizers_is_refused() =>
        Assert.Contains("they must share the vocabulary", TrainOn(Copy(m => m["tokenizer_hash"] = new string('a', 64))).Message);

    [Fact]
    public void A_tokenizer_named_by_a_path_that_is_not_a_tokenizer_is_refused() =>
        Assert.Contains("unknown tokenizer '/etc/passwd'", TrainOn(Copy(m => m["tokenizer"] = "/etc/passwd")).Message);

    [Fact]
    public void A_manifest_listing_one_shard_10000_times_is_refused() =>
        Assert.Contains("is listed more than once", TrainOn(Copy(m =>
        {
            var shard = m["train"]!["shards"]![0]!;
            m["train"]!["shards"] = new JsonArray(Enumerable.Range(0, 10_000).Select(_ => (JsonNode?)shard.DeepClone()).ToArray());
        })).Message);

    [Fact]
    public void Token_ids_past_the_models_vocabulary_are_refused_before_training()
    {
        var e = TrainOn(Copy(), vocab: 1000);
        Assert.Contains("holds token id", e.Message);
        Assert.Contains("past a vocabulary of 1,000", e.Message);
    }

    [Fact]
    public void Verification_is_cached_by_file_identity_and_a_changed_shard_is_hashed_again()
    {
        var dir = Copy();
        using (var d = Dataset.Open(dir))
        {
            var first = d.Verify(65536, cached: true);
            Assert.True(first.BytesHashed > 0 && first.Cached == 0);
            var again = d.Verify(65536, cached: true);
            Assert.Equal(0, again.BytesHashed);
            Assert.Equal(first.Shards, again.Cached);
        }
        Assert.True(File.Exists(Path.Combine(dir, Dataset.VerifiedFile)));
        // an entry edited by hand (its largest id lowered) no longer matches its own checksum: the shard is hashed again
        var cache = Path.Combine(dir, Dataset.VerifiedFile);
        var entries = JsonNode.Parse(File.ReadAllText(cache))!.AsArray();
        foreach (var e in entries) e!["max_id"] = 0;
        File.WriteAllText(cache, entries.ToJsonString());
        using (var d = Dataset.Open(dir)) Assert.True(d.Verify(65536, cached: true).BytesHashed > 0);
        var shard = TrainShard(dir);
        var bytes = File.ReadAllBytes(shard);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(shard, bytes);                                                   // a new modification time: hashed again
        using var changed = Dataset.Open(dir);
        Assert.Contains("its tokens hash to", Assert.Throws<StrataException>(() => changed.Verify(65536, cached: true)).Message);
    }

    [Fact]
    public void A_checkpoint_with_a_flipped_bit_in_a_tensor_is_refused_and_an_older_one_without_checksums_loads_with_a_note()
    {
        var dir = TestPaths.TempDir();
        var plan = SotuData.Plan(2, checkpointEvery: 1);
        Trainer.Run(plan with { Stages = [plan.Stages[0] with { Steps = 4 }] }, new TrainOptions { OutDir = dir, StopAfterStep = 2, Log = TextWriter.Null });
        var run = new RunDirectory(dir);
        Assert.True(Checkpoint.HasChecksums(run.Checkpoint));
        var bytes = File.ReadAllBytes(run.Checkpoint);
        long dataStart = 8 + BitConverter.ToInt64(bytes, 0);
        Strata.Formats.SafetensorsEntry head;
        using (var f = new Strata.Formats.SafetensorsFile(run.Checkpoint)) head = f.Entries["model.embed_out.weight"];
        var damaged = Path.Combine(TestPaths.TempDir(), "damaged.safetensors");
        bytes[dataStart + (head.Begin + head.End) / 2] ^= 0x10;
        File.WriteAllBytes(damaged, bytes);
        var e = Assert.Throws<StrataException>(() => Checkpoint.LoadModel(damaged));
        Assert.Contains("tensor 'model.embed_out.weight' does not match the sha256 recorded for it", e.Message);

        // as an older Strata wrote it: the same tensors and metadata, no checksums
        using (var f = new Strata.Formats.SafetensorsFile(run.Checkpoint))
        {
            var tensors = f.Entries.Keys.Select(k => (k, f.Read(k))).ToList();
            var metadata = f.Metadata.Where(kv => kv.Key != Strata.Formats.SafetensorsFile.ChecksumKey).ToDictionary();
            Strata.Formats.SafetensorsWriter.Write(run.Checkpoint + ".old", tensors, metadata);
        }
        File.Move(run.Checkpoint + ".old", run.Checkpoint, overwrite: true);
        Assert.False(Checkpoint.HasChecksums(run.Checkpoint));
        var log = new StringWriter();
        Assert.True(Trainer.Run(null, new TrainOptions { OutDir = dir, Resume = true, Log = log }).Completed);
        Assert.Contains("records no per-tensor checksums", log.ToString());
        Assert.True(Checkpoint.HasChecksums(run.Checkpoint));                                  // what it writes now has them
    }
}
