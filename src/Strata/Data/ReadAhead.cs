using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace Strata.Data;

/// <summary>Files read on several threads at once, their documents handed on in reading order: file by file, each
/// file's in its own order, exactly as one thread reading them in turn would hand them on. A thread takes the next
/// file, reads it and queues its documents in chunks. The file being handed on is always read on; the others stop when
/// the documents queued ahead of it reach <see cref="AheadChars"/> per reading thread beyond the first, so memory stays
/// bounded whatever the files' sizes. A file's error is thrown where its documents would have come, after the documents
/// it gave before it, and stops the other threads.</summary>
internal static class ReadAhead
{
    /// <summary>Characters of documents a chunk gathers before it is queued.</summary>
    private const long ChunkChars = 1 << 20;

    /// <summary>Characters queued ahead of the file being handed on, per reading thread beyond the first (64 MiB of
    /// UTF-16): while one thread reads a file of 64 MB of text, another reads most of the next such file.</summary>
    public const long AheadChars = 32L << 20;

    /// <summary>Files taken ahead of the one being handed on, at most: a bound for corpora of many tiny files (the
    /// characters bound the rest), far enough that small files after a large one are read while it is.</summary>
    private const int FilesAhead = 1024;

    private sealed class FileSlot(int index)
    {
        public int Index { get; } = index;
        public BlockingCollection<(Document[] Documents, long Chars)> Chunks { get; } = new();
        public Exception? Error;
    }

    /// <summary>The documents of files 0 to <paramref name="count"/> - 1, in order.</summary>
    /// <param name="read">one file's documents, in order (called on the reading threads, several files at once)</param>
    /// <param name="threads">reading threads; with one (or one file) the files are read in turn on the caller's thread</param>
    /// <param name="aheadChars">characters queued ahead of the file being handed on, per reading thread beyond the first</param>
    public static IEnumerable<Document> InOrder(int count, Func<int, IEnumerable<Document>> read, int threads, long aheadChars = AheadChars)
    {
        if (threads <= 1 || count <= 1)
        {
            for (int i = 0; i < count; i++)
                foreach (var d in read(i)) yield return d;
            yield break;
        }
        using var cancel = new CancellationTokenSource();
        using var started = new BlockingCollection<FileSlot>(boundedCapacity: FilesAhead);      // files taken, in file order
        var gate = new object();                                                         // guards queued and head
        long queued = 0, limit = (threads - 1) * aheadChars;
        int head = 0, next = 0, running = threads;
        using var wake = cancel.Token.Register(() => { lock (gate) Monitor.PulseAll(gate); });

        void Queue(FileSlot slot, List<Document> chunk, long chars)
        {
            lock (gate)
            {
                while (slot.Index != head && queued >= limit && !cancel.IsCancellationRequested) Monitor.Wait(gate);
                cancel.Token.ThrowIfCancellationRequested();
                queued += chars;
            }
            slot.Chunks.Add((chunk.ToArray(), chars));
        }

        void ReadFile(FileSlot slot)
        {
            var chunk = new List<Document>();
            long chars = 0;
            try
            {
                foreach (var d in read(slot.Index))
                {
                    cancel.Token.ThrowIfCancellationRequested();
                    chunk.Add(d);
                    chars += d.Text.Length;
                    if (chars < ChunkChars) continue;
                    Queue(slot, chunk, chars);
                    (chars, chunk) = (0, new List<Document>());
                }
            }
            catch (Exception e) when (e is not OperationCanceledException && chunk.Count > 0)
            {
                Queue(slot, chunk, chars);                                               // the documents before the error go on, as they would in turn
                throw;
            }
            if (chunk.Count > 0) Queue(slot, chunk, chars);
        }

        void Reader()
        {
            try
            {
                while (true)
                {
                    FileSlot slot;
                    lock (started)                                                       // a file's number and its place in the queue together
                    {
                        if (next == count) return;
                        slot = new FileSlot(next++);
                        started.Add(slot, cancel.Token);
                    }
                    try { ReadFile(slot); }
                    catch (OperationCanceledException) when (cancel.IsCancellationRequested) { return; }
                    catch (Exception e) { slot.Error = e; }
                    finally { slot.Chunks.CompleteAdding(); }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested) { }
            finally
            {
                if (Interlocked.Decrement(ref running) == 0) started.CompleteAdding();
            }
        }

        var readers = Enumerable.Range(0, threads).Select(i => new Thread(Reader) { IsBackground = true, Name = $"read-{i}" }).ToArray();
        foreach (var t in readers) t.Start();
        try
        {
            foreach (var slot in started.GetConsumingEnumerable(cancel.Token))
            {
                lock (gate)
                {
                    head = slot.Index;
                    Monitor.PulseAll(gate);
                }
                foreach (var (documents, chars) in slot.Chunks.GetConsumingEnumerable(cancel.Token))
                {
                    lock (gate)
                    {
                        queued -= chars;
                        Monitor.PulseAll(gate);
                    }
                    foreach (var d in documents) yield return d;
                }
                if (slot.Error is { } e) ExceptionDispatchInfo.Capture(e).Throw();
            }
        }
        finally
        {
            cancel.Cancel();                                                             // the consumer stopped, or every file is read
            foreach (var t in readers) t.Join();
        }
    }
}
