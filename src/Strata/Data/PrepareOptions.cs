using Strata.Tokenization;

namespace Strata.Data;

/// <summary>Options of <c>strata data prepare</c>.</summary>
public sealed record PrepareOptions
{
    public required IReadOnlyList<string> Inputs { get; init; }
    public required string OutDir { get; init; }
    /// <summary>Every kind of file a corpus is read from: text, JSON lines and Parquet (each also .gz or .zst).</summary>
    public const string AnyText = "*.txt,*.jsonl,*.parquet";
    public string Pattern { get; init; } = AnyText;
    /// <summary>Relative paths matching this regular expression are skipped (e.g. fortune files' .dat indexes).</summary>
    public string? Exclude { get; init; }
    public string Tokenizer { get; init; } = Tokenizers.Default;
    /// <summary>Share of documents held out for validation, chosen per document by a seeded hash. A single uncompressed
    /// text file is split by position instead (its last share, from a line start).</summary>
    public double ValidationFraction { get; init; } = 0.1;
    /// <summary>If set, documents whose relative path matches go to validation and the fraction is ignored.</summary>
    public string? ValidationMatch { get; init; }
    public long Seed { get; init; } = 1337;
    public ReadOptions Read { get; init; } = new();
    /// <summary>Tokens per shard.</summary>
    public long ShardTokens { get; init; } = 100_000_000;
    /// <summary>Cores used for encoding (the output does not depend on it).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Threads reading files, several files at once (the output does not depend on it).</summary>
    public int ReadThreads { get; init; } = DefaultReadThreads;
    /// <summary>One reading thread per three cores: a megabyte of text takes about half as long to read (decompress,
    /// parse, check as UTF-8) as to encode with bvv241 on one core, so one reading thread keeps about two encoding
    /// threads busy, and a machine of more cores would wait on it.</summary>
    public static int DefaultReadThreads => Math.Max(1, Environment.ProcessorCount / 3);
    /// <summary>Ignore an interrupted preparation's progress and start again.</summary>
    public bool Restart { get; init; }
    public TextWriter Log { get; init; } = TextWriter.Null;
}
