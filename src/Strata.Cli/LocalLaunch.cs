using System.Diagnostics;
using Strata.Util;

namespace Strata.Cli;

/// <summary>
/// <c>strata train --ranks N</c>: the same command line started N times on this machine by Open MPI's mpirun, which
/// then owns the job (a rank that fails ends the others). Its output is passed through, rank 0's progress and every
/// rank's errors. Under a launcher already (mpirun, srun) there is nothing to start.
/// </summary>
internal static class LocalLaunch
{
    public static int Run(int ranks, IEnumerable<string> commandLine, TextWriter output, TextWriter error)
    {
        if (Distributed.ProcessGroup.Launched)
            throw new StrataException("--ranks starts mpirun itself; a process started by mpirun or srun takes its ranks from the launcher: leave --ranks out");
        var mpirun = FindOnPath("mpirun")
            ?? throw new StrataException("--ranks needs Open MPI's mpirun (Debian: apt-get install openmpi-bin libopenmpi3; in a Strata checkout " +
                                         "scripts/bootstrap.sh installs it)");
        var psi = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in Distributed.ProcessGroup.LocalMpirunOptions().Prepend(ranks.ToString()).Prepend("-np")) psi.ArgumentList.Add(a);
        var self = Environment.ProcessPath ?? throw new StrataException("cannot tell which program is running to start it again");
        psi.ArgumentList.Add(self);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(LocalLaunch).Assembly.Location);
        foreach (var a in commandLine) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var forward = new[] { Pump(p.StandardOutput, output), Pump(p.StandardError, error) };
        p.WaitForExit();
        Task.WaitAll(forward);
        return p.ExitCode;
    }

    private static async Task Pump(StreamReader from, TextWriter to)
    {
        while (await from.ReadLineAsync() is { } line)
            lock (to) { to.WriteLine(line); to.Flush(); }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
