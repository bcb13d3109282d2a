using Strata.Formats;
using Strata.Generation;
using Strata.Interop;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>GGUF exports read by llama.cpp itself (LLamaSharp's CPU build): the same token ids, the same logits and
/// the same greedy text as Strata.</summary>
[Collection("torch")]
public class GgufExportTests(ITestOutputHelper log)
{
    /// <summary>English, Russian and Chinese, with spaces, punctuation and digits.</summary>
    public static readonly string[] Prompts =
    [
        "The Congress shall have power to lay and collect taxes, 1790.",
        "Государственная Дума приняла закон о бюджете.",
        "中华人民共和国成立于1949年，首都是北京。",
    ];

    public static TheoryData<string> Kinds => new(ExportModels.Kinds);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void An_f32_export_gives_llama_cpp_strata_s_token_ids_logits_and_greedy_text(string kind)
    {
        var checkpoint = ExportModels.Checkpoint(kind);
        var gguf = Path.Combine(TestPaths.TempDir(), "model.gguf");
        var (code, output, err) = CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "gguf", "--out", gguf);
        Assert.True(code == 0, err);
        Assert.Equal(kind == "lora-kept", output.Contains("LoRA adapter(s) merged"));

        var (model, info) = Checkpoint.LoadModel(checkpoint);
        using var _ = model;
        using var src = ExportSource.Load(checkpoint);
        model.eval();
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        using var llama = new LlamaCpp(gguf, model.Config.ContextLength);
        Assert.Equal(model.Config.VocabSize, llama.VocabSize);
        double sameGelu = 0, fromStrata = 0, reference = 0;
        foreach (var prompt in Prompts)
        {
            var ids = tokenizer.Encode(prompt);
            Assert.True(ids.Length + 32 <= model.Config.ContextLength);
            Assert.Equal(ids, llama.Tokenize(prompt));
            using var got = torch.tensor(llama.Logits(ids).SelectMany(row => row).ToArray(), [ids.Length, model.Config.VocabSize]);
            using var ng = torch.no_grad();
            using var strata = model.Forward(torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]));
            using var exact = NeoXReference.Logits(src, ids, x => nn.functional.gelu(x));
            using var approximate = NeoXReference.Logits(src, ids, NeoXReference.LlamaCppGelu);
            reference = Math.Max(reference, (exact - strata[0]).abs().max().item<float>());
            sameGelu = Math.Max(sameGelu, (got - approximate).abs().max().item<float>());
            fromStrata = Math.Max(fromStrata, (got - strata[0]).abs().max().item<float>());

            var greedy = TextGenerator.Generate(model, ids, 32, SamplingOptions.Greedy, tokenizer.EndOfText).ToList();
            Assert.Equal(greedy, llama.Greedy(ids, 32, tokenizer.EndOfText));
        }
        log.WriteLine($"{kind}: largest |logit difference| over {Prompts.Length} prompts, every position: llama.cpp - Strata {fromStrata:E2}; " +
                      $"llama.cpp - the same forward with llama.cpp's GELU {sameGelu:E2}; that forward with exact GELU - Strata {reference:E2}");
        Assert.True(reference < 1e-4, $"{kind}: the reference forward is off Strata's by {reference:E2}");
        // the export is exact: what is left is llama.cpp's GELU (tanh approximation in fp16), which moves these models'
        // logits by up to about 1e-3 from Strata's exact GELU
        Assert.True(sameGelu < 1e-4, $"{kind}: llama.cpp's logits differ from a forward with its own GELU by up to {sameGelu:E2}");
        Assert.True(fromStrata < 5e-3, $"{kind}: llama.cpp's logits differ from Strata's by up to {fromStrata:E2}");
    }

    [Theory]
    [InlineData("f32", 1e-3)]
    [InlineData("f16", 1e-2)]
    [InlineData("bf16", 1e-1)]
    [InlineData("q8_0", 1e-1)]
    public void Every_type_loads_and_stays_close(string dtype, double bound)
    {
        var checkpoint = ExportModels.Checkpoint("frozen-16bit");
        var gguf = Path.Combine(TestPaths.TempDir(), $"model-{dtype}.gguf");
        Assert.Equal(0, CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "gguf", "--dtype", dtype, "--out", gguf).Code);
        var (model, info) = Checkpoint.LoadModel(checkpoint);
        using var _ = model;
        model.eval();
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        using var llama = new LlamaCpp(gguf, model.Config.ContextLength);
        double worst = 0, sum = 0;
        long n = 0, agree = 0, positions = 0;
        foreach (var prompt in Prompts)
        {
            var ids = tokenizer.Encode(prompt);
            var got = llama.Logits(ids);
            using var ng = torch.no_grad();
            using var expected = model.Forward(torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]));
            var want = expected[0].data<float>().ToArray();
            int vocab = got[0].Length;
            for (int t = 0; t < ids.Length; t++)
            {
                for (int v = 0; v < vocab; v++)
                {
                    double d = Math.Abs(got[t][v] - want[t * vocab + v]);
                    (worst, sum, n) = (Math.Max(worst, d), sum + d, n + 1);
                }
                agree += LlamaCpp.ArgMax(got[t]) == LlamaCpp.ArgMax(want.AsSpan(t * vocab, vocab)) ? 1 : 0;
                positions++;
            }
        }
        log.WriteLine($"{dtype}: |logit difference| largest {worst:E2}, mean {sum / n:E2}; same top-1 at {agree}/{positions} positions; " +
                      $"file {new FileInfo(gguf).Length / 1e6:F2} MB");
        Assert.True(worst < bound, $"{dtype}: logits differ by up to {worst:E2}");
        Assert.True(agree >= positions * 0.9, $"{dtype}: the same most likely token at only {agree} of {positions} positions");
    }

    public static TheoryData<string> Vocabularies => new([Bvv241Builder.TwoThree, Bvv241Builder.Max, "trained-bpe-512"]);

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void Llama_cpp_tokenizes_as_strata_does(string name)
    {
        if (name == "trained-bpe-512")
            using (var data = Data.Dataset.Open(SotuData.SmallVocabDir)) name = data.Manifest.Tokenizer;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(name);
        var checkpoint = ExportModels.Untrained(name, tokenizer.VocabSize);
        var gguf = Path.Combine(TestPaths.TempDir(), "vocab.gguf");
        GgufExport.Export(checkpoint, gguf, GgmlType.F32);
        using var llama = new LlamaCpp(gguf, 512);
        var texts = Prompts.Concat(["a  double  space and a tab\there", "line one\nline two\n\nend", "Ёлки-палки, 12345!"]);
        foreach (var text in texts)
        {
            // the one difference: a character outside the vocabulary is <unk> in Strata (and in Hugging Face's
            // tokenizers), and dropped by llama.cpp (a trained 512-id vocabulary has no Cyrillic or Chinese)
            int? unk = (tokenizer as BpeTokenizer)?.Unk;
            var want = tokenizer.Encode(text).Where(id => id != unk).ToArray();
            var got = llama.Tokenize(text);
            Assert.True(want.SequenceEqual(got), $"{name} on '{text}':\n strata    {string.Join(' ', want)}\n llama.cpp {string.Join(' ', got)}");
        }
    }

    [Fact]
    public void An_existing_file_is_kept_without_force_and_an_unsupported_model_is_one_line()
    {
        var checkpoint = ExportModels.Checkpoint("frozen-16bit");
        var dir = TestPaths.TempDir();
        var gguf = Path.Combine(dir, "model.gguf");
        File.WriteAllText(gguf, "keep me");
        var (code, _, err) = CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "gguf", "--out", gguf);
        Assert.NotEqual(0, code);
        Assert.Contains("--force", err);
        Assert.Equal("keep me", File.ReadAllText(gguf));
        Assert.Equal(0, CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "gguf", "--out", gguf, "--force").Code);
        Assert.Equal("GGUF"u8.ToArray(), File.ReadAllBytes(gguf)[..4]);

        // Q8_0 blocks of 32 across a 48-wide model: refused before anything is written
        var narrow = Path.Combine(dir, "narrow");
        Trainer(SotuData.Plan(1, d: 48), narrow);
        var q8 = Path.Combine(dir, "narrow.gguf");
        (code, _, err) = CliRunner.Run("export", "--checkpoint", narrow, "--format", "gguf", "--dtype", "q8_0", "--out", q8);
        Assert.NotEqual(0, code);
        Assert.Contains("q8_0", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(q8));
        Assert.Equal(["model.gguf", "narrow"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // a byte-level vocabulary (gpt2) has no place in a code-point GGUF
        var gpt2 = ExportModels.Untrained("gpt2", 50257);
        (code, _, err) = CliRunner.Run("export", "--checkpoint", gpt2, "--format", "gguf", "--out", Path.Combine(dir, "gpt2.gguf"));
        Assert.NotEqual(0, code);
        Assert.Contains("gpt2", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(dir, "gpt2.gguf")));
    }

    private static void Trainer(GrowthPlan plan, string dir) =>
        Training.Trainer.Run(plan, new Training.TrainOptions { OutDir = dir, Log = TextWriter.Null });

    [Fact]
    public void Qkv_rows_are_regrouped_from_per_head_to_all_queries_keys_values()
    {
        // 2 heads of size 2: rows [h0 q q, h0 k k, h0 v v, h1 q q, h1 k k, h1 v v] -> [q of h0, h1; k ...; v ...]
        using var rows = Scalars.Arange(0, 12, ScalarType.Float32);
        using var grouped = GgufExport.GroupQkv(rows, heads: 2);
        Assert.Equal([0f, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11], grouped.data<float>().ToArray());
    }
}
