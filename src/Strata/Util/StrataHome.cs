namespace Strata.Util;

/// <summary>
/// Where Strata keeps what outlives a run: prepared corpora (data/NAME), cached visual substrate tables
/// (data/substrates), quiz sets (data/eval), public benchmark files (data/benchmarks) and raw corpora (data/raw).
/// It is STRATA_HOME when set (the repository's ./strata sets it to the repository), otherwise
/// $XDG_DATA_HOME/strata, otherwise ~/.local/share/strata. Read once per process.
/// </summary>
public static class StrataHome
{
    public const string Variable = "STRATA_HOME";

    public static string Root { get; } = Resolve();

    private static string Resolve()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } home) return Path.GetFullPath(home);
        var data = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(data, "strata");
    }
}
