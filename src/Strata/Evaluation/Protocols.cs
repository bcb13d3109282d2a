using Strata.Generation;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>The names every score carries, so that a number never loses the protocol that produced it.</summary>
public static class Protocol
{
    /// <summary>The paper's zero-shot generative protocol: its prompt, a few generated tokens, first-character scoring.</summary>
    public const string Generative = "generative";
    /// <summary>lm-evaluation-harness multiple choice with the options in the prompt: log P(" A") vs log P(" B") ...</summary>
    public const string LogLikelihoodLetter = "loglik-letter";
    /// <summary>lm-evaluation-harness cloze: "Question: q\nAnswer:" followed by each answer's text; acc and acc_norm.</summary>
    public const string LogLikelihoodCloze = "loglik-cloze";
    /// <summary>Mean cross-entropy over held-out text in non-overlapping context windows.</summary>
    public const string Perplexity = "perplexity";

    public static IReadOnlyList<string> MultipleChoice { get; } = [Generative, LogLikelihoodLetter, LogLikelihoodCloze];
}

/// <summary>The paper's prompt templates, byte for byte (the author's evaluation code for both papers, _models_benchmarking.py).</summary>
internal static class PaperPrompts
{
    /// <summary>MMLU: the four options on one line, separated by single spaces.</summary>
    public static string Mmlu(MultipleChoiceItem q) =>
        $"Question: {q.Question}\nOptions: A) {q.Choices[0]} B) {q.Choices[1]} C) {q.Choices[2]} D) {q.Choices[3]}\nAnswer:";

    /// <summary>ARC and CommonsenseQA (and the quiz sets): one option per line with the dataset's own labels.</summary>
    public static string OptionList(MultipleChoiceItem q) =>
        $"Question: {q.Question}\nOptions:\n{string.Join("\n", q.Labels.Zip(q.Choices, (l, t) => $"{l}) {t}"))}\nAnswer:";

    public static string Squad(SquadItem q) => $"Context: {q.Context}\nQuestion: {q.Question}\nAnswer:";

    public static string Translation(string from, string to, string source) => $"Translate from {from} to {to}:\n{source}\nAnswer:";

    /// <summary>lm-evaluation-harness's cloze context (no options shown).</summary>
    public static string Cloze(MultipleChoiceItem q) => $"Question: {q.Question}\nAnswer:";

    /// <summary>First character of the stripped, upper-cased continuation equals the answer label.</summary>
    public static bool FirstCharacterCorrect(string continuation, string label)
    {
        var c = continuation.Trim().ToUpperInvariant();
        return c.Length > 0 && c[..1] == label;
    }

    /// <summary>SQuAD: the stripped, upper-cased continuation equals the answer or contains it.</summary>
    public static bool SquadCorrect(string continuation, string answer)
    {
        var c = continuation.Trim().ToUpperInvariant();
        var a = answer.ToUpperInvariant();
        return c == a || c.Contains(a, StringComparison.Ordinal);
    }

    /// <summary>BLEU's hypothesis: stripped, upper-cased, cut at the end-of-sequence tag.</summary>
    public static string BleuHypothesis(string continuation)
    {
        var c = continuation.Trim().ToUpperInvariant();
        int cut = c.IndexOf("</S>", StringComparison.Ordinal);
        return cut >= 0 ? c[..cut] : c;
    }

    /// <summary>The paper's generation length for SQuAD and translation: the reference's characters, at most 100.</summary>
    public static int ReferenceLength(string reference) => Math.Min(reference.EnumerateRunes().Count(), 100);
}

/// <summary>Decoding and selection settings of an evaluation; every number in a report is reproducible from these.</summary>
public sealed record EvalSettings
{
    /// <summary>Protocols for multiple-choice tasks (generative, loglik-letter, loglik-cloze).</summary>
    public IReadOnlyList<string> Protocols { get; init; } = Protocol.MultipleChoice;
    /// <summary>Repeated generative runs (the paper used 10 with sampling); the report gives mean and 1.96·σ/√runs.</summary>
    public int Runs { get; init; } = 1;
    /// <summary>Decoding for the generative protocol; run r uses seed Seed + r.</summary>
    public SamplingOptions Decoding { get; init; } = SamplingOptions.Greedy;
    /// <summary>Seed of the sample selection (the paper's unseeded shuffles) and of the quiz sets' distractors.</summary>
    public long Seed { get; init; } = 1337;
    /// <summary>At most this many questions per task (after the paper's own selection).</summary>
    public int? Limit { get; init; }
    /// <summary>Perplexity tasks measure at most this many held-out tokens (the first ones; all when null).</summary>
    public long? PerplexityTokens { get; init; }
    /// <summary>The Strata home (Util/StrataHome.cs): cached quiz sets and prepared held-out corpora live under it.</summary>
    public string Home { get; init; } = StrataHome.Root;
    /// <summary>Where the public benchmark files are (default HOME/data/benchmarks).</summary>
    public string? DataDir { get; init; }
    public TextWriter Log { get; init; } = TextWriter.Null;

    /// <summary>The decoding of each item in run <paramref name="run"/>: item i of run r draws with seed Seed + r·1,000,003 + i.</summary>
    public IReadOnlyList<SamplingOptions> DecodingsFor(int run, int items) =>
        Enumerable.Range(0, items).Select(i => Decoding with { Seed = Decoding.Seed + run * 1_000_003L + i }).ToList();

    public string Describe() => Decoding.Temperature <= 0
        ? $"greedy, {Runs} run(s)"
        : $"sampled: temperature {Decoding.Temperature}, top-k {Decoding.TopK}, top-p {Decoding.TopP}, seed {Decoding.Seed}+run, {Runs} run(s)";
}
