using System.Diagnostics;
using Strata.Formats;
using Strata.Runs;
using Strata.Util;
using Xunit;

namespace Strata.Tests;

/// <summary>
/// Past one host: two Linux network namespaces joined by a veth pair stand in for two machines on one network (each
/// has only its own address; the file system is shared, as a cluster's NFS is). mpirun runs in the first and reaches
/// the second through a launch agent that enters its namespace where ssh would log in; Open MPI talks TCP between
/// them. Two ranks train, the link is cut mid-run, the job must end within the collective watchdog with one line that
/// names the lost rank, and the run resumes on one host exactly as a run that was never split across hosts.
/// Needs root (ip netns), iproute2 and Open MPI, which scripts/bootstrap.sh installs.
/// </summary>
[Collection("torch")]
public class TwoHostTests
{
    private static readonly string Cli = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll");
    private const int WatchdogSeconds = 20;

    private static (int Code, string Output) Sh(params string[] command)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    private static void Must(params string[] command)
    {
        var (code, output) = Sh(command);
        Assert.True(code == 0, $"{string.Join(' ', command)}: exit {code}: {output}");
    }

    /// <summary>Two namespaces "hosts" 10.88.N.1 and .2, torn down on dispose.</summary>
    private sealed class Hosts : IDisposable
    {
        public readonly string A, B, IpA, IpB, Subnet, Agent, HostFile;
        private readonly string _link;

        public Hosts()
        {
            int n = Environment.ProcessId % 200 + 20;
            (A, B, _link) = ($"strata{n}a", $"strata{n}b", $"sv{n}");
            (IpA, IpB, Subnet) = ($"10.88.{n}.1", $"10.88.{n}.2", $"10.88.{n}.0/24");
            Dispose();                                                                        // what an earlier run left
            Must("ip", "netns", "add", A);
            Must("ip", "netns", "add", B);
            Must("ip", "link", "add", _link + "a", "type", "veth", "peer", "name", _link + "b");
            foreach (var (ns, end, ip) in new[] { (A, "a", IpA), (B, "b", IpB) })
            {
                Must("ip", "link", "set", _link + end, "netns", ns);
                Must("nsenter", "--net=/run/netns/" + ns, "ip", "addr", "add", ip + "/24", "dev", _link + end);
                Must("nsenter", "--net=/run/netns/" + ns, "ip", "link", "set", _link + end, "up");
                Must("nsenter", "--net=/run/netns/" + ns, "ip", "link", "set", "lo", "up");
            }
            var dir = TestPaths.TempDir();
            Agent = Path.Combine(dir, "agent.sh");
            File.WriteAllText(Agent, $"""
                #!/bin/sh
                # stands in for ssh: "agent [options] HOST COMMAND..." runs COMMAND in HOST's network namespace
                while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
                host=$1; shift
                case "$host" in {IpA}) ns={A} ;; {IpB}) ns={B} ;; *) echo "unknown host $host" >&2; exit 1 ;; esac
                exec nsenter --net=/run/netns/"$ns" /bin/sh -c "$*"
                """);
            Must("chmod", "+x", Agent);
            HostFile = Path.Combine(dir, "hosts");
            File.WriteAllText(HostFile, $"{IpA} slots=1\n{IpB} slots=1\n");
        }

        /// <summary>Cuts the link between the hosts (the cable pulled: no reset, no error, silence).</summary>
        public void Cut() => Must("nsenter", "--net=/run/netns/" + A, "ip", "link", "set", _link + "a", "down");

        /// <summary>Ends whatever still runs in the namespaces (a daemon the cut left waiting), then removes them and the
        /// link between them.</summary>
        public void Dispose()
        {
            foreach (var ns in new[] { A, B })
            {
                var (listed, pids) = Sh("ip", "netns", "pids", ns);                           // fails when the namespace is gone
                foreach (var line in listed == 0 ? pids.Split('\n', StringSplitOptions.RemoveEmptyEntries) : [])
                    if (int.TryParse(line.Trim(), out var pid)) Sh("bash", "-c", $"kill -9 {pid}");   // bash's kill: a minimal Debian has no /bin/kill
                Sh("ip", "netns", "del", ns);
            }
            // a link end still in this namespace (a run stopped before moving it) survives the namespaces' removal;
            // deleting one end of a veth pair deletes both
            foreach (var end in new[] { "a", "b" }) Sh("ip", "link", "del", _link + end);
        }
    }

    private static string PlanFile()
    {
        var plan = SotuData.Plan(20_000, batch: 4, checkpointEvery: 2, evalEvery: 100_000) with { Name = "two-hosts" };
        var path = Path.Combine(TestPaths.TempDir(), "two-hosts.json");
        File.WriteAllText(path, Json.Serialize(plan));
        return path;
    }

    private static (int Code, string Output) Local(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Cli, "train" }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["STRATA_HOME"] = TestPaths.RepoRoot;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(4)), "a local run did not finish");
        return (p.ExitCode, output.Result + error.Result);
    }

    [Fact]
    public async Task A_cut_link_between_two_hosts_ends_the_job_naming_the_lost_rank_and_the_run_resumes_exactly_on_one_host()
    {
        using var hosts = new Hosts();
        var plan = PlanFile();
        var run = new RunDirectory(Path.Combine(TestPaths.TempDir(), "split"));
        // the job's console goes to a file: a daemon the cut leaves behind in the second namespace keeps pipes open
        var console = Path.Combine(TestPaths.TempDir(), "job.log");
        var psi = new ProcessStartInfo("sh");
        var mpirun = new[] { "nsenter", "--net=/run/netns/" + hosts.A, "mpirun", "--allow-run-as-root", "--hostfile", hosts.HostFile, "-np", "2",
                "--mca", "plm_rsh_agent", hosts.Agent, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", hosts.Subnet,
                "--mca", "oob_tcp_if_include", hosts.Subnet }
            .Concat(Distributed.ProcessGroup.LostHostOptions)
            .Concat(["-x", "OMP_NUM_THREADS=1", "-x", $"STRATA_COMM_TIMEOUT={WatchdogSeconds}", "-x", $"STRATA_HOME={TestPaths.RepoRoot}",
                "dotnet", Cli, "train", "--plan", plan, "--out", run.Path]);
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" > " + console + " 2>&1 < /dev/null");
        psi.ArgumentList.Add("sh");
        foreach (var arg in mpirun) psi.ArgumentList.Add(arg);
        using var job = Process.Start(psi)!;
        string Said() => File.Exists(console) ? File.ReadAllText(console) : "";
        try
        {
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(run.Metrics) && File.ReadLines(run.Metrics).Count(l => l.Contains("\"kind\":\"train\"")) >= 8 && File.Exists(run.Checkpoint)))
            {
                Assert.False(job.HasExited, $"the two-host job ended early: {Said()}");
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"the two-host job never reached step 8: {Said()}");
                await Task.Delay(100);
            }
            hosts.Cut();
            var cut = Stopwatch.StartNew();
            bool ended = job.WaitForExit(TimeSpan.FromSeconds(WatchdogSeconds + 25));
            Assert.True(ended, $"the job outlived the collective watchdog by 25 s: {Said()}");
            Assert.NotEqual(0, job.ExitCode);
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(Said(),
                @"error: rank 0: (lost rank 1 \(on .+\): no answer for \d+ s|stopped while waiting \d+ s for rank 1 \(on .+\))"), Said());
        }
        finally
        {
            if (!job.HasExited) job.Kill(entireProcessTree: true);
        }

        // the run resumes on one host; the same steps taken by two ranks on one host, then one, give the same bits
        long k = Checkpoint.ReadInfo(run.Checkpoint).GlobalStep;
        Assert.True(k >= 2);
        var (resumed, again) = Local("--resume", "--out", run.Path, "--stop-after", (k + 6).ToString());
        Assert.True(resumed == 0, again);
        var reference = new RunDirectory(Path.Combine(TestPaths.TempDir(), "one-host"));
        var (two, twoOut) = Local("--plan", plan, "--out", reference.Path, "--ranks", "2", "--stop-after", k.ToString());
        Assert.True(two == 0, twoOut);
        var (one, oneOut) = Local("--resume", "--out", reference.Path, "--stop-after", (k + 6).ToString());
        Assert.True(one == 0, oneOut);
        using var a = new SafetensorsFile(run.Checkpoint);
        using var b = new SafetensorsFile(reference.Checkpoint);
        Assert.Equal(a.Entries.Keys.Order(), b.Entries.Keys.Order());
        foreach (var name in a.Entries.Keys) Assert.True(a.ReadBytes(name).AsSpan().SequenceEqual(b.ReadBytes(name)), $"{name} differs");
    }
}
