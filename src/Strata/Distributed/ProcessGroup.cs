using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Distributed;

/// <summary>
/// The ranks of a data-parallel job: one process per device, started by an MPI launcher (<c>mpirun</c>, or SLURM's
/// <c>srun</c> with PMIx). Rank 0 is the main rank, the one that writes. Collectives go through MPI for CPU memory
/// and NCCL for CUDA memory. Every collective is watched: one that waits longer than <see cref="Timeout"/> (a rank
/// died or hangs), or still waits a few seconds after a stop signal, ends this process with one line on stderr, and
/// the launcher then ends the others. A process that no launcher started is <see cref="Single"/> and loads no MPI.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    /// <summary>One process, no communication.</summary>
    public static ProcessGroup Single { get; } = new(0, 1, 0, 1, usesMpi: false, alwaysReduce: false);

    public int Rank { get; }
    public int Size { get; }
    /// <summary>This rank's number among the ranks on its machine (its CUDA device), and how many ranks run there.</summary>
    public int LocalRank { get; }
    public int LocalSize { get; }
    public bool IsMain => Rank == 0;
    /// <summary>Whether gradients are all-reduced (more than one rank, or a one-rank check of the collectives).</summary>
    public bool Reduces => Size > 1 || _alwaysReduce;

    /// <summary>How long one collective may wait for the other ranks (STRATA_COMM_TIMEOUT seconds; 300 by default:
    /// longer than any step, evaluation or checkpoint the ranks wait on each other for).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(
        double.TryParse(Environment.GetEnvironmentVariable("STRATA_COMM_TIMEOUT"), out var s) && s > 0 ? s : 300);

    /// <summary>Bytes this rank has all-reduced (gradients and scalars), and the seconds spent in collectives.</summary>
    public long BytesReduced { get; private set; }
    public double CommSeconds { get; private set; }

    private readonly bool _usesMpi, _alwaysReduce;
    private string? _inFlight;                                           // the collective in progress, for the watchdog
    private long _inFlightSince, _stopSince;
    private Thread? _watchdog;
    private volatile bool _disposed;

    private ProcessGroup(int rank, int size, int localRank, int localSize, bool usesMpi, bool alwaysReduce) =>
        (Rank, Size, LocalRank, LocalSize, _usesMpi, _alwaysReduce) = (rank, size, localRank, localSize, usesMpi, alwaysReduce);

    /// <summary>Whether an MPI launcher started this process (Open MPI's mpirun, or srun / PMIx).</summary>
    public static bool Launched =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null || Environment.GetEnvironmentVariable("PMIX_RANK") is not null ||
        int.TryParse(Environment.GetEnvironmentVariable("SLURM_NTASKS"), out var n) && n > 1 && Environment.GetEnvironmentVariable("SLURM_PROCID") is not null;

    /// <summary>The job this process belongs to: MPI_Init'ed when a launcher started it, otherwise <see cref="Single"/>.
    /// Call before the first tensor: with several ranks on one machine, each gets an equal share of its cores (unless
    /// OMP_NUM_THREADS is set) and its own CUDA device (unless CUDA_VISIBLE_DEVICES is set).</summary>
    public static ProcessGroup Start()
    {
        if (!Launched) return Single;
        int localRank = EnvInt("OMPI_COMM_WORLD_LOCAL_RANK") ?? EnvInt("SLURM_LOCALID") ?? 0;
        int localSize = EnvInt("OMPI_COMM_WORLD_LOCAL_SIZE") ?? LocalTasks() ?? 1;
        if (localSize > 1 && Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") is null)
            SetNativeEnvironment("CUDA_VISIBLE_DEVICES", localRank.ToString());
        Mpi.Init();
        var group = new ProcessGroup(Mpi.Rank, Mpi.Size, localRank, localSize, usesMpi: true, alwaysReduce: true);
        if (Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null)
            torch.set_num_threads(Math.Max(1, Environment.ProcessorCount / localSize));
        group.StartWatchdog();
        group.Hosts = group.GatherHosts();
        return group;
    }

    /// <summary>The machine each rank runs on (by rank), for messages that name a rank.</summary>
    public IReadOnlyList<string> Hosts { get; private set; } = [Environment.MachineName];

    /// <summary>Every rank's host name (up to 64 ASCII characters), through one all-reduce of a table that each rank
    /// fills its own row of.</summary>
    private IReadOnlyList<string> GatherHosts()
    {
        const int Width = 64;
        var table = new double[Size * Width];
        var mine = Environment.MachineName;
        for (int i = 0; i < Math.Min(Width, mine.Length); i++) table[Rank * Width + i] = mine[i] < 128 ? mine[i] : '?';
        AllReduceSum(table);
        return Enumerable.Range(0, Size).Select(r => new string(table.AsSpan(r * Width, Width).ToArray().TakeWhile(c => c > 0).Select(c => (char)c).ToArray()))
            .ToList();
    }

    /// <summary>The ranks this one waits on in a collective, for a message: with two ranks the other one and its host.</summary>
    private string Others() => Size == 2 ? $"rank {1 - Rank} (on {Hosts.ElementAtOrDefault(1 - Rank) ?? "?"})"
        : $"one or more of ranks {string.Join(", ", Enumerable.Range(0, Size).Where(r => r != Rank))}";

    /// <summary>mpirun's options for ranks on this machine: more ranks than cores allowed, no pinning (each rank sets
    /// its own thread count), and the flag Open MPI requires to run as root.</summary>
    public static IReadOnlyList<string> LocalMpirunOptions() =>
        ["--oversubscribe", "--bind-to", "none", .. LostHostOptions, .. Environment.UserName == "root" ? new[] { "--allow-run-as-root" } : []];

    /// <summary>mpirun's options that make it notice a machine it can no longer reach within about 10 s (TCP keepalives
    /// on its control connections: after 5 s of silence, 3 probes 2 s apart) instead of the default 8 minutes.</summary>
    public static IReadOnlyList<string> LostHostOptions { get; } =
        ["--mca", "oob_tcp_keepalive_time", "5", "--mca", "oob_tcp_keepalive_intvl", "2", "--mca", "oob_tcp_keepalive_probes", "3"];

    /// <summary>One process that still all-reduces every gradient (through NCCL on CUDA): exercises the collective
    /// path where only one device is at hand.</summary>
    public static ProcessGroup SingleWithCollectives() => new(0, 1, 0, 1, usesMpi: false, alwaysReduce: true);

    /// <summary>The NCCL library in use (file and version), once a CUDA all-reduce has loaded it.</summary>
    public static string? NcclDescription => Nccl.Description;

    /// <summary>In-place sum of a few scalars over the ranks (losses, flags, counts).</summary>
    public unsafe void AllReduceSum(Span<double> values)
    {
        if (!_usesMpi) return;
        long start = Begin("all-reduce of scalars");
        try { fixed (double* p = values) Mpi.AllReduceSum(p, values.Length, Mpi.Double); }
        finally { End(start, values.Length * sizeof(double)); }
    }

    /// <summary>Whether any rank says yes (a stop signal seen by one rank stops all of them at the same step).</summary>
    public bool Any(bool value)
    {
        Span<double> v = [value ? 1 : 0];
        AllReduceSum(v);
        return v[0] > 0;
    }

    /// <summary>In-place mean over the ranks of a contiguous float32 tensor, on the CPU (MPI) or a CUDA device (NCCL).</summary>
    public unsafe void AllReduceMean(Tensor flat)
    {
        if (!Reduces) return;
        if (flat.dtype != ScalarType.Float32 || !flat.is_contiguous()) throw new ArgumentException("all-reduce takes a contiguous float32 tensor",
            nameof(flat));
        long count = flat.numel();
        nint data = TensorMemory.Float32(flat);
        if (flat.device.type == DeviceType.CUDA)
        {
            Nccl.Init(Rank, Size, ShareFromMain);
            long start = Begin("NCCL all-reduce");
            try { Nccl.AllReduceSum(data, count); }
            finally { End(start, count * sizeof(float)); }
        }
        else if (_usesMpi)
        {
            if (count > int.MaxValue) throw new ArgumentException("a bucket over 2^31 elements", nameof(flat));
            long start = Begin("MPI all-reduce");
            try { Mpi.AllReduceSum((void*)data, (int)count, Mpi.Float); }
            finally { End(start, count * sizeof(float)); }
        }
        if (Size <= 1) return;
        using Scalar size = Size;
        flat.div_(size);
    }

    /// <summary>Rank 0's bytes on every rank.</summary>
    public unsafe byte[] Broadcast(byte[] fromMain)
    {
        if (!_usesMpi) return fromMain;
        int length = fromMain.Length;
        long start = Begin("broadcast from rank 0");
        try
        {
            Mpi.Broadcast(&length, sizeof(int), 0);
            var data = IsMain ? fromMain : new byte[length];
            fixed (byte* p = data) Mpi.Broadcast(p, length, 0);
            return data;
        }
        finally { End(start, sizeof(int) + length); }
    }

    private void ShareFromMain(Span<byte> id) => Broadcast(id.ToArray()).CopyTo(id);

    /// <summary>Waits until every rank gets here (<paramref name="what"/> names the point, for the watchdog's message).</summary>
    public void Barrier(string what)
    {
        if (!_usesMpi) return;
        long start = Begin($"waiting for the other ranks: {what}");
        try { Mpi.Barrier(); }
        finally { End(start, 0); }
    }

    /// <summary>Refuses a job whose ranks were started differently: each (what, name, content) is hashed and compared
    /// with rank 0's; every rank then stops with a line that names what differs and where.</summary>
    public void RequireSame(params (string What, string Name, string Content)[] items)
    {
        if (!_usesMpi || Size == 1) return;
        var mine = items.Select(i => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(i.Content)))[..12]).ToArray();
        var main = Encoding.UTF8.GetString(Broadcast(Encoding.UTF8.GetBytes(string.Join('\n', items.Select((i, k) => $"{i.Name}\t{mine[k]}"))))).Split('\n');
        var differs = new double[items.Length * Size];
        for (int k = 0; k < items.Length; k++) differs[k * Size + Rank] = main[k].Split('\t')[1] == mine[k] ? 0 : 1;
        AllReduceSum(differs);
        for (int k = 0; k < items.Length; k++)
        {
            var ranks = Enumerable.Range(0, Size).Where(r => differs[k * Size + r] > 0).ToList();
            if (ranks.Count == 0) continue;
            var (mainName, mainHash) = (main[k].Split('\t')[0], main[k].Split('\t')[1]);
            string where = ranks.Contains(Rank) ? $"this rank ({Rank}) was started with {items[k].What} '{items[k].Name}' ({mine[k]})"
                : $"rank{(ranks.Count > 1 ? "s" : "")} {string.Join(", ", ranks)} {(ranks.Count > 1 ? "were" : "was")} started with another {items[k].What}";
            throw new StrataException(
                $"{where}, rank 0 with {items[k].What} '{mainName}' ({mainHash}): every rank of a job runs the same plan, program and data");
        }
    }

    /// <summary>Marks that a stop signal arrived: a collective still waiting a few seconds later never will. One that
    /// has waited a second already is reported at once (a launcher that lost a rank signals the others, and may not
    /// give them the seconds the watchdog would take).</summary>
    public void StopRequested()
    {
        Interlocked.CompareExchange(ref _stopSince, Stopwatch.GetTimestamp(), 0);
        if (Volatile.Read(ref _inFlight) is { } what && Stopwatch.GetElapsedTime(Volatile.Read(ref _inFlightSince)) > TimeSpan.FromSeconds(1))
            Report(stopping: true, what, Stopwatch.GetElapsedTime(Volatile.Read(ref _inFlightSince)));
    }

    private int _reported;

    /// <summary>The one line that says which rank this one was waiting for (printed once).</summary>
    private void Report(bool stopping, string what, TimeSpan waited)
    {
        if (Interlocked.Exchange(ref _reported, 1) == 1) return;
        Console.Error.WriteLine(stopping
            ? $"error: rank {Rank}: stopped while waiting {waited.TotalSeconds:F0} s for {Others()} ({what}); continue from the last checkpoint with " +
                "'strata train --resume --out DIR'"
            : $"error: rank {Rank}: lost {Others()}: no answer for {waited.TotalSeconds:F0} s ({what}), it has stopped, hangs or cannot be " +
                "reached; ending the job (continue from the last checkpoint with 'strata train --resume --out DIR')");
        Console.Error.Flush();
    }

    /// <summary>Marks a collective in progress (for the watchdog); <see cref="End"/> counts its bytes and time.</summary>
    private long Begin(string what)
    {
        long start = Stopwatch.GetTimestamp();
        Volatile.Write(ref _inFlightSince, start);
        Volatile.Write(ref _inFlight, what);
        return start;
    }

    private void End(long start, long bytes)
    {
        Volatile.Write(ref _inFlight, null);
        BytesReduced += bytes;
        CommSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private void StartWatchdog()
    {
        _watchdog = new Thread(() =>
        {
            while (!_disposed)
            {
                Thread.Sleep(250);
                if (Volatile.Read(ref _inFlight) is not { } what) continue;
                var waited = Stopwatch.GetElapsedTime(Volatile.Read(ref _inFlightSince));
                long stop = Volatile.Read(ref _stopSince);
                bool stopping = stop != 0 && Stopwatch.GetElapsedTime(stop) > TimeSpan.FromSeconds(3) && waited > TimeSpan.FromSeconds(3);
                if (waited < Timeout && !stopping) continue;
                Report(stopping, what, waited);
                Exit(stopping ? 143 : 1);
            }
        }) { IsBackground = true, Name = "strata collective watchdog" };
        _watchdog.Start();
    }

    [DllImport("libc.so.6", EntryPoint = "_exit")]
    private static extern void Exit(int code);

    [DllImport("libc.so.6", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    private static void SetNativeEnvironment(string name, string value)
    {
        SetEnv(name, value, 1);
        Environment.SetEnvironmentVariable(name, value);
    }

    private static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : null;

    private static int? LocalTasks()
    {
        // SLURM_TASKS_PER_NODE reads like "4(x2),3"; this node's count is the first when nodes are alike
        var s = Environment.GetEnvironmentVariable("SLURM_TASKS_PER_NODE");
        return s is null ? null : int.TryParse(new string(s.TakeWhile(char.IsDigit).ToArray()), out var n) ? n : null;
    }

    public void Dispose()
    {
        if (_disposed || !Reduces) return;
        _disposed = true;
        Nccl.Destroy();
        if (_usesMpi) Mpi.End();
    }
}
