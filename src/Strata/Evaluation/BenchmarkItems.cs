using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet.Serialization;
using Strata.Formats;
using Strata.Util;

namespace Strata.Evaluation;

/// <summary>A multiple-choice question: its choices with their labels (A-D, or the dataset's own, e.g. "1"-"4"), the
/// index of the right one, and where it came from ("file:line" or "file row N") for error messages.</summary>
public sealed record MultipleChoiceItem(string Question, IReadOnlyList<string> Labels, IReadOnlyList<string> Choices, int Answer, string Source)
{
    public string AnswerLabel => Labels[Answer];
}

/// <summary>A reading-comprehension question; an empty answer list means unanswerable (SQuAD v2).</summary>
internal sealed record SquadItem(string Context, string Question, IReadOnlyList<string> Answers, string Source);

internal sealed record TranslationPair(string Source, string Target, string Origin);

/// <summary>Readers for the public layouts of the paper's benchmarks as Hugging Face and the original authors publish
/// them. Every malformed row is refused with its file and row (or line).</summary>
internal static class BenchmarkFiles
{
    public static readonly string[] Letters = ["A", "B", "C", "D", "E", "F", "G", "H"];

    /// <summary><c>cais/mmlu</c>: question, subject, choices (list of 4), answer (int64 index).</summary>
    public static IReadOnlyList<MultipleChoiceItem> MmluParquet(string path) =>
        Parquet<MmluRow>(path).Select((r, i) =>
        {
            var where = $"{path} row {i + 1}";
            var choices = Require(r.Choices, "choices", where);
            if (choices.Count != 4) throw new StrataException($"{where}: choices: expected 4, got {choices.Count}");
            var answer = r.Answer ?? throw new StrataException($"{where}: answer is missing");
            if (answer is < 0 or > 3) throw new StrataException($"{where}: answer: expected 0-3, got {answer}");
            return new MultipleChoiceItem(Require(r.Question, "question", where), Letters[..4], choices, (int)answer, where);
        }).ToList();

    /// <summary>The original MMLU CSVs (<c>data/test/&lt;subject&gt;_test.csv</c>): no header; question, A, B, C, D, answer letter.</summary>
    public static IReadOnlyList<MultipleChoiceItem> MmluCsv(string path) =>
        Csv.Read(path).Select(row =>
        {
            var where = $"{path}:{row.Line}";
            if (row.Fields.Count != 6) throw new StrataException($"{where}: expected 6 fields (question, A, B, C, D, answer), got {row.Fields.Count}");
            int answer = Array.IndexOf(Letters[..4], row.Fields[5].Trim());
            if (answer < 0) throw new StrataException($"{where}: answer: expected A, B, C or D, got '{row.Fields[5]}'");
            return new MultipleChoiceItem(row.Fields[0], Letters[..4], row.Fields.Skip(1).Take(4).ToList(), answer, where);
        }).ToList();

    /// <summary><c>allenai/ai2_arc</c> and <c>tau/commonsense_qa</c>: question, choices {text[], label[]}, answerKey.</summary>
    public static IReadOnlyList<MultipleChoiceItem> LabelledChoices(string path) =>
        Parquet<LabelledRow>(path).Select((r, i) =>
        {
            var where = $"{path} row {i + 1}";
            var c = r.Choices ?? throw new StrataException($"{where}: choices is missing");
            var text = Require(c.Text, "choices.text", where);
            var labels = Require(c.Label, "choices.label", where);
            if (text.Count != labels.Count || text.Count < 2)
                throw new StrataException($"{where}: choices: {text.Count} texts for {labels.Count} labels");
            var key = Require(r.AnswerKey, "answerKey", where);
            int answer = labels.IndexOf(key);
            if (answer < 0) throw new StrataException($"{where}: answerKey '{key}' is not one of the labels {string.Join(",", labels)}");
            return new MultipleChoiceItem(Require(r.Question, "question", where), labels, text, answer, where);
        }).ToList();

    /// <summary><c>rajpurkar/squad_v2</c>: context, question, answers {text[], answer_start[]}.</summary>
    public static IReadOnlyList<SquadItem> SquadV2(string path) =>
        Parquet<SquadRow>(path).Select((r, i) =>
        {
            var where = $"{path} row {i + 1}";
            return new SquadItem(Require(r.Context, "context", where), Require(r.Question, "question", where), r.Answers?.Text ?? [], where);
        }).ToList();

    /// <summary><c>Helsinki-NLP/opus-100</c>: translation {xx, yy}; pairs from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static IReadOnlyList<TranslationPair> Opus100(string path, string from, string to) =>
        Parquet<OpusRow>(path).Select((r, i) =>
        {
            var where = $"{path} row {i + 1}";
            var t = r.Translation ?? throw new StrataException($"{where}: translation is missing");
            return new TranslationPair(Require(t.Get(from), $"translation.{from}", where), Require(t.Get(to), $"translation.{to}", where), where);
        }).ToList();

    private static T Require<T>(T? value, string field, string where) where T : class =>
        value ?? throw new StrataException($"{where}: {field} is missing");

    /// <summary>The largest benchmark Parquet file read (MMLU's whole test split is about 3 MB).</summary>
    private const long MaxParquetBytes = 1L << 30;

    private static IList<T> Parquet<T>(string path) where T : class, new()
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: no such file");
        ParquetGuard.Check(path);
        // read from memory: every await inside Parquet.Net then completes at once on this thread, instead of resuming
        // on a thread-pool thread (1.5 MB of stack) when the file's reads complete later; a damaged file that makes it
        // recurse deeply crashed the process that way, depending on timing (found by the fuzz tests)
        var length = new FileInfo(path).Length;
        if (length > MaxParquetBytes) throw new StrataException($"{path}: {length:N0} bytes; benchmark files over {MaxParquetBytes:N0} are not read");
        using var memory = new MemoryStream(File.ReadAllBytes(path), writable: false);
        try { return ParquetSerializer.DeserializeAsync<T>(memory).GetAwaiter().GetResult().Data; }
        catch (Exception e) when (e is not (StrataException or OutOfMemoryException))
        {
            throw new StrataException($"{path}: not a parquet file in the expected layout ({e.GetType().Name})");
        }
    }

    /// <summary>Multiple-choice items as JSON lines (the cached form of the built benchmarks).</summary>
    public static void WriteJsonl(string path, IEnumerable<MultipleChoiceItem> items)
    {
        var sb = new StringBuilder();
        foreach (var it in items)
            sb.Append(Json.Compact(new JsonlItem(it.Question, it.Labels, it.Choices, it.Answer))).Append('\n');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    public static IReadOnlyList<MultipleChoiceItem> ReadJsonl(string path)
    {
        var items = new List<MultipleChoiceItem>();
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (text.Length == 0) continue;
            var where = $"{path}:{line}";
            JsonlItem? r;
            try { r = JsonSerializer.Deserialize<JsonlItem>(text, Json.Options); }
            catch (JsonException e) { throw new StrataException($"{where}: not a JSON object ({Json.Describe(e)})"); }
            if (r?.Question is null || r.Labels is null || r.Choices is null || r.Labels.Count != r.Choices.Count || r.Answer < 0
                || r.Answer >= r.Choices.Count)
                throw new StrataException($"{where}: expected {{question, labels, choices, answer}} with as many labels as choices and 0 <= answer < choices");
            items.Add(new MultipleChoiceItem(r.Question, r.Labels, r.Choices, r.Answer, where));
        }
        return items;
    }

    private sealed record JsonlItem(string Question, IReadOnlyList<string> Labels, IReadOnlyList<string> Choices, int Answer);

    private sealed class MmluRow
    {
        [JsonPropertyName("question")] public string? Question { get; set; }
        [JsonPropertyName("choices")] public List<string>? Choices { get; set; }
        [JsonPropertyName("answer")] public long? Answer { get; set; }
    }

    private sealed class LabelledRow
    {
        [JsonPropertyName("question")] public string? Question { get; set; }
        [JsonPropertyName("choices")] public ChoiceList? Choices { get; set; }
        [JsonPropertyName("answerKey")] public string? AnswerKey { get; set; }
    }

    private sealed class ChoiceList
    {
        [JsonPropertyName("text")] public List<string>? Text { get; set; }
        [JsonPropertyName("label")] public List<string>? Label { get; set; }
    }

    private sealed class SquadRow
    {
        [JsonPropertyName("context")] public string? Context { get; set; }
        [JsonPropertyName("question")] public string? Question { get; set; }
        [JsonPropertyName("answers")] public SquadAnswers? Answers { get; set; }
    }

    private sealed class SquadAnswers
    {
        [JsonPropertyName("text")] public List<string>? Text { get; set; }
    }

    private sealed class OpusRow
    {
        [JsonPropertyName("translation")] public OpusLanguages? Translation { get; set; }
    }

    /// <summary>The language columns OPUS-100's English pairs use in the paper's directions.</summary>
    private sealed class OpusLanguages
    {
        [JsonPropertyName("en")] public string? En { get; set; }
        [JsonPropertyName("ru")] public string? Ru { get; set; }
        [JsonPropertyName("zh")] public string? Zh { get; set; }

        public string? Get(string code) => code switch
        {
            "en" => En, "ru" => Ru, "zh" => Zh,
            _ => throw new StrataException($"OPUS-100 language '{code}': Strata reads en, ru and zh"),
        };
    }
}

/// <summary>RFC 4180 CSV (quoted fields may hold commas, doubled quotes and newlines), with the line each record starts
/// on; read as a stream, and a field longer than <see cref="MaxField"/> characters is refused (no benchmark has one).</summary>
internal static class Csv
{
    public const int MaxField = 1 << 20;

    public static IEnumerable<(int Line, List<string> Fields)> Read(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: no such file");
        using var reader = new StreamReader(path, new UTF8Encoding(false, throwOnInvalidBytes: true));
        int line = 1;
        int Next()
        {
            try { return reader.Read(); }
            catch (DecoderFallbackException) { throw new StrataException($"{path}:{line}: invalid UTF-8"); }
        }
        int Peek()
        {
            try { return reader.Peek(); }
            catch (DecoderFallbackException) { throw new StrataException($"{path}:{line}: invalid UTF-8"); }
        }
        int c = Next();
        while (c >= 0)
        {
            int start = line;
            var fields = new List<string>();
            var field = new StringBuilder();
            bool quoted = false, atFieldStart = true, endOfRecord = false;
            void Append(char ch)
            {
                if (field.Length >= MaxField) throw new StrataException($"{path}:{start}: a field longer than {MaxField:N0} characters");
                field.Append(ch);
            }
            for (; c >= 0 && !endOfRecord; c = Next())
            {
                char ch = (char)c;
                if (quoted)
                {
                    if (ch == '"')
                    {
                        if (Peek() == '"') { Append('"'); Next(); }
                        else quoted = false;
                    }
                    else { if (ch == '\n') line++; Append(ch); }
                }
                else if (ch == '"' && atFieldStart) { quoted = true; atFieldStart = false; }
                else if (ch == ',') { fields.Add(field.ToString()); field.Clear(); atFieldStart = true; }
                else if (ch == '\r' && Peek() == '\n') { }
                else if (ch == '\n') { line++; endOfRecord = true; }
                else if (ch == '"') throw new StrataException($"{path}:{line}: a quote inside an unquoted field");
                else { Append(ch); atFieldStart = false; }
            }
            if (quoted) throw new StrataException($"{path}:{start}: a quoted field is not closed");
            fields.Add(field.ToString());
            if (fields.Count == 1 && fields[0].Length == 0) continue;   // blank line
            yield return (start, fields);
        }
    }
}
