using Strata.Formats;
using Strata.Modeling;
using Strata.Runs;
using Xunit;

namespace Strata.Tests;

/// <summary>Bad input gets one clear line naming the file and what is wrong, a non-zero exit, and nothing half-written.</summary>
[Collection("torch")]
public class BadInputTests
{
    private static string WritePlan(string dir, string json)
    {
        var path = Path.Combine(dir, "plan.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static string ValidPlanJson(string dataset, string model = """{ "d_model": 32, "n_head": 4, "context_length": 32 }""") => $$"""
        {
          "name": "t", "model": {{model}}, "substrate": { "kind": "binary", "bits": 16 },
          "data": { "datasets": { "sotu": "{{dataset}}" } },
          "training": { "batch_size": 2, "eval_every": 100, "eval_batches": 1 },
          "stages": [ { "add_blocks": 1, "steps": 2 } ]
        }
        """;

    [Theory]
    [InlineData("""{ "model": { "d_model": 32, "n_head": "four" } }""", "$.model.n_head")]
    [InlineData("""{ "model": { "d_model": 32, "n_head": 4, "context_lenght": 32 } }""", "context_lenght")]
    [InlineData("""
        { "model": { "d_model": 30, "n_head": 4 }, "substrate": {},
          "data": {"train": "a", "validation": "b"},
          "stages": [{"add_blocks": 1, "steps": 1}] }
        """, "model.n_head")]
    [InlineData("""
        { "model": { "d_model": 32, "n_head": 4 }, "substrate": {},
          "data": {"train": "a", "validation": "b"},
          "stages": [{"add_blocks": 1, "steps": 0}] }
        """, "stages[0].steps")]
    [InlineData("""
        { "model": { "d_model": 32, "n_head": 4 }, "substrate": {},
          "data": {"train": "a", "validation": "b"}, "training": {"learning_rate": -1},
          "stages": [{"add_blocks": 1, "steps": 1}] }
        """, "training.learning_rate")]
    [InlineData("""{ "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": {"train": "a", "validation": "b"} }""", "stages")]
    [InlineData("""
        { "model": { "d_model": 32, "n_head": 4 }, "substrate": { "kind": "glyphs" },
          "data": {"train": "a", "validation": "b"},
          "stages": [] }
        """, "$.substrate.kind")]
    [InlineData("""{ "model": { "d_model": 32, "n_head": 4 """, "plan.json")]
    public void Malformed_plan_is_refused_naming_the_field(string json, string field)
    {
        var dir = TestPaths.TempDir();
        var plan = WritePlan(dir, json);
        var outDir = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--plan", plan, "--out", outDir);
        Assert.Equal(1, code);
        Assert.Contains(field, err);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd().Split('\n'));
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void A_json_error_under_a_property_name_with_control_characters_stays_on_one_line()
    {
        // found by mutation fuzzing: a flipped bit put a newline into a property name, which the error's path quoted
        var e = Assert.Throws<Strata.Util.StrataException>(() => Strata.Util.Json.Parse<GrowthPlan>("{\"model\": {\"c\\ntext\": }}", "plan.json"));
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith("plan.json: ", e.Message);
    }

    [Fact]
    public void Checkpoint_of_another_shape_is_refused_naming_the_tensor_and_both_shapes()
    {
        var dir = TestPaths.TempDir();
        var small = WritePlan(dir, ValidPlanJson(SotuData.Dir));
        Assert.Equal(0, CliRunner.Run("train", "--plan", small, "--out", Path.Combine(dir, "a")).Code);
        var widerDir = Path.Combine(dir, "wide");
        Directory.CreateDirectory(widerDir);
        var wide = WritePlan(widerDir, ValidPlanJson(SotuData.Dir, """{ "d_model": 64, "n_head": 4, "context_length": 32 }"""));
        var outDir = Path.Combine(dir, "b");
        var (code, _, err) = CliRunner.Run("train", "--plan", wide, "--out", outDir, "--init-from", Path.Combine(dir, "a", RunDirectory.CheckpointName));
        Assert.Equal(1, code);
        Assert.Matches(@"tensor '[a-z_.0-9]+' has shape \[\d+(, \d+)*\], the model expects \[\d+(, \d+)*\]", err);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Existing_run_is_not_overwritten_without_resume()
    {
        var dir = TestPaths.TempDir();
        var plan = WritePlan(dir, ValidPlanJson(SotuData.Dir));
        var run = Path.Combine(dir, "run");
        Assert.Equal(0, CliRunner.Run("train", "--plan", plan, "--out", run).Code);
        var before = File.ReadAllBytes(Path.Combine(run, RunDirectory.CheckpointName));
        var (code, _, err) = CliRunner.Run("train", "--plan", plan, "--out", run);
        Assert.Equal(1, code);
        Assert.Contains("--resume", err);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(run, RunDirectory.CheckpointName)));
    }

    [Fact]
    public void Missing_corpus_is_named()
    {
        var dir = TestPaths.TempDir();
        var missing = Path.Combine(dir, "no-such-corpus");
        var outDir = Path.Combine(dir, "out");
        var (code, _, err) = CliRunner.Run("data", "prepare", missing, "--out", outDir);
        Assert.Equal(1, code);
        Assert.Contains(missing, err);
        Assert.False(Directory.Exists(outDir));
    }

    [Theory]
    [InlineData(new byte[] { 0xC3, 0x28 })]          // a lead byte without its continuation
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]    // an encoded lone surrogate (U+D800)
    [InlineData(new byte[] { 0xFF })]
    public void Non_utf8_corpus_is_refused_with_file_and_byte_offset(byte[] badBytes)
    {
        var dir = TestPaths.TempDir();
        var good = Path.Combine(dir, "a.txt");
        var bad = Path.Combine(dir, "b.txt");
        File.WriteAllText(good, "fine text\n");
        var bytes = "\uFEFFcaf\u00e9 ok "u8.ToArray().Concat(badBytes).Concat("rest"u8.ToArray()).ToArray();
        File.WriteAllBytes(bad, bytes);
        var outDir = Path.Combine(dir, "out");
        var (code, _, err) = CliRunner.Run("data", "prepare", dir, "--out", outDir);
        Assert.Equal(1, code);
        Assert.Contains(bad, err);
        Assert.Contains($"byte offset {bytes.Length - 4 - badBytes.Length}", err);   // counted from the file's start, BOM included
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Truncated_shard_is_refused()
    {
        var dir = TestPaths.TempDir();
        var shard = Path.Combine(dir, "t.tokens");
        Strata.Formats.TokenShard.Write(shard, 65536, Enumerable.Range(0, 100).ToList());
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..^3]);
        var e = Assert.Throws<Strata.Util.StrataException>(() => Strata.Formats.TokenShard.Open(shard));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Unknown_option_and_command_are_refused()
    {
        Assert.Contains("--bogus", CliRunner.Run("info", "plans/demo.json", "--bogus", "1").Err);
        Assert.Equal(2, CliRunner.Run("frobnicate").Code);
    }
}
