// A dataset is a folder of token shards and a manifest (format 1):
//   manifest.json          what follows; the dataset's commit point (written last, atomically)
//   train-G-00000.tokens   the training split, in shards of a bounded size (G: the preparation's generation)
//   val-G-00000.tokens     the validation split
// The manifest names the tokenizer and its content hash, and per split the documents, UTF-8 bytes and tokens and every
// shard with its token count and the sha256 of its tokens; it also records the inputs and the options that made it.
// A folder from an older Strata (train.tokens, val.tokens, meta.json) opens as a dataset of one shard per split.
using Strata.Util;

namespace Strata.Data;

public sealed record ShardInfo(string File, long Tokens, string? Sha256);

public sealed record SplitInfo(long Documents, long Bytes, long Tokens, IReadOnlyList<ShardInfo> Shards)
{
    public static SplitInfo Empty { get; } = new(0, 0, 0, []);
}

/// <summary>One input of a preparation: what it was, how it was read, and what it gave.</summary>
public sealed record InputInfo(string Path, string Kind, string Compression, string? Field, long Documents, long Bytes, long ValidationDocuments = 0);

public sealed record DatasetManifest
{
    public const string FileName = "manifest.json", FormatName = "strata-dataset";
    public const int CurrentFormat = 1;

    public string Format { get; init; } = FormatName;
    public int FormatVersion { get; init; } = CurrentFormat;
    public required string Tokenizer { get; init; }
    public required string TokenizerHash { get; init; }
    public required int VocabSize { get; init; }
    public required SplitInfo Train { get; init; }
    public required SplitInfo Validation { get; init; }
    public IReadOnlyList<InputInfo> Inputs { get; init; } = [];
    /// <summary>The preparation's options, as given (for the record and for resuming it).</summary>
    public PrepareRecipe? Recipe { get; init; }
    /// <summary>Invalid UTF-8 sequences replaced by U+FFFD (only with --replace-invalid; otherwise they are refused).</summary>
    public long Replacements { get; init; }

    public SplitInfo Split(DatasetSplit split) => split == DatasetSplit.Train ? Train : Validation;
}

public enum DatasetSplit { Train, Validation }

/// <summary>What decides a dataset's content, as its manifest records it; a preparation resumes only under the same recipe.</summary>
public sealed record PrepareRecipe(IReadOnlyList<string> Inputs, string Pattern, string? Exclude, string Tokenizer, string TokenizerHash,
    double ValidationFraction, string? ValidationMatch, long Seed, string Field, bool StripBom, bool NewlinesToLf, bool StripAnsiColour,
    bool ReplaceInvalid, long ShardTokens);

/// <summary>The meta.json of a folder prepared by an older Strata (train.tokens, val.tokens): read, never written.</summary>
internal sealed record PreparedData(string Tokenizer, int VocabSize, long TrainTokens, long ValidationTokens,
    long TrainDocuments, long ValidationDocuments, long TrainBytes, long ValidationBytes, IReadOnlyList<string> ValidationFiles, string? TokenizerHash = null)
{
    public const string TrainFile = "train.tokens", ValidationFile = "val.tokens", MetaFile = "meta.json";

    public static PreparedData? TryRead(string shardPath)
    {
        var meta = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(shardPath))!, MetaFile);
        return File.Exists(meta) ? Json.ReadFile<PreparedData>(meta) : null;
    }
}
