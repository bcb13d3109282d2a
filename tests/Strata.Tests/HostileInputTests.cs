using System.IO.Compression;
using System.Text.Json.Nodes;
using Strata.Data;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>Inputs that were refused though valid, accepted though invalid, or ended in an internal fault: each reads as
/// its tools read it, or gets one line naming what is wrong (exit 1), never a trace.</summary>
[Collection("torch")]
public class HostileInputTests
{
    private static (int Code, string Out, string Err) Prepare(string input, string pattern = "*") =>
        CliRunner.Run("data", "prepare", input, "--pattern", pattern, "--tokenizer", "codepoint", "--out", Path.Combine(TestPaths.TempDir(), "ds"));

    private static string OneLineError((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 1, $"exit {r.Code}: {r.Out}{r.Err}");
        Assert.StartsWith("error: ", r.Err);
        Assert.DoesNotContain("internal fault", r.Err);
        Assert.Single(r.Err.TrimEnd().Split('\n'));
        return r.Err;
    }

    private static byte[] Gzip(string text)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest)) gz.Write(System.Text.Encoding.UTF8.GetBytes(text));
        return ms.ToArray();
    }

    [Fact]
    public void A_multi_member_gzip_reads_as_gzip_and_zcat_read_it_and_a_cut_one_is_refused()
    {
        var dir = TestPaths.TempDir();
        var docs = Enumerable.Range(0, 40).Select(i => $"{{\"text\": \"document {i} of the first member\"}}\n").ToList();
        byte[] a = Gzip(string.Concat(docs.Take(20))), b = Gzip(string.Concat(docs.Skip(20)));
        var multi = Path.Combine(dir, "rotated.jsonl.gz");
        File.WriteAllBytes(multi, [.. a, .. b, 0, 0, 0]);                                     // cat a.gz b.gz, zero padding after
        var (code, output, err) = CliRunner.Run("data", "prepare", multi, "--tokenizer", "codepoint", "--val-fraction", "0.2",
            "--out", Path.Combine(dir, "ds"));
        Assert.True(code == 0, err);
        var m = Json.ReadFile<DatasetManifest>(Path.Combine(dir, "ds", DatasetManifest.FileName));
        Assert.Equal(40, m.Train.Documents + m.Validation.Documents);
        var cut = Path.Combine(dir, "cut.jsonl.gz");
        File.WriteAllBytes(cut, [.. a, .. b[..^10]]);
        Assert.Contains("inside a member (it is truncated)", OneLineError(Prepare(cut)));
        var garbage = Path.Combine(dir, "garbage.jsonl.gz");
        File.WriteAllBytes(garbage, [.. a, .. "not gzip"u8]);
        Assert.Contains("damaged gzip data", OneLineError(Prepare(garbage)));
    }

    [Fact]
    public void Concatenated_zstd_frames_read_as_zstd_reads_them()
    {
        var dir = TestPaths.TempDir();
        byte[] Frame(string text)
        {
            using var ms = new MemoryStream();
            using (var z = new ZstdSharp.CompressionStream(ms, 3)) z.Write(System.Text.Encoding.UTF8.GetBytes(text));
            return ms.ToArray();
        }
        var path = Path.Combine(dir, "two.jsonl.zst");
        File.WriteAllBytes(path, [.. Frame("{\"text\": \"first frame\"}\n{\"text\": \"more text\"}\n"), .. Frame("{\"text\": \"second frame\"}\n")]);
        var (code, _, err) = CliRunner.Run("data", "prepare", path, "--tokenizer", "codepoint", "--val-fraction", "0", "--out", Path.Combine(dir, "ds"));
        Assert.True(code == 0, err);
        Assert.Equal(3, Json.ReadFile<DatasetManifest>(Path.Combine(dir, "ds", DatasetManifest.FileName)).Train.Documents);
    }

    [Fact]
    public void A_jsonl_file_with_a_bom_and_blank_lines_reads_as_pandas_and_jq_read_it()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "bom.jsonl");
        File.WriteAllText(path, "\uFEFF{\"text\": \"one\"}\n   \n\t\r\n{\"text\": \"two\"}\n\n", new System.Text.UTF8Encoding(false));
        var (code, _, err) = CliRunner.Run("data", "prepare", path, "--tokenizer", "codepoint", "--val-fraction", "0", "--out", Path.Combine(dir, "ds"));
        Assert.True(code == 0, err);
        var m = Json.ReadFile<DatasetManifest>(Path.Combine(dir, "ds", DatasetManifest.FileName));
        Assert.Equal(2, m.Train.Documents);
        Assert.Equal(6 + 1, m.Train.Tokens);                                                    // "one", separator, "two"
    }

    [Fact]
    public void Two_empty_files_make_no_dataset()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "a.txt"), "");
        File.WriteAllText(Path.Combine(dir, "b.txt"), "");
        Assert.Contains("the training split is empty", OneLineError(Prepare(dir, "*.txt")));
    }

    [Fact]
    public void A_dangling_link_and_a_fifo_in_a_corpus_folder_are_skipped_with_a_line_each_and_proc_is_refused()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "real.txt"), string.Concat(Enumerable.Repeat("Some real text for the corpus. ", 50)));
        File.CreateSymbolicLink(Path.Combine(dir, "gone.txt"), Path.Combine(dir, "nowhere.txt"));
        System.Diagnostics.Process.Start("mkfifo", Path.Combine(dir, "pipe.txt"))!.WaitForExit();
        var (code, output, err) = CliRunner.Run("data", "prepare", dir, "--tokenizer", "codepoint", "--val-fraction", "0",
            "--out", Path.Combine(TestPaths.TempDir(), "ds"));
        Assert.True(code == 0, err);
        Assert.Contains("note: skipped " + Path.Combine(dir, "gone.txt") + " (a link to nothing)", output);
        Assert.Contains("note: skipped " + Path.Combine(dir, "pipe.txt") + " (not a regular file", output);

        var environ = Path.Combine(TestPaths.TempDir(), "environ.txt");
        File.CreateSymbolicLink(environ, "/proc/self/environ");
        Assert.Contains("leads to /proc/", OneLineError(Prepare(environ)));
        Assert.Contains("pseudo-filesystems", OneLineError(Prepare("/proc/self/environ")));
    }

    [Fact]
    public void A_lone_surrogate_escape_in_jsonl_text_is_one_line()
    {
        var path = Path.Combine(TestPaths.TempDir(), "surrogate.jsonl");
        File.WriteAllText(path, "{\"text\": \"ok\"}\n{\"text\": \"bad \\ud800 here\"}\n");
        Assert.Contains(":2: field 'text' holds an escaped lone surrogate", OneLineError(Prepare(path)));
    }

    private static readonly Lazy<string> Tiny = new(() =>
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(1, d: 16, context: 8), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return new RunDirectory(dir).Checkpoint;
    });

    [Theory]
    [InlineData("--temperature", "-1", "--temperature: must be in [0, 100]")]
    [InlineData("--top-p", "NaN", "--top-p: must be in (0, 1]")]
    [InlineData("--max-new-tokens", "-5", "--max-new-tokens: must be in 0..1000000")]
    [InlineData("--top-k", "1000000000", "--top-k: must be in 0..65536")]
    public void Sampling_settings_out_of_range_are_one_line(string option, string value, string said) =>
        Assert.Contains(said, OneLineError(CliRunner.Run("generate", "--checkpoint", Tiny.Value, "--prompt", "a", option, value)));

    [Fact]
    public void An_empty_prompt_starts_from_the_document_separator()
    {
        var (code, output, err) = CliRunner.Run("generate", "--checkpoint", Tiny.Value, "--prompt", "", "--max-new-tokens", "5", "--temperature", "0");
        Assert.True(code == 0, err);
        Assert.True(output.TrimEnd('\n').Length > 0);
    }

    [Fact]
    public void A_checkpoint_claiming_depth_minus_5_is_refused()
    {
        var path = Path.Combine(TestPaths.TempDir(), "neg.safetensors");
        using (var f = new Strata.Formats.SafetensorsFile(Tiny.Value))
        {
            var meta = f.Metadata.ToDictionary();
            var info = JsonNode.Parse(meta["strata"])!;
            info["depth"] = -5;
            meta["strata"] = info.ToJsonString();
            Strata.Formats.SafetensorsWriter.Write(path, f.Entries.Keys.Select(k => (k, f.Read(k))).ToList(), meta);
        }
        Assert.Contains("impossible position (depth -5", OneLineError(CliRunner.Run("info", path)));
    }

    [Fact]
    public void An_empty_substrate_table_is_refused()
    {
        var path = Path.Combine(TestPaths.TempDir(), "empty.txt");
        File.WriteAllText(path, "");
        Assert.Contains("no rows", Assert.Throws<StrataException>(() => Strata.Substrates.SubstrateFile.Read(path)).Message);
        var pt = Path.Combine(TestPaths.TempDir(), "empty.safetensors");
        using (var empty = TorchSharp.torch.zeros([0, 16]))
            Strata.Formats.SafetensorsWriter.Write(pt, [("weight", empty)], new Dictionary<string, string>
            {
                ["format"] = "strata-substrate", ["recipe"] = "{\"spec\": {\"kind\": \"file\"}, \"vocab_size\": 0, \"width\": 16}",
                ["sha256"] = Strata.Substrates.SubstrateTables.ContentHash(empty),
            });
        Assert.Contains("the table is 0 x 16", Assert.Throws<StrataException>(() => Strata.Substrates.SubstrateFile.Read(pt)).Message);
    }

    [Theory]
    [InlineData("\"steps\": 2147483647", "steps: must be in 1..1,000,000,000")]
    [InlineData("\"steps\": 2147483648", "stages[0].steps")]
    public void A_plan_of_two_to_the_31_steps_is_refused(string steps, string said)
    {
        var dir = TestPaths.TempDir();
        var plan = Path.Combine(dir, "plan.json");
        File.WriteAllText(plan, $$"""
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, "data": { "datasets": { "a": "x" } },
              "stages": [ { "add_blocks": 1, {{steps}} } ] }
            """);
        Assert.Contains(said, OneLineError(CliRunner.Run("info", plan)));
    }

    [Theory]
    [InlineData("\"training\": { \"seed\": -1 }", "training.seed: must be >= 0")]
    [InlineData("\"data\": { \"datasets\": { \"a\": \"x\", \"b\": \"y\" }, \"mixture\": { \"a\": 1e308, \"b\": 1e308 } }", "more than a double holds")]
    public void Plan_numbers_out_of_range_are_one_line(string field, string said)
    {
        var plan = Path.Combine(TestPaths.TempDir(), "plan.json");
        var data = field.StartsWith("\"data\"") ? "" : "\"data\": { \"datasets\": { \"a\": \"x\" } },";
        File.WriteAllText(plan, $$"""
            { "model": { "d_model": 32, "n_head": 4 }, "substrate": {}, {{data}} {{field}},
              "stages": [ { "add_blocks": 1, "steps": 1 } ] }
            """);
        Assert.Contains(said, OneLineError(CliRunner.Run("info", plan)));
    }

    [Fact]
    public void An_ensemble_entry_null_is_one_line()
    {
        var path = Path.Combine(TestPaths.TempDir(), "e.json");
        File.WriteAllText(path, "{\"format\": \"strata-ensemble\", \"checkpoints\": [null]}");
        Assert.Contains("every entry must be the path of a checkpoint", OneLineError(CliRunner.Run("generate", "--checkpoint", path, "--prompt", "a")));
    }

    [Fact]
    public void Resume_cannot_take_the_effective_rate_past_the_cap()
    {
        var dir = TestPaths.TempDir();
        var plan = SotuData.Plan(4) with { Training = SotuData.Plan(4).Training with { LearningRate = 0.05, MinLearningRate = 0.005 } };
        Trainer.Run(plan, new TrainOptions { OutDir = dir, StopAfterStep = 2, Log = TextWriter.Null });
        var e = Assert.Throws<StrataException>(() =>
            Trainer.Run(null, new TrainOptions { OutDir = dir, Resume = true, LearningRateScale = 1000, Log = TextWriter.Null }));
        Assert.Contains("training.learning_rate: must be in (0, 10], got 50", e.Message);
    }
}
