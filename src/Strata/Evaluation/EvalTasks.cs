using Strata.Data;
using Strata.Generation;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>One number of a report, with the protocol and the interval that go with it. <see cref="Interval"/> says
/// what <see cref="Ci95"/> is: "runs" (1.96·σ/√runs over repeated runs, σ the population deviation, as the paper),
/// "binomial" (1.96·√(p(1-p)/n) over the items of one run) or "none".</summary>
public sealed record EvalScore(string Task, string Protocol, string Metric, double Value, double? Ci95, string Interval,
    int Items, int Runs, double? Chance, string Settings);

/// <summary>A named evaluation: what data it reads and which protocols it runs.</summary>
public abstract class EvalTask(string name, string description)
{
    public string Name { get; } = name;
    public string Description { get; } = description;
    public abstract IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings settings);

    protected static IReadOnlyList<T> Take<T>(IReadOnlyList<T> items, int? count, long seed, bool shuffle)
    {
        if (!shuffle) return count is { } c ? items.Take(c).ToList() : items;
        var list = items.ToList();
        var rng = new SplitMix64((ulong)seed);
        for (int i = list.Count - 1; i > 0; i--) { int j = (int)rng.NextBelow(i + 1); (list[i], list[j]) = (list[j], list[i]); }
        return count is { } n ? list.Take(n).ToList() : list;
    }

    protected static int? Min(int? a, int? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    /// <summary>Mean over runs with the paper's 1.96·σ/√runs; one run of accuracies gets the binomial interval instead.</summary>
    protected EvalScore Summarise(string protocol, string metric, IReadOnlyList<double> perRun, int items, double? chance, string settings, bool isAccuracy)
    {
        double mean = perRun.Average();
        if (perRun.Count > 1)
        {
            double sigma = Math.Sqrt(perRun.Sum(v => (v - mean) * (v - mean)) / perRun.Count);
            return new EvalScore(Name, protocol, metric, mean, 1.96 * sigma / Math.Sqrt(perRun.Count), "runs", items, perRun.Count, chance, settings);
        }
        if (isAccuracy && items > 0)
        {
            double p = mean / 100;
            return new EvalScore(Name, protocol, metric, mean, 100 * 1.96 * Math.Sqrt(p * (1 - p) / items), "binomial", items, 1, chance, settings);
        }
        return new EvalScore(Name, protocol, metric, mean, null, "none", items, 1, chance, settings);
    }
}

/// <summary>Multiple choice under any of the three protocols. Accuracy in percent; chance = 100 / number of choices
/// (averaged over items when the count varies).</summary>
public sealed class MultipleChoiceTask(string name, string description, Func<EvalSettings, IReadOnlyList<MultipleChoiceItem>> load,
    Func<MultipleChoiceItem, string> paperPrompt, int maxNewTokens) : EvalTask(name, description)
{
    public IReadOnlyList<MultipleChoiceItem> Items(EvalSettings s) => Take(load(s), s.Limit, s.Seed, shuffle: false);

    public override IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings s)
    {
        var items = Items(s);
        if (items.Count == 0) throw new StrataException($"{Name}: no items");
        double chance = 100 * items.Average(q => 1.0 / q.Choices.Count);
        var scores = new List<EvalScore>();
        foreach (var protocol in s.Protocols)
        {
            switch (protocol)
            {
                case Protocol.Generative:
                {
                    var perRun = new List<double>();
                    var prompts = items.Select(paperPrompt).ToList();
                    for (int run = 0; run < s.Runs; run++)
                    {
                        var continuations = scorer.ContinueAll(prompts, maxNewTokens, s.DecodingsFor(run, items.Count));
                        perRun.Add(100.0 * items.Where((q, i) => PaperPrompts.FirstCharacterCorrect(continuations[i], q.AnswerLabel)).Count() / items.Count);
                    }
                    scores.Add(Summarise(protocol, "accuracy", perRun, items.Count, chance,
                        $"{s.Describe()}, max_new_tokens {maxNewTokens}, first character", true));
                    break;
                }
                case Protocol.LogLikelihoodLetter:
                {
                    var lls = scorer.LogLikelihoods(items.SelectMany(q => q.Labels.Select(l => (paperPrompt(q), " " + l))).ToList());
                    int at = 0, correct = 0;
                    foreach (var q in items)
                    {
                        var ll = new ArraySegment<double>(lls, at, q.Choices.Count);
                        at += q.Choices.Count;
                        if (ArgMax(ll) == q.Answer) correct++;
                    }
                    scores.Add(Summarise(protocol, "accuracy", [100.0 * correct / items.Count], items.Count, chance,
                        "the paper's prompt, continuation \" LABEL\"", true));
                    break;
                }
                case Protocol.LogLikelihoodCloze:
                {
                    var lls = scorer.LogLikelihoods(items.SelectMany(q => q.Choices.Select(c => (PaperPrompts.Cloze(q), " " + c))).ToList());
                    int at = 0, correct = 0, correctNorm = 0;
                    foreach (var q in items)
                    {
                        var ll = new ArraySegment<double>(lls, at, q.Choices.Count);
                        at += q.Choices.Count;
                        if (ArgMax(ll) == q.Answer) correct++;
                        if (ArgMax(ll.Select((v, k) => v / (q.Choices[k].Length + 1)).ToList()) == q.Answer) correctNorm++;
                    }
                    scores.Add(Summarise(protocol, "accuracy", [100.0 * correct / items.Count], items.Count, chance,
                        "\"Question: q\\nAnswer:\" + \" ANSWER\", sum of log-probabilities", true));
                    scores.Add(Summarise(protocol, "accuracy_norm", [100.0 * correctNorm / items.Count], items.Count, chance,
                        "log-probability / characters of \" ANSWER\"", true));
                    break;
                }
                default: throw new StrataException($"unknown protocol '{protocol}' (known: {string.Join(", ", Protocol.MultipleChoice)})");
            }
        }
        return scores;
    }

    private static int ArgMax(IReadOnlyList<double> v)
    {
        int best = 0;
        for (int i = 1; i < v.Count; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}

/// <summary>SQuAD v2 as the paper ran it: answerable items whose first answer has at most 8 characters, shuffled, 256
/// of them; max_new_tokens = the answer's characters (at most 100); exact or substring match.</summary>
internal sealed class SquadTask(Func<EvalSettings, IReadOnlyList<SquadItem>> load) : EvalTask("squad-v2",
    "SQuAD v2 validation, short answerable items (the paper's filter)")
{
    public const int Sample = 256, MaxAnswerChars = 8;

    public override IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings s)
    {
        var eligible = load(s).Where(q => q.Answers.Count > 0 && q.Answers[0].EnumerateRunes().Count() <= MaxAnswerChars).ToList();
        var items = Take(eligible, Min(Sample, s.Limit), s.Seed, shuffle: true);
        if (items.Count == 0) throw new StrataException($"{Name}: no answerable item with an answer of at most {MaxAnswerChars} characters");
        var perRun = new List<double>();
        for (int run = 0; run < s.Runs; run++)
        {
            var all = s.DecodingsFor(run, items.Count);
            int correct = 0;
            for (int i = 0; i < items.Count; i++)
            {
                var answer = items[i].Answers[0];
                var cont = scorer.Continue(PaperPrompts.Squad(items[i]), PaperPrompts.ReferenceLength(answer), all[i]);
                if (PaperPrompts.SquadCorrect(cont, answer)) correct++;
            }
            perRun.Add(100.0 * correct / items.Count);
        }
        return [Summarise(Protocol.Generative, "accuracy", perRun, items.Count, null, $"{s.Describe()}, exact or substring match", true)];
    }
}

/// <summary>Translation as the paper ran it: 128 shuffled OPUS-100 validation pairs, its prompt, the reference's length
/// in tokens (at most 100), and sentence BLEU (sacreBLEU corpus_bleu of one segment, upper-cased) averaged over samples.
/// Chinese targets also get the score under sacreBLEU's zh tokeniser (the paper used 13a throughout).</summary>
internal sealed class TranslationTask(string from, string to, Func<EvalSettings, IReadOnlyList<TranslationPair>> load)
    : EvalTask($"bleu-{from}-{to}", $"OPUS-100 validation, {Language(from)} to {Language(to)}")
{
    public const int Sample = 128;

    public static string Language(string code) => code switch
    {
        "en" => "English", "ru" => "Russian", "zh" => "Chinese",
        _ => throw new StrataException($"language '{code}': the paper's translation prompts name English, Russian and Chinese"),
    };

    public override IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings s)
    {
        var items = Take(load(s), Min(Sample, s.Limit), s.Seed, shuffle: true);
        if (items.Count == 0) throw new StrataException($"{Name}: no pairs");
        var tokenisers = to == "zh" ? new[] { "13a", "zh" } : ["13a"];
        var perRun = tokenisers.ToDictionary(t => t, _ => new List<double>());
        for (int run = 0; run < s.Runs; run++)
        {
            var sums = tokenisers.ToDictionary(t => t, _ => 0.0);
            var decodings = s.DecodingsFor(run, items.Count);
            for (int i = 0; i < items.Count; i++)
            {
                var p = items[i];
                var cont = scorer.Continue(PaperPrompts.Translation(Language(from), Language(to), p.Source), PaperPrompts.ReferenceLength(p.Target),
                    decodings[i]);
                var hyp = PaperPrompts.BleuHypothesis(cont);
                foreach (var t in tokenisers) sums[t] += SacreBleu.CorpusBleu([hyp], [p.Target.ToUpperInvariant()], t).Score;
            }
            foreach (var t in tokenisers) perRun[t].Add(sums[t] / items.Count);
        }
        return tokenisers.Select(t => Summarise(Protocol.Generative, $"sentence_bleu_{t}", perRun[t], items.Count, null,
            $"{s.Describe()}, sacreBLEU {t}, upper-cased", false)).ToList();
    }
}

/// <summary>Cross-entropy of the held-out part of a corpus, prepared for the model's tokenizer: nats per token,
/// perplexity, and bits per byte (total nats / ln 2 / UTF-8 bytes of the held-out text), which compares across tokenizers.</summary>
internal sealed class PerplexityTask(string name, HeldOutCorpus corpus) : EvalTask(name, $"held-out {corpus.Description}")
{
    public HeldOutCorpus Corpus { get; } = corpus;

    public override IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings s)
    {
        using var dataset = Dataset.Open(Corpus.Prepare(s.Home, scorer.Tokenizer.Name, s.Log));
        return DatasetPerplexityTask.Scores(Name, scorer, dataset, s);
    }
}

/// <summary>The same measures on the validation split of any prepared dataset (strata eval --dataset DIR), with 95%
/// intervals from the spread of its batches of windows.</summary>
internal sealed class DatasetPerplexityTask(string name, string path) : EvalTask(name, $"the validation split of {path}")
{
    public override IReadOnlyList<EvalScore> Run(Scorer scorer, EvalSettings s)
    {
        using var dataset = Dataset.Open(path);
        return Scores(Name, scorer, dataset, s);
    }

    public static IReadOnlyList<EvalScore> Scores(string name, Scorer scorer, Dataset dataset, EvalSettings s)
    {
        var (nats, tokens, se) = ValidationLoss.OverSplit(scorer.Model, dataset, TokenizerIdentity.Of(scorer.Tokenizer), s.PerplexityTokens);
        double perToken = nats / tokens, half = 1.96 * se;
        // with a token limit, bytes are prorated by the share of tokens measured
        var split = dataset.Manifest.Validation;
        double bytesPerToken = split.Bytes / (double)split.Tokens;
        var how = $"non-overlapping context windows, " +
            $"{(tokens + split.Shards.Count < split.Tokens ? $"first {tokens:N0} of {split.Tokens:N0} tokens" : "all tokens")}";
        const string interval = "1.96 x standard error over batches of windows";
        double Bpb(double natsPerToken) => ValidationLoss.BitsPerByte(natsPerToken, 1 / bytesPerToken);
        return
        [
            new(name, Protocol.Perplexity, "nats_per_token", perToken, half, interval, (int)Math.Min(tokens, int.MaxValue), 1, null, how),
            new(name, Protocol.Perplexity, "perplexity", Math.Exp(perToken), (Math.Exp(perToken + half) - Math.Exp(perToken - half)) / 2, interval,
                (int)Math.Min(tokens, int.MaxValue), 1, null, how),
            new(name, Protocol.Perplexity, "bits_per_byte", Bpb(perToken), Bpb(half), interval, (int)Math.Min(tokens, int.MaxValue), 1, null, how),
        ];
    }
}
