using System.Diagnostics;

namespace Strata.Bench;

/// <summary>This benchmark started again, as a process of its own, with other arguments: through the dotnet host when
/// it runs under it (<c>dotnet Strata.Bench.dll</c>), else through its own executable (the apphost, or a published
/// self-contained app on a machine without .NET).</summary>
public static class ChildProcess
{
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("this process's executable is not known");
        var psi = new ProcessStartInfo(self);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
