using System.Diagnostics;
using Xunit;

namespace Strata.Tests;

/// <summary>The CLI packs as a .NET tool that runs outside the repository's build folders.</summary>
public class PackagingTests
{
    private static (int Code, string Output) Run(string file, string args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory
            ?? TestPaths.RepoRoot };
        psi.Environment.Remove("STRATA_HOME");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); return (-1, "timed out"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void The_packed_tool_installs_into_an_empty_folder_and_reads_a_plan()
    {
        var dir = TestPaths.TempDir();
        try
        {
            var packages = Path.Combine(dir, "packages");
            // the suite's build is runtime-agnostic; the tool package holds the linux-x64 build (about 15 s, beside it)
            var (build, buildOut) = Run("dotnet", "build src/Strata.Cli/Strata.Cli.csproj -c Release -r linux-x64 --no-restore -nologo");
            Assert.True(build == 0, buildOut);
            var (pack, packOut) = Run("dotnet", $"pack src/Strata.Cli/Strata.Cli.csproj -c Release --no-build -nologo -o \"{packages}\"");
            Assert.True(pack == 0, packOut);
            // a pointer package and one package per runtime, each with its symbols beside it, not in it
            var pointer = Assert.Single(Directory.GetFiles(packages, "Strata.Cli.0*.nupkg"));
            var linux = Assert.Single(Directory.GetFiles(packages, "Strata.Cli.linux-x64.*.nupkg"));
            Assert.Equal(2, Directory.GetFiles(packages, "Strata.Cli.*.snupkg").Length);
            using (var zip = System.IO.Compression.ZipFile.OpenRead(Path.ChangeExtension(linux, ".snupkg")))
                Assert.Contains(zip.Entries, e => e.Name == "Strata.pdb");
            using (var zip = System.IO.Compression.ZipFile.OpenRead(pointer)) Assert.Contains(zip.Entries, e => e.FullName == "README.md");
            using (var zip = System.IO.Compression.ZipFile.OpenRead(linux))
            {
                Assert.Contains(zip.Entries, e => e.Name == "libtorch_cpu.so");
                // Strata's own portable symbols (240 KB) stay in too, for line numbers in a tool user's stack trace
                Assert.DoesNotContain(zip.Entries, e => e.FullName.Contains("/win-", StringComparison.Ordinal) || e.Name == "libtorch_python.so"
                    || e.Name.EndsWith(".pdb", StringComparison.Ordinal) && !e.Name.StartsWith("Strata", StringComparison.Ordinal));
            }
            var tools = Path.Combine(dir, "tools");
            var (install, installOut) = Run("dotnet", $"tool install --tool-path \"{tools}\" --add-source \"{packages}\" --ignore-failed-sources Strata.Cli");
            Assert.True(install == 0, installOut);
            var (info, output) = Run(Path.Combine(tools, "strata"), "info plans/demo.json");
            Assert.True(info == 0, output);
            Assert.Contains("active 8,818,176", output);                                  // stage 2 of the demo, LoRA included
            var (help, usage) = Run(Path.Combine(tools, "strata"), "train --help", workingDirectory: dir);
            Assert.True(help == 0, usage);
            Assert.Contains("strata train [options]", usage);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
