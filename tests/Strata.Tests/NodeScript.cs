using System.Diagnostics;

namespace Strata.Tests;

/// <summary>Runs a script of tests/js with Node.js and the packages scripts/bootstrap.sh installs there.</summary>
internal static class NodeScript
{
    public static string Directory => Path.Combine(TestPaths.RepoRoot, "tests", "js");

    /// <summary>The script's standard output; a non-zero exit fails with its standard error.</summary>
    public static string Run(string script, params string[] args)
    {
        if (!System.IO.Directory.Exists(Path.Combine(Directory, "node_modules")))
            throw new InvalidOperationException($"{Directory}/node_modules is missing: run scripts/bootstrap.sh (scripts/test.sh does)");
        var start = new ProcessStartInfo("node") { WorkingDirectory = Directory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); throw new TimeoutException($"node {script}: over 5 minutes"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {script} exited with {p.ExitCode}:\n{stderr.Result}");
        return stdout;
    }
}
