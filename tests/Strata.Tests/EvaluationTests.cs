using Strata.Formats;
using System.Text.Json;
using Strata.Evaluation;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

public class SacreBleuTests
{
    public sealed record Case(string Name, string[] Hypotheses, string[] References, string Tokenize, double Score, int[] Counts, int[] Totals,
        int SysLen, int RefLen, double Bp);

    public static IEnumerable<object[]> Cases() =>
        JsonSerializer.Deserialize<Case[]>(File.ReadAllText(TestPaths.Data("sacrebleu-cases.json")), Json.Options)!.Select(c => new object[] { c.Name });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Corpus_bleu_matches_sacrebleu_2_6_0(string name)
    {
        var c = JsonSerializer.Deserialize<Case[]>(File.ReadAllText(TestPaths.Data("sacrebleu-cases.json")), Json.Options)!.Single(x => x.Name == name);
        var s = SacreBleu.CorpusBleu(c.Hypotheses, c.References, c.Tokenize);
        Assert.True(Math.Abs(s.Score - c.Score) < 1e-4, $"{name}: {s.Score} vs sacreBLEU {c.Score}");
        Assert.Equal(c.Counts, s.Counts);
        Assert.Equal(c.Totals, s.Totals);
        Assert.Equal((c.SysLen, c.RefLen), (s.SysLen, s.RefLen));
        Assert.True(Math.Abs(s.BrevityPenalty - c.Bp) < 1e-9);
    }

    [Fact]
    public void Tokenisers_split_as_sacrebleu_does()
    {
        Assert.Equal("I'm a student .", SacreBleu.Tokenize13a("I'm a student."));
        Assert.Equal("Hello , world ! It's 3.5 km .", SacreBleu.Tokenize13a("Hello, world! It's 3.5 km."));
        Assert.Equal("1 - 2 , 3,000 & \" <", SacreBleu.Tokenize13a("1-2, 3,000 &amp; &quot; &lt;"));
        Assert.Equal("教 我 中 文 吧", SacreBleu.TokenizeZh("教我中文吧"));
        Assert.Equal("我 爱 ok , 北 京 。", SacreBleu.TokenizeZh("我爱ok,北京。"));
        // sacreBLEU's '\u20000' bound is really U+2000 + '0': the em dash counts as Chinese, an astral ideograph does not
        Assert.True(SacreBleu.IsChinese(0x2014));
        Assert.False(SacreBleu.IsChinese(0x20000));
    }
}

public class BenchmarkFileTests
{
    private static string D(params string[] p) => TestPaths.Data(["datasets", .. p]);

    [Fact]
    public void Mmlu_parquet_and_csv_layouts_read_with_their_answers()
    {
        var pq = BenchmarkFiles.MmluParquet(D("cais-mmlu", "astronomy", "test-00000-of-00001.parquet"));
        Assert.Equal(3, pq.Count);
        Assert.Equal("Which planet is closest to the Sun?", pq[0].Question);
        Assert.Equal(["Venus", "Mercury", "Earth", "Mars"], pq[0].Choices);
        Assert.Equal(["B", "C", "D"], pq.Select(q => q.AnswerLabel));
        var csv = BenchmarkFiles.MmluCsv(D("mmlu-csv", "test", "astronomy_test.csv"));
        Assert.Equal(2, csv.Count);
        Assert.Equal("A question, with a comma and \"quotes\"?", csv[1].Question);
        Assert.Equal(["one", "two, three", "four", "five"], csv[1].Choices);
        Assert.Equal("C", csv[1].AnswerLabel);
    }

    [Fact]
    public void Arc_commonsense_squad_and_opus_layouts_read()
    {
        var arc = BenchmarkFiles.LabelledChoices(D("ai2-arc", "ARC-Easy", "validation-00000-of-00001.parquet"));
        Assert.Equal(["1", "2", "3"], arc[1].Labels);
        Assert.Equal("water", arc[1].Choices[arc[1].Answer]);
        var csqa = BenchmarkFiles.LabelledChoices(D("commonsense-qa", "validation-00000-of-00001.parquet"));
        Assert.Equal(5, csqa[0].Choices.Count);
        var squad = BenchmarkFiles.SquadV2(D("squad-v2", "validation-00000-of-00001.parquet"));
        Assert.Equal(["The Volga", "Volga"], squad[0].Answers);
        Assert.Empty(squad[1].Answers);                                        // unanswerable
        var opus = BenchmarkFiles.Opus100(D("opus-100", "en-ru", "validation-00000-of-00001.parquet"), "ru", "en");
        Assert.Equal(("Доброе утро.", "Good morning."), (opus[0].Source, opus[0].Target));
    }

    [Fact]
    public void Prompts_are_the_papers_templates_byte_for_byte()
    {
        var mmlu = BenchmarkFiles.MmluParquet(D("cais-mmlu", "astronomy", "test-00000-of-00001.parquet"))[0];
        Assert.Equal("Question: Which planet is closest to the Sun?\nOptions: A) Venus B) Mercury C) Earth D) Mars\nAnswer:", PaperPrompts.Mmlu(mmlu));
        var arc = BenchmarkFiles.LabelledChoices(D("ai2-arc", "ARC-Easy", "validation-00000-of-00001.parquet"))[1];
        Assert.Equal("Question: Which is a liquid at room temperature?\nOptions:\n1) iron\n2) water\n3) salt\nAnswer:", PaperPrompts.OptionList(arc));
        var squad = BenchmarkFiles.SquadV2(D("squad-v2", "validation-00000-of-00001.parquet"))[0];
        Assert.Equal($"Context: {squad.Context}\nQuestion: Which is the longest river in Europe?\nAnswer:", PaperPrompts.Squad(squad));
        Assert.Equal("Translate from English to Russian:\nGood morning.\nAnswer:", PaperPrompts.Translation("English", "Russian", "Good morning."));
    }

    [Fact]
    public void Scoring_rules_follow_the_paper()
    {
        Assert.True(PaperPrompts.FirstCharacterCorrect(" b) Mercury", "B"));
        Assert.False(PaperPrompts.FirstCharacterCorrect(" Mercury", "B"));
        Assert.False(PaperPrompts.FirstCharacterCorrect("", "A"));
        Assert.True(PaperPrompts.SquadCorrect(" the volga river", "Volga"));
        Assert.False(PaperPrompts.SquadCorrect(" Danube", "Volga"));
        Assert.Equal("ДОБРОЕ УТРО.", PaperPrompts.BleuHypothesis(" Доброе утро.</s> junk"));
        Assert.Equal(5, PaperPrompts.ReferenceLength("Volga"));
        Assert.Equal(100, PaperPrompts.ReferenceLength(new string('x', 300)));
    }

    [Fact]
    public void Malformed_rows_name_the_file_and_line()
    {
        var dir = TestPaths.TempDir();
        var csv = Path.Combine(dir, "bad_test.csv");
        File.WriteAllText(csv, "Q1?,a,b,c,d,A\n\"Q2,\nspans lines\",a,b,c,d,B\nQ3?,a,b,c,E\n");
        var e = Assert.Throws<StrataException>(() => BenchmarkFiles.MmluCsv(csv));
        Assert.Equal($"{csv}:4: expected 6 fields (question, A, B, C, D, answer), got 5", e.Message);
        File.WriteAllText(csv, "Q1?,a,b,c,d,X\n");
        Assert.Contains($"{csv}:1: answer: expected A, B, C or D", Assert.Throws<StrataException>(() => BenchmarkFiles.MmluCsv(csv)).Message);
        var jsonl = Path.Combine(dir, "set.jsonl");
        File.WriteAllText(jsonl,
            "{\"question\":\"q\",\"labels\":[\"A\",\"B\"],\"choices\":[\"x\",\"y\"],\"answer\":1}\n" +
            "{\"question\":\"q\",\"labels\":[\"A\"],\"choices\":[\"x\",\"y\"],\"answer\":0}\n");
        Assert.StartsWith($"{jsonl}:2: expected", Assert.Throws<StrataException>(() => BenchmarkFiles.ReadJsonl(jsonl)).Message);
        var wrongLayout = D("opus-100", "en-ru", "validation-00000-of-00001.parquet");
        Assert.StartsWith($"{wrongLayout} row 1: ", Assert.Throws<StrataException>(() => BenchmarkFiles.MmluParquet(wrongLayout)).Message);
        var notParquet = Path.Combine(dir, "x.parquet");
        File.WriteAllText(notParquet, "not parquet");
        Assert.StartsWith($"{notParquet}: not a parquet file", Assert.Throws<StrataException>(() => BenchmarkFiles.SquadV2(notParquet)).Message);
    }

    [Fact]
    public void Suites_resolve_and_an_empty_or_unknown_one_is_refused()
    {
        Assert.Equal(["ppl-sotu", "quiz-capitals", "mmlu"], EvalSuites.Resolve("demo, mmlu,quiz-capitals").Select(t => t.Name));
        Assert.StartsWith("--suite: empty", Assert.Throws<StrataException>(() => EvalSuites.Resolve(" , ")).Message);
        Assert.StartsWith("--suite: unknown task or suite 'mmlu-pro'", Assert.Throws<StrataException>(() => EvalSuites.Resolve("mmlu-pro")).Message);
    }
}

public class QuizSetTests
{
    [Fact]
    public void Quiz_patterns_read_as_their_full_written_form()
    {
        Assert.Equal("California", QuizSets.Canonical("Cal{if{ornia}}|CA"));
        Assert.Equal("Andorra la Vella", QuizSets.Canonical("Andorra la V[ell|iej]a"));
        Assert.Equal("To be, or not to be:", QuizSets.Canonical("To be{,} or not to be{\\:}"));
        Assert.Equal("forget-me-not", QuizSets.Canonical("forget{-| }me{-| }not"));
        Assert.Equal("Yaoundé", QuizSets.Canonical("Yaound['\be|e\b'|e]"));
        Assert.Equal("Côte d'Ivoire", QuizSets.Canonical("C[^\bo|o\b^|o]te d'Ivoire"));
    }

    [Fact]
    public void Quiz_sets_are_real_deterministic_and_four_way()
    {
        var capitals = QuizSets.Get("quiz-capitals");
        var a = capitals.Build(7);
        var b = capitals.Build(7);
        Assert.Equal(a.Select(q => (q.Question, string.Join("|", q.Choices), q.Answer)), b.Select(q => (q.Question, string.Join("|", q.Choices), q.Answer)));
        Assert.True(a.Count > 200, $"{a.Count} capitals");
        var france = a.Single(q => q.Question == "What is the capital of France?");
        Assert.Equal("Paris", france.Choices[france.Answer]);
        Assert.All(a, q => Assert.Equal(4, q.Choices.Distinct().Count()));
        Assert.NotEqual(a.Select(q => q.Answer), capitals.Build(8).Select(q => q.Answer));   // the seed matters
        // the right answer sits at every position about equally often
        Assert.All(Enumerable.Range(0, 4), k => Assert.InRange(a.Count(q => q.Answer == k), a.Count / 8, a.Count / 2));
        var elements = QuizSets.Get("quiz-elements").Build(1);
        Assert.Equal("Hydrogen", elements[0].Choices[elements[0].Answer]);
        var bard = QuizSets.Get("quiz-bard").Build(1);
        Assert.Equal("It droppeth as the gentle rain from heaven", bard[0].Choices[bard[0].Answer]);
        var words = QuizSets.Get("wordnet-definitions").Build(1);
        Assert.Equal(500, words.Count);
        Assert.All(words, q => Assert.DoesNotContain(q.Choices[q.Answer], q.Question, StringComparison.OrdinalIgnoreCase));
    }
}

[Collection("torch")]
public class ScorerTests
{
    private static (LanguageModel, Scorer) Model()
    {
        torch.manual_seed(11);
        var cfg = new ModelConfig { DModel = 32, NHead = 4, ContextLength = 24, VocabSize = 65536 };
        var m = new LanguageModel(cfg, SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.Binary, Bits = 16 }, cfg.VocabSize, cfg.DModel), 2);
        return (m, new Scorer(m, new CodePointTokenizer()));
    }

    [Fact]
    public void Batched_log_likelihoods_equal_one_sequence_at_a_time_and_the_logits()
    {
        var (model, scorer) = Model();
        using var _ = model;
        var requests = new List<(string, string)> { ("Question: 2+2?\nAnswer:", " 4"), ("Q:", " a longer continuation here"), ("", "empty context"), (
            "x", new string('y', 40)) };
        var batched = scorer.LogLikelihoods(requests);
        var single = new Scorer(model, scorer.Tokenizer) { MaxBatchRows = 1 }.LogLikelihoods(requests);
        for (int i = 0; i < requests.Count; i++) Assert.True(Math.Abs(batched[i] - single[i]) < 1e-3, $"{i}: {batched[i]} vs {single[i]}");
        // by hand for the first: log softmax at each continuation position
        var ctx = scorer.Tokenizer.Encode("Question: 2+2?\nAnswer:");
        var cont = scorer.Tokenizer.Encode(" 4");
        using var no = torch.no_grad();
        model.eval();
        var ids = ctx.Concat(cont).Select(t => (long)t).ToArray();
        using var logits = model.Forward(torch.tensor(ids[..^1], [1, ids.Length - 1]));
        using var lp = logits[0].log_softmax(-1);
        double expected = cont.Select((t, k) => (double)lp[ctx.Length - 1 + k, t].item<float>()).Sum();
        Assert.True(Math.Abs(batched[0] - expected) < 1e-4, $"{batched[0]} vs {expected}");
        // too long for the context: scored on the last context-length tokens, still finite
        Assert.True(double.IsFinite(batched[3]) && batched[3] < batched[0]);
    }

    [Fact]
    public void Trailing_spaces_of_the_context_move_to_the_continuation()
    {
        var (model, scorer) = Model();
        using var _ = model;
        var (c, k) = scorer.EncodePair("Answer: ", "Paris");
        Assert.Equal("Answer:", scorer.Tokenizer.Decode(c));
        Assert.Equal(" Paris", scorer.Tokenizer.Decode(k));
    }

    [Fact]
    public void Generative_continuation_is_the_text_after_the_prompt()
    {
        var (model, scorer) = Model();
        using var _ = model;
        var prompt = "Question: Ж or B?\nAnswer:";
        var ids = scorer.Tokenizer.Encode(prompt);
        var greedy = Strata.Generation.TextGenerator.Generate(model, ids, 3, Strata.Generation.SamplingOptions.Greedy, scorer.Tokenizer.EndOfText).ToList();
        Assert.Equal(scorer.Tokenizer.Decode(greedy), scorer.Continue(prompt, 3, Strata.Generation.SamplingOptions.Greedy));
    }

    [Fact]
    public void Batched_generation_chooses_the_tokens_one_by_one_generation_chooses()
    {
        var (model, scorer) = Model();
        using var _ = model;
        string[] prompts = ["Question: 2+2?\nAnswer:", "Q:", "A much longer prompt than the others", "x"];
        foreach (var decoding in new[] { Strata.Generation.SamplingOptions.Greedy, new Strata.Generation.SamplingOptions { Temperature = 1.0, Seed = 5 } })
        {
            var decodings = prompts.Select((_, i) => decoding with { Seed = decoding.Seed + i }).ToList();
            var batched = scorer.ContinueAll(prompts, 3, decodings);
            var single = prompts.Select((p, i) => scorer.Continue(p, 3, decodings[i])).ToList();
            Assert.Equal(single, batched);
        }
    }

    [Fact]
    public void Long_batched_generation_with_left_padding_equals_one_at_a_time()
    {
        torch.manual_seed(12);
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 96, VocabSize = 65536 };
        using var model = new LanguageModel(cfg, SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.Binary, Bits = 16 }, cfg.VocabSize,
            cfg.DModel), 3);
        var tokenizer = new CodePointTokenizer();
        // lengths 1 to 40: up to 39 positions of left padding; 24 new tokens each (SQuAD and translation generate more than 4)
        string[] prompts = ["Question: What is the capital of France?\nAnswer:", "Q:", "x", "Translate to German: the house is red.", "Жизнь"];
        var greedy = prompts.Select(_ => Strata.Generation.SamplingOptions.Greedy).ToList();
        var batched = new Scorer(model, tokenizer).ContinueAll(prompts, 24, greedy);
        var single = prompts.Select(p => new Scorer(model, tokenizer).Continue(p, 24, Strata.Generation.SamplingOptions.Greedy)).ToList();
        Assert.Equal(single, batched);
        Assert.Contains(batched, c => c.EnumerateRunes().Count() >= 12);                   // long generations, not early stops
        // rows in batches of two (the cache bound): the same again
        var small = new Scorer(model, tokenizer) { MaxCacheBytesPerBatch = 2 * model.CacheBytesPerPosition * (prompts.Max(p => p.Length) + 24) };
        Assert.Equal(single, small.ContinueAll(prompts, 24, greedy));
    }

    [Fact]
    public void Perplexity_counts_every_token_once_and_refuses_another_tokenizer()
    {
        var (model, _) = Model();
        using var __ = model;
        var tokens = Enumerable.Range(0, 60).Select(i => 65 + i % 26).ToList();
        using var dataset = Strata.Data.Dataset.Open(TestDatasets.Write(TestPaths.TempDir(), tokens, tokens));
        var codepoint = Strata.Tokenization.TokenizerIdentity.Of("codepoint");
        var (nats, n, _) = ValidationLoss.OverSplit(model, dataset, codepoint);
        Assert.Equal(59, n);                                                    // windows of 24: 24 + 24 + 11
        using var no = torch.no_grad();
        model.eval();
        double manual = 0;
        foreach (var (s, len) in new[] { (0, 24), (24, 24), (48, 11) })
        {
            using var x = torch.tensor(tokens.Skip(s).Take(len + 1).Select(t => (long)t).ToArray(), [1, len + 1]);
            using var logits = model.Forward(x[.., ..^1]);
            manual += nn.functional.cross_entropy(logits[0], x[0, 1..], reduction: nn.Reduction.Sum).item<float>();
        }
        Assert.True(Math.Abs(nats - manual) < 1e-2, $"{nats} vs {manual}");
        using var other = Strata.Data.Dataset.Open(TestDatasets.Write(TestPaths.TempDir(), tokens, tokens, "bvv241-2-3"));
        var e = Assert.Throws<StrataException>(() => ValidationLoss.OverSplit(model, other, codepoint));
        Assert.Equal($"{other.Path} uses the tokenizer {other.Tokenizer}, the model uses {codepoint}: they must share the vocabulary", e.Message);
    }
}
