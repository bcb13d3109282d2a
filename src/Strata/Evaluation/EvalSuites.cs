using Strata.Data;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>Every evaluation task by name, and the suites that group them. Paper benchmarks read the public files from
/// <see cref="EvalSettings.DataDir"/> in Hugging Face's layouts (docs/EVALUATION.md).</summary>
public static class EvalSuites
{
    public static IReadOnlyList<EvalTask> Tasks { get; } = BuildTasks();

    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Suites { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["demo"] = ["ppl-sotu", "quiz-capitals"],
        ["ppl"] = ["ppl-sotu", "ppl-ru", "ppl-zh"],
        ["quiz"] = QuizSets.All.Select(q => q.Name).ToList(),
        ["paper"] = ["mmlu", "arc-easy", "arc-challenge", "commonsense-qa", "squad-v2", "bleu-en-ru", "bleu-ru-en", "bleu-en-zh", "bleu-zh-en"],
    };

    /// <summary>Tasks named by a comma-separated list of suite and task names, each once, in order.</summary>
    public static IReadOnlyList<EvalTask> Resolve(string spec)
    {
        var names = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 0) throw new StrataException(
            $"--suite: empty; give tasks or suites ({string.Join(", ", Suites.Keys)}; tasks: {string.Join(", ", Tasks.Select(t => t.Name))})");
        var result = new List<EvalTask>();
        foreach (var n in names.SelectMany(n => Suites.TryGetValue(n, out var members) ? members : [n]))
        {
            var task = Tasks.FirstOrDefault(t => t.Name == n)
                ?? throw new StrataException(
                    $"--suite: unknown task or suite '{n}' (suites: {string.Join(", ", Suites.Keys)}; tasks: {string.Join(", ", Tasks.Select(t => t.Name))})");
            if (!result.Contains(task)) result.Add(task);
        }
        return result;
    }

    /// <summary>A perplexity task for each prepared dataset folder, named by its folder.</summary>
    public static IEnumerable<EvalTask> Datasets(IEnumerable<string> paths) =>
        paths.Select(p =>
        {
            var full = Path.GetFullPath(p);
            if (!Data.Dataset.Exists(full)) throw new StrataException($"--dataset {p}: not a dataset (make one with 'strata data prepare')");
            return (EvalTask)new DatasetPerplexityTask(Path.GetFileName(Path.TrimEndingDirectorySeparator(full)), full);
        });

    public static string DataDir(EvalSettings s) => s.DataDir ?? Path.Combine(s.Home, "data", "benchmarks");

    private static List<EvalTask> BuildTasks()
    {
        var tasks = new List<EvalTask>
        {
            new PerplexityTask("ppl-sotu", HeldOutCorpus.Sotu),
            new PerplexityTask("ppl-ru", HeldOutCorpus.FortunesRu),
            new PerplexityTask("ppl-zh", HeldOutCorpus.FortunesZh),
        };
        foreach (var q in QuizSets.All)
            tasks.Add(new MultipleChoiceTask(q.Name, q.Description, s => QuizSets.Load(q, s.Home, s.Seed), PaperPrompts.OptionList, maxNewTokens: 2));
        tasks.Add(new MultipleChoiceTask("mmlu", "MMLU test, all subjects pooled (cais/mmlu parquet or the original CSVs)", LoadMmlu,
            PaperPrompts.Mmlu, maxNewTokens: 1));
        tasks.Add(new MultipleChoiceTask("arc-easy", "ARC-Easy validation (allenai/ai2_arc)",
            s => Files(s, "ai2-arc/ARC-Easy", "validation-*.parquet", "allenai/ai2_arc ARC-Easy").SelectMany(
                BenchmarkFiles.LabelledChoices).ToList(), PaperPrompts.OptionList, 2));
        tasks.Add(new MultipleChoiceTask("arc-challenge", "ARC-Challenge validation (allenai/ai2_arc)",
            s => Files(s, "ai2-arc/ARC-Challenge", "validation-*.parquet", "allenai/ai2_arc ARC-Challenge").SelectMany(
                BenchmarkFiles.LabelledChoices).ToList(), PaperPrompts.OptionList, 2));
        tasks.Add(new MultipleChoiceTask("commonsense-qa", "CommonsenseQA validation (tau/commonsense_qa)",
            s => Files(s, "commonsense-qa", "validation-*.parquet", "tau/commonsense_qa").SelectMany(BenchmarkFiles.LabelledChoices).ToList(),
                PaperPrompts.OptionList, 2));
        tasks.Add(new SquadTask(s => Files(s, "squad-v2", "validation-*.parquet", "rajpurkar/squad_v2").SelectMany(BenchmarkFiles.SquadV2).ToList()));
        foreach (var (from, to) in new[] { ("en", "ru"), ("ru", "en"), ("en", "zh"), ("zh", "en") })
        {
            var pair = from == "en" ? $"en-{to}" : $"en-{from}";
            tasks.Add(new TranslationTask(from, to, s => Files(s, $"opus-100/{pair}", "validation-*.parquet",
                $"Helsinki-NLP/opus-100 {pair}").SelectMany(f => BenchmarkFiles.Opus100(f, from, to)).ToList()));
        }
        return tasks;
    }

    /// <summary>MMLU from <c>cais-mmlu/</c> (its <c>all/</c> folder if present, else every subject folder) or else the
    /// original CSVs in <c>mmlu-csv/test/</c>.</summary>
    private static IReadOnlyList<MultipleChoiceItem> LoadMmlu(EvalSettings s)
    {
        var root = DataDir(s);
        var cais = Path.Combine(root, "cais-mmlu");
        if (Directory.Exists(cais))
        {
            var all = Path.Combine(cais, "all");
            return Files(s, Directory.Exists(all) ? "cais-mmlu/all" : "cais-mmlu", "test-*.parquet", "cais/mmlu").SelectMany(
                BenchmarkFiles.MmluParquet).ToList();
        }
        return Files(s, "mmlu-csv/test", "*_test.csv", "cais/mmlu (or the original MMLU data.tar's test CSVs)").SelectMany(BenchmarkFiles.MmluCsv).ToList();
    }

    private static IReadOnlyList<string> Files(EvalSettings s, string folder, string pattern, string dataset)
    {
        var dir = Path.Combine(DataDir(s), folder);
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir, pattern, SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList() : [];
        if (files.Count == 0)
            throw new StrataException($"{dir}: no {pattern} files; put the public {dataset} files there (see docs/EVALUATION.md) or pass --data DIR");
        return files;
    }
}
