using Strata.Data;
using Xunit;

namespace Strata.Tests;

/// <summary>The data preparation's encoding threads: batches come back in the order they went in, whatever order the
/// threads finish them in; a batch's error is thrown in its place; cancelling unblocks a producer.</summary>
public class EncodingWorkersTests
{
    [Fact]
    public async Task Batches_that_finish_out_of_order_come_back_in_order()
    {
        var rng = new Random(7);
        var delays = Enumerable.Range(0, 200).Select(_ => rng.Next(0, 3)).ToArray();
        var threadsSeen = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        using var workers = new EncodingWorkers<int[]>(3, batch =>
        {
            threadsSeen[Environment.CurrentManagedThreadId] = true;
            Thread.Sleep(delays[batch[0]]);
            batch[1] = batch[0] * batch[0];
        });
        var producer = Task.Run(() =>
        {
            for (int i = 0; i < delays.Length; i++) workers.Add([i, -1]);
            workers.CompleteAdding();
        });
        var results = workers.Results().ToList();
        await producer;
        Assert.Equal(Enumerable.Range(0, delays.Length), results.Select(b => b[0]));
        Assert.All(results, b => Assert.Equal(b[0] * b[0], b[1]));
        Assert.True(threadsSeen.Count > 1, "the batches were all done on one thread");
    }

    [Fact]
    public async Task A_batch_error_is_thrown_in_its_place_after_the_batches_before_it()
    {
        using var workers = new EncodingWorkers<int[]>(2, batch => { if (batch[0] == 5) throw new InvalidDataException("bad batch 5"); });
        var producer = Task.Run(() =>
        {
            try { for (int i = 0; i < 20; i++) workers.Add([i]); }
            catch (OperationCanceledException) { }
            finally { workers.CompleteAdding(); }
        });
        var seen = new List<int>();
        var e = Assert.Throws<InvalidDataException>(() => { foreach (var b in workers.Results()) seen.Add(b[0]); });
        Assert.Equal("bad batch 5", e.Message);
        Assert.Equal([0, 1, 2, 3, 4], seen);
        workers.Cancel();                                                               // the producer, blocked on a full pipeline, gets out
        await producer.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
