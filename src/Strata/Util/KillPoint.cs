using System.Runtime.InteropServices;

namespace Strata.Util;

/// <summary>
/// Crash testing: with STRATA_KILL_AT="name#n" in the environment the process sends itself SIGKILL the n-th time it
/// passes the point <c>name</c> (a kill -9 at an exact place: between a file's write and its rename, between the stage
/// file and the checkpoint, in the middle of a metrics record). Without the variable a point costs one comparison.
/// </summary>
internal static class KillPoint
{
    private static readonly (string Name, int Count)? Target = Parse(Environment.GetEnvironmentVariable("STRATA_KILL_AT"));
    private static int _passed;

    private static (string, int)? Parse(string? spec)
    {
        if (string.IsNullOrEmpty(spec)) return null;
        var parts = spec.Split('#');
        return (parts[0], parts.Length > 1 && int.TryParse(parts[1], out var n) && n > 0 ? n : 1);
    }

    /// <summary>Whether the point <paramref name="name"/> is the one armed (for points that need a special path).</summary>
    public static bool IsArmed(string name) => Target?.Name == name;

    public static void Here(string name)
    {
        if (Target is not { } t || t.Name != name || Interlocked.Increment(ref _passed) != t.Count) return;
        Console.Out.Flush();
        Kill(Environment.ProcessId, 9);
        Environment.FailFast($"kill point {name}");                              // not reached where kill(2) exists
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
