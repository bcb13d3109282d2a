using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace Strata.Data;

/// <summary>A fixed set of threads that each take a whole batch, run the work on it, and hand the batches back in the
/// order they were added. No thread waits for another's batch to finish (a long document delays only the hand-back
/// of its own batch), and at most threads + 2 batches are in flight, which bounds the memory.</summary>
internal sealed class EncodingWorkers<T> : IDisposable
{
    private sealed class Slot(T batch)
    {
        public T Batch { get; } = batch;
        public Exception? Error;
        public readonly ManualResetEventSlim Done = new(false);
    }

    private readonly BlockingCollection<Slot> _work = new(), _order;
    private readonly Thread[] _threads;
    private readonly CancellationTokenSource _cancel = new();

    /// <param name="body">the work on one batch; it runs on the workers' own threads for the whole run (so a
    /// tokenizer's per-thread cache lives as long as the run)</param>
    public EncodingWorkers(int threads, Action<T> body)
    {
        _order = new BlockingCollection<Slot>(boundedCapacity: threads + 2);
        _threads = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            try
            {
                foreach (var slot in _work.GetConsumingEnumerable(_cancel.Token))
                {
                    try { body(slot.Batch); }
                    catch (Exception e) { slot.Error = e; }
                    finally { slot.Done.Set(); }
                }
            }
            catch (OperationCanceledException) { }
        }) { IsBackground = true, Name = $"encode-{i}" }).ToArray();
        foreach (var t in _threads) t.Start();
    }

    /// <summary>Queues a batch; blocks while threads + 2 batches are in flight.</summary>
    public void Add(T batch)
    {
        var slot = new Slot(batch);
        _order.Add(slot, _cancel.Token);
        _work.Add(slot, _cancel.Token);
    }

    /// <summary>No more batches: <see cref="Results"/> ends after the last one.</summary>
    public void CompleteAdding()
    {
        _order.CompleteAdding();
        _work.CompleteAdding();
    }

    /// <summary>The batches, done, in the order they were added (the first batch's error is thrown in its place).</summary>
    public IEnumerable<T> Results()
    {
        foreach (var slot in _order.GetConsumingEnumerable(_cancel.Token))
        {
            slot.Done.Wait(_cancel.Token);
            slot.Done.Dispose();
            if (slot.Error is { } e) ExceptionDispatchInfo.Capture(e).Throw();
            yield return slot.Batch;
        }
    }

    /// <summary>Stops taking batches: a blocked <see cref="Add"/> throws OperationCanceledException, and the workers
    /// stop after the batch they are on.</summary>
    public void Cancel() => _cancel.Cancel();

    public void Dispose()
    {
        _cancel.Cancel();
        foreach (var t in _threads) t.Join();
        _cancel.Dispose();
        _work.Dispose();
        _order.Dispose();
    }
}
