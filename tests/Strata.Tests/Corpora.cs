namespace Strata.Tests;

/// <summary>Real text that scripts/bootstrap.sh installs: State of the Union (English), fortunes-ru, fortunes-zh.</summary>
internal static class Corpora
{
    public static IEnumerable<string> EnglishFiles => Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data"),
        "*.txt").Order(StringComparer.Ordinal);
    public static IEnumerable<string> RussianFiles => Fortunes("/usr/share/games/fortunes/ru");
    public static IEnumerable<string> ChineseFiles => new[] { "chinese", "tang300", "song100" }.Select(f => Path.Combine("/usr/share/games/fortunes", f));

    private static IEnumerable<string> Fortunes(string dir)
    {
        if (!Directory.Exists(dir)) throw new InvalidOperationException($"{dir} is missing: run scripts/bootstrap.sh (it installs fortunes-ru, fortunes-zh)");
        return Directory.EnumerateFiles(dir).Where(f => !f.EndsWith(".dat") && !f.EndsWith(".u8") && new FileInfo(f).LinkTarget is null).Order(
            StringComparer.Ordinal);
    }

    public static string Read(string file) => Strata.Data.Corpus.ReadText(file);

    public static string StripAnsi(string text) => Strata.Data.Corpus.StripAnsiColour(text);
}
