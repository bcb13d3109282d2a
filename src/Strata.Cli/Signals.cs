using System.Runtime.InteropServices;
using Strata.Util;

namespace Strata.Cli;

/// <summary>SIGINT and SIGTERM. While a training run is in progress the first signal asks it to stop after the step in
/// progress (it writes a checkpoint and returns); otherwise, or at a second signal, the process ends at once, after
/// deleting the temporary files of writes in flight (finished files are always whole: writes are atomic).</summary>
public static class Signals
{
    private static readonly CancellationTokenSource Source = new();
    private static readonly List<PosixSignalRegistration> Registrations = new();
    private static int _graceful;

    /// <summary>Cancelled by the first SIGINT / SIGTERM during <see cref="Graceful"/>.</summary>
    public static CancellationToken Stop => Source.Token;

    public static void Install()
    {
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            Registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                if (Volatile.Read(ref _graceful) > 0 && !Source.IsCancellationRequested)
                {
                    context.Cancel = true;                                                   // keep running: the trainer stops cleanly
                    Console.Error.WriteLine(Distributed.ProcessGroup.Launched
                        ? $"\n{context.Signal}: this rank stops with the others after the step in progress (with a checkpoint if they all get there)"
                        : $"\n{context.Signal}: finishing the step and writing a checkpoint (again to stop at once)");
                    Source.Cancel();
                    return;
                }
                AtomicFile.AbandonInFlight();
            }));
    }

    /// <summary>Marks the span in which a signal stops gracefully (a training run).</summary>
    public static IDisposable Graceful()
    {
        Interlocked.Increment(ref _graceful);
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        private int _done;
        public void Dispose() { if (Interlocked.Exchange(ref _done, 1) == 0) Interlocked.Decrement(ref _graceful); }
    }
}
